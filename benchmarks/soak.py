"""Client soak: thousands of requests through the loopback LLM double, with faults, at high concurrency.

    python benchmarks/soak.py [--requests 5000] [--concurrency 32] [--fault-rate 0.05] [--max-seconds 170]

Why: a generation run makes thousands of calls; the client must neither leak memory nor lose requests when a
server misbehaves. This drives `medsynth.llm.client.LLMClient` directly (response cache off, so every request
goes over HTTP) with real generation prompts (task `ner`, planned slots 0..N-1), against the test double
(`tests/llm_double.py`) answering with `tests/fake_generator.answer`, running in a separate process on
127.0.0.1 so the client's memory is measured alone. About `--fault-rate` of the HTTP attempts misbehave: 429
with Retry-After, 500, 503, dropped connections, truncated bodies, invalid JSON, and answers slower than the
client timeout. Every 500 completed requests it records the client's RSS (psutil) and peak RSS
(resource.getrusage), so a leak shows as a rising column. Writes benchmarks/results/soak.json and soak.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medsynth.generate import prompt as prompting  # noqa: E402
from medsynth.llm.client import LLMClient, LLMConfig  # noqa: E402
from medsynth.generate.parse import parse_answer  # noqa: E402
from medsynth.generate.plan import make_plan  # noqa: E402
from medsynth.spec import get_task  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

# The double, in its own process: faults drawn per HTTP attempt from a seeded generator; on SIGTERM it writes
# what it injected to the file named by argv[2]. argv: port-file, counts-file, fault-rate, slow-seconds.
_DOUBLE = """
    import json, random, signal, sys, threading
    from collections import Counter
    sys.path.insert(0, {root!r})
    from tests.fake_generator import answer
    from tests import llm_double
    from tests.llm_double import Fault, LLMDouble

    # socketserver's default listen backlog (5) overflows with 32 clients reconnecting after faults, which
    # shows up as connection resets that nobody injected; a real server's backlog is in the hundreds.
    llm_double._Server.request_queue_size = 256

    rate, slow = float(sys.argv[3]), float(sys.argv[4])
    rng, lock, counts = random.Random(20240), threading.Lock(), Counter()
    faults = [("429", lambda a: Fault.http(429, "soak: rate limited", retry_after=0.2)),
              ("500", lambda a: Fault.http(500, "soak: internal error")),
              ("503", lambda a: Fault.http(503, "soak: overloaded")),
              ("drop", lambda a: Fault.dropped()),
              ("truncate", lambda a: Fault.truncated()),
              ("bad_json", lambda a: Fault.bad_json()),
              ("slow", lambda a: Fault.slow(slow, a))]

    def responder(request):
        with lock:
            draw, pick = rng.random(), rng.randrange(len(faults))
        if draw < rate:
            name, make = faults[pick]
            with lock:
                counts[name] += 1
            return make(answer(request))
        with lock:
            counts["ok"] += 1
        return answer(request)

    double = LLMDouble(responder, owned_by="me").start()
    open(sys.argv[1], "w").write(str(double.port))

    def stop(*_):
        double.close()
        open(sys.argv[2], "w").write(json.dumps(counts))
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.pause()
"""


def _cpu() -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gen_speed import _cpu as cpu_model  # one definition of "which machine", shared by the benchmarks

    return cpu_model()


def _start_double(work: Path, fault_rate: float, slow: float) -> tuple[subprocess.Popen, int]:
    port_file, counts_file = work / "port", work / "counts.json"
    for f in (port_file, counts_file):
        f.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_DOUBLE.format(root=str(ROOT))), str(port_file),
                             str(counts_file), str(fault_rate), str(slow)])
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the LLM double did not start")
        time.sleep(0.05)
    return proc, int(port_file.read_text())


def _stop_double(proc: subprocess.Popen, work: Path) -> dict:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    try:
        return json.loads((work / "counts.json").read_text())
    except (OSError, ValueError):
        return {}


def _requests(n_distinct: int) -> list[tuple[list[dict], dict, int]]:
    """(messages, schema, seed) for the first slots of a real `ner` plan, built before the first memory sample:
    the planner keeps per-slot state for every slot it has planned, which would otherwise show up as growth."""
    task = get_task("ner")
    plans = [make_plan(task, slot, 13) for slot in range(n_distinct)]
    return [(prompting.messages(task, p), prompting.schema(task, p), p.seed) for p in plans]


async def _soak(client: LLMClient, n: int, workers: int, max_seconds: float, every: int) -> dict:
    requests = _requests(min(n, 1000))
    me = psutil.Process()
    outcome: Counter = Counter()
    samples: list[dict] = []
    state = {"next": 0, "done": 0}
    t0 = time.monotonic()

    def sample() -> None:
        samples.append({"requests": state["done"], "seconds": round(time.monotonic() - t0, 2),
                        "rss_mb": round(me.memory_info().rss / 2**20, 1),
                        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                        "python_objects": len(gc.get_objects()),  # a leak of objects shows here, not only in RSS
                        "retries": client.stats.retries, "errors": client.stats.errors})

    async def worker() -> None:
        while state["next"] < n and time.monotonic() - t0 < max_seconds:
            index = state["next"]
            state["next"] += 1
            messages, schema, seed = requests[index % len(requests)]
            # a new seed per round through the plans: a different answer from the double, as from an LLM
            resp = await client.complete(messages, schema=schema, seed=seed + 7919 * (index // len(requests)),
                                         temperature=0.8, max_tokens=256)
            if resp.text is None:
                outcome["failed"] += 1
            else:
                outcome["parsed" if parse_answer(resp.text, "json").error is None else "unparseable"] += 1
            state["done"] += 1
            if state["done"] % every == 0:
                sample()

    sample()
    await asyncio.gather(*(worker() for _ in range(workers)))
    seconds = time.monotonic() - t0
    if samples[-1]["requests"] != state["done"]:
        sample()
    await client.aclose()
    return {"completed": state["done"], "seconds": round(seconds, 2), "outcome": dict(outcome), "samples": samples}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--fault-rate", type=float, default=0.05, help="share of HTTP attempts that misbehave")
    ap.add_argument("--timeout", type=float, default=2.0, help="client timeout (s); slow faults take 1.5x this")
    ap.add_argument("--max-seconds", type=float, default=170.0, help="stop issuing requests after this long")
    ap.add_argument("--every", type=int, default=500, help="memory sample interval, in completed requests")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    work = args.out / ".soak-work"
    work.mkdir(parents=True, exist_ok=True)
    proc, port = _start_double(work, args.fault_rate, 1.5 * args.timeout)
    try:
        client = LLMClient(LLMConfig(base_url=f"http://127.0.0.1:{port}/v1", model="double-model",
                                     concurrency=args.concurrency, timeout=args.timeout, max_retries=5,
                                     structured="llamacpp"), cache=None)
        run = asyncio.run(_soak(client, args.requests, args.concurrency, args.max_seconds, args.every))
    finally:
        injected = _stop_double(proc, work)
        for f in work.iterdir():
            f.unlink()
        work.rmdir()

    stats = client.stats.as_dict()
    rss = [s["rss_mb"] for s in run["samples"][1:]] or [run["samples"][0]["rss_mb"]]
    attempts = sum(injected.values())
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "command": " ".join(["python benchmarks/soak.py", *(argv if argv is not None else sys.argv[1:])]),
        "config": {"requests": args.requests, "concurrency": args.concurrency, "fault_rate": args.fault_rate,
                   "timeout_s": args.timeout, "max_retries": 5, "cache": False, "endpoint": "127.0.0.1 (double)"},
        "completed": run["completed"],
        "seconds": run["seconds"],
        "requests_per_second": round(run["completed"] / max(run["seconds"], 1e-9), 1),
        "http_attempts": attempts,
        "faults_injected": {k: v for k, v in sorted(injected.items()) if k != "ok"},
        "retries": stats["retries"],
        "retry_reasons": stats["retry_reasons"],
        "failed_requests": stats["errors"],
        "outcome": run["outcome"],
        "lost_requests": args.requests - run["completed"] if run["completed"] < args.requests else 0,
        "rss_mb": {"first_sample_after_warmup": rss[0], "last": rss[-1], "max": max(rss),
                   "growth_after_warmup": round(rss[-1] - rss[0], 1)},
        "samples": run["samples"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (args.out / "soak.md").write_text(_markdown(result), encoding="utf-8")
    print(_markdown(result))
    return 0


def _markdown(r: dict) -> str:
    m = r["machine"]
    faults = ", ".join(f"{k} {v}" for k, v in r["faults_injected"].items()) or "none"
    reasons = ", ".join(f"{k} {v}" for k, v in r["retry_reasons"].items()) or "none"
    lines = [
        "# Client soak: LLMClient against the loopback double with injected faults", "",
        f"- date: {r['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, Python {m['python']} ({m['platform']})",
        f"- command: `{r['command']}`",
        f"- config: {r['config']['requests']} requests, concurrency {r['config']['concurrency']}, "
        f"fault rate {r['config']['fault_rate']:.0%} of HTTP attempts, timeout {r['config']['timeout_s']:g} s, "
        f"max retries {r['config']['max_retries']}, response cache off, endpoint {r['config']['endpoint']}",
        "",
        "| completed | seconds | req/s | HTTP attempts | faults injected | retries | failed requests | parsed answers |",
        "|---|---|---|---|---|---|---|---|",
        f"| {r['completed']} | {r['seconds']} | {r['requests_per_second']} | {r['http_attempts']} | "
        f"{sum(r['faults_injected'].values())} | {r['retries']} | {r['failed_requests']} | "
        f"{r['outcome'].get('parsed', 0)} |",
        "",
        f"Faults injected: {faults}. Retry reasons: {reasons}.",
        "",
        "Memory of the client process (the double runs in its own process), sampled every "
        f"{r['samples'][1]['requests'] - r['samples'][0]['requests'] if len(r['samples']) > 1 else '?'} requests:",
        "",
        "| requests | seconds | RSS MB | peak RSS MB | Python objects | retries | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in r["samples"]:
        lines.append(f"| {s['requests']} | {s['seconds']} | {s['rss_mb']} | {s['peak_rss_mb']} | "
                     f"{s['python_objects']} | {s['retries']} | {s['errors']} |")
    g = r["rss_mb"]
    objs = [s["python_objects"] for s in r["samples"][1:]] or [0]
    lines += ["", f"RSS after the first {r['samples'][1]['requests'] if len(r['samples']) > 1 else 0} requests: "
              f"{g['first_sample_after_warmup']} MB; at the end: {g['last']} MB (growth {g['growth_after_warmup']} MB, "
              f"max {g['max']} MB). Live Python objects after warm-up: {min(objs)}–{max(objs)} (a leak of objects "
              "would grow with every request). The first 1,000 request bodies are built before the first sample; "
              "the double runs in its own process with a listen backlog of 256.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

"""Generation throughput, side by side: the raw server, medsynth on top of it, before/after, and the pipeline's
own ceiling.

    python benchmarks/throughput.py                       # everything, Qwen (run it on an idle machine)
    python benchmarks/throughput.py --parts raw,build     # only some parts; others keep their stored results
    python benchmarks/throughput.py --quick               # smoke: tiny model, 1-2 in flight, a few requests

Parts (each measurement is saved to benchmarks/results/throughput.json as soon as it is taken, and a later run
skips measurements already stored for the same settings, so an interrupted run resumes; --fresh starts over):

* raw      llama-server alone: real `ner` generation prompts and schema (json_object+schema, as medsynth
           sends them), `--requests` requests at 1, 2, 4, 8 in flight (slots = in flight), timed after a
           warm-up that caches the system prompt in every slot. Completion tokens/s, and per request the
           prompt / generation seconds the server reports in `timings`.
* plain    as raw, without `response_format`: the same prompts unconstrained (what the schema grammar costs).
* build    `build ner` through medsynth at the same in-flight levels (concurrency = slots = level, response cache
           off): kept examples/min, completion tokens/s, useful completion tokens/s (the share of tokens that
           became kept examples: completion tokens x kept / requests), seconds per request split into prompt and
           generation from llama-server's /metrics, and the ratio medsynth / raw (completion tokens/s).
* before   `build ner` on llama-cpp-python's server (the old engine; one request at a time) against llama-server
           at its default slots: kept_per_min each and the speedup.
* format   `build ner --format inline` (the sentence once, mentions marked inline) on llama-server at `--slots`,
           beside the json `build` row of the same n and slots: kept/min, kept ÷ requests, completion tokens per
           kept example and the aligner's repairs per kept example.
* ceiling  `build ner` against the loopback LLM double (tests/llm_double.py, in its own process, answering
           instantly with tests/fake_generator.answer) at 1k / 10k / 100k examples, each in a fresh process:
           examples/s and peak RSS, with near-duplicate removal on, and the seconds split into plan .. store,
           dedup (curation) and export; a size whose seconds per example grow >25 % over the smallest is flagged.

Writes benchmarks/results/throughput.json and throughput.md with the date, machine and command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
LEVELS = (1, 2, 4, 8)
CEILING_SIZES = (1_000, 10_000, 100_000)
NONLINEAR = 1.25  # seconds per example more than this x the smallest size's = growth flagged as not linear
PARTS = ("raw", "plain", "build", "before", "format", "ceiling")
ALIGN_REPAIRS = ("case", "fuzzy", "snapped", "dropped:not_found")  # mentions the aligner could not place as stated


# -- pure helpers (tested in tests/benchmarks/test_throughput.py) ------------------------------------------
def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text from llama-server's /metrics → {name without the `llamacpp:` prefix: value}."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            values[name.split("{")[0].removeprefix("llamacpp:")] = float(value)
        except ValueError:
            continue
    return values


def metrics_split(before: dict[str, float], after: dict[str, float], requests: int) -> dict:
    """Seconds per request spent evaluating prompts and generating, from two /metrics snapshots. With several
    slots these are per-request busy times, which overlap: they add up to more than the wall time."""
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    n = max(1, requests)
    return {"prompt_s_per_request": round(delta("prompt_seconds_total") / n, 3),
            "gen_s_per_request": round(delta("tokens_predicted_seconds_total") / n, 3),
            "prompt_tokens_per_request": round(delta("prompt_tokens_total") / n, 1),
            "completion_tokens_per_request": round(delta("tokens_predicted_total") / n, 1)}


def raw_summary(replies: list[dict], wall: float, level: int) -> dict:
    """Aggregate raw-server replies (each: completion_tokens, prompt_ms, predicted_ms, cache_n)."""
    n = max(1, len(replies))
    completion = sum(r["completion_tokens"] for r in replies)
    return {"in_flight": level, "requests": len(replies), "seconds": round(wall, 2),
            "completion_tokens": completion, "completion_tok_per_s": round(completion / wall, 2) if wall else 0.0,
            "requests_per_min": round(60 * len(replies) / wall, 2) if wall else 0.0,
            "prompt_s_per_request": round(sum(r["prompt_ms"] for r in replies) / 1000 / n, 3),
            "gen_s_per_request": round(sum(r["predicted_ms"] for r in replies) / 1000 / n, 3),
            "cached_prompt_tokens_per_request": round(sum(r["cache_n"] for r in replies) / n, 1)}


def build_summary(stats: dict, wall: float, level: int) -> dict:
    """`build ner` stats.json → kept/min and token rates; `useful` = tokens attributed to kept examples."""
    run = stats.get("this_run", {})
    requests = max(1, int(run.get("llm_calls") or stats.get("requests") or 0))
    completion = int(run.get("completion_tokens") or 0)
    kept = int(stats.get("kept") or 0)
    repairs = stats.get("repairs") or {}
    return {"in_flight": level, "kept": kept, "requests": requests, "seconds": round(wall, 2),
            "kept_per_min": round(60 * kept / wall, 2) if wall else 0.0,
            "completion_tok_per_s": round(completion / wall, 2) if wall else 0.0,
            "useful_completion_tok_per_s": round(completion * kept / requests / wall, 2) if wall else 0.0,
            "kept_ratio": round(kept / requests, 3),
            "completion_tokens_per_kept": round(completion / kept, 1) if kept else None,
            "align_repairs_per_kept": round(sum(int(repairs.get(k, 0)) for k in ALIGN_REPAIRS) / kept, 3)
            if kept else None}


def decode_rate(row: dict) -> float | None:
    """Completion tokens a second while a slot decodes (the server's own generation timings)."""
    tokens, seconds = row.get("completion_tokens"), row.get("gen_s_per_request")
    requests = row.get("requests")
    if not tokens or not seconds or not requests:
        return None
    return round(tokens / (seconds * requests), 2)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if numerator and denominator else None


def flag_nonlinear(rows: list[dict]) -> list[dict]:
    """Mark ceiling rows whose seconds per example exceed NONLINEAR x those of the smallest size."""
    rows = sorted(rows, key=lambda r: r["examples"])
    base = rows[0]["seconds"] / rows[0]["examples"] if rows and rows[0]["examples"] else None
    for row in rows:
        per = row["seconds"] / row["examples"] if row["examples"] else 0.0
        row["growth_vs_smallest"] = round(per / base, 2) if base else None
        row["linear"] = base is None or per <= NONLINEAR * base
    return rows


def before_rows(m: dict) -> dict[str, dict]:
    """The before/after measurement per engine; where several `--n` were measured, the longest (the first
    minute, with its cold prompt evaluation, weighs least there)."""
    rows: dict[str, dict] = {}
    for key, v in m.items():
        if key.startswith("before/"):
            best = rows.get(v["engine"])
            if best is None or v["kept"] > best["kept"]:
                rows[v["engine"]] = v
    return rows


def headline(doc: dict) -> dict:
    """The figures the issue asks for, from the stored measurements alone (None where not measured):
    kept/min before and after and their ratio, medsynth ÷ raw server at the after run's slot count, the
    pipeline's own examples/s (largest ceiling size) and the ceiling's growth rows."""
    m = doc.get("measurements", {})
    before = before_rows(m)
    old, new = before.get("llama-cpp-python", {}), before.get("llama-server", {})
    raw = {v["in_flight"]: v for k, v in m.items() if k.startswith("raw/")}
    build = {v["in_flight"]: v for k, v in m.items() if k.startswith("build/")}
    level = new.get("in_flight")
    ceiling = flag_nonlinear([v for k, v in m.items() if k.startswith("ceiling/")])
    return {"kept_per_min": {"before": old.get("kept_per_min"), "after": new.get("kept_per_min")},
            "speedup": ratio(new.get("kept_per_min"), old.get("kept_per_min")),
            "ratio_vs_raw": ratio(build.get(level, {}).get("completion_tok_per_s"),
                                  raw.get(level, {}).get("completion_tok_per_s")),
            "ratio_vs_raw_in_flight": level,
            "pipeline_examples_per_s": ceiling[-1]["examples_per_s"] if ceiling else None,
            "growth": [{k: row.get(k) for k in ("examples", "seconds", "generate_seconds", "dedup_seconds",
                                                 "export_seconds", "peak_rss_mib", "growth_vs_smallest", "linear")}
                       for row in ceiling]}


def render_markdown(doc: dict) -> str:
    """The results file as Markdown tables (missing measurements are left out, not invented)."""
    m = doc.get("measurements", {})
    lines = ["# Generation throughput", "", f"- date: {doc.get('date')}", f"- machine: {doc.get('machine')}",
             f"- command: `{doc.get('command')}`", ""]
    h = headline(doc)
    shown = lambda x: "–" if x is None else x  # noqa: E731
    lines += ["## Summary", "",
              f"- kept examples/min: before {shown(h['kept_per_min']['before'])}, after "
              f"{shown(h['kept_per_min']['after'])}; speedup {shown(h['speedup'])} (goal 3)",
              f"- medsynth ÷ raw server (completion tok/s at {shown(h['ratio_vs_raw_in_flight'])} in flight): "
              f"{shown(h['ratio_vs_raw'])} (goal 0.9)",
              f"- pipeline ceiling: {shown(h['pipeline_examples_per_s'])} examples/s (largest size measured)", ""]
    raw = {v["in_flight"]: v for k, v in m.items() if k.startswith("raw/")}
    plain = {v["in_flight"]: v for k, v in m.items() if k.startswith("raw-plain/")}
    build = {v["in_flight"]: v for k, v in m.items() if k.startswith("build/")}
    if raw or build:
        lines += ["## Raw llama-server vs medsynth `build ner` (slots = requests in flight)", "",
                  "| in flight | raw tok/s | raw req/min | raw prompt s/req | raw gen s/req | build kept/min | "
                  "build tok/s | build useful tok/s | build prompt s/req | build gen s/req | medsynth ÷ raw |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for level in sorted(set(raw) | set(build)):
            r, b = raw.get(level, {}), build.get(level, {})
            lines.append("| " + " | ".join(str(x) if x is not None else "–" for x in (
                level, r.get("completion_tok_per_s"), r.get("requests_per_min"), r.get("prompt_s_per_request"),
                r.get("gen_s_per_request"), b.get("kept_per_min"), b.get("completion_tok_per_s"),
                b.get("useful_completion_tok_per_s"), b.get("prompt_s_per_request"), b.get("gen_s_per_request"),
                ratio(b.get("completion_tok_per_s"), r.get("completion_tok_per_s")))) + " |")
        lines.append("")
    if plain:
        lines += ["## The schema grammar's cost (raw llama-server, same prompts, with and without the schema)", "",
                  "| in flight | schema tok/s | schema decode tok/s a slot | plain tok/s | plain decode tok/s a slot |",
                  "|---|---|---|---|---|"]
        for level in sorted(plain):
            cells = [x for row in (raw.get(level, {}), plain[level])
                     for x in (row.get("completion_tok_per_s"), decode_rate(row))]
            lines.append(f"| {level} | " + " | ".join("–" if x is None else str(x) for x in cells) + " |")
        lines.append("")
    before = before_rows(m)
    if before:
        lines += ["## Before (llama-cpp-python) vs after (llama-server)", "",
                  "| engine | slots = in flight | kept | seconds | kept/min |", "|---|---|---|---|---|"]
        for engine in ("llama-cpp-python", "llama-server"):
            if engine in before:
                v = before[engine]
                lines.append(f"| {engine} | {v['in_flight']} | {v['kept']} | {v['seconds']} | {v['kept_per_min']} |")
        lines += ["", f"speedup (kept_per_min after ÷ before): {shown(h['speedup'])}", ""]
    lines += format_table(m)
    ceiling = [v for k, v in m.items() if k.startswith("ceiling/")]
    if ceiling:
        lines += ["## Pipeline ceiling (LLM double answering instantly)", "",
                  "| examples | seconds | plan .. store s | dedup s | export s | examples/s | peak RSS MiB | "
                  "s/example ÷ smallest | linear |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for v in flag_nonlinear(ceiling):
            stages = " | ".join(str(v.get(k, "–")) for k in ("generate_seconds", "dedup_seconds", "export_seconds"))
            lines.append(f"| {v['examples']} | {v['seconds']} | {stages} | {v['examples_per_s']} | {v['peak_rss_mib']} | "
                         f"{v['growth_vs_smallest']} | {'yes' if v['linear'] else 'NO'} |")
        lines.append("")
    return "\n".join(lines)


def format_table(m: dict) -> list[str]:
    """Answer formats side by side: each `format/` row beside a json row of the same n and slots (a `build/`
    row or the before/after llama-server row, whichever has the kept-ratio columns)."""
    rows = []
    for key, v in sorted(m.items()):
        if key.startswith("format/"):
            n = key.split("/n=")[1].split("/")[0]
            same = [b for k, b in m.items() if (k.startswith("build/") or k.endswith("/llama-server"))
                    and f"/n={n}/" in k and b["in_flight"] == v["in_flight"]]
            json_row = max(same, key=lambda b: "kept_ratio" in b, default=None)  # the row with the newer columns
            rows += [("json", json_row), (v["format"], v)] if json_row else [(v["format"], v)]
    if not rows:
        return []
    lines = ["## Answer formats (`build ner --format`, same n and slots)", "",
             "| format | in flight | kept | kept/min | kept ÷ requests | completion tokens / kept | "
             "aligner repairs / kept |", "|---|---|---|---|---|---|---|"]
    for fmt, v in rows:
        lines.append("| " + " | ".join("–" if x is None else str(x) for x in (
            fmt, v["in_flight"], v["kept"], v["kept_per_min"], v.get("kept_ratio"), v.get("completion_tokens_per_kept"),
            v.get("align_repairs_per_kept"))) + " |")
    return lines + [""]


# -- measurements -------------------------------------------------------------------------------------------
def _requests(n: int) -> list[tuple[list[dict], dict, int]]:
    from medsynth.generate import prompt as prompting
    from medsynth.generate.plan import make_plan
    from medsynth.spec import get_task

    task = get_task("ner")
    plans = [make_plan(task, slot, 13) for slot in range(n)]
    return [(prompting.messages(task, p), prompting.schema(task, p), p.seed) for p in plans]


def _post(url: str, body: dict, timeout: float = 600) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - 127.0.0.1 only
        return json.loads(resp.read())


def _metrics(root_url: str) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"{root_url}/metrics", timeout=10) as resp:  # noqa: S310
            return parse_metrics(resp.read().decode())
    except OSError:
        return {}


def _server(args: argparse.Namespace, engine: str, slots: int, log: Path):
    from medsynth.llm.embedded import LocalServer, resolve_model

    path, name = resolve_model(args.llm)
    return LocalServer(path, name, n_ctx=args.ctx, n_threads=args.threads, log_path=log, engine=engine, slots=slots)


def measure_raw(args: argparse.Namespace, level: int, work: Path, schema: bool = True) -> dict:
    """`--requests` generation requests straight to llama-server, `level` at a time (one thread each), timed
    after a warm-up that leaves the system prompt cached in every slot (as `build` does with
    `share_prompt_cache`), so the row is the server's steady state, not its first minute. `schema=False` sends
    the same prompts without `response_format`: what the JSON-schema grammar costs."""
    requests = _requests(args.requests + level)
    warm, requests = requests[args.requests:], requests[:args.requests]
    replies: list[dict] = []
    lock = threading.Lock()
    with _server(args, "llama-server", level, work / f"raw-{level}-{schema}.log") as server:
        url = f"{server.base_url}/chat/completions"

        def send(item: tuple[list[dict], dict, int]) -> dict:
            messages, _, seed = item
            body = {"model": server.model_name, "messages": messages, "seed": seed, "temperature": 0.8,
                    "top_p": 0.95, "max_tokens": 256}
            if schema:
                body["response_format"] = {"type": "json_object", "schema": item[1]}
            return _post(url, body)

        send(warm[0])
        server.share_prompt_cache()
        _in_parallel([lambda item=item: send(item) for item in warm[1:]])
        queue = list(range(len(requests)))

        def worker() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    index = queue.pop(0)
                reply = send(requests[index])
                timings = reply.get("timings", {})
                with lock:
                    replies.append({"completion_tokens": reply["usage"]["completion_tokens"],
                                    "prompt_ms": timings.get("prompt_ms", 0.0),
                                    "predicted_ms": timings.get("predicted_ms", 0.0),
                                    "cache_n": timings.get("cache_n", 0)})

        t0 = time.monotonic()
        _in_parallel([worker] * level)
        wall = time.monotonic() - t0
    return raw_summary(replies, wall, level)


def _in_parallel(calls: list[Callable[[], object]]) -> None:
    threads = [threading.Thread(target=call) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def measure_build(args: argparse.Namespace, engine: str, level: int, work: Path, fmt: str = "json") -> dict:
    """`build ner --n --format fmt` through medsynth's session on `engine` with `level` slots and requests in
    flight."""
    from medsynth.generate.build import BuildConfig, run_build
    from medsynth.llm.session import llm_session
    from medsynth.spec import get_task

    out = work / f"build-{engine}-{level}-{fmt}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = BuildConfig(task=get_task("ner"), n=args.n, out=out, progress=False, format=fmt)
    with llm_session(llm=args.llm, concurrency=level, slots=level, server=engine, cache=False, log_dir=out,
                     threads=args.threads, n_ctx=args.ctx) as session:
        root = session.server.root_url if session.server is not None else ""
        before = _metrics(root) if engine == "llama-server" else {}
        t0 = time.monotonic()
        stats = run_build(cfg, session.client, session.model_name, session.restart)
        wall = time.monotonic() - t0
        after = _metrics(root) if engine == "llama-server" else {}
    row = build_summary(stats, wall, level)
    row["engine"], row["format"] = engine, fmt
    if before or after:
        row.update(metrics_split(before, after, row["requests"]))
    return row


_DOUBLE = """
    import sys
    sys.path.insert(0, {root!r})
    from tests.fake_generator import answer
    from tests import llm_double
    from tests.llm_double import LLMDouble
    llm_double._Server.request_queue_size = 256
    double = LLMDouble(answer, owned_by="me").start()
    open(sys.argv[1], "w").write(str(double.port))
    import signal
    signal.signal(signal.SIGTERM, lambda *_: (double.close(), sys.exit(0)))
    signal.pause()
"""

_CEILING_WORKER = """
    import json, resource, sys, time
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from medsynth.generate import build
    from medsynth.generate.build import BuildConfig, run_build
    from medsynth.llm.session import llm_session
    from medsynth.quality.curate import CurateConfig
    from medsynth.spec import get_task
    url, n, out, concurrency = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    stage_s = {{"curate": 0.0, "export": 0.0}}

    def timed(name, fn):  # the end stages, timed where build calls them (the rest is plan .. store)
        def wrapper(*a, **k):
            t = time.monotonic()
            try:
                return fn(*a, **k)
            finally:
                stage_s[name] += time.monotonic() - t
        return wrapper

    build.curate, build.export_all = timed("curate", build.curate), timed("export", build.export_all)
    cfg = BuildConfig(task=get_task("ner"), n=n, out=out, progress=False, curate=CurateConfig(dedup=True))
    with llm_session(base_url=url, model="double-model", concurrency=concurrency, cache=False) as s:
        t0 = time.monotonic()
        stats = run_build(cfg, s.client, s.model_name, None)
        wall = time.monotonic() - t0
    print(json.dumps({{"kept": stats["kept"], "requests": stats["requests"], "seconds": wall,
                      "curate_seconds": stage_s["curate"], "export_seconds": stage_s["export"],
                      "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def measure_ceiling(args: argparse.Namespace, size: int, work: Path) -> dict:
    """`build ner --n size` against the instant double, in a fresh interpreter (its own peak RSS)."""
    port_file = work / "double.port"
    port_file.unlink(missing_ok=True)
    double = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_DOUBLE.format(root=str(ROOT))),
                               str(port_file)])
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if double.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the LLM double did not start")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{int(port_file.read_text())}/v1"
        out = work / f"ceiling-{size}"
        shutil.rmtree(out, ignore_errors=True)
        env = {**os.environ, "MEDSYNTH_CACHE_DIR": str(work / "cache")}
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(_CEILING_WORKER.format(root=str(ROOT))), url,
                               str(size), str(out), str(args.ceiling_concurrency)],
                              capture_output=True, text=True, env=env, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        double.send_signal(signal.SIGTERM)
        double.wait(timeout=30)
    return {"examples": result["kept"], "requests": result["requests"], "seconds": round(result["seconds"], 2),
            "examples_per_s": round(result["kept"] / result["seconds"], 1),
            "generate_seconds": round(result["seconds"] - result["curate_seconds"] - result["export_seconds"], 2),
            "dedup_seconds": round(result["curate_seconds"], 2), "export_seconds": round(result["export_seconds"], 2),
            "peak_rss_mib": round(result["peak_rss_kib"] / 1024, 1), "concurrency": args.ceiling_concurrency}


# -- driver -------------------------------------------------------------------------------------------------
def _machine() -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gen_speed import _cpu  # one definition of "which machine", shared by the benchmarks

    return f"{_cpu()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def _plan(args: argparse.Namespace) -> list[tuple[str, Callable[[Path], dict]]]:
    """(key, measurement) for every requested measurement; the key names its settings, for resuming."""
    tag = f"{args.llm}/threads={args.threads}/ctx={args.ctx}"
    steps: list[tuple[str, Callable[[Path], dict]]] = []
    if "raw" in args.parts:
        steps += [(f"raw/{tag}/requests={args.requests}/in_flight={lv}/warm",
                   lambda w, lv=lv: measure_raw(args, lv, w)) for lv in args.levels]
    if "plain" in args.parts:
        steps += [(f"raw-plain/{tag}/requests={args.requests}/in_flight={lv}/warm",
                   lambda w, lv=lv: measure_raw(args, lv, w, schema=False)) for lv in args.levels]
    if "build" in args.parts:
        steps += [(f"build/{tag}/n={args.n}/in_flight={lv}",
                   lambda w, lv=lv: measure_build(args, "llama-server", lv, w)) for lv in args.levels]
    if "before" in args.parts:
        steps += [(f"before/{tag}/n={args.n}/llama-cpp-python",
                   lambda w: measure_build(args, "llama-cpp-python", 1, w)),
                  (f"before/{tag}/n={args.n}/llama-server",
                   lambda w: measure_build(args, "llama-server", args.slots, w))]
    if "format" in args.parts:
        steps += [(f"format/{tag}/n={args.n}/in_flight={args.slots}/inline",
                   lambda w: measure_build(args, "llama-server", args.slots, w, fmt="inline"))]
    if "ceiling" in args.parts:
        steps += [(f"ceiling/n={size}/concurrency={args.ceiling_concurrency}",
                   lambda w, size=size: measure_ceiling(args, size, w)) for size in args.ceiling_sizes]
    return steps


def _save(doc: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    doc["summary"] = headline(doc)
    (out_dir / "throughput.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    (out_dir / "throughput.md").write_text(render_markdown(doc) + "\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--llm", default="qwen", help="embedded model (qwen, tiny or a .gguf)")
    p.add_argument("--levels", default=",".join(map(str, LEVELS)), help="requests in flight (= slots)")
    p.add_argument("--requests", type=int, default=64, help="raw requests per level")
    p.add_argument("--n", type=int, default=64, help="examples kept per build measurement")
    p.add_argument("--slots", type=int, default=4, help="llama-server slots in the before/after comparison")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--ctx", type=int, default=4096, help="context per slot")
    p.add_argument("--ceiling-sizes", default=",".join(map(str, CEILING_SIZES)))
    p.add_argument("--ceiling-concurrency", type=int, default=8)
    p.add_argument("--quick", action="store_true", help="smoke: tiny model, 1-2 in flight, 4 requests, n=4, "
                   "ceiling 200/1000; written to --out-dir (default a temp folder, not the committed results)")
    p.add_argument("--out-dir", type=Path, default=None, help="default benchmarks/results (quick: a temp folder)")
    p.add_argument("--fresh", action="store_true", help="forget stored measurements instead of resuming")
    args = p.parse_args(argv)
    if args.quick:
        args.llm, args.levels, args.requests, args.n, args.slots = "tiny", "1,2", 4, 4, 2
        args.ceiling_sizes = "200,1000"
    args.parts = [x for x in args.parts.split(",") if x]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        p.error(f"unknown part(s): {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    args.levels = [int(x) for x in str(args.levels).split(",") if x]
    args.ceiling_sizes = [int(x) for x in str(args.ceiling_sizes).split(",") if x]
    if args.out_dir is None:
        args.out_dir = Path(tempfile.mkdtemp(prefix="throughput-quick-")) if args.quick else RESULTS
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from medsynth.llm.embedded import find_llama_server

    stored = args.out_dir / "throughput.json"
    doc = {} if args.fresh or not stored.is_file() else json.loads(stored.read_text())
    doc.update({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": _machine(),
                "command": "python benchmarks/throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)})
    doc.setdefault("measurements", {})
    work = Path(tempfile.mkdtemp(prefix="throughput-work-"))
    try:
        for key, measure in _plan(args):
            needs_server = not key.startswith("ceiling/") and not key.endswith("llama-cpp-python")
            if key in doc["measurements"]:
                print(f"stored, skipped: {key}")
                continue
            if needs_server and find_llama_server() is None:
                print(f"skipped (llama-server not built; run `make setup`): {key}")
                continue
            print(f"measuring {key} …", flush=True)
            doc["measurements"][key] = measure(work)
            print(f"  {json.dumps(doc['measurements'][key])}", flush=True)
            _save(doc, args.out_dir)  # after every measurement: an interrupted run keeps what it measured
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _save(doc, args.out_dir)
    print(f"written: {args.out_dir / 'throughput.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Record generation speed of finished build runs: sentences per minute and tokens per kept example.

    python benchmarks/gen_speed.py benchmarks/data/ncbi-disease-qwen [more runs...] [--since ISO] [--until ISO]

Reads each run's store (every request's tokens and time stamps) and writes
benchmarks/results/gen-speed.md / .json with the date, machine and command, appending one row per run.
Speed is measured over the requests' own time stamps, so resumed runs are measured on the time they generated.
--since/--until (UTC, e.g. 2026-11-28T16:15) keep only the requests of one resume, whose conditions (threads, other
jobs) a run's total mixes with those of its other sessions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _stamp(text: str | None, default: float) -> float:
    return default if text is None else datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def measure(run: Path, since: str | None = None, until: str | None = None) -> dict:
    db = sqlite3.connect(f"file:{run / 'store.sqlite'}?mode=ro", uri=True)
    lo, hi = _stamp(since, float("-inf")), _stamp(until, float("inf"))
    rows = [r for r in db.execute("SELECT status, prompt_tokens, completion_tokens, created FROM attempts "
                                  "ORDER BY created").fetchall() if lo <= r[3] <= hi]
    ident = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM run")}
    if len(rows) < 2:
        raise SystemExit(f"{run}: fewer than 2 requests recorded{' in the window' if since or until else ''}")
    # Active generation time: sum of gaps between consecutive requests, ignoring pauses > 10 min (resumes).
    times = [r[3] for r in rows]
    active = sum(b - a for a, b in zip(times, times[1:]) if b - a < 600)
    kept = sum(1 for r in rows if r[0] == "kept")
    completion = sum(r[2] for r in rows)
    window = f"{since or ''}..{until or ''}" if since or until else None
    return {
        "run": str(run) + (f" ({window})" if window else ""), "task": ident.get("task"), "model": ident.get("model"),
        "format": ident.get("format"),
        "requests": len(rows), "kept": kept, "keep_rate": round(kept / len(rows), 3),
        "active_minutes": round(active / 60, 1),
        "kept_per_minute": round(kept / (active / 60), 2) if active else None,
        "completion_tokens_per_kept": round(completion / max(kept, 1), 1),
        "prompt_tokens_per_request": round(sum(r[1] for r in rows) / len(rows), 1),
    }


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("runs", nargs="*", default=["benchmarks/data/ncbi-disease-qwen"])
    ap.add_argument("--since", help="keep requests made at or after this UTC time (ISO)")
    ap.add_argument("--until", help="keep requests made at or before this UTC time (ISO)")
    args = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": _cpu(),
             "cores": os.cpu_count(), "command": "python benchmarks/gen_speed.py " + " ".join(argv)}
    rows = [{**measure(Path(r), args.since, args.until), **stamp} for r in args.runs]
    path = RESULTS / "gen-speed.json"
    old = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(old + rows, indent=2) + "\n")
    lines = ["| date | run | model | requests | kept | kept/min | completion tokens/kept | cpu (cores) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in old + rows:
        lines.append(f"| {r['date'][:10]} | {r['run']} | {r['model']} | {r['requests']} | {r['kept']} | "
                     f"{r['kept_per_minute']} | {r['completion_tokens_per_kept']} | {r['cpu']} ({r['cores']}) |")
    (RESULTS / "gen-speed.md").write_text("# Generation speed\n\nCommand: `python benchmarks/gen_speed.py RUN...`; "
                                          "prompt prefix cached by llama.cpp; JSON schema grammar.\n\n"
                                          + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])

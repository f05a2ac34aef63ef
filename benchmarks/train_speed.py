"""How long `medsynth train --data RUN` takes with default settings on a 16-example run (goal: <= 60 s on 2 cores).

Builds the run with the loopback LLM double (tests/llm_double.py answering with tests/fake_generator.py: no real
LLM, so only training is timed), then times the `train` command as a user types it, and writes
benchmarks/results/train-speed.{md,json} with date, machine, load average and command.

    .venv/bin/python benchmarks/train_speed.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_generator import answer  # noqa: E402
from tests.llm_double import LLMDouble  # noqa: E402

N = 16


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MEDSYNTH_CACHE_DIR": str(Path(tmp) / "cache"), "PYTHONPATH": str(ROOT)}
        run, model = Path(tmp) / "run", Path(tmp) / "model"
        with LLMDouble(answer) as double:
            subprocess.run([sys.executable, "-m", "medsynth", "build", "ner", "--n", str(N), "--out", str(run),
                            "--base-url", double.base_url, "--llm-model", "double-model", "--no-progress"],
                           check=True, env=env, capture_output=True)
        command = ["medsynth", "train", "--data", "run", "--out", "model", "--no-progress"]
        load_before = os.getloadavg()
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "medsynth", *command[1:]], env=env, capture_output=True,
                              text=True, cwd=tmp)  # RUN and MODEL are relative names inside tmp
        seconds = time.monotonic() - t0
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        metrics = json.loads((model / "train_log.json").read_text())["metrics"]
    result = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join(command) + f"   # RUN: a {N}-example `build ner` run (loopback LLM double)",
        "seconds": round(seconds, 1), "goal_seconds": 60, "steps": metrics["steps"],
        "epochs": metrics["epochs_run"], "sec_per_step": round(metrics["sec_per_step"], 3),
        "train_examples": metrics["train_examples"], "validation": metrics["validation_source"],
        "stdout": done.stdout.strip(),
    }
    out = ROOT / "benchmarks" / "results"
    (out / "train-speed.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "train-speed.md").write_text(
        f"# `train` speed on a {N}-example run, default settings\n\n"
        f"- Date: {result['date']}\n- Machine: {result['machine']} (shared with other jobs; load average "
        f"{result['load_average_before']} before, {result['load_average_after']} after)\n"
        f"- Command: `{result['command']}`\n\n"
        f"| seconds (wall, whole command) | goal | steps | epochs | s/step | train examples | validation |\n"
        f"|---|---|---|---|---|---|---|\n"
        f"| {result['seconds']} | ≤ {result['goal_seconds']} | {result['steps']} | {result['epochs']} | "
        f"{result['sec_per_step']} | {result['train_examples']} | {result['validation']} |\n\n"
        f"Output: `{result['stdout']}`\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`build ner` end to end against a loopback LLM double: outputs, cache replay, resume, growth, bad input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medsynth.cli.main import main
from tests.fake_generator import answer
from tests.helpers import build_with_double, cache_env, data_rows  # noqa: F401 (cache_env: fixture)
from tests.llm_double import LLMDouble

ROOT = Path(__file__).resolve().parents[2]


def _build(double: LLMDouble, out: Path, n: int, *extra: str) -> int:
    return build_with_double("ner", double, out, n, *extra)


_rows = data_rows


def test_build_writes_a_checked_dataset(cache_env):
    out = cache_env / "run"
    with LLMDouble(answer) as double:
        assert _build(double, out, 30) == 0
    rows = _rows(out)
    assert len(rows) == 30 and len({r["id"] for r in rows}) == 30
    for r in rows:
        for e in r["entities"]:
            assert r["text"][e["start"]:e["end"]] == e["text"]
        assert set(r["meta"]) >= {"task", "model", "prompt_hash", "params", "seed", "created"}
    stats = json.loads((out / "stats.json").read_text())
    for key in ("requested", "kept", "rejected", "llm_calls", "cache_hits", "prompt_tokens", "completion_tokens",
                "seconds", "repairs", "rejections"):
        assert key in stats
    assert stats["kept"] == 30 and stats["rejected"] >= 1  # the double answers garbage every 11th seed
    assert any(k.startswith("parse:") for k in stats["rejections"])
    assert stats["llm_calls"] == stats["kept"] + stats["rejected"]
    from datasets import load_from_disk

    dd = load_from_disk(str(out / "hf"))
    assert len(dd["train"]) + len(dd["validation"]) == 30
    assert (out / "conll" / "train.conll").exists() and (out / "spacy" / "train.spacy").exists()
    assert "Rejections by reason" in (out / "README.md").read_text()


def test_second_run_makes_no_llm_calls_and_same_files(cache_env):
    out = cache_env / "run"
    with LLMDouble(answer) as double:
        assert _build(double, out, 12) == 0
        first = {p: (out / p).read_bytes() for p in ("data.jsonl", "README.md", "conll/train.conll")}
        calls = double.chat_calls
        assert _build(double, out, 12) == 0
        assert double.chat_calls == calls
    assert json.loads((out / "stats.json").read_text())["llm_calls"] == 0
    assert first == {p: (out / p).read_bytes() for p in first}


def test_cache_replays_into_a_fresh_directory(cache_env):
    with LLMDouble(answer) as double:
        assert _build(double, cache_env / "a", 10) == 0
        calls = double.chat_calls
        assert _build(double, cache_env / "b", 10) == 0
        assert double.chat_calls == calls
    stats = json.loads((cache_env / "b" / "stats.json").read_text())
    assert stats["llm_calls"] == 0 and stats["cache_hits"] >= 10
    strip = lambda rows: [{k: v for k, v in r.items() if k != "meta"} for r in rows]  # noqa: E731
    assert strip(_rows(cache_env / "a")) == strip(_rows(cache_env / "b"))


def test_larger_n_only_adds(cache_env):
    out = cache_env / "run"
    with LLMDouble(answer) as double:
        assert _build(double, out, 8) == 0
        first = _rows(out)
        calls = double.chat_calls
        assert _build(double, out, 15) == 0
        added_calls = double.chat_calls - calls
    rows = _rows(out)
    assert len(rows) == 15 and rows[:8] == first
    assert added_calls < 15  # only the missing examples were requested


def test_inline_format(cache_env):
    out = cache_env / "inline"
    with LLMDouble(answer) as double:
        assert _build(double, out, 10, "--format", "inline") == 0
    rows = _rows(out)
    assert len(rows) == 10 and all(r["entities"] for r in rows if r["meta"]["plan"]["targets"])


def _start_until(cmd: list[str], env: dict, out: Path, kept: int) -> subprocess.Popen:
    """Start a build in its own process and return once its store holds `kept` examples."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if (out / "store.sqlite").exists():
            try:
                with sqlite3.connect(out / "store.sqlite") as db:
                    if db.execute("SELECT COUNT(*) FROM examples").fetchone()[0] >= kept:
                        break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.1)
    return proc


def _slow_build(cache_env: Path, out: Path, double: LLMDouble) -> tuple[list[str], dict]:
    env = {**os.environ, "MEDSYNTH_CACHE_DIR": str(cache_env / "cache"), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "medsynth", "build", "ner", "--n", "40", "--out", str(out), "--base-url",
           double.base_url, "--llm-model", "double-model", "--no-progress"]
    return cmd, env


def _slow(request):
    from tests.llm_double import Fault

    return Fault.slow(0.15, answer(request))


def test_kill_and_resume(cache_env):
    """SIGKILL mid-run, then resume: exactly n examples, none duplicated, store intact."""
    out = cache_env / "killed"
    with LLMDouble(_slow) as double:
        cmd, env = _slow_build(cache_env, out, double)
        proc = _start_until(cmd, env, out, 5)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()  # drains the stderr pipe _start_until opened
        with sqlite3.connect(out / "store.sqlite") as db:
            kept_before = db.execute("SELECT COUNT(*) FROM examples").fetchone()[0]
        assert 5 <= kept_before < 40
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    rows = _rows(out)
    assert len(rows) == 40 and len({r["id"] for r in rows}) == 40 and len({r["text"] for r in rows}) == 40
    with sqlite3.connect(out / "store.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_sigterm_exports_what_was_kept_and_records_the_time_spent(cache_env):
    """SIGTERM (a scheduler's stop) takes the Ctrl-C path: one line on stderr, exit 130, and the exports and
    stats.json describe the examples kept so far, including the seconds this invocation ran."""
    out = cache_env / "stopped"
    with LLMDouble(_slow) as double:
        cmd, env = _slow_build(cache_env, out, double)
        proc = _start_until(cmd, env, out, 5)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted" in err
    stats = json.loads((out / "stats.json").read_text())
    assert 5 <= stats["kept"] < 40 and len(_rows(out)) == stats["kept"]
    assert stats["requested"] == 40 and stats["llm_calls"] >= stats["kept"] and stats["seconds"] >= 0.5


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medsynth", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.mark.parametrize("args,needle", [
    (["build", "ner", "--n", "0"], "must be at least 1"),
    (["build", "ner", "--n", "-3"], "must be at least 1"),
    (["build", "ner", "--task", "nope", "--n", "1"], "known tasks"),
    (["build", "ner", "--task", "cdr", "--n", "1"], "use `build re`"),
    (["build", "ner", "--base-url", "http://127.0.0.1:9/v1", "--n", "1"], "--llm-model"),
])
def test_bad_input_is_one_line(args, needle, tmp_path):
    res = _cli(*args, "--out", str(tmp_path / "o"), env={"MEDSYNTH_CACHE_DIR": str(tmp_path)})
    assert res.returncode != 0
    assert needle in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) <= 3


def test_bad_task_file_names_file_field_value(tmp_path):
    bad = tmp_path / "task.yaml"
    bad.write_text("name: mytask\ndescription: x\nlabels:\n  - name: 'Dis ease'\n    definition: a disease\n"
                   "styles:\n  - name: s\n    description: s\nlexicon:\n  Dis ease: [flu]\n")
    res = _cli("build", "ner", "--task-file", str(bad), "--n", "1", "--out", str(tmp_path / "o"))
    assert res.returncode != 0 and "Traceback" not in res.stderr
    line = res.stderr.strip()
    assert str(bad) in line and "labels.0.name" in line and "Dis ease" in line and len(line.splitlines()) == 1


def test_unreachable_endpoint_keeps_nothing_lost(tmp_path):
    from tests.llm_double import closed_port

    res = _cli("build", "ner", "--n", "2", "--out", str(tmp_path / "o"), "--base-url",
               f"http://127.0.0.1:{closed_port()}/v1", "--llm-model", "m", "--timeout", "2", "--no-progress",
               env={"MEDSYNTH_CACHE_DIR": str(tmp_path)})
    assert res.returncode != 0 and "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]  # retries are reported as they happen; the verdict is one line
    assert last.startswith("medsynth: error:") and "cannot reach" in last


def test_export_cuts_the_first_n_examples_without_llm(cache_env):
    out = cache_env / "run"
    with LLMDouble(answer) as double:
        assert _build(double, out, 10) == 0
        calls = double.chat_calls
        assert main(["export", "--run", str(out), "--n", "4", "--out", str(cache_env / "first4")]) == 0
        assert double.chat_calls == calls
    assert _rows(cache_env / "first4") == _rows(out)[:4]
    assert main(["export", "--run", str(out), "--n", "40", "--out", str(cache_env / "too-many")]) == 2

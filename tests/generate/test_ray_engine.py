"""`build … --engine ray` on a local Ray instance (2 CPUs) against the LLM double: the same data.jsonl, byte for
byte, as the local engine; an interrupted Ray run resumes without losing or repeating a slot; bad input."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

from medsynth.cli.main import build_parser, main
from tests.fake_generator import answer
from tests.helpers import build_with_double, cache_env  # noqa: F401 (cache_env: fixture)
from tests.llm_double import LLMDouble

ROOT = Path(__file__).resolve().parents[2]
EPOCH = "1767225600"  # SOURCE_DATE_EPOCH: every example's `created`, so two runs compare byte for byte
N = 14
SAME_STATS = ("requested", "kept", "rejected", "requests", "rejections", "repairs", "prompt_tokens",
              "completion_tokens")


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module; its workers import this checkout's medsynth."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "SOURCE_DATE_EPOCH": EPOCH}})
    yield ray
    ray.shutdown()


@pytest.fixture
def fixed_time(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)


def _stats(out: Path) -> dict:
    return json.loads((out / "stats.json").read_text())


def _local_run(root: Path, monkeypatch) -> Path:
    """The reference: the local engine, its own response cache."""
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(root / "cache-local"))
    with LLMDouble(answer) as double:
        assert build_with_double("ner", double, root / "local", N) == 0
    return root / "local"


def test_ray_engine_writes_the_local_engines_data(cache_env, fixed_time, ray_instance, monkeypatch):
    local = _local_run(cache_env, monkeypatch)
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(cache_env / "cache-ray"))  # Ray asks the double itself
    with LLMDouble(answer) as double:
        assert build_with_double("ner", double, cache_env / "ray", N, "--engine", "ray", "--concurrency", "3") == 0
        calls = double.chat_calls
    assert (cache_env / "ray" / "data.jsonl").read_bytes() == (local / "data.jsonl").read_bytes()
    ray_stats, local_stats = _stats(cache_env / "ray"), _stats(local)
    assert {k: ray_stats[k] for k in SAME_STATS} == {k: local_stats[k] for k in SAME_STATS}
    assert ray_stats["this_run"]["engine"] == "ray" and local_stats["this_run"]["engine"] == "local"
    assert ray_stats["llm_calls"] == calls == local_stats["llm_calls"] == ray_stats["requests"]
    assert ray_stats["rejected"] >= 1  # the double answers garbage every 11th seed: a second wave ran


def test_interrupted_ray_run_resumes(cache_env, fixed_time, ray_instance, monkeypatch):
    """Ctrl-C after 5 committed slots, then the same command: every slot once, the local engine's data."""
    from medsynth.generate import ray_engine

    local = _local_run(cache_env, monkeypatch)
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(cache_env / "cache-ray"))
    out, committed, real_record = cache_env / "ray", [], ray_engine.record

    def record_then_stop(store, outcome):
        if len(committed) == 5:
            raise KeyboardInterrupt
        committed.append(outcome.slot)
        return real_record(store, outcome)

    with LLMDouble(answer) as double:
        monkeypatch.setattr(ray_engine, "record", record_then_stop)
        assert build_with_double("ner", double, out, N, "--engine", "ray") == 130
        with sqlite3.connect(out / "store.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 5
        monkeypatch.setattr(ray_engine, "record", real_record)
        assert build_with_double("ner", double, out, N, "--engine", "ray") == 0
    assert (out / "data.jsonl").read_bytes() == (local / "data.jsonl").read_bytes()
    with sqlite3.connect(out / "store.sqlite") as db:
        slots = [s for (s,) in db.execute("SELECT slot FROM attempts ORDER BY slot")]
    assert slots == list(range(len(slots))) and _stats(out)["requests"] == _stats(local)["requests"]


def test_engine_ray_without_ray_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, installed or not
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["build", "ner", "--n", "2", "--out", str(tmp_path / "o"), "--engine", "ray", "--base-url",
                 "http://127.0.0.1:9/v1", "--llm-model", "m", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "medsynth[ray]" in err and "Traceback" not in err


@pytest.mark.parametrize("extra,needle", [(["--annotate", "TEXTS"], "--annotate"), ([], "chat")])
def test_engine_ray_refuses_what_it_does_not_run(extra, needle, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("Aspirin was given for fever.\n")
    kind = "chat" if needle == "chat" else "ner"
    argv = ["build", kind, "--n", "1", "--out", str(tmp_path / "o"), "--engine", "ray",
            *[str(texts) if a == "TEXTS" else a for a in extra]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--engine" in err and needle in err


def test_build_help_shows_engine_and_repeatable_base_url():
    build = next(a for a in build_parser()._subparsers._group_actions[0].choices.values()  # noqa: SLF001
                 if a.prog.endswith("build"))
    text = build.format_help()
    assert "--engine {local,ray}" in text and "(default: local)" in text
    assert "Repeat it" in text and "--base-url" in text

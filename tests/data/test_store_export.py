"""Run store (atomic, locked, resumable) and the exports derived from it."""

import json
from collections import Counter

import pytest

from medsynth.errors import LockedError, MedsynthError
from medsynth.data.export import bio_labels, conll_lines, export_all, split_of
from medsynth.spec import TaskSpec
from medsynth.data.store import RunStore
from medsynth.records import Entity, Example


def _task() -> TaskSpec:
    return TaskSpec.model_validate(dict(
        name="toy", description="biomedical", labels=[{"name": "Disease", "definition": "a disease"},
                                                      {"name": "Chemical", "definition": "a chemical"}],
        styles=[{"name": "abstract", "description": "abstract"}],
        lexicon={"Disease": ["gout"], "Chemical": ["allopurinol"]}))


def _example(i: int, text: str = "Allopurinol lowered urate in gout.") -> Example:
    ents = [Entity(start=0, end=11, label="Chemical", text="Allopurinol")]
    if "gout" in text:
        s = text.index("gout")
        ents.append(Entity(start=s, end=s + 4, label="Disease", text="gout"))
    return Example(id=f"toy-{i:06d}", text=text, entities=ents, meta={"plan": {"slot": i, "style": "abstract"}})


def test_record_is_atomic_and_dedups(tmp_path):
    with RunStore(tmp_path) as store:
        assert store.record(0, status="kept", reason=None, repairs={"case": 1}, prompt_tokens=10,
                            completion_tokens=5, example=_example(0), norm="a") == "kept"
        assert store.record(1, status="kept", reason=None, repairs={}, prompt_tokens=10, completion_tokens=5,
                            example=_example(1), norm="a") == "rejected"
        store.record(2, status="rejected", reason="parse:invalid_json", repairs={}, prompt_tokens=3, completion_tokens=2)
        assert store.count_examples() == 1 and store.done_slots() == {0, 1, 2}
        t = store.totals()
        assert t["kept"] == 1 and t["rejected"] == 2
        assert t["rejections"] == {"duplicate": 1, "parse:invalid_json": 1}
        assert t["repairs"] == {"case": 1} and t["completion_tokens"] == 12
        assert store.integrity_ok()


def test_lock_refuses_a_second_writer(tmp_path):
    with RunStore(tmp_path):
        with pytest.raises(LockedError) as err:
            RunStore(tmp_path)
        assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)
    RunStore(tmp_path).close()  # released after the first closes


def test_identity_mismatch_is_refused(tmp_path):
    with RunStore(tmp_path) as store:
        store.bind({"task": "toy.v1", "seed": 13})
        store.record(0, status="kept", reason=None, repairs={}, prompt_tokens=1, completion_tokens=1,
                     example=_example(0), norm="x")
        store.bind({"task": "toy.v1", "seed": 13})  # same options: fine
        with pytest.raises(MedsynthError, match="seed"):
            store.bind({"task": "toy.v1", "seed": 14})


def test_corrupt_store_is_a_clear_error(tmp_path):
    (tmp_path / "store.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(MedsynthError, match="store.sqlite"):
        RunStore(tmp_path)


def test_bio_and_conll():
    assert bio_labels(["Disease", "Chemical"]) == ["O", "B-Disease", "I-Disease", "B-Chemical", "I-Chemical"]
    ex = Example(id="x", text="Type 2 diabetes after olanzapine.", entities=[
        Entity(start=0, end=15, label="Disease", text="Type 2 diabetes"),
        Entity(start=22, end=32, label="Chemical", text="olanzapine")])
    assert conll_lines(ex) == ["Type\tB-Disease", "2\tI-Disease", "diabetes\tI-Disease", "after\tO",
                               "olanzapine\tB-Chemical", ".\tO"]


def test_split_is_stable():
    ids = [f"toy-{i:06d}" for i in range(1000)]
    val = [i for i in ids if split_of(i) == "validation"]
    assert 50 < len(val) < 150
    assert [split_of(i) for i in ids] == [split_of(i) for i in ids]


def test_export_all_writes_every_format(tmp_path):
    from datasets import load_from_disk
    from spacy.tokens import DocBin
    import spacy

    task = _task()
    exs = [_example(i, f"Allopurinol case {i} improved gout.") for i in range(30)]
    totals = {"requests": 31, "kept": 30, "rejected": 1, "prompt_tokens": 100, "completion_tokens": 50,
              "repairs": {"case": 2}, "rejections": {"duplicate": 1}}
    export_all(tmp_path, exs, task, {"model": "m", "format": "json", "seed": 1, "prompt_hash": "h", "params": {}},
               totals, {"requested": 30, "kept": 30})
    rows = [json.loads(line) for line in (tmp_path / "data.jsonl").read_text().splitlines()]
    assert len(rows) == 30 and rows[0]["entities"][0]["text"] == "Allopurinol"
    dd = load_from_disk(str(tmp_path / "hf"))
    assert set(dd) == {"train", "validation"} and len(dd["train"]) + len(dd["validation"]) == 30
    names = dd["train"].features["ner_tags"].feature.names
    row = dd["train"][0]
    assert [names[t] for t in row["ner_tags"]][:1] == ["B-Chemical"] and "B-Disease" in [names[t] for t in row["ner_tags"]]
    assert len(row["tokens"]) == len(row["ner_tags"]) == len(row["token_starts"])
    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(tmp_path / "spacy" / "train.spacy").get_docs(nlp.vocab))
    assert docs and {e.label_ for e in docs[0].ents} == {"Chemical", "Disease"}
    conll = (tmp_path / "conll" / "train.conll").read_text()
    assert "Allopurinol\tB-Chemical" in conll
    card = (tmp_path / "README.md").read_text()
    assert "| Disease | 30 |" in card and "| duplicate | 1 |" in card
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["dataset"]["entities_per_label"] == {"Disease": 30, "Chemical": 30}
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.*") if p.is_file()}
    export_all(tmp_path, exs, task, {"model": "m", "format": "json", "seed": 1, "prompt_hash": "h", "params": {}},
               totals, {"requested": 30, "kept": 30})
    after = {p.name: p.read_bytes() for p in tmp_path.glob("*.*") if p.is_file()}
    assert before == after, "re-exporting the same examples is byte-identical"

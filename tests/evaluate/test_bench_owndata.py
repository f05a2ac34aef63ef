"""`bench ner|re --dataset PATH`: a corpus the project has never seen (a CoNLL file, a BRAT folder, a folder with
splits), its label map, --split devel, and the corpus recorded in every predictions .meta.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from medsynth.cli.main import main
from medsynth.data.export import export_all
from medsynth.records import Entity, Example
from medsynth.spec import get_task
from tests.llm_double import LLMDouble
from tests.helpers import conll_text

HERBS = ["quilloweed", "bramblewort", "dusk fennel", "marrowroot"]
TASK_YAML = """\
name: herbs
version: 1
kind: ner
description: Invented herb names in invented sentences.
labels:
  - name: Herb
    definition: The name of a herb.
    positive_examples: [quilloweed]
    negative_examples: [garden]
styles:
  - name: note
    description: a short kitchen note
lexicon:
  Herb: [quilloweed, bramblewort, dusk fennel, marrowroot]
"""


def _sentences(k: int, offset: int = 0) -> list[tuple[str, str]]:
    return [(f"The tea of {HERBS[(i + offset) % len(HERBS)]} was brewed for {i + 2} minutes .",
             HERBS[(i + offset) % len(HERBS)]) for i in range(k)]


def _conll(sentences: list[tuple[str, str]], label: str = "HERB") -> str:
    """A BIOES file with a POS-like middle column, as many user corpora come."""
    return conll_text([(text, [herb]) for text, herb in sentences], label, bioes=True, columns="{token}\tX\t{tag}")


def _brat(folder: Path, sentences: list[tuple[str, str]], label: str = "HERB") -> Path:
    folder.mkdir(parents=True)
    for i, (text, herb) in enumerate(sentences):
        (folder / f"d{i}.txt").write_text(text + "\n", encoding="utf-8")
        s = text.index(herb)
        (folder / f"d{i}.ann").write_text(f"T1\t{label} {s} {s + len(herb)}\t{herb}\n", encoding="utf-8")
    return folder


@pytest.fixture()
def task_file(tmp_path) -> Path:
    path = tmp_path / "my.yaml"
    path.write_text(TASK_YAML, encoding="utf-8")
    return path


@pytest.fixture()
def run(tmp_path, task_file) -> Path:
    """A tiny medsynth run of the herbs task (what `build` exports)."""
    task = get_task(None, str(task_file))
    exs = []
    for i, (text, herb) in enumerate(_sentences(24)):
        s = text.index(herb)
        exs.append(Example(id=f"s-{i:04d}", text=text, entities=[Entity(start=s, end=s + len(herb), label="Herb",
                                                                          text=herb)]))
    out = tmp_path / "run"
    out.mkdir()
    export_all(out, exs, task, {"model": "none"}, {"requests": 24, "kept": 24, "rejected": 0, "prompt_tokens": 0,
                                                   "completion_tokens": 0, "repairs": {}, "rejections": {}}, {})
    return out


def _oracle(request: dict) -> dict:
    sentence = request["messages"][-1]["content"].removeprefix("Sentence: ")
    return {"Herb": [h for h in HERBS if re.search(re.escape(h), sentence)]}


def _bench(args: list[str], double: LLMDouble, monkeypatch, tmp_path) -> int:
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_MODEL", "double-model")
    return main(["bench", "ner", *args, "--base-url", double.base_url, "--max-steps", "3", "--batch-size", "8",
                 "--no-progress"])


@pytest.mark.parametrize("layout", ["conll", "brat"])
def test_bench_on_a_corpus_the_project_has_never_seen(tmp_path, task_file, run, monkeypatch, layout):
    if layout == "conll":
        dataset = tmp_path / "test.conll"
        dataset.write_text(_conll(_sentences(8, offset=1)), encoding="utf-8")
    else:
        dataset = _brat(tmp_path / "brat", _sentences(8, offset=1))
    out = tmp_path / "out"
    with LLMDouble(_oracle) as double:
        rc = _bench(["--task-file", str(task_file), "--dataset", str(dataset), "--systems", "synthetic,zero-shot",
                     "--train-data", str(run), "--label-map", "HERB=Herb", "--out", str(out)], double, monkeypatch,
                    tmp_path)
    assert rc == 0
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores) == {"zero-shot", "synthetic"}
    assert scores["zero-shot"]["overall"]["f1"] == pytest.approx(1.0) and scores["zero-shot"]["n_sentences"] == 8
    for name in ("zero-shot", "synthetic"):
        meta = json.loads((out / "predictions" / f"{name}.meta.json").read_text())
        assert meta["split"] == "test" and meta["task"] == "herbs.v1"  # the task version scored (and prompted)
        described = meta["test_corpus"]
        assert described["spec"] == str(dataset) and described["format"] == layout
        assert described["records"] == 8 and re.fullmatch(r"[0-9a-f]{16}", described["content_hash"])
        assert described["label_map"] == {"HERB": "Herb"}
    rows = [json.loads(x) for x in (out / "predictions" / "zero-shot.jsonl").read_text().splitlines()]
    assert {t for r in rows for t in r["gold"]} == {"O", "B-Herb", "I-Herb"}  # BIOES read as IOB2, renamed


def test_unknown_labels_are_one_line_listing_them_and_nothing_is_written(tmp_path, task_file, run, monkeypatch,
                                                                         capsys):
    dataset = tmp_path / "test.conll"
    dataset.write_text(_conll(_sentences(4), "HERB") + "\n" + _conll(_sentences(2), "SPICE"), encoding="utf-8")
    out = tmp_path / "out"
    with LLMDouble(_oracle) as double:
        rc = _bench(["--task-file", str(task_file), "--dataset", str(dataset), "--systems", "synthetic,zero-shot",
                     "--train-data", str(run), "--label-map", "HERB=Herb,Typo=Herb", "--out", str(out)], double,
                    monkeypatch, tmp_path)
        assert not double.requests
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "does not have: Typo" in err and "no task label: SPICE" in err and str(dataset) in err
    assert not out.exists()


def test_a_missing_path_lists_the_presets(tmp_path, capsys):
    assert main(["bench", "ner", "--dataset", str(tmp_path / "nope.conll"), "--report-only"]) == 2
    err = capsys.readouterr().err
    assert "ncbi-disease" in err and "nope.conll" in err and len(err.strip().splitlines()) == 1


def test_split_devel_scores_devel_and_supervised_selects_without_it(tmp_path, task_file, monkeypatch):
    corpus = tmp_path / "mycorpus"
    corpus.mkdir()
    for split, k, off in (("train", 16, 0), ("dev", 6, 1), ("test", 5, 2)):
        (corpus / f"herbs_{split}.conll").write_text(_conll(_sentences(k, off), "Herb"), encoding="utf-8")
    out = tmp_path / "out"
    with LLMDouble(_oracle) as double:
        rc = _bench(["--task-file", str(task_file), "--dataset", str(corpus), "--split", "devel", "--systems",
                     "supervised,zero-shot", "--out", str(out)], double, monkeypatch, tmp_path)
    assert rc == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["zero-shot"]["n_sentences"] == 6 and scores["supervised"]["n_sentences"] == 6
    assert scores["supervised"]["meta"]["test_corpus"]["split"] == "devel"
    assert "(devel)" in (out / "table.md").read_text()
    # never selects epochs on the split it is scored on: validation is held out of train
    card = (out / "models" / "supervised" / "model_card.md").read_text()
    assert "no-devel" in card and "Validation examples: 2 " in card
    # a single file has no train split: the supervised system is refused before any work
    single = tmp_path / "test.conll"
    single.write_text(_conll(_sentences(3)), encoding="utf-8")
    with LLMDouble(_oracle) as double:
        rc = _bench(["--task-file", str(task_file), "--dataset", str(single), "--label-map", "HERB=Herb",
                     "--systems", "zero-shot,supervised", "--out", str(tmp_path / "o2")], double, monkeypatch,
                    tmp_path)
        assert not double.requests
    assert rc == 2 and not (tmp_path / "o2").exists()


def _brat_re(folder: Path, n: int, off: int = 0) -> Path:
    """BRAT documents with GENE / DISEASE mentions; every other one states an `Assoc` relation."""
    genes, diseases = ["KLF99", "ZORB1", "TANK7"], ["glorbitis", "vantoma", "krell syndrome"]
    folder.mkdir(parents=True)
    for i in range(n):
        g, d = genes[(i + off) % 3], diseases[(i + off) % 3]
        text = (f"Variants of {g} were associated with {d}." if i % 2 == 0 else f"{g} was sequenced in {d} cases.")
        ann = [f"T1\tGENE {text.index(g)} {text.index(g) + len(g)}\t{g}",
               f"T2\tDISEASE {text.index(d)} {text.index(d) + len(d)}\t{d}"]
        if i % 2 == 0:
            ann.append("R1\tAssoc Arg1:T1 Arg2:T2")
        (folder / f"d{i}.txt").write_text(text + "\n", encoding="utf-8")
        (folder / f"d{i}.ann").write_text("\n".join(ann) + "\n", encoding="utf-8")
    return folder


def test_bench_re_on_a_brat_corpus_with_a_label_map(tmp_path, capsys):
    corpus = tmp_path / "relcorpus"
    _brat_re(corpus / "train", 12)
    _brat_re(corpus / "test", 6, off=1)
    out = tmp_path / "out"
    args = ["bench", "re", "--task", "gad", "--dataset", str(corpus), "--systems", "supervised", "--out", str(out),
            "--max-steps", "2", "--batch-size", "8", "--no-progress"]
    assert main(args) == 2  # corpus labels the task lacks: one line listing them, nothing written
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no task label: Assoc (" in err and not out.exists()  # GENE: case only
    assert main(args + ["--label-map", "GENE=Gene,DISEASE=Disease,Assoc=Association"]) == 0
    scores = json.loads((out / "scores.json").read_text())["supervised"]
    assert scores["n_pairs"] == 6
    meta = scores["meta"]
    assert meta["split"] == "test" and meta["test_corpus"]["format"] == "brat" and meta["test_corpus"]["records"] == 6
    rows = [json.loads(x) for x in (out / "predictions" / "supervised.jsonl").read_text().splitlines()]
    assert {r["gold"] for r in rows} == {"Association", "none"}

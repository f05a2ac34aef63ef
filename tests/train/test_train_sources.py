"""`train --data PATH[:weight=W]` (repeatable): gold corpora and medsynth runs combined into one training set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medsynth.cli.main import main
from medsynth.data.corpora.rel import read_pairs, write_pairs
from medsynth.data.export import export_all
from medsynth.errors import MedsynthError
from medsynth.records import Entity, Example, RelPair
from medsynth.spec import get_task
from medsynth.train.sources import parse_source
from tests.helpers import conll_text

DISEASES = ["glorbitis", "vantoma", "krell syndrome", "tarnick fever"]


def _sentences(k: int, off: int = 0) -> list[tuple[str, str]]:
    return [(f"Cases of {DISEASES[(i + off) % 4]} rose in year {i} .", DISEASES[(i + off) % 4]) for i in range(k)]


def _conll(sentences: list[tuple[str, str]]) -> str:
    return conll_text([(text, [d]) for text, d in sentences], columns="{token} {tag}")


@pytest.fixture()
def run(tmp_path) -> Path:
    exs = [Example(id=f"s-{i:04d}", text=t, entities=[Entity(start=t.index(d), end=t.index(d) + len(d),
                                                             label="Disease", text=d)])
           for i, (t, d) in enumerate(_sentences(20))]
    out = tmp_path / "run"
    out.mkdir()
    export_all(out, exs, get_task("ncbi-disease"), {"model": "none"},
               {"requests": 20, "kept": 20, "rejected": 0, "prompt_tokens": 0, "completion_tokens": 0, "repairs": {},
                "rejections": {}}, {"task": get_task("ncbi-disease").registry_name})
    return out


def test_parse_source():
    assert parse_source("runs/syn").weight == 1.0
    src = parse_source("gold.conll:weight=2")
    assert src.path == Path("gold.conll") and src.weight == 2.0
    for bad in ("gold.conll:weight=0", "gold.conll:weight=x", "g:weight=-1", "g:weight=nan"):
        with pytest.raises(MedsynthError, match="field '--data'"):
            parse_source(bad)


def test_train_on_a_gold_file_and_a_run_records_every_source(tmp_path, run, capfd):
    from datasets.utils.logging import enable_progress_bar

    enable_progress_bar()  # as in a fresh process: building the fixture run turned datasets' bars off
    gold = tmp_path / "gold"
    gold.mkdir()
    (gold / "train.conll").write_text(_conll(_sentences(12, 1)), encoding="utf-8")
    (gold / "dev.conll").write_text(_conll(_sentences(4, 2)), encoding="utf-8")
    single = tmp_path / "extra.conll"
    single.write_text(_conll(_sentences(3, 3)), encoding="utf-8")
    out = tmp_path / "model"
    assert main(["train", "--data", f"{gold}:weight=2", "--data", str(run), "--data", str(single), "--out", str(out),
                 "--max-steps", "5", "--batch-size", "8", "--min-validation", "1", "--no-progress"]) == 0
    assert "Saving the dataset" not in capfd.readouterr().err  # --no-progress: no datasets shard bars either
    log = json.loads((out / "train_log.json").read_text())
    by_path = {s["path"]: s for s in log["sources"]}
    assert by_path[str(gold)]["kind"] == "corpus" and by_path[str(gold)]["weight"] == 2.0
    assert by_path[str(gold)]["examples"] == 12 and by_path[str(gold)]["validation_examples"] == 4
    assert by_path[str(run)]["kind"] == "run" and by_path[str(run)]["format"] == "hf"
    assert by_path[str(single)]["examples"] == 3 and "whole file" in by_path[str(single)]["split"]
    assert all(len(s["content_hash"]) == 16 for s in log["sources"])
    task = get_task("ncbi-disease").registry_name
    assert by_path[str(run)]["task"] == task and by_path[str(gold)]["task"] == ""
    # the combined folder says what went into it, so a model trained on it later still records the task version
    assert log["data"]["task"] == task and [s["path"] for s in log["data"]["sources"]] == [s["path"] for s in log["sources"]]
    assert log["validation_from"] == f"devel split of {gold}"  # gold devel wins over the run's validation split
    assert log["metrics"]["validation_examples"] == 4
    assert log["config"]["use_weights"] is True
    card = (out / "model_card.md").read_text()
    assert "## Training data sources" in card and f"`{gold}`" in card
    from datasets import load_from_disk

    weights = load_from_disk(str(out / "sources" / "hf"))["train"]["weight"]
    assert sorted(set(weights)) == [1.0, 2.0] and weights.count(2.0) == 12


def test_a_single_run_trains_as_before_and_a_missing_source_is_one_error(tmp_path, run, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere.conll"), "--data", str(run), "--out",
                 str(tmp_path / "m"), "--max-steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "nowhere.conll" in err and "--data" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_re_sources_repeat_pairs_for_whole_weights(tmp_path):
    from medsynth.train.sources import Source, combine_re

    text = "Zorbamycin inhibits KLF99 ."
    head = Entity(start=0, end=10, label="Chemical", text="Zorbamycin")
    tail = Entity(start=20, end=25, label="Gene", text="KLF99")
    run = tmp_path / "run"
    write_pairs(run / "pairs.jsonl", [RelPair(id=f"p{i}", text=text, head=head, tail=tail, label="Inhibits",
                                              split="train" if i else "validation") for i in range(3)])
    gold = tmp_path / "gold.jsonl"
    write_pairs(gold, [RelPair(id="g", text=text, head=head, tail=tail, label="Inhibits")])
    combined = read_pairs(combine_re([Source(run), Source(gold, 3.0)], tmp_path / "w") / "pairs.jsonl")
    assert sum(p.split == "train" for p in combined) == 2 + 3 and sum(p.split == "validation" for p in combined) == 1
    with pytest.raises(MedsynthError, match="whole number"):
        combine_re([Source(gold, 1.5)], tmp_path / "w2")

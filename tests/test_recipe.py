"""`medsynth recipe` (issue 22): the route from what the user has, as commands the real parser accepts."""

import pytest

from medsynth.cli.main import build_parser, main
from medsynth.cli.recipe import plan

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
TASK = str(ROOT / "benchmarks" / "tasks" / "gene-scratch.yaml")
GOLD = "The\tO\nBRCA1\tB-Gene\ngene\tO\n.\tO\n\nNo\tO\ngenes\tO\nhere\tO\n.\tO\n"


@pytest.fixture()
def inputs(tmp_path):
    gold = tmp_path / "gold"
    gold.mkdir()
    for split in ("train", "devel"):
        (gold / f"{split}.conll").write_text(GOLD)
    text = tmp_path / "notes.txt"
    text.write_text("p53 binds DNA.\nNothing here.\n")
    return gold, text


def test_each_route_is_a_sequence_of_valid_commands(tmp_path, inputs):
    gold, text = inputs
    parser = build_parser()
    nothing = plan(TASK, tmp_path / "o", 50)
    assert [s[0] for s in nothing] == ["build", "train"] and "--reference" not in nothing[0]
    everything = plan(TASK, tmp_path / "o", 50, gold=str(gold), text=str(text), llm=["--llm", "tiny"])
    assert [s[0] for s in everything] == ["build", "build", "train", "bench"]
    build, annotate, train, bench = everything
    assert build[build.index("--reference") + 1] == str(gold)
    assert build[build.index("--vary-distractors") + 1] == "3"  # copies with other look-alikes, on every route
    assert annotate[annotate.index("--votes") + 1] == "3" and "--llm" in annotate
    assert train.count("--data") == 3 and "--use-weights" in train and "--llm" not in train
    assert bench[bench.index("--split") + 1] == "devel"  # the recipe is scored on devel, never on test
    for argv in everything:
        parser.parse_args(argv)  # every printed command is one the CLI accepts


def test_a_single_gold_file_steers_and_trains_but_is_not_scored(tmp_path, inputs):
    gold, _ = inputs
    steps = plan(TASK, tmp_path / "o", 50, gold=str(gold / "train.conll"))
    assert [s[0] for s in steps] == ["build", "train"]


def test_bad_inputs_fail_before_anything_runs(tmp_path, inputs, capsys):
    _, text = inputs
    assert main(["recipe", "ner", "--task-file", TASK, "--gold", str(tmp_path / "nope"), "--run"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and len(err.strip().splitlines()) == 1
    assert not (ROOT / "recipe").exists()
    assert main(["recipe", "ner", "--task-file", TASK, "--text", str(text), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "medsynth build ner" in out and "--annotate" in out and not (tmp_path / "r").exists()

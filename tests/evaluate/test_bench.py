"""The benchmark harness on invented data: zero-shot through a loopback LLM double, a small model trained on a
tiny synthetic set, stored predictions, and reports recomputed from them alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from medsynth.evaluate.bench import BenchConfig, report, run_bench, system_name
from medsynth.errors import MedsynthError
from medsynth.data.export import export_all
from medsynth.spec import get_task
from medsynth.train.ner import TrainConfig
from medsynth.records import Entity, Example
from tests.llm_double import LLMDouble
from tests.helpers import conll_text

DISEASES = ["glorbitis", "vantoma", "krell syndrome", "mirovian anemia", "dostal palsy", "tarnick fever"]


def _sentences(k: int) -> list[tuple[str, list[str]]]:
    out = []
    for i in range(k):
        d = DISEASES[i % len(DISEASES)]
        out.append((f"Patients with {d} were followed for {i + 2} years .", [d]))
    return out


def _iob(sentences) -> str:
    return conll_text(sentences)


@pytest.fixture()
def data_dir(tmp_path) -> Path:
    root = tmp_path / "data"
    folder = root / "ncbi-disease" / "MTL-Bioinformatics-2016" / "NCBI-disease-IOB"
    folder.mkdir(parents=True)
    for split, k in (("train", 24), ("devel", 6), ("test", 12)):
        (folder / f"{split}.tsv").write_text(_iob(_sentences(k)), encoding="utf-8")
    return root


@pytest.fixture()
def synthetic(tmp_path) -> Path:
    task = get_task("ncbi-disease")
    exs = []
    for i, (text, mentions) in enumerate(_sentences(30)):
        s = text.index(mentions[0])
        exs.append(Example(id=f"s-{i:04d}", text=text, entities=[Entity(start=s, end=s + len(mentions[0]),
                                                                          label="Disease", text=mentions[0])]))
    out = tmp_path / "synthetic"
    out.mkdir()
    export_all(out, exs, task, {"model": "none"}, {"requests": 30, "kept": 30, "rejected": 0, "prompt_tokens": 0,
                                                   "completion_tokens": 0, "repairs": {}, "rejections": {}},
               {"task": task.registry_name})
    return out


def _oracle(request: dict) -> dict:
    """A zero-shot 'LLM' that knows the invented diseases: answers with the exact mention strings."""
    sentence = request["messages"][-1]["content"].removeprefix("Sentence: ")
    return {"Disease": [d for d in DISEASES if re.search(re.escape(d), sentence)]}


def test_bench_end_to_end_and_report_from_predictions(tmp_path, data_dir, synthetic, monkeypatch):
    from medsynth.llm.session import llm_session

    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "bench"
    cfg = BenchConfig(task=get_task("ncbi-disease"), dataset="ncbi-disease", systems=["zero-shot", "synthetic"],
                      out=out, data_dir=data_dir, train_data=[synthetic], progress=False,
                      train=TrainConfig(max_steps=4, batch_size=8, epochs=1))
    with LLMDouble(_oracle) as double:
        results = run_bench(cfg, lambda: llm_session(base_url=double.base_url, model="double-model"))
    assert set(results) == {"zero-shot", "synthetic"}
    zs = results["zero-shot"]
    assert zs["overall"]["f1"] == pytest.approx(1.0)  # the oracle's strings are placed exactly on the tokens
    assert zs["n_sentences"] == 12 and zs["meta"]["llm_calls"] == 12
    assert results["synthetic"]["meta"]["sentences_per_second"] > 0
    # where the model ran and with which training seed, so runs on other machines and seeds can be told apart
    assert results["synthetic"]["meta"]["device"] == "cpu" and results["synthetic"]["meta"]["seed"] == 13
    for name in ("zero-shot", "synthetic"):
        rows = [json.loads(x) for x in (out / "predictions" / f"{name}.jsonl").read_text().splitlines()]
        assert len(rows) == 12 and all(len(r["tokens"]) == len(r["pred"]) == len(r["gold"]) for r in rows)
    assert (out / "plot.png").stat().st_size > 1000
    table = (out / "table.md").read_text()
    assert "| zero-shot | 100.0 | 100.0 | 100.0 |" in table
    errors = json.loads((out / "errors.json").read_text())
    assert errors["zero-shot"]["false_positives"]["spurious"] == 0 and errors["zero-shot"]["overlap"]["f1"] == 1.0
    assert "| synthetic |" in (out / "errors.md").read_text()
    before = (out / "scores.json").read_text()
    (out / "scores.json").unlink()
    report(out, title="again")
    assert (out / "scores.json").read_text() == before, "reports are a pure function of stored predictions"


def _zero_shot_only(out: Path, data_dir: Path, double: LLMDouble, model: str = "double-model", **kw) -> dict:
    from medsynth.llm.session import llm_session

    cfg = BenchConfig(task=get_task("ncbi-disease"), dataset="ncbi-disease", systems=["zero-shot"], out=out,
                      data_dir=data_dir, progress=False)
    return run_bench(cfg, lambda: llm_session(base_url=double.base_url, model=model, **kw))["zero-shot"]


def test_zero_shot_answers_are_recorded_and_a_run_resumes_from_them_on_a_fresh_machine(tmp_path, data_dir,
                                                                                    monkeypatch):
    out = tmp_path / "bench"
    answers = out / "answers" / "zero-shot.jsonl"
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache-1"))
    with LLMDouble(_oracle) as double:
        first = _zero_shot_only(out, data_dir, double)
    preds = (out / "predictions" / "zero-shot.jsonl").read_text()
    lines = answers.read_text().splitlines()
    assert len(lines) == 12 and first["meta"]["answers_from_journal"] == 0 and first["meta"]["llm_calls"] == 12
    assert first["meta"]["sentences_per_second"] > 0 and first["meta"]["answers_timed"] == 12

    # A fresh machine (empty response cache) with a run cut off after 5 answers, mid-way through writing a line.
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache-2"))
    answers.write_text("\n".join(lines[:5]) + "\n" + lines[5][:30], encoding="utf-8")
    with LLMDouble(_oracle) as double:
        resumed = _zero_shot_only(out, data_dir, double)
        assert len(double.requests) == 7, "only the sentences without a whole recorded answer are asked"
    assert resumed["meta"]["answers_from_journal"] == 5 and resumed["meta"]["answers_timed"] == 12
    assert len(answers.read_text().splitlines()) == 12
    assert (out / "predictions" / "zero-shot.jsonl").read_text() == preds

    # Everything recorded: an LLM that only talks nonsense is never asked, and the scores stand.
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache-3"))
    with LLMDouble(lambda request: {"Disease": ["nonsense"]}) as double:
        again = _zero_shot_only(out, data_dir, double)
        assert double.requests == []
    assert again["overall"]["f1"] == pytest.approx(1.0) and again["meta"]["llm_tokens"] == first["meta"]["llm_tokens"]

    # A different request (another model) does not reuse the recorded answers.
    with LLMDouble(lambda request: {"Disease": []}, models=("other-model",)) as double:
        other = _zero_shot_only(out, data_dir, double, model="other-model")
        assert len(double.requests) == 12
    assert other["overall"]["f1"] == 0.0

    # --no-cache asks again: the record is started afresh, not reused.
    with LLMDouble(_oracle) as double:
        fresh = _zero_shot_only(out, data_dir, double, cache=False)
        assert len(double.requests) == 12
    assert fresh["meta"]["answers_from_journal"] == 0 and len(answers.read_text().splitlines()) == 12


def test_a_damaged_answers_file_is_one_error_naming_its_line(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    answers = tmp_path / "bench" / "answers" / "zero-shot.jsonl"
    answers.parent.mkdir(parents=True)
    answers.write_text('{"key": "k", "answer": "{}"}\nnot json\n{"key": "j", "answer": "{}"}\n', encoding="utf-8")
    with LLMDouble(_oracle) as double, pytest.raises(MedsynthError) as err:
        _zero_shot_only(tmp_path / "bench", data_dir, double)
    assert f"{answers}:2" in str(err.value) and double.requests == []
    assert "not json" in answers.read_text(), "the damaged file is left for the user to mend"


def test_limit_takes_a_fixed_sample(tmp_path, data_dir, synthetic):
    cfg = BenchConfig(task=get_task("ncbi-disease"), dataset="ncbi-disease", systems=["synthetic"], out=tmp_path / "b",
                      data_dir=data_dir, train_data=[synthetic], limit=5, progress=False,
                      train=TrainConfig(max_steps=2, batch_size=8, epochs=1))
    res = run_bench(cfg)
    assert res["synthetic"]["n_sentences"] == 5


def test_a_saved_model_is_reused_only_for_the_data_it_was_trained_on(tmp_path, data_dir, synthetic):
    import os
    import shutil

    cfg = BenchConfig(task=get_task("ncbi-disease"), dataset="ncbi-disease", systems=["synthetic"], out=tmp_path / "b",
                      data_dir=data_dir, train_data=[synthetic], limit=3, progress=False,
                      train=TrainConfig(max_steps=1, batch_size=8, epochs=1))
    trained = run_bench(cfg)["synthetic"]["meta"]["train_seconds"]
    weights = cfg.out / "models" / "synthetic" / "model.safetensors"
    saved_at = weights.stat().st_mtime_ns
    reused = run_bench(cfg)["synthetic"]["meta"]["train_seconds"]  # same data: reused, not retrained
    assert weights.stat().st_mtime_ns == saved_at
    assert reused == trained > 0  # the recorded training time, not 0
    other = shutil.copytree(synthetic, tmp_path / "other")
    with pytest.raises(MedsynthError, match="trained on .*synthetic, not this data; pass --retrain"):
        run_bench(cfg.model_copy(update={"train_data": [other]}))  # same system name "synthetic", other data
    later = max(f.stat().st_mtime for f in (cfg.out / "models" / "synthetic").iterdir()) + 10
    arrow = next(f for f in (synthetic / "hf").rglob("*") if f.is_file())
    os.utime(arrow, (later, later))  # a re-export into the same folder
    with pytest.raises(MedsynthError, match="data changed after the saved model was trained"):
        run_bench(cfg)
    assert run_bench(cfg.model_copy(update={"retrain": True}))["synthetic"]["meta"]["train_seconds"] > 0


def test_reuse_checks_the_file_the_trainer_reads(tmp_path):
    """Relation models train from pairs.jsonl, not hf/: a newer pairs.jsonl makes the saved model stale."""
    import os

    from medsynth.evaluate.bench import train_or_reuse

    data, model = tmp_path / "re-data", tmp_path / "model"
    data.mkdir(), model.mkdir()
    (data / "pairs.jsonl").write_text("{}\n")
    (model / "label_map.json").write_text("{}")
    (model / "model_card.md").write_text(f"# medsynth RE model\n\n- Data: `{data.resolve()}` (pairs.jsonl)\n")
    cfg = BenchConfig(task=get_task("ncbi-disease"), dataset="ncbi-disease", systems=["synthetic"], out=tmp_path)

    def never(*args, **kwargs):
        raise AssertionError("a reusable model was retrained")

    saved = (model / "label_map.json").stat().st_mtime
    os.utime(data / "pairs.jsonl", (saved - 10, saved - 10))
    assert train_or_reuse(never, data, model, "label_map.json", "pairs.jsonl", cfg) == 0.0
    os.utime(data / "pairs.jsonl", (saved + 10, saved + 10))
    with pytest.raises(MedsynthError, match="data changed after the saved model was trained"):
        train_or_reuse(never, data, model, "label_map.json", "pairs.jsonl", cfg)


def test_judge_weighting_names_the_synthetic_system_and_spares_the_supervised_one(tmp_path, data_dir, synthetic):
    cfg = BenchConfig(task=get_task("ncbi-disease"), dataset="ncbi-disease", systems=["synthetic", "supervised"],
                      out=tmp_path / "b", data_dir=data_dir, train_data=[synthetic], limit=5, progress=False,
                      train=TrainConfig(max_steps=1, batch_size=8, epochs=1, use_weights=True))
    res = run_bench(cfg)
    name = f"synthetic-{synthetic.name}-weighted"
    assert set(res) == {name, "supervised"}
    assert res[name]["meta"]["use_weights"] is True
    assert res["supervised"]["meta"]["use_weights"] is False and res["supervised"]["meta"]["min_score"] is None
    assert (cfg.out / "models" / name / "config.json").exists()
    three = cfg.model_copy(update={"train_data": [synthetic, synthetic.parent / "other"],
                                   "train": TrainConfig(min_score=4)})
    assert system_name("synthetic", three, synthetic) == "synthetic-synthetic-min4"


def test_a_single_data_folder_names_its_system_only_when_asked(tmp_path):
    from medsynth.cli.main import build_parser

    one = BenchConfig(task=get_task("ncbi-disease"), dataset="ncbi-disease", out=tmp_path, train_data=[Path("runs/ner-500")])
    assert system_name("synthetic", one, Path("runs/ner-500")) == "synthetic"
    named = one.model_copy(update={"name_by_data": True})
    assert system_name("synthetic", named, Path("runs/ner-500")) == "synthetic-ner-500"
    assert system_name("supervised", named) == "supervised"
    re_cfg = BenchConfig(kind="re", task=get_task("gad"), dataset="gad", out=tmp_path,
                         train_data=[Path("runs/gad-300")], name_by_data=True)
    assert system_name("synthetic", re_cfg, Path("runs/gad-300")) == "synthetic-gad-300"
    args = build_parser().parse_args(["bench", "ner", "--dataset", "ncbi-disease", "--name-by-data"])
    assert args.name_by_data is True


def test_weighting_options_are_refused_for_relations(capsys):
    from medsynth.cli.main import main

    assert main(["bench", "re", "--dataset", "gad", "--min-score", "4", "--report-only"]) == 2
    assert "NER training only" in capsys.readouterr().err


def test_label_mismatch_is_a_clear_error(tmp_path, data_dir):
    test = data_dir / "ncbi-disease" / "MTL-Bioinformatics-2016" / "NCBI-disease-IOB" / "test.tsv"
    cfg = BenchConfig(task=get_task("ncbi-disease"), dataset="bc5cdr-chem", systems=["synthetic"], out=tmp_path / "b",
                      data_dir=data_dir, progress=False)
    with pytest.raises(MedsynthError):
        run_bench(cfg)  # the data dir has no bc5cdr folder: one-line error naming where it looked
    assert test.exists()


def test_unknown_system_and_missing_train_data(tmp_path, data_dir):
    base = dict(task=get_task("ncbi-disease"), dataset="ncbi-disease", out=tmp_path / "b", data_dir=data_dir,
                progress=False)
    with pytest.raises(MedsynthError, match="unknown system"):
        run_bench(BenchConfig(systems=["oracle"], **base))
    with pytest.raises(MedsynthError, match="--train-data"):
        run_bench(BenchConfig(systems=["synthetic"], **base))


def test_report_without_predictions(tmp_path):
    with pytest.raises(MedsynthError, match="no stored predictions"):
        report(tmp_path)


def test_cli_unknown_dataset_lists_known(capsys):
    from medsynth.cli.main import main

    assert main(["bench", "ner", "--dataset", "nope", "--report-only"]) == 2
    err = capsys.readouterr().err
    assert "ncbi-disease" in err and "bc5cdr-chem" in err and len(err.strip().splitlines()) == 1


def test_model_labels_map_through_the_task_mapping_or_stay_corpus_labels():
    from medsynth.evaluate.bench import model_mapping

    mapping = {"Chemical": "Chemical", "Drug": "Chemical"}  # task → corpus; the task's Disease is out of scope
    assert model_mapping(["Chemical", "Disease", "Drug"], mapping) == {"Chemical": "Chemical", "Drug": "Chemical"}
    assert model_mapping(["Chemical"], {"Medication": "Chemical"}) == {"Chemical": "Chemical"}  # a supervised model
    assert model_mapping(["Gene"], mapping) == {}


def test_report_only_rewrites_the_tables_a_bench_wrote_even_for_a_versioned_task_name(tmp_path, data_dir):
    """`--report-only --task NAME.vN` must title the table as the bench did (the task's own name), so the README's
    reproduction command leaves committed tables unchanged."""
    from medsynth.cli.main import main

    out = tmp_path / "bench"
    with LLMDouble(_oracle) as double:
        _zero_shot_only(out, data_dir, double)
    table = (out / "table.md").read_text()
    assert table.startswith("### ncbi-disease on ncbi-disease")
    args = ["bench", "ner", "--task", "ncbi-disease.v1", "--dataset", "ncbi-disease", "--out", str(out),
            "--data-dir", str(data_dir), "--report-only"]
    assert main(args) == 0
    assert (out / "table.md").read_text() == table


COMMITTED = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


@pytest.mark.parametrize(("kind", "task", "folder"), [("ner", "ncbi-disease", "ner-ncbi-disease-sample200"),
                                                      ("re", "gad", "re-gad-sample200"),
                                                      ("re", "chemprot", "re-chemprot-sample200")])
def test_report_only_rewrites_committed_results_byte_for_byte(tmp_path, capsys, kind, task, folder):
    """The reproduction command of every committed table: from the stored predictions alone, both kinds render
    the committed table, CSV, scores (and NER error report) unchanged. The plot is left out: PNG bytes follow
    the matplotlib version, not medsynth."""
    import shutil

    from medsynth.cli.main import main

    committed = COMMITTED / folder
    out = tmp_path / folder
    shutil.copytree(committed / "predictions", out / "predictions")
    args = ["bench", kind, "--task", task, "--dataset", task, "--out", str(out), "--report-only"]
    assert main(args) == 0
    written = sorted(p.name for p in committed.iterdir() if p.is_file() and p.suffix != ".png")
    assert "table.md" in written and "scores.csv" in written
    assert (kind == "ner") == ("errors.md" in written)
    for name in written:
        assert (out / name).read_bytes() == (committed / name).read_bytes(), f"{folder}/{name} differs"
    assert capsys.readouterr().out.startswith(f"### {task} on {task}")


def test_options_of_one_kind_are_refused_for_the_other_before_any_work(tmp_path, capsys):
    from pydantic import ValidationError

    from medsynth.cli.main import main

    re_base = dict(kind="re", task=get_task("gad"), dataset="gad", out=tmp_path / "b", systems=["supervised"],
                   data_dir=tmp_path / "nowhere")
    with pytest.raises(MedsynthError, match="--shots is not available for bench re"):
        run_bench(BenchConfig(shots=2, **re_base))
    with pytest.raises(MedsynthError, match="--folds applies to bench re on gad only"):
        run_bench(BenchConfig(task=get_task("ncbi-disease"), dataset="ncbi-disease", out=tmp_path / "b", folds=[1],
                              systems=["supervised"], data_dir=tmp_path / "nowhere"))
    with pytest.raises(ValidationError, match="bench re trains with REConfig"):
        BenchConfig(train=TrainConfig(), **re_base)
    assert not (tmp_path / "b").exists()
    assert main(["bench", "ner", "--dataset", "ncbi-disease", "--label-map", "Drug", "--systems", "supervised",
                 "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "--label-map" in err and "'Drug'" in err and len(err.strip().splitlines()) == 1


def test_bench_scores_a_given_model_folder_training_nothing(tmp_path, data_dir, synthetic, capsys):
    from medsynth.cli.main import main

    model = tmp_path / "mine"
    assert main(["train", "--data", str(synthetic), "--out", str(model), "--max-steps", "1", "--seed", "21",
                 "--no-progress"]) == 0
    out = tmp_path / "b"
    capsys.readouterr()
    assert main(["bench", "ner", "--task", "ncbi-disease", "--dataset", "ncbi-disease", "--data-dir", str(data_dir),
                 "--model", f"mine={model}", "--limit", "3", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "== mine: loading" in captured.err and f"results in {out}" in captured.out
    assert (out / "predictions" / "mine.jsonl").is_file() and not (out / "models").exists()  # nothing trained
    meta = json.loads((out / "predictions" / "mine.meta.json").read_text())
    assert meta["train_seconds"] == 0
    # the model's own training facts, not bench's: its seed (21, bench's is 13), options, data hash, task version
    assert meta["seed"] == 21 and meta["training"]["options"]["max_steps"] == 1
    assert meta["training"]["data"]["path"] == str(synthetic) and len(meta["training"]["data"]["sha256"]) == 16
    assert meta["training"]["data"]["task"] == get_task("ncbi-disease").registry_name


@pytest.mark.parametrize("value, message", [("mine=/nonexistent/model", "model folder not found"),
                                            ("zero-shot=.", "system name must be"),
                                            ("=x", "--model takes NAME=DIR")])
def test_a_bad_model_folder_is_refused_before_any_work(tmp_path, data_dir, value, message, capsys):
    from medsynth.cli.main import main

    rc = main(["bench", "ner", "--task", "ncbi-disease", "--dataset", "ncbi-disease", "--data-dir", str(data_dir),
               "--model", value, "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b" / "predictions").exists()

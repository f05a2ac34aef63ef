"""The relation benchmark on invented GAD-layout folds: zero-shot through the loopback LLM double, a classifier
trained on a tiny synthetic pairs.jsonl, per-fold scores, and reports recomputed from stored predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medsynth.evaluate.bench import BenchConfig, report, run_bench
from medsynth.errors import MedsynthError
from medsynth.spec import get_task
from medsynth.train.rel import REConfig
from medsynth.evaluate.zeroshot import relation_from_answer
from tests.llm_double import LLMDouble
from tests.re_fixtures import write_gad_dir, write_gad_run


def _oracle(request: dict) -> dict:
    """A zero-shot 'LLM' that knows the invented phrasing: 'raise the risk' states an association."""
    return {"relation": "Association" if "raise the risk" in request["messages"][-1]["content"] else "none"}


@pytest.fixture()
def data_dir(tmp_path) -> Path:
    return write_gad_dir(tmp_path / "data", folds=(1, 2), n_train=16, n_test=6)


def _cfg(tmp_path: Path, data_dir: Path, **kw) -> BenchConfig:
    base = dict(kind="re", task=get_task("gad"), dataset="gad", out=tmp_path / "bench", data_dir=data_dir, folds=[1, 2],
                progress=False, train=REConfig(max_steps=3, batch_size=8, epochs=1))
    return BenchConfig(**{**base, **kw})


def test_bench_re_end_to_end_and_report_only(tmp_path, data_dir, monkeypatch, capsys):
    from medsynth.llm.session import llm_session

    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    run = write_gad_run(tmp_path / "synthetic")
    cfg = _cfg(tmp_path, data_dir, systems=["zero-shot", "synthetic"], train_data=[run])
    with LLMDouble(_oracle) as double:
        results = run_bench(cfg, lambda: llm_session(base_url=double.base_url, model="double-model"))
    assert not double.errors
    assert set(results) == {"zero-shot", "synthetic"}
    zs = results["zero-shot"]
    assert zs["overall"]["f1"] == pytest.approx(1.0) and zs["n_pairs"] == 12
    assert zs["folds"]["f1"] == {"mean": pytest.approx(1.0), "sd": 0.0, "n_folds": 2}
    # masked GAD-style sentences repeat: each distinct request is asked once, the repeats share its answer
    asked = [json.dumps(r["messages"]) for r in double.requests]
    assert len(set(asked)) == len(asked) == zs["meta"]["llm_calls"] < 12
    assert zs["meta"]["invalid_answers"] == 0 and zs["meta"]["folds"] == [1, 2]
    syn = results["synthetic"]
    assert syn["meta"]["pairs_per_second"] > 0 and syn["meta"]["llm_tokens"] == 0
    assert syn["meta"]["device"] == "cpu" and syn["meta"]["seed"] == 13
    rows = [json.loads(x) for x in (cfg.out / "predictions" / "synthetic.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and {r["fold"] for r in rows} == {1, 2} and all("probs" in r for r in rows)
    table = (cfg.out / "table.md").read_text()
    assert "| zero-shot | 100.0 | 100.0 | 100.0 |" in table and "100.0 ± 0.0 | 1,2 |" in table
    assert (cfg.out / "plot.png").stat().st_size > 1000
    assert (cfg.out / "models" / "synthetic" / "label_map.json").exists()

    before = (cfg.out / "scores.json").read_text()
    (cfg.out / "scores.json").unlink()
    from medsynth.cli.main import main

    assert main(["bench", "re", "--dataset", "gad", "--out", str(cfg.out), "--report-only"]) == 0
    assert (cfg.out / "scores.json").read_text() == before, "reports are a pure function of stored predictions"
    assert "zero-shot" in capsys.readouterr().out


def test_zero_shot_survives_invalid_answers(tmp_path, data_dir, monkeypatch):
    from medsynth.llm.session import llm_session

    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    cfg = _cfg(tmp_path, data_dir, systems=["zero-shot"], folds=[1], limit=3)
    with LLMDouble(lambda req: "I think they are related.") as double:
        res = run_bench(cfg, lambda: llm_session(base_url=double.base_url, model="double-model"))
    zs = res["zero-shot"]
    assert zs["n_pairs"] == 3 and zs["meta"]["invalid_answers"] == 3
    assert zs["overall"]["precision"] == 0.0  # every invalid answer counts as "none"


def test_zero_shot_resumes_from_its_recorded_answers_without_the_response_cache(tmp_path, data_dir, monkeypatch):
    from medsynth.llm.session import llm_session

    cfg = _cfg(tmp_path, data_dir, systems=["zero-shot"])
    answers = cfg.out / "answers" / "zero-shot.jsonl"
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache-1"))
    with LLMDouble(_oracle) as double:
        first = run_bench(cfg, lambda: llm_session(base_url=double.base_url, model="double-model"))["zero-shot"]
    recorded = answers.read_text().splitlines()
    assert len(recorded) == first["meta"]["llm_calls"] > 1  # one line per distinct request, over both folds
    answers.write_text(recorded[0] + "\n", encoding="utf-8")  # a run stopped after its first answer
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache-2"))  # ... resumed on another machine
    with LLMDouble(_oracle) as double:
        resumed = run_bench(cfg, lambda: llm_session(base_url=double.base_url, model="double-model"))["zero-shot"]
        assert len(double.requests) == len(recorded) - 1
    assert resumed["overall"]["f1"] == pytest.approx(1.0) and resumed["meta"]["answers_from_journal"] >= 1
    assert resumed["meta"]["llm_tokens"] == first["meta"]["llm_tokens"] and resumed["meta"]["pairs_per_second"] > 0


def test_relation_from_answer():
    task = get_task("chemprot")
    assert relation_from_answer('{"relation": "cpr:4"}', task) == ("CPR:4", None)
    assert relation_from_answer('{"relation": "CPR:2"}', task) == ("none", "label_not_allowed")
    assert relation_from_answer('{"label": "CPR:4"}', task) == ("none", "no_relation_field")
    assert relation_from_answer(None, task)[0] == "none"


def test_bench_re_bad_inputs(tmp_path, data_dir, capsys):
    with pytest.raises(MedsynthError, match="unknown system"):
        run_bench(_cfg(tmp_path, data_dir, systems=["oracle"]))
    with pytest.raises(MedsynthError, match="needs --train-data"):
        run_bench(_cfg(tmp_path, data_dir, systems=["synthetic"]))
    with pytest.raises(MedsynthError, match="no pairs.jsonl"):
        run_bench(_cfg(tmp_path, data_dir, systems=["synthetic"], train_data=[tmp_path]))
    with pytest.raises(MedsynthError, match="ner task"):
        run_bench(_cfg(tmp_path, data_dir, task=get_task("ner"), systems=["supervised"]))
    with pytest.raises(MedsynthError, match="CPR:3"):
        run_bench(_cfg(tmp_path, data_dir, dataset="chemprot", folds=None, systems=["supervised"]))
    with pytest.raises(MedsynthError, match="folds are 1..10"):
        run_bench(_cfg(tmp_path, data_dir, folds=[0], systems=["supervised"]))
    with pytest.raises(MedsynthError, match="no stored predictions"):
        report(tmp_path / "empty", kind="re")

    from medsynth.cli.main import main

    assert main(["bench", "re", "--dataset", "nope", "--report-only"]) == 2
    err = capsys.readouterr().err
    assert "gad" in err and "chemprot" in err and "bc5cdr-cid" in err and len(err.strip().splitlines()) == 1
    assert main(["bench", "re", "--dataset", "gad", "--folds", "1,x", "--systems", "supervised",
                 "--out", str(tmp_path / "b")]) == 2
    assert "--folds" in capsys.readouterr().err


def test_supervised_gad_fold(tmp_path, data_dir):
    res = run_bench(_cfg(tmp_path, data_dir, systems=["supervised"], folds=[2]))
    sup = res["supervised"]
    assert sup["n_pairs"] == 6 and sup["meta"]["folds"] == [2]
    assert (tmp_path / "bench" / "models" / "supervised-fold2" / "model.safetensors").exists()
    pairs = (tmp_path / "bench" / "work" / "supervised-gad-fold2" / "pairs.jsonl").read_text().splitlines()
    assert len(pairs) == 16

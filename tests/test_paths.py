"""Metadata paths are portable: under the working directory they are recorded relative to it."""

from __future__ import annotations

from pathlib import Path

from medsynth.paths import portable


def test_a_path_under_the_working_directory_is_recorded_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert portable(tmp_path / "runs" / "x") == "runs/x"
    assert portable("runs/x") == "runs/x"


def test_a_path_elsewhere_stays_as_given(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    outside = tmp_path / "b" / "model"
    assert portable(outside) == str(outside) and Path(portable(outside)).is_absolute()


def test_the_training_data_record_is_portable_and_says_what_curation_added(tmp_path, monkeypatch):
    import json

    from medsynth.train.fit import data_record

    run = tmp_path / "runs" / "syn"
    run.mkdir(parents=True)
    (run / "data.jsonl").write_text('{"id": "a", "text": "x"}\n')
    curation = {"input": 1, "judge_scored": 0, "dropped": {}, "added": {"varied_terms": 3}, "output": 4}
    (run / "stats.json").write_text(json.dumps({"task": "ner.v1", "curation": curation}))
    monkeypatch.chdir(tmp_path)
    record = data_record(run)
    assert record["path"] == "runs/syn" and record["task"] == "ner.v1" and record["curation"] == curation
    (run / "stats.json").unlink()
    assert "curation" not in data_record(run) and len(data_record(run)["sha256"]) == 16

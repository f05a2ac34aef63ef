"""The command line as users meet it: --version, help with defaults, one meaning per flag, deprecated spellings,
the cache command."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from medsynth.cli.main import build_parser, main


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_version(capsys):
    from medsynth import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"medsynth {__version__}"


def test_every_option_has_help_that_states_its_default():
    switches = (argparse._StoreTrueAction, argparse._HelpAction, argparse._VersionAction)
    missing = []
    for name, sub in _subparsers(build_parser()).items():
        for action in sub._actions:
            if not action.option_strings or isinstance(action, switches) or action.required:
                continue
            text = sub.formatter_class(sub.prog)._get_help_string(action) or ""
            deprecated = text.startswith("deprecated")
            if not text or not (deprecated or "default" in text):
                missing.append(f"{name} {action.option_strings[0]}: {text!r}")
    assert not missing, missing


def test_train_help_shows_the_config_defaults(capsys):
    from medsynth.train.fit import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default: {TrainConfig().batch_size})" in text and "--min-steps" in text
    assert f"default: {TrainConfig().min_steps}" in text and "0 with --epochs" in text


def test_llm_model_everywhere_and_the_old_model_flag_warns_once(capsys):
    parser = build_parser()
    for argv in (["build", "ner"], ["judge", "run"], ["bench", "ner", "--dataset", "gad"],
                 ["distill", "ner", "--model", "m"]):
        assert parser.parse_args([*argv, "--llm-model", "qwen-x"]).llm_model == "qwen-x"
    assert capsys.readouterr().err == ""
    for argv in (["build", "ner"], ["judge", "run"], ["bench", "ner", "--dataset", "gad"]):
        assert parser.parse_args([*argv, "--model", "qwen-x"]).llm_model == "qwen-x"
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "deprecated" in err[0] and "--llm-model" in err[0]
    args = parser.parse_args(["bench", "ner", "--dataset", "gad", "--model", "a=m1", "--model", "b=m2"])
    assert args.models == ["a=m1", "b=m2"] and args.llm_model is None
    assert parser.parse_args(["distill", "ner", "--model", "models/ner"]).ner_model == "models/ner"


def test_train_kind_and_the_old_task_flag(capsys):
    parser = build_parser()
    assert parser.parse_args(["train", "--data", "d"]).task_kind == "ner"
    assert parser.parse_args(["train", "--data", "d", "--kind", "re"]).task_kind == "re"
    assert capsys.readouterr().err == ""
    assert parser.parse_args(["train", "--data", "d", "--task", "re"]).task_kind == "re"
    assert "--task is deprecated; use --kind" in capsys.readouterr().err


def test_epochs_without_min_steps_is_honoured():
    from medsynth.cli.main import _train_config

    parser = build_parser()
    assert _train_config(parser.parse_args(["train", "--data", "d"])).min_steps == 100
    assert _train_config(parser.parse_args(["train", "--data", "d", "--epochs", "2"])).min_steps == 0
    cfg = _train_config(parser.parse_args(["train", "--data", "d", "--epochs", "2", "--min-steps", "50"]))
    assert (cfg.epochs, cfg.min_steps) == (2, 50)


def test_bench_keeps_the_recorded_training_recipe():
    from medsynth.cli.bench import _train_config

    args = build_parser().parse_args(["bench", "ner", "--dataset", "ncbi-disease"])
    cfg = _train_config(args)
    assert (cfg.min_steps, cfg.min_validation, cfg.epochs) == (400, 1, 10)
    args = build_parser().parse_args(["bench", "re", "--dataset", "gad", "--min-validation", "40"])
    assert _train_config(args).min_validation == 40


def test_predict_device_reaches_the_predictor(tmp_path, monkeypatch, capsys):
    import medsynth.train.predict as predict
    from medsynth.train.predict import DecodeConfig

    seen = {}

    class Fake:
        def __init__(self, model_dir, device="auto", decode=None):
            seen["device"], seen["decode"] = device, decode

        def predict(self, texts):
            return [[] for _ in texts]

    monkeypatch.setattr(predict, "NERPredictor", Fake)
    assert main(["predict", "--model", str(tmp_path), "--device", "cpu", "flu"]) == 0
    assert seen["device"] == "cpu" and '"entities": []' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["predict", "--model", str(tmp_path), "--device", "tpu", "flu"])
    assert seen["decode"].min_confidence == DecodeConfig().min_confidence and seen["decode"].span_rules
    assert main(["predict", "--model", str(tmp_path), "--min-confidence", "0.6", "--no-span-rules", "flu"]) == 0
    assert seen["decode"] == DecodeConfig(min_confidence=0.6, span_rules=False)
    capsys.readouterr()
    for argv in (["predict", "--model", str(tmp_path), "--min-confidence", "1.5", "flu"],
                 ["bench", "ner", "--dataset", "ncbi-disease", "--min-confidence", "-0.1", "--out", str(tmp_path)],
                 ["bench", "re", "--dataset", "gad", "--min-confidence", "0.5", "--out", str(tmp_path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--min-confidence" in err


def test_cache_shows_sizes_and_clear_frees_them(tmp_path, monkeypatch, capsys):
    import medsynth.llm.embedded as embedded

    models = tmp_path / "models"
    models.mkdir()
    (models / "qwen.gguf").write_bytes(b"x" * 2048)
    monkeypatch.setattr(embedded, "default_model_dir", lambda: models)  # never the shared user cache
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "responses.sqlite").write_bytes(b"y" * 1024)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert f"joined model ({models}): 2.0 KB" in out and "response cache" in out and "1.0 KB" in out
    assert main(["cache", "--clear"]) == 0
    assert "freed 3.0 KB" in capsys.readouterr().out
    assert not (models / "qwen.gguf").exists() and not (tmp_path / "cache" / "responses.sqlite").exists()

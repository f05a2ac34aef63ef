"""The notebook API in medsynth/__init__.py: cheap to import, config classes reachable, bad input one error."""

from __future__ import annotations

import subprocess
import sys

import pytest

import medsynth
from medsynth.errors import MedsynthError


def test_import_medsynth_loads_nothing_heavy():
    code = ("import sys, medsynth; heavy = [m for m in ('torch', 'transformers', 'openai', 'datasets', 'pydantic') "
            "if m in sys.modules]; print(','.join(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_configs_are_lazy_attributes_with_one_set_of_defaults():
    from medsynth.llm.client import LLMConfig

    assert medsynth.TrainConfig().seed == medsynth.REConfig().seed == 13
    session = medsynth.SessionConfig()
    assert (session.max_tokens, session.timeout) == (256, 180.0)
    assert LLMConfig(base_url="http://127.0.0.1:1/v1", model="m").max_tokens == session.max_tokens
    with pytest.raises(AttributeError):
        medsynth.NoSuchThing  # noqa: B018


def test_load_task_and_bad_kind(tmp_path):
    assert medsynth.load_task().kind == "ner"
    assert medsynth.load_task("cdr").kind == "re"
    with pytest.raises(MedsynthError, match="kind"):
        medsynth.train(tmp_path, tmp_path / "m", kind="pos")


def test_cli_llm_defaults_come_from_the_config():
    from medsynth.cli.main import build_parser

    args = build_parser().parse_args(["build", "ner"])
    assert (args.max_tokens, args.timeout, args.seed) == (256, 180.0, 13)
    assert build_parser().parse_args(["train", "--data", "d"]).seed == 13


def test_train_stays_callable_after_its_modules_are_imported(tmp_path):
    import medsynth.train.ner  # noqa: F401  (rebinds medsynth.train to the package)

    assert callable(medsynth.train)
    with pytest.raises(MedsynthError, match="no exported dataset"):
        medsynth.train(tmp_path, tmp_path / "m", medsynth.TrainConfig(max_steps=1))

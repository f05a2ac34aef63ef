"""Fixtures and helpers shared by the test modules that drive `medsynth build` against the loopback LLM double.

Fixtures are used by importing them into a test module (`from tests.helpers import cache_env`); an autouse
fixture imported that way applies to every test of that module only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medsynth.cli import main
from medsynth.llm.client import forget_endpoint_modes
from tests.llm_double import LLMDouble


@pytest.fixture()
def cache_env(tmp_path, monkeypatch):
    """tmp_path with the response cache inside it and no endpoint from the environment."""
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return tmp_path


@pytest.fixture(autouse=True)
def fresh_endpoint_modes(monkeypatch):
    """No API key from the environment, and no structured-output mode remembered from another test."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    forget_endpoint_modes()
    yield
    forget_endpoint_modes()


def build_with_double(kind: str, double: LLMDouble, out: Path, n: int, *extra: str) -> int:
    """`medsynth build KIND` of n examples into out, answered by the double."""
    return main(["build", kind, "--n", str(n), "--out", str(out), "--base-url", double.base_url,
                 "--model", "double-model", "--no-progress", *extra])


def data_rows(out: Path) -> list[dict]:
    """The rows of a run's data.jsonl."""
    return [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]

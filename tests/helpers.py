"""Fixtures and helpers shared by the test modules that drive `medsynth build` against the loopback LLM double.

Fixtures are used by importing them into a test module (`from tests.helpers import cache_env`); an autouse
fixture imported that way applies to every test of that module only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pytest

from medsynth.cli.main import main
from medsynth.llm.client import forget_endpoint_modes
from medsynth.records import Entity, Example
from tests import fake_generator
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
                 "--llm-model", "double-model", "--no-progress", *extra])


def built_run(root: Path, respond, n: int = 6) -> Path:
    """root/run: `build ner` of n examples answered by `respond` through the loopback double."""
    out = root / "run"
    with LLMDouble(respond) as double:
        assert build_with_double("ner", double, out, n) == 0
    return out


def data_rows(out: Path) -> list[dict]:
    """The rows of a run's data.jsonl."""
    return [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]


def example_from(text: str, mentions: list[tuple[str, str]], ex_id: str = "e1", **kw) -> Example:
    """An Example whose entities are the given (mention, label) pairs, found left to right in `text`."""
    ents, pos = [], 0
    for mention, label in mentions:
        start = text.index(mention, pos)
        ents.append(Entity(start=start, end=start + len(mention), label=label, text=mention))
        pos = start + len(mention)
    return Example(id=ex_id, text=text, entities=ents, **kw)


def with_extra_sentence(sentence: str, mentions: list[tuple[str, str]]):
    """A responder: the fake generator's answer plus `sentence` and its labelled mentions. Prose-wrapped and
    garbage answers pass unchanged, as a real LLM's odd answers would."""
    def respond(request: dict) -> str:
        raw = fake_generator.answer(request)
        if not raw.startswith("{"):
            return raw
        obj = json.loads(raw)
        obj["text"] += " " + sentence
        obj["entities"] += [{"text": t, "label": lab} for t, lab in mentions]
        return json.dumps(obj)
    return respond


def benchmark_script(name: str):
    """Import benchmarks/<name>.py as its own command line would (benchmarks/ on sys.path for its helpers)."""
    import importlib.util
    import sys

    root = Path(__file__).resolve().parents[1]
    if str(root / "benchmarks") not in sys.path:
        sys.path.insert(0, str(root / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, root / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def conll_text(sentences: Sequence[tuple[str, Sequence[str]]], label: str = "Disease", *, bioes: bool = False,
               columns: str = "{token}\t{tag}") -> str:
    """A token-per-line corpus for (text, mentions) pairs: medsynth's word tokens, IOB2 tags (BIOES with
    `bioes`), each line formatted by `columns` (e.g. "{token}\\tX\\t{tag}" for a POS-like middle column)."""
    from medsynth.data.tokens import tokenize

    def tag(n: int, size: int) -> str:
        if not bioes:
            return "B-" if n == 0 else "I-"
        return "S-" if size == 1 else "B-" if n == 0 else "E-" if n == size - 1 else "I-"

    blocks = []
    for text, mentions in sentences:
        toks = tokenize(text)
        tags = ["O"] * len(toks)
        for m in mentions:
            s = text.index(m)
            inside = [j for j, t in enumerate(toks) if t.start >= s and t.end <= s + len(m)]
            for n, j in enumerate(inside):
                tags[j] = tag(n, len(inside)) + label
        blocks.append("\n".join(columns.format(token=t.text, tag=g) for t, g in zip(toks, tags)))
    return "\n\n".join(blocks) + "\n"

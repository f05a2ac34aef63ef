"""Reliability round 2, point 5: one over-long `--annotate` line neither exceeds the context nor ends the run."""

from __future__ import annotations

import json
from pathlib import Path

from medsynth.generate.annotate import MAX_WINDOWS, WINDOW_CHARS, windows
from medsynth.cli.main import main
from tests.generate.test_annotate import cache_env, responder  # noqa: F401 (fixture)
from tests.llm_double import Fault, LLMDouble

TASK = "ncbi-disease"


def _run(double: LLMDouble, corpus: Path, out: Path) -> int:
    return main(["build", "ner", "--annotate", str(corpus), "--task", TASK, "--out", str(out), "--base-url",
                 double.base_url, "--llm-model", "m", "--no-progress"])


def _context_limited(request: dict):
    """Like a 4,096-token server: a prompt over ~3,000 characters of text is HTTP 400."""
    text = request["messages"][-1]["content"]
    if len(text) > WINDOW_CHARS + 100:
        return Fault.http(400, "requested tokens exceed context window")
    return responder(request)


def test_windows_cover_the_text_at_sentence_ends():
    text = "Asthma worsened at night. " * 200
    spans = windows(text)
    assert len(spans) > 1 and all(b - a <= WINDOW_CHARS for a, b in spans)
    assert "".join(text[a:b] for a, b in spans) == text
    assert all(text[b - 2:b] == ". " for a, b in spans[:-1])


def test_long_line_is_labelled_in_windows_and_a_huge_one_is_a_counted_rejection(cache_env, tmp_path):
    long_text = ("The child had asthma. " * 300).strip()  # ~6,600 chars: 4 windows
    huge = "word " * 200_000  # 1 MB: over MAX_WINDOWS windows
    corpus = tmp_path / "c.txt"
    corpus.write_text("Mutations predispose carriers to breast cancer.\n" + huge + "\n" + long_text + "\n",
                      encoding="utf-8")
    with LLMDouble(_context_limited) as double:
        assert _run(double, corpus, tmp_path / "out") == 0
        assert not double.errors and double.chat_calls < 20
    rows = [json.loads(x) for x in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    long_row = rows[1]
    assert long_row["text"] == long_text and len(long_row["entities"]) == 300
    assert all(long_row["text"][e["start"]:e["end"]] == e["text"] == "asthma" for e in long_row["entities"])
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["rejections"] == {"text_too_long:line_2": 1}
    assert len(windows(huge)) > MAX_WINDOWS


def test_a_refused_request_is_a_rejection_not_a_server_restart(cache_env, tmp_path):
    """HTTP 400 on every text: each is one counted rejection; the run finishes (no '8 failures in a row')."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(f"Text {i} about asthma.\n" for i in range(10)), encoding="utf-8")
    with LLMDouble(lambda r: Fault.http(400, "context exceeded")) as double:
        assert _run(double, corpus, tmp_path / "out") == 0
        assert double.chat_calls == 10  # one request per text: no retries, no restarts
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["rejections"] == {"request_refused:400": 10}


def test_generation_refused_by_the_server_never_restarts_it(cache_env, tmp_path):
    """HTTP 400 on every generation request: the run stops with the server's message after
    max_endpoint_failures, and the restart hook (the embedded server's) is never called."""
    import pytest

    from medsynth.errors import EndpointError
    from medsynth.generate.build import BuildConfig, run_build
    from medsynth.llm import LLMClient, LLMConfig
    from medsynth.spec import get_task

    restarts: list[int] = []
    with LLMDouble(lambda r: Fault.http(400, "prompt exceeds the context window")) as double:
        client = LLMClient(LLMConfig(base_url=double.base_url, model="m", timeout=5, structured="plain"))
        cfg = BuildConfig(task=get_task("ner"), n=2, out=tmp_path / "out", progress=False)
        with pytest.raises(EndpointError, match="HTTP 400: prompt exceeds the context window"):
            run_build(cfg, client, "m", on_endpoint_failure=lambda: restarts.append(1) or True)
        client.close()
        assert double.chat_calls == cfg.max_endpoint_failures  # no retries of a refused request
    assert restarts == []

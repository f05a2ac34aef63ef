"""Point 3 of the reliability round: one hostile answer is one counted rejection, never a crash."""

from __future__ import annotations

import time

from medsynth.evaluate.zeroshot import mentions_from_answer
from medsynth.generate.parse import MAX_ANSWER_BYTES, load_json_object, parse_answer
from medsynth.spec import get_task

DEEP = '{"text": "Gout flared.", "entities": ' + "[" * 100_000


def test_deeply_nested_answer_is_a_counted_rejection_not_recursion_error():
    for fmt in ("json", "inline"):
        assert parse_answer(DEEP, fmt).error == "too_deep"
    assert load_json_object(DEEP)[1] == "too_deep"


def test_zero_shot_parse_of_nested_answer_is_an_error_not_a_crash():
    mentions, err = mentions_from_answer("{\"Disease\": " + "[" * 100_000, get_task("ncbi-disease"))
    assert mentions == [] and err == "too_deep"


def test_answer_over_the_size_cap_is_rejected_fast():
    huge = '{"text": "' + "a" * (50 * 1024 * 1024) + '", "entities": []}'
    t0 = time.monotonic()
    for fmt in ("json", "inline"):
        assert parse_answer(huge, fmt).error == "too_large"
    assert time.monotonic() - t0 < 5
    ok = '{"text": "' + "a" * (MAX_ANSWER_BYTES - 100) + '", "entities": []}'
    assert parse_answer(ok, "json").error is None


def test_wrong_types_are_rejections():
    assert parse_answer(12, "json").error == "empty_response"  # type: ignore[arg-type]
    assert parse_answer('{"text": "x", "entities": 1e999999}', "json").error in (None, "invalid_json")


def test_a_wedging_answer_is_one_counted_rejection_and_its_replay_too(tmp_path, monkeypatch):
    """The first answer is 100,000 nested brackets, the second 300 KB: the build keeps n from the others,
    counts both, and a rerun replays from the cache without a crash (the oversized one is asked again)."""
    import json as _json

    from medsynth.cli.main import main
    from tests.fake_generator import answer
    from tests.llm_double import LLMDouble

    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    calls = {"n": 0}

    def responder(request: dict) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            return DEEP
        if calls["n"] == 2:
            return '{"text": "' + "a" * (MAX_ANSWER_BYTES + 10) + '", "entities": []}'
        return answer(request)

    out = tmp_path / "run"
    argv = ["build", "ner", "--n", "5", "--out", str(out), "--llm-model", "double-model", "--no-progress"]
    with LLMDouble(responder) as double:
        assert main([*argv, "--base-url", double.base_url]) == 0
        stats = _json.loads((out / "stats.json").read_text())
        assert stats["rejections"].get("parse:too_deep") == 1 and stats["rejections"].get("parse:too_large") == 1
        # The same requests into a fresh folder: the nested answer replays from the cache (and is rejected
        # again, no crash); the oversized one was never cached, so it is asked again and now answered well.
        again = ["build", "ner", "--n", "5", "--out", str(tmp_path / "run2"), "--llm-model", "double-model",
                 "--no-progress", "--base-url", double.base_url]
        assert main(again) == 0
    stats2 = _json.loads((tmp_path / "run2" / "stats.json").read_text())
    assert stats2["rejections"].get("parse:too_deep") == 1 and "parse:too_large" not in stats2["rejections"]
    assert stats2["cache_hits"] >= 5 and stats2["llm_calls"] == 1

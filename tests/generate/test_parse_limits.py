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

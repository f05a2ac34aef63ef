"""LLMClient against a real loopback HTTP double: retries, cache, structured-output negotiation, limits."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import SecretStr

from medsynth.errors import EndpointError, MedsynthError
from medsynth.llm import LLMClient, LLMConfig, ResponseCache, endpoint_from_env
from tests.helpers import fresh_endpoint_modes  # noqa: F401 (autouse fixture)
from tests.llm_double import Fault, LLMDouble, Raw, Script, closed_port

SCHEMA = {"type": "object", "properties": {"label": {"type": "string", "enum": ["Disease", "Chemical"]}},
          "required": ["label"]}
MESSAGES = [{"role": "system", "content": "You write labelled sentences."},
            {"role": "user", "content": "Write one sentence now."}]


def make_client(double: LLMDouble, cache: ResponseCache | None = None, **overrides) -> LLMClient:
    params = {"base_url": double.base_url, "model": "test-model", "backoff_base": 0.01, "timeout": 5.0}
    params.update(overrides)
    return LLMClient(LLMConfig(**params), cache=cache)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_success_and_token_accounting():
    with LLMDouble(Script("alpha beta gamma", "delta epsilon")) as double:
        client = make_client(double)
        first = client.complete_sync(MESSAGES, seed=7)
        second = client.complete_sync(user("two words please"), temperature=0.1, max_tokens=50)
        client.close()
    assert (first.text, first.prompt_tokens, first.completion_tokens, first.cached) == ("alpha beta gamma", 8, 3, False)
    assert (second.text, second.prompt_tokens, second.completion_tokens) == ("delta epsilon", 3, 2)
    assert first.error is None and first.mode == ""
    stats = client.stats.as_dict()
    assert stats["llm_calls"] == 2 and stats["prompt_tokens"] == 11 and stats["completion_tokens"] == 5
    assert stats["retries"] == 0 and stats["errors"] == 0 and stats["cache_hits"] == 0
    body1, body2 = double.requests
    assert body1["model"] == "test-model" and body1["seed"] == 7 and body1["messages"] == MESSAGES
    assert body1["temperature"] == 0.8 and body1["top_p"] == 0.95 and body1["max_tokens"] == 256
    assert "response_format" not in body1  # schema=None → no response_format at all
    assert body2["temperature"] == 0.1 and body2["max_tokens"] == 50 and "seed" not in body2
    assert double.errors == []


def test_cache_hit_skips_http_and_misses_on_any_difference(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    replies = iter(f"answer number {i}" for i in range(100))
    with LLMDouble(lambda request: next(replies)) as double:
        client = make_client(double, cache)
        first = client.complete_sync(MESSAGES, schema=SCHEMA, seed=1)
        again = client.complete_sync(MESSAGES, schema=SCHEMA, seed=1)
        assert double.chat_calls == 1  # identical request: no HTTP
        assert again.cached and again.text == first.text and again.mode == first.mode == "llamacpp"
        assert (again.prompt_tokens, again.completion_tokens) == (first.prompt_tokens, first.completion_tokens)
        assert client.stats.cache_hits == 1
        assert client.stats.prompt_tokens == first.prompt_tokens  # hit tokens are not added to this run

        variants = [
            dict(messages=MESSAGES, schema=SCHEMA, seed=2),
            dict(messages=user("something else"), schema=SCHEMA, seed=1),
            dict(messages=MESSAGES, schema={"type": "object"}, seed=1),
            dict(messages=MESSAGES, schema=None, seed=1),
            dict(messages=MESSAGES, schema=SCHEMA, seed=1, temperature=0.2),
        ]
        texts = {first.text}
        for i, variant in enumerate(variants, start=2):
            reply = client.complete_sync(variant.pop("messages"), **variant)
            assert not reply.cached and double.chat_calls == i
            texts.add(reply.text)
        assert len(texts) == len(variants) + 1 and len(cache) == len(variants) + 1

        # A new client (next run) on the same file gets the stored answer without HTTP.
        client.close()
        rerun = make_client(double, ResponseCache(tmp_path / "cache.sqlite"))
        hit = rerun.complete_sync(MESSAGES, schema=SCHEMA, seed=1)
        rerun.close()
    assert hit.cached and hit.text == first.text and double.chat_calls == len(variants) + 1


def test_failed_responses_are_not_cached(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    with LLMDouble(Script(Fault.http(400, "bad request"), "fine now")) as double:
        client = make_client(double, cache)
        failed = client.complete_sync(MESSAGES)
        ok = client.complete_sync(MESSAGES)
        client.close()
    assert failed.text is None and "400" in failed.error and failed.error.count("\n") == 0
    assert ok.text == "fine now" and not ok.cached and len(cache) == 1
    assert client.stats.errors == 1 and client.stats.retries == 0  # 400 is not retried


def test_retry_after_header_is_honoured():
    with LLMDouble(Script(Fault.http(429, "slow down", retry_after=1), "done")) as double:
        client = make_client(double, backoff_base=0.0)
        started = time.monotonic()
        reply = client.complete_sync(MESSAGES)
        elapsed = time.monotonic() - started
        client.close()
    assert reply.text == "done"
    assert elapsed >= 0.9, "the client retried before Retry-After elapsed"
    assert client.stats.retries == 1 and client.stats.retry_reasons == {"429": 1}


@pytest.mark.parametrize("fault,reason", [
    (Fault.http(429), "429"),
    (Fault.http(500), "500"),
    (Fault.http(503), "503"),
    (Fault.slow(2.0), "timeout"),
    (Fault.dropped(), "connection"),
    (Fault.truncated(), "connection"),
    (Fault.bad_json(), "bad_response"),
])
def test_transient_faults_are_retried_then_succeed(fault, reason):
    # Only the timeout case needs a short timeout; the others get a generous one, so that a slow retry on a busy
    # machine is not counted as a second (timeout) fault.
    with LLMDouble(Script(fault, "recovered text")) as double:
        client = make_client(double, timeout=0.8 if reason == "timeout" else 10.0)
        reply = client.complete_sync(MESSAGES)
        client.close()
    assert reply.text == "recovered text" and reply.error is None
    assert client.stats.retries == 1 and client.stats.retry_reasons == {reason: 1}
    assert client.stats.errors == 0 and client.stats.completion_tokens == 2
    assert double.chat_calls == 2 and double.errors == []


def test_gives_up_after_max_retries_without_raising():
    with LLMDouble(Script(default=Fault.http(503, "overloaded"))) as double:
        client = make_client(double, max_retries=2)
        reply = client.complete_sync(MESSAGES)
        client.close()
    assert reply.text is None and "503" in reply.error and "3 attempts" in reply.error
    assert double.chat_calls == 3
    stats = client.stats.as_dict()
    assert stats["errors"] == 1 and stats["retries"] == 2 and stats["retry_reasons"] == {"503": 2}
    assert stats["prompt_tokens"] == 0


def test_connection_loss_after_success_is_a_failed_request_not_an_endpoint_error():
    double = LLMDouble(Script("first answer")).start()
    client = make_client(double, max_retries=1)
    assert client.complete_sync(MESSAGES).text == "first answer"
    double.close()
    reply = client.complete_sync(user("again"))
    client.close()
    assert reply.text is None and "connection" in reply.error and client.stats.errors == 1


def test_unreachable_endpoint_raises_endpoint_error():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    client = LLMClient(LLMConfig(base_url=url, model="m", max_retries=1, backoff_base=0.01))
    with pytest.raises(EndpointError) as info:
        client.complete_sync(MESSAGES)
    client.close()
    message = str(info.value)
    assert url in message and "base URL" in message and "\n" not in message
    assert client.stats.retry_reasons == {"connection": 1}


@pytest.mark.parametrize("status,needle", [(401, "OPENAI_API_KEY"), (404, "/models")])
def test_auth_and_unknown_model_raise_endpoint_error(status, needle):
    with LLMDouble(Script(default=Fault.http(status, "nope"))) as double:
        client = make_client(double)
        with pytest.raises(EndpointError, match=needle):
            client.complete_sync(MESSAGES)
        client.close()
    assert double.chat_calls == 1  # not retried


def _reject_json_schema(request: dict):
    form = request.get("response_format") or {}
    if form.get("type") == "json_schema":
        return Fault.http(500, "Internal Server Error")
    if form.get("type") == "json_object" and form.get("schema") == SCHEMA:
        return {"label": "Disease"}
    return Fault.http(400, "unexpected request")


def test_structured_mode_falls_back_and_is_remembered():
    with LLMDouble(_reject_json_schema, owned_by="vllm") as double:  # not local-looking: tries json_schema
        client = make_client(double)
        first = client.complete_sync(MESSAGES, schema=SCHEMA)
        assert json.loads(first.text) == {"label": "Disease"} and first.mode == "llamacpp"
        assert [r["response_format"]["type"] for r in double.requests] == ["json_schema", "json_object"]
        js = double.requests[0]["response_format"]["json_schema"]
        assert js["schema"] == SCHEMA and js["strict"] is False and js["name"]
        assert client.stats.retry_reasons == {"format_fallback": 1} and client.stats.retries == 0

        second = client.complete_sync(user("another one"), schema=SCHEMA)
        other_client = make_client(double)  # same endpoint, same process: remembered
        third = other_client.complete_sync(user("third"), schema=SCHEMA)
        client.close()
        other_client.close()
    assert second.mode == third.mode == "llamacpp"
    assert [r["response_format"]["type"] for r in double.requests[2:]] == ["json_object", "json_object"]
    assert client.mode == "llamacpp"


def test_falls_back_to_plain_when_no_response_format_is_accepted():
    def responder(request):
        if "response_format" in request:
            return Fault.http(400, "response_format is not supported by this server")
        return '{"label": "Chemical"}'

    with LLMDouble(responder, owned_by="vllm") as double:
        client = make_client(double)
        reply = client.complete_sync(MESSAGES, schema=SCHEMA)
        client.close()
    assert reply.text == '{"label": "Chemical"}' and reply.mode == "plain"
    assert [r.get("response_format", {}).get("type") for r in double.requests] == ["json_schema", "json_object", None]


@pytest.mark.parametrize("owned_by", ["llm-double", "me"])
def test_local_or_llamacpp_endpoint_uses_json_object_schema_form(owned_by):
    with LLMDouble(_reject_json_schema, owned_by=owned_by) as double:
        client = make_client(double)
        reply = client.complete_sync(MESSAGES, schema=SCHEMA)
        client.close()
    assert reply.mode == "llamacpp" and double.chat_calls == 1
    assert double.requests[0]["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_explicit_mode_never_falls_back():
    with LLMDouble(_reject_json_schema) as double:
        client = make_client(double, structured="openai", max_retries=1)
        reply = client.complete_sync(MESSAGES, schema=SCHEMA)
        client.close()
    assert reply.text is None and reply.mode == "openai"
    assert [r["response_format"]["type"] for r in double.requests] == ["json_schema", "json_schema"]
    assert client.stats.retry_reasons == {"500": 1}


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_bound_is_respected(concurrency):
    async def run(client):
        replies = await asyncio.gather(*(client.complete(user(f"request {i}")) for i in range(2 * concurrency)))
        await client.aclose()
        return replies

    with LLMDouble(lambda request: Fault.slow(0.2, "slow reply")) as double:
        client = make_client(double, concurrency=concurrency)
        replies = asyncio.run(run(client))
    assert all(r.text == "slow reply" for r in replies)
    assert double.max_in_flight == concurrency  # reached, never exceeded


def test_api_key_is_sent_but_never_stored_or_shown(tmp_path):
    secret = "sk-test-SECRET-0123456789"
    cache = ResponseCache(tmp_path / "cache.sqlite")
    with LLMDouble(lambda request: {"label": "Disease"}) as double:
        config = LLMConfig(base_url=double.base_url, model="m", api_key=SecretStr(secret), backoff_base=0.01)
        client = LLMClient(config, cache=cache)
        assert client.complete_sync(MESSAGES, schema=SCHEMA, seed=3).text
        client.close()
    assert double.headers[0]["authorization"] == f"Bearer {secret}"
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("cache.sqlite"))
    assert len(cache) == 1 and b"Disease" in stored  # the file really holds the response...
    assert secret.encode() not in stored  # ...but not the key
    for shown in (repr(config), str(config), json.dumps(config.public_params()), config.model_dump_json(),
                  repr(client)):
        assert secret not in shown
    assert "api_key" not in config.public_params() and config.public_params()["model"] == "m"


def test_key_comes_from_env_else_local_dummy(monkeypatch):
    with LLMDouble(Script("a", "b")) as double:
        client = make_client(double)
        client.complete_sync(MESSAGES)
        client.close()
        monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
        client = make_client(double)
        client.complete_sync(MESSAGES)
        client.close()
    assert [h["authorization"] for h in double.headers] == ["Bearer sk-local", "Bearer sk-from-env"]


def test_endpoint_from_env(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://example.invalid/v1")
    monkeypatch.setenv("OPENAI_MODEL", "env-model")
    assert endpoint_from_env(None, None) == ("http://example.invalid/v1", "env-model")
    assert endpoint_from_env("http://127.0.0.1:9/v1", "m") == ("http://127.0.0.1:9/v1", "m")
    monkeypatch.setenv("OPENAI_MODEL", "")
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert endpoint_from_env(None, None) == (None, None)


def test_complete_sync_works_inside_a_running_loop():
    async def notebook_cell(client):  # Jupyter runs cells inside an event loop
        return client.complete_sync(MESSAGES)

    with LLMDouble(Script("from a notebook")) as double:
        client = make_client(double)
        reply = asyncio.run(notebook_cell(client))
        client.close()
    assert reply.text == "from a notebook"


def test_odd_but_valid_body_without_usage():
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "test-model",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}]}
    with LLMDouble(Script(Raw(body), Raw({"choices": []}), "after empty")) as double:
        client = make_client(double)
        first = client.complete_sync(MESSAGES)
        second = client.complete_sync(user("x"))
        client.close()
    assert (first.text, first.prompt_tokens, first.completion_tokens) == ("hi", 0, 0)
    assert second.text == "after empty" and client.stats.retry_reasons == {"bad_response": 1}


def test_cache_key_is_canonical_and_refuses_secrets():
    a = ResponseCache.key({"model": "m", "params": {"top_p": 1, "temperature": 0.5}, "seed": 1})
    b = ResponseCache.key({"seed": 1, "params": {"temperature": 0.5, "top_p": 1}, "model": "m"})
    assert a == b and len(a) == 64
    assert a != ResponseCache.key({"model": "m", "params": {"top_p": 1, "temperature": 0.5}, "seed": 2})
    with pytest.raises(ValueError):
        ResponseCache.key({"model": "m", "api_key": "sk-x"})


def test_cache_is_shared_safely_across_threads(tmp_path):
    cache = ResponseCache(tmp_path / "threads.sqlite")

    def writer(worker: int) -> None:
        for i in range(40):
            cache.put(f"k{worker}-{i}", {"text": f"{worker}/{i}"})
            assert cache.get(f"k{worker}-{i}") == {"text": f"{worker}/{i}"}

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))
    assert len(cache) == 160
    assert ResponseCache(tmp_path / "threads.sqlite").get("k3-39") == {"text": "3/39"}


def test_corrupt_cache_file_is_a_user_error(tmp_path):
    path = tmp_path / "broken.sqlite"
    path.write_bytes(b"this is not a database, just some bytes" * 200)
    with pytest.raises(MedsynthError) as info:
        ResponseCache(path)
    assert str(path) in str(info.value) and "unreadable" in str(info.value)

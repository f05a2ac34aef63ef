"""Several endpoints as one (medsynth.llm.pool) and the vLLM/SGLang structured-output dialect, against real
loopback HTTP doubles; a server death mid-run comes from `tests/fault_proxy.py` (`kill()`)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path

import httpx
import pytest

from medsynth.cli.main import main
from medsynth.llm import LLMClient, LLMConfig, ResponseCache
from medsynth.llm.pool import EndpointPool, Probe, check_probes, public_url, split_urls
from medsynth.llm.session import llm_session
from medsynth.errors import EndpointError
from tests import fault_proxy as fp
from tests.fake_generator import answer
from tests.helpers import cache_env, data_rows, fresh_endpoint_modes  # noqa: F401 (fixtures)
from tests.llm_double import Fault, LLMDouble, closed_port

SCHEMA = {"type": "object", "properties": {"label": {"type": "string", "enum": ["Disease", "Chemical"]}},
          "required": ["label"]}
MESSAGES = [{"role": "user", "content": "Label one mention."}]


def _client(double: LLMDouble, **overrides) -> LLMClient:
    return LLMClient(LLMConfig(**{"base_url": double.base_url, "model": "double-model", "backoff_base": 0.01,
                                  "timeout": 5.0, **overrides}))


def _build(out: Path, urls: list[str], n: int, *extra: str) -> int:
    args = ["build", "ner", "--n", str(n), "--out", str(out), "--llm-model", "double-model", "--no-progress", *extra]
    for url in urls:
        args += ["--base-url", url]
    return main(args)


def _without_created(rows: list[dict]) -> list[dict]:
    """Rows with the creation timestamp dropped (the only field that differs between two identical runs)."""
    return [{**r, "meta": {k: v for k, v in r["meta"].items() if k != "created"}} for r in rows]


# -- vLLM / SGLang dialect -------------------------------------------------------------------------------
def test_dialect_double_refuses_the_llamacpp_form_with_400():
    with LLMDouble(lambda r: {"label": "Disease"}, dialect="vllm") as double:
        url = double.base_url + "/chat/completions"
        llamacpp = httpx.post(url, json={"messages": MESSAGES, "response_format":
                                         {"type": "json_object", "schema": SCHEMA}})
        openai_form = httpx.post(url, json={"messages": MESSAGES, "response_format": {
            "type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA, "strict": True}}})
        models = httpx.get(double.base_url + "/models").json()
    assert llamacpp.status_code == 400 and "json_schema" in llamacpp.json()["message"]
    assert openai_form.status_code == 200 and double.rejected == 1 and double.chat_calls == 1
    assert {m["owned_by"] for m in models["data"]} == {"vllm"}


@pytest.mark.parametrize("dialect", ["vllm", "sglang"])
def test_auto_picks_json_schema_from_owned_by(dialect):
    """A local vLLM/SGLang server (127.0.0.1 would otherwise be guessed llama.cpp) gets the json_schema form
    at once: one GET /models, no refused request, and the choice is remembered for the endpoint."""
    with LLMDouble(lambda r: {"label": "Disease"}, dialect=dialect) as double:
        client = _client(double)
        first = client.complete_sync(MESSAGES, schema=SCHEMA)
        second = client.complete_sync(MESSAGES + [{"role": "user", "content": "again"}], schema=SCHEMA)
        client.close()
    assert first.mode == second.mode == "openai" and client.mode == "openai"
    assert double.rejected == 0 and [r["response_format"]["type"] for r in double.requests] == ["json_schema"] * 2
    assert sum(1 for method, path in double.log if method == "GET") == 1


def test_auto_moves_from_a_refused_llamacpp_form_to_json_schema():
    """A vLLM server that does not say who it is (owned_by unknown, local): the guessed llama.cpp form is
    refused with 400, so the next form is json_schema — not plain JSON in the prompt."""
    with LLMDouble(lambda r: {"label": "Chemical"}, dialect="vllm", owned_by="someone") as double:
        client = _client(double)
        reply = client.complete_sync(MESSAGES, schema=SCHEMA)
        again = client.complete_sync(MESSAGES + [{"role": "user", "content": "more"}], schema=SCHEMA)
        client.close()
    assert json.loads(reply.text) == {"label": "Chemical"} and reply.mode == again.mode == "openai"
    assert double.rejected == 1 and client.stats.retry_reasons == {"format_fallback": 1}
    assert client.stats.retries == 0


# -- pool unit behaviour ---------------------------------------------------------------------------------
def test_urls_split_and_made_credential_free():
    assert split_urls(["http://a/v1, http://b/v1/", "http://a/v1"]) == ["http://a/v1", "http://b/v1"]
    assert split_urls("http://a/v1") == ["http://a/v1"] and split_urls(None) == []
    assert public_url("https://user:pw@h.example:8443/v1/?key=sk-123#x") == "https://h.example:8443/v1"


def test_probe_checks_reachability_and_model_names():
    up_a, up_b = Probe("http://a/v1", True, ("m",)), Probe("http://b/v1", True, ("other",))
    down = Probe("http://c/v1", False, error="connection refused")
    check_probes([up_a, down])  # one of two down: a warning only
    with pytest.raises(EndpointError, match="none of the 2 LLM endpoints answered"):
        check_probes([down, Probe("http://d/v1", False, error="timed out")])
    with pytest.raises(EndpointError, match="different models .*--allow-mixed-models"):
        check_probes([up_a, up_b])
    check_probes([up_a, up_b], allow_mixed_models=True)
    check_probes([up_a, Probe("http://e/v1", True, None, error="GET /models: HTTP 404")])  # unknown: not refused


def test_pool_spreads_load_within_each_bound_and_shares_the_single_cache_key(tmp_path):
    """Each endpoint stays within its own --concurrency, both carry load, and the cache key is exactly a single
    client's: a later one-endpoint run is answered from what the pool cached."""
    slow = lambda r: Fault.slow(0.15, {"label": "Disease"})  # noqa: E731
    cache = ResponseCache(tmp_path / "c.sqlite")
    with LLMDouble(slow) as a, LLMDouble(slow) as b:
        configs = [LLMConfig(base_url=d.base_url, model="double-model", concurrency=2, backoff_base=0.01)
                   for d in (a, b)]
        pool = EndpointPool(configs, cache)
        assert pool.config.concurrency == 4 and pool.config.model == "double-model"

        async def run():
            replies = await asyncio.gather(*(pool.complete([{"role": "user", "content": f"r{i}"}], seed=i)
                                             for i in range(12)))
            await pool.aclose()
            return replies

        replies = asyncio.run(run())
        assert all(r.text for r in replies) and a.max_in_flight <= 2 and b.max_in_flight <= 2
        assert a.chat_calls >= 3 and b.chat_calls >= 3 and a.chat_calls + b.chat_calls == 12
        single = LLMClient(configs[0], cache)
        assert single.request_key([{"role": "user", "content": "r3"}], seed=3) == \
            pool.request_key([{"role": "user", "content": "r3"}], seed=3)
        assert single.complete_sync([{"role": "user", "content": "r3"}], seed=3).cached
        single.close()
    stats = pool.stats.as_dict()
    assert stats["llm_calls"] == 12 and stats["errors"] == 0
    assert sorted(e["requests"] for e in stats["endpoints"]) == sorted([a.chat_calls, b.chat_calls])


def test_a_failing_endpoint_is_set_aside_and_its_request_handed_on():
    with LLMDouble(lambda r: Fault.http(503, "overloaded")) as bad, LLMDouble(lambda r: "fine") as good:
        configs = [LLMConfig(base_url=d.base_url, model="m", backoff_base=0.01) for d in (bad, good)]
        pool = EndpointPool(configs)
        replies = [pool.complete_sync([{"role": "user", "content": f"q{i}"}]) for i in range(4)]
        pool.close()
    assert [r.text for r in replies] == ["fine"] * 4
    assert bad.chat_calls == 3  # one request: first try + 2 retries, then set aside for the rest
    stats = pool.stats
    assert stats.llm_calls == 4 and stats.errors == 0 and stats.retry_reasons["failover"] == 1
    assert stats.retries == 3 and stats.retry_reasons["503"] == 2


def test_a_request_refused_for_itself_is_not_handed_on():
    """An HTTP 400 that is about the request (not the output form) would be refused anywhere: it fails at once,
    no endpoint is set aside and no other endpoint is asked."""
    refuse = lambda r: Fault.http(400, "messages too long")  # noqa: E731
    with LLMDouble(refuse) as a, LLMDouble(refuse) as b:
        pool = EndpointPool([LLMConfig(base_url=d.base_url, model="m", backoff_base=0.01) for d in (a, b)])
        reply = pool.complete_sync(MESSAGES)
        pool.close()
    assert reply.text is None and "HTTP 400" in reply.error and a.chat_calls + b.chat_calls == 1
    assert pool.stats.errors == 1 and "failover" not in pool.stats.retry_reasons
    assert all(e["failures"] == 0 for e in pool.stats.endpoints)


# -- builds over several endpoints -----------------------------------------------------------------------
def test_two_endpoints_one_killed_mid_run_give_the_one_endpoint_dataset(cache_env, monkeypatch):
    """Two doubles, the second behind a fault proxy that dies after a few requests: the run still keeps
    exactly n examples, none lost or duplicated, and data.jsonl equals a one-endpoint run of the same seed."""
    n = 24
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(cache_env / "cache-single"))
    with LLMDouble(answer) as single:
        assert _build(cache_env / "single", [single.base_url], n) == 0
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(cache_env / "cache-pool"))
    proxy: fp.FaultProxy

    def schedule(index: int) -> str:
        if index == 6:  # the server dies: this request is dropped and the port stops listening
            threading.Thread(target=proxy.kill, daemon=True).start()
            return fp.DROP
        return fp.PASS

    slow = lambda r: Fault.slow(0.02, answer(r))  # noqa: E731  (keeps both endpoints busy)
    with LLMDouble(slow) as a, LLMDouble(slow) as b, fp.FaultProxy(b.base_url, schedule) as proxy:
        urls = [a.base_url, proxy.base_url]
        code = _build(cache_env / "pool", urls, n, "--concurrency", "2", "--timeout", "5")
        assert code == 0 and not proxy.alive and not a.errors and not b.errors
    rows = data_rows(cache_env / "pool")
    assert len(rows) == n and len({r["id"] for r in rows}) == n and len({r["text"] for r in rows}) == n
    assert _without_created(rows) == _without_created(data_rows(cache_env / "single"))
    assert b.chat_calls >= 3 and a.chat_calls > b.chat_calls
    stats = json.loads((cache_env / "pool" / "stats.json").read_text())
    endpoints = {e["url"]: e for e in stats["this_run"]["endpoints"]}
    assert set(endpoints) == set(urls) and endpoints[urls[1]]["failures"] >= 1
    assert stats["this_run"]["retry_reasons"]["failover"] >= 1
    card = (cache_env / "pool" / "README.md").read_text()
    assert all(f"`{url}`" in card for url in urls)
    assert stats["this_run"]["served_by"] == {"server": "remote", "endpoints": 2, "in_flight": 4}
    assert "- 2 OpenAI-compatible endpoint(s); 4 requests in flight; engine `local`" in card


def test_endpoints_serving_different_models_are_refused(cache_env, capsys):
    with LLMDouble(answer, models=("model-a",)) as a, LLMDouble(answer, models=("model-b",)) as b:
        code = _build(cache_env / "run", [a.base_url, b.base_url], 3)
        err = capsys.readouterr().err.strip()
        assert code == 3 and len(err.splitlines()) == 1 and "different models" in err and "model-b" in err
        assert a.chat_calls == b.chat_calls == 0
        assert _build(cache_env / "run", [a.base_url, b.base_url], 3, "--allow-mixed-models") == 0


def test_all_endpoints_down_is_one_line(cache_env, capsys):
    urls = [f"http://127.0.0.1:{closed_port()}/v1" for _ in range(2)]
    code = _build(cache_env / "run", urls, 3)
    err = capsys.readouterr().err.strip()
    assert code == 3 and len(err.splitlines()) == 1
    assert "none of the 2 LLM endpoints answered" in err and all(u in err for u in urls)


def test_one_endpoint_down_is_a_warning_and_env_lists_work(cache_env, monkeypatch, caplog):
    down = f"http://127.0.0.1:{closed_port()}/v1"
    with LLMDouble(answer) as up:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{down},{up.base_url}")
        monkeypatch.setenv("OPENAI_MODEL", "double-model")
        with caplog.at_level(logging.WARNING, logger="medsynth.llm"):
            with llm_session() as session:
                assert isinstance(session.client, EndpointPool)
                assert main(["build", "ner", "--n", "4", "--out", str(cache_env / "run"), "--no-progress"]) == 0
    assert any("unreachable" in r.getMessage() and down in r.getMessage() for r in caplog.records)
    assert len(data_rows(cache_env / "run")) == 4

"""Reliability round 2 for LLMClient (loopback servers only, bounded in time): a total deadline per request,
credentials masked in every message, the endpoint in the cache key, the served model checked, and no
oversized answer cached."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from medsynth.errors import EndpointError, MedsynthError, mask_secrets
from medsynth.limits import MAX_ANSWER_BYTES
from medsynth.llm import LLMClient, LLMConfig, ResponseCache
from medsynth.llm.client import endpoint_identity, same_model
from tests.helpers import fresh_endpoint_modes  # noqa: F401 (autouse fixture)
from tests.llm_double import LLMDouble, Raw, Script, completion_body

MESSAGES = [{"role": "user", "content": "Write one sentence now."}]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class _Loopback:
    """A raw HTTP server on 127.0.0.1 whose handler is `handle(request_handler)`."""

    def __init__(self, handle):

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                handle(self)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                handle(self)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.stop = threading.Event()
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_server_that_dribbles_one_byte_at_a_time_hits_the_total_deadline():
    """Headers, then one byte every 0.3 s: each read is within --timeout, so only a total deadline ends it."""
    def dribble(h: BaseHTTPRequestHandler) -> None:
        if h.command == "GET":
            h.send_error(404)
            return
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", "100000")
        h.end_headers()
        while not server.stop.is_set():
            try:
                h.wfile.write(b" ")
                h.wfile.flush()
            except OSError:
                return
            time.sleep(0.3)

    server = _Loopback(dribble)
    try:
        client = LLMClient(LLMConfig(base_url=server.base_url, model="m", timeout=1.0, deadline=2.0,
                                     backoff_base=0.01, structured="plain"))
        t0 = time.monotonic()
        res = client.complete_sync(MESSAGES)
        elapsed = time.monotonic() - t0
        client.close()
    finally:
        server.close()
    assert res.text is None and "deadline" in res.error
    assert elapsed < 6, elapsed


def test_default_deadline_is_minutes():
    assert LLMConfig(base_url="http://x/v1", model="m", timeout=180).request_deadline == 360
    assert LLMConfig(base_url="http://x/v1", model="m", timeout=10).request_deadline == 300


def test_url_password_and_echoed_basic_header_are_masked(monkeypatch):
    """A proxy that echoes the Authorization header in its 401 body: the one-line error shows neither."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def echo(h: BaseHTTPRequestHandler) -> None:
        body = ('{"error": {"message": "bad credentials: ' + str(h.headers.get("Authorization")) + '"}}').encode()
        h.send_response(401)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    server = _Loopback(echo)
    url = server.base_url.replace("http://", "http://alice:S3cretPASSWORD@")
    try:
        client = LLMClient(LLMConfig(base_url=url, model="m", timeout=5, structured="plain"))
        with pytest.raises(EndpointError) as info:
            client.complete_sync(MESSAGES)
        client.close()
    finally:
        server.close()
    msg = str(info.value)
    assert "S3cretPASSWORD" not in msg and "alice:" not in msg and "YWxpY2U6" not in msg, msg
    assert "rejected the API key" in msg
    assert "S3cretPASSWORD" not in repr(client)


def test_mask_secrets_covers_every_error_path():
    err = MedsynthError("Authorization: Bearer sk-abcdefghijklmnop failed", where="https://u:pw1234@h/v1")
    assert "pw1234" not in str(err) and "sk-abcdefghijklmnop" not in str(err)
    assert mask_secrets("token limit reached") == "token limit reached"


def test_cache_key_includes_the_endpoint_but_not_credentials_or_loopback_port(tmp_path):
    assert endpoint_identity("http://127.0.0.1:4001/v1") == endpoint_identity("http://localhost:5002/v1/")
    assert endpoint_identity("https://u:p@api.example.org/v1") == "https://api.example.org/v1"
    cache = ResponseCache(tmp_path / "c.sqlite")
    a = LLMClient(LLMConfig(base_url="https://a.example.org/v1", model="m"), cache)
    b = LLMClient(LLMConfig(base_url="https://b.example.org/v1", model="m"), cache)
    c = LLMClient(LLMConfig(base_url="https://x:y@a.example.org/v1", model="m"), cache)
    assert a.cache_key(MESSAGES) != b.cache_key(MESSAGES)
    assert a.cache_key(MESSAGES) == c.cache_key(MESSAGES)


def test_a_server_answering_as_another_model_is_refused():
    body = completion_body({"messages": MESSAGES}, "hello")
    body["model"] = "some-other-model"
    with LLMDouble(Script(Raw(body))) as double:
        client = LLMClient(LLMConfig(base_url=double.base_url, model="asked-model", timeout=5, structured="plain"))
        with pytest.raises(EndpointError, match="asked for model 'asked-model'.*'some-other-model'"):
            client.complete_sync(MESSAGES)
        client.close()


@pytest.mark.parametrize("asked, reported", [("gpt-4o", "gpt-4o-2024-08-06"), ("qwen", "/models/qwen.gguf"),
                                             ("org/Model-7B", "model-7b"), ("m", "m")])
def test_model_name_variants_are_accepted(asked, reported):
    assert same_model(asked, reported)


def test_oversized_answer_is_not_cached_and_is_asked_again(tmp_path):
    huge = "x" * (MAX_ANSWER_BYTES + 10)
    with LLMDouble(Script(huge, "small")) as double:
        cache = ResponseCache(tmp_path / "c.sqlite")
        client = LLMClient(LLMConfig(base_url=double.base_url, model="m", timeout=5, structured="plain"), cache)
        first = client.complete_sync(MESSAGES)
        second = client.complete_sync(MESSAGES)
        client.close()
    assert first.text == huge and not first.cached
    assert second.text == "small" and len(cache) == 1


def test_answer_identity_leaves_the_endpoint_out_but_the_cache_key_does_not():
    """Bench's answer journals are committed and replayed on other machines: their key (`request_key`) must not
    depend on where the model is served, while the response cache (`cache_key`) must keep endpoints apart."""
    from medsynth.llm.client import LLMClient, LLMConfig

    messages = [{"role": "user", "content": "Name the diseases in: Flu and asthma."}]
    a = LLMClient(LLMConfig(base_url="http://127.0.0.1:8080/v1", model="m"))
    b = LLMClient(LLMConfig(base_url="https://user:pw@gpu.example:8443/v1", model="m"))
    assert a.request_key(messages, seed=0) == b.request_key(messages, seed=0)
    assert a.cache_key(messages, seed=0) != b.cache_key(messages, seed=0)
    assert "pw" not in b.cache_key(messages, seed=0)


def test_committed_zero_shot_journal_still_matches_its_requests():
    """The recorded BC5CDR zero-shot answers (hours of CPU) are found again for the same sentences."""
    import json

    from medsynth.data.corpora.ner import load_corpus
    from medsynth.data.tokens import detokenize
    from medsynth.errors import MedsynthError
    from medsynth.evaluate.zeroshot import REQUEST, zero_shot_messages, zero_shot_schema
    from medsynth.llm.client import LLMClient, LLMConfig
    from medsynth.spec import get_task

    journal = Path(__file__).resolve().parents[2] / "benchmarks/results/ner-bc5cdr-chem/answers/zero-shot.jsonl"
    try:
        sentences = load_corpus("bc5cdr-chem", "test", None)[:5]
    except MedsynthError:
        pytest.skip("BC5CDR data not found (../shared/data)")
    keys = {json.loads(line)["key"] for line in journal.read_text(encoding="utf-8").splitlines() if line.strip()}
    task, client = get_task("ner"), LLMClient(LLMConfig(base_url="http://127.0.0.1:1/v1",
                                                        model="qwen2.5-coder-1.5b-instruct-q4_k_m"))
    found = [client.request_key(zero_shot_messages(task, detokenize(s.tokens)[0]), schema=zero_shot_schema(task),
                                **REQUEST) in keys for s in sentences]
    assert found == [True] * 5

"""A loopback HTTP test double of an OpenAI-compatible chat-completions server.

Why a real HTTP server instead of mocking the `openai` SDK: the client's retry, timeout, fallback and
concurrency logic reacts to what actually happens on the wire (status codes, headers, dropped sockets, slow
answers, broken bodies). Mocking the SDK would test our assumptions about the SDK, not the behaviour.

Usage::

    from tests.llm_double import LLMDouble, Fault, Script

    def responder(request: dict):          # the parsed JSON body of POST /v1/chat/completions
        if request.get("response_format", {}).get("type") == "json_schema":
            return Fault.http(500, "response_format json_schema not supported")
        return {"entities": []}            # dict → JSON-encoded message content

    with LLMDouble(responder) as double:
        client = LLMClient(LLMConfig(base_url=double.base_url, model="m"))
        ...
        assert len(double.requests) == 1   # chat-completion bodies received, in order

A responder returns one of:

* ``str``   – the assistant message content, wrapped into a full ``chat.completion`` body whose ``usage``
  counts whitespace-separated tokens (prompt: all message contents; completion: the content);
* ``dict`` / ``list`` – JSON-encoded and used as the content (convenient for structured output);
* ``Raw(body, status=200, headers=None)`` – an exact JSON body sent as-is (for odd servers);
* ``Fault(...)`` – misbehaviour: an HTTP error status (optionally with ``Retry-After``), a delay before
  answering (to trigger client timeouts), a dropped connection, a truncated body or an invalid JSON body.

``Script(item, item, ...)`` is a responder that hands out its items in order, one per request; an item may
itself be a callable ``request -> item``. When it runs out it answers HTTP 500 and records the problem in
``double.errors`` (tests should assert that list is empty), unless built with ``default=``.

Besides ``requests`` the double records ``log`` (method, path) for every HTTP request, ``headers`` (per chat
request, lower-cased names), ``max_in_flight`` (peak number of chat requests being served at once) and
``errors`` (exceptions raised by the responder, answered as HTTP 500).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union


@dataclass
class Fault:
    """A scripted misbehaviour. Build it with the class methods; fields combine (e.g. delay + status)."""

    status: int = 200
    message: str = ""
    retry_after: float | None = None
    delay: float = 0.0
    content: Any = "ok"  # what to answer after `delay` when status is 200
    drop: bool = False
    truncate: bool = False
    invalid_json: bool = False

    @classmethod
    def http(cls, status: int, message: str = "", *, retry_after: float | None = None) -> "Fault":
        """Answer `status` with an OpenAI-style error body; 429 may carry a Retry-After header (seconds)."""
        return cls(status=status, message=message or f"scripted HTTP {status}", retry_after=retry_after)

    @classmethod
    def slow(cls, seconds: float, content: Any = "late answer") -> "Fault":
        """Wait `seconds`, then answer normally (a client with a shorter timeout gives up first)."""
        return cls(delay=seconds, content=content)

    @classmethod
    def dropped(cls) -> "Fault":
        """Close the connection without sending any response."""
        return cls(drop=True)

    @classmethod
    def truncated(cls) -> "Fault":
        """Send a 200 whose body is cut off before Content-Length bytes, then close."""
        return cls(truncate=True)

    @classmethod
    def bad_json(cls) -> "Fault":
        """Send a 200 with Content-Type application/json whose body is not JSON."""
        return cls(invalid_json=True)


@dataclass
class Raw:
    """An exact JSON response body (and status/headers) sent as-is."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Reply = Union[str, dict, list, Fault, Raw]
Responder = Callable[[dict], Reply]


class Script:
    """A responder that returns its queued items in order, one per chat request (thread-safe)."""

    _EXHAUSTED = object()

    def __init__(self, *items: Reply | Callable[[dict], Reply], default: Any = _EXHAUSTED):
        self._items = list(items)
        self._default = default
        self._lock = threading.Lock()
        self.calls = 0

    def __call__(self, request: dict) -> Reply:
        with self._lock:
            index = self.calls
            self.calls += 1
            if index < len(self._items):
                item = self._items[index]
            elif self._default is not Script._EXHAUSTED:
                item = self._default
            else:
                raise AssertionError(f"Script exhausted: request #{index + 1} but only {len(self._items)} items")
        return item(request) if callable(item) else item

    @property
    def remaining(self) -> int:
        with self._lock:
            return max(0, len(self._items) - self.calls)


def count_tokens(text: str | None) -> int:
    """Whitespace token count: deterministic stand-in for a tokenizer, good enough for accounting tests."""
    return len(text.split()) if text else 0


def _message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def completion_body(request: dict, content: str, *, created: int = 1_700_000_000) -> dict:
    """A well-formed chat.completion body for `content`, with whitespace-token usage."""
    prompt_tokens = sum(count_tokens(_message_text(m)) for m in request.get("messages", []))
    completion_tokens = count_tokens(content)
    return {
        "id": "chatcmpl-double",
        "object": "chat.completion",
        "created": created,
        "model": request.get("model", "double"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class LLMDouble:
    """An OpenAI-compatible server on 127.0.0.1 (free port) answering from `responder`.

    `models` is what GET /v1/models lists and `owned_by` the owner it reports (clients use it to guess the
    server kind: "me"/"llamacpp" look like llama.cpp, "vllm" like vLLM).

    `dialect="vllm"` or `"sglang"` makes it speak that server's structured-output dialect: only the OpenAI
    form `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}` is accepted; the llama.cpp form
    `{"type": "json_object", "schema": ...}` and a json_schema without name or schema are refused with HTTP 400
    and a vLLM-style error body (before the responder sees them; `rejected` counts them). GET /v1/models then
    reports `owned_by` = the dialect unless `owned_by` is given.
    """

    def __init__(self, responder: Responder, *, models: tuple[str, ...] = ("double-model",),
                 owned_by: str | None = None, dialect: str | None = None):
        if dialect not in (None, "vllm", "sglang"):
            raise ValueError(f"unknown dialect {dialect!r}")
        self.responder = responder
        self.models = models
        self.dialect = dialect
        self.owned_by = owned_by or dialect or "llm-double"
        self.rejected = 0
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.log: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> "LLMDouble":
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        # A short poll interval: shutdown() waits for the serve loop to notice, 0.5 s by default per double.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="llm-double", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # wakes handlers sleeping in a delay
        with self._lock:  # a dead server also drops its keep-alive connections
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "LLMDouble":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        assert self._server is not None, "LLMDouble not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_calls(self) -> int:
        return len(self.requests)

    # -- request handling ------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(tracked_handler(double)):
            def do_GET(self) -> None:
                double._record_log("GET", self.path)
                if self.path.rstrip("/").endswith("/models"):
                    data = [{"id": m, "object": "model", "owned_by": double.owned_by, "created": 0}
                            for m in double.models]
                    self._send_json(200, {"object": "list", "data": data})
                else:
                    self._send_json(404, _error_body(f"no route GET {self.path}", "not_found"))

            def do_POST(self) -> None:
                double._record_log("POST", self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send_json(404, _error_body(f"no route POST {self.path}", "not_found"))
                    return
                try:
                    request = json.loads(raw or b"{}")
                except ValueError:
                    self._send_json(400, _error_body("request body is not JSON", "invalid_request_error"))
                    return
                refusal = dialect_refusal(double.dialect, request)
                if refusal is not None:
                    with double._lock:
                        double.rejected += 1
                    self._send_json(400, {"object": "error", "message": refusal, "type": "BadRequestError",
                                          "param": None, "code": 400})
                    return
                double._enter(request, {k.lower(): v for k, v in self.headers.items()})
                try:
                    self._answer(request)
                finally:
                    double._leave()

            def _answer(self, request: dict) -> None:
                try:
                    reply = double.responder(request)
                except Exception as exc:  # a broken script is a test bug: make it visible, answer 500
                    double.errors.append(f"{type(exc).__name__}: {exc}")
                    self._send_json(500, _error_body(f"responder failed: {exc}", "server_error"))
                    return
                if isinstance(reply, Raw):
                    self._send_json(reply.status, reply.body, reply.headers)
                    return
                if not isinstance(reply, Fault):
                    self._send_json(200, completion_body(request, _as_content(reply)))
                    return
                fault = reply
                if fault.delay and double._closing.wait(fault.delay):
                    return  # the double is shutting down
                if fault.drop:
                    self._drop()
                elif fault.truncate:
                    body = json.dumps(completion_body(request, "this body will be cut off")).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self._drop()
                elif fault.invalid_json:
                    body = b'{"id": "chatcmpl-broken", "choices": [ {"message": '
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif fault.status != 200:
                    headers = {}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = f"{fault.retry_after:g}"
                    kind = "rate_limit_exceeded" if fault.status == 429 else "server_error"
                    self._send_json(fault.status, _error_body(fault.message, kind), headers)
                else:
                    self._send_json(200, completion_body(request, _as_content(fault.content)))

            def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:  # client already gone (e.g. it timed out)
                    self.close_connection = True

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        return Handler

    def _record_log(self, method: str, path: str) -> None:
        with self._lock:
            self.log.append((method, path))

    def _enter(self, request: dict, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(request)
            self.headers.append(headers)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


def tracked_handler(owner: Any) -> type[BaseHTTPRequestHandler]:
    """A quiet HTTP/1.1 handler base that registers its socket in `owner._connections` (under `owner._lock`),
    so the owning server can cut every open connection on close — shared by the double and the fault proxy."""

    class TrackedHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

        def setup(self) -> None:
            super().setup()
            with owner._lock:
                owner._connections.add(self.connection)

        def finish(self) -> None:
            with owner._lock:
                owner._connections.discard(self.connection)
            try:
                super().finish()
            except OSError:
                pass

    return TrackedHandler


def dialect_refusal(dialect: str | None, request: dict) -> str | None:
    """Why a vLLM/SGLang server would answer 400 to this request's response_format (None: it accepts it).
    Both take OpenAI's json_schema form only; the llama.cpp form (json_object with a schema) is refused."""
    fmt = request.get("response_format")
    if dialect is None or not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_object" and "schema" in fmt:
        return ("1 validation error for ChatCompletionRequest response_format: extra field 'schema' is not "
                "permitted for type json_object; use type json_schema with json_schema.schema")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not spec.get("name") or not isinstance(spec.get("schema"), dict):
            return "response_format json_schema needs json_schema.name and json_schema.schema"
        return None
    if kind not in ("text", "json_object"):
        return f"response_format type {kind!r} is not supported"
    return None


def _as_content(reply: Any) -> str:
    return reply if isinstance(reply, str) else json.dumps(reply)


def _error_body(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def closed_port() -> int:
    """A 127.0.0.1 port with nothing listening (bound then released), for 'endpoint down' tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

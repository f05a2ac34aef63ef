"""The one way medsynth talks to an LLM: an async OpenAI-compatible client with our own retry policy.

Why our own policy instead of the SDK's: generation runs make thousands of calls against servers that
misbehave in different ways (a local llama.cpp server that is busy or restarting, a rate-limited hosted API,
a vLLM box behind a flaky proxy). One failed request must never kill a run — it comes back as
`LLMResponse(text=None, error=...)` and is counted — while an endpoint that cannot work at all (nothing
listening, wrong key, unknown model) raises `EndpointError` at once with a line saying what to check.

Structured output differs per server: llama.cpp wants `{"type": "json_object", "schema": ...}` (it turns
the schema into a grammar) and answers 500 to OpenAI's `json_schema` form; OpenAI, vLLM and SGLang want the
`json_schema` form. In `auto` mode the client guesses from the URL and `GET /models`, falls back
json_schema → json_object+schema → plain (JSON asked in the prompt only) when the server rejects a form,
and remembers what worked per endpoint for the rest of the process.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlparse

import openai
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from medsynth.errors import EndpointError, mask_secrets, register_secret, register_url_credentials, strip_credentials
from medsynth.limits import MAX_ANSWER_BYTES
from medsynth.llm.aio import BackgroundLoop
from medsynth.llm.cache import ResponseCache

log = logging.getLogger("medsynth.llm")

StructuredMode = Literal["auto", "llamacpp", "openai", "plain"]

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
LOCAL_API_KEY = "sk-local"  # local servers ignore the key, but the SDK insists on one
SCHEMA_NAME = "medsynth_output"
FALLBACK_ORDER = ("openai", "llamacpp", "plain")
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
FALLBACK_STATUS = frozenset({400, 422, 500})
FORMAT_WORDS = ("response_format", "json_schema", "schema", "grammar")
RETRY_AFTER_CAP = 60.0
BACKOFF_CAP = 30.0
# What GET /models reports as `owned_by`: llama-cpp-python says "me", llama.cpp's own server "llamacpp".
LLAMACPP_OWNERS = frozenset({"me", "llamacpp", "llama.cpp", "llama-cpp"})
JSON_SCHEMA_OWNERS = frozenset({"vllm", "sglang", "library", "ollama", "openai", "system", "openai-internal"})

# Per-process memory of what worked, keyed by endpoint URL (shared by all clients of the same endpoint).
_ENDPOINT_MODES: dict[str, str] = {}
_ENDPOINT_KINDS: dict[str, str | None] = {}
# A request's total time (connect + every read + retries) is capped: `timeout` alone is per read, and a
# server that sends one byte a second would otherwise hold a request forever. Default: max(300 s, 2 × timeout).
MIN_DEADLINE = 300.0


def forget_endpoint_modes() -> None:
    """Forget the structured modes learned so far (tests; or after an endpoint was swapped)."""
    _ENDPOINT_MODES.clear()
    _ENDPOINT_KINDS.clear()


def endpoint_from_env(base_url: str | None, model: str | None) -> tuple[str | None, str | None]:
    """Fill missing base_url / model from OPENAI_BASE_URL / OPENAI_MODEL (empty values count as unset)."""
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    model = model or os.environ.get("OPENAI_MODEL") or None
    return base_url, model


class LLMConfig(BaseModel):
    """Where and how to call the LLM. `api_key` is never serialised nor shown in repr."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    base_url: str
    model: str
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1)
    concurrency: int = Field(1, ge=1)
    timeout: float = Field(180.0, gt=0.0)
    deadline: float | None = Field(None, gt=0.0, description="total seconds per request, retries included "
                                   "(default max(300, 2 × timeout))")
    max_retries: int = Field(5, ge=0)
    structured: StructuredMode = "auto"
    backoff_base: float = Field(0.5, ge=0.0)  # first retry waits ~this many seconds, doubling each time

    def public_params(self) -> dict:
        """A view safe to store in run manifests: everything but the key."""
        return self.model_dump(mode="json", exclude={"api_key"})

    @property
    def request_deadline(self) -> float:
        return self.deadline if self.deadline is not None else max(MIN_DEADLINE, 2 * self.timeout)

    @property
    def is_local(self) -> bool:
        return (urlparse(self.base_url).hostname or "") in LOCAL_HOSTS


@dataclass
class LLMResponse:
    text: str | None  # raw content; None when the request finally failed
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    error: str | None = None  # one-line reason when text is None
    mode: str = ""  # structured mode actually used ("" when no schema was asked for)
    status: int | None = None  # HTTP status of a request the server refused (not retried), else None
    # Whose failure it is when text is None: "endpoint" (connection, timeout, 5xx, 429, broken bodies after the
    # retries: another endpoint may well answer) or "request" (this request's own: a 4xx, an oversized answer).
    failure: str | None = None

    @property
    def refused(self) -> bool:
        """The server refused this request itself (a 4xx such as 400 context exceeded, 413, 422): asking again,
        or restarting the server, gives the same answer, so callers count it as a rejection, not a failure."""
        return self.text is None and self.status is not None and 400 <= self.status < 500 \
            and self.status not in (408, 429)


@dataclass
class LLMStats:
    """Counters for one client. `llm_calls` counts requests that went to the endpoint (cache misses);
    `retries` counts extra attempts, by reason in `retry_reasons` (e.g. "429", "500", "timeout",
    "connection", "bad_response"); structured-format fallbacks are listed there as "format_fallback" but
    are not retries. `errors` counts requests that finally failed. Token totals exclude cache hits."""

    llm_calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retry_reasons: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {
            "llm_calls": self.llm_calls,
            "cache_hits": self.cache_hits,
            "retries": self.retries,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "retry_reasons": dict(sorted(self.retry_reasons.items())),
        }


@dataclass
class _LoopState:
    """Things bound to one event loop (httpx connections, semaphore, lock cannot cross loops)."""

    client: openai.AsyncOpenAI
    semaphore: asyncio.Semaphore
    mode_lock: asyncio.Lock


class _BadResponse(Exception):
    """The server answered 200 but the body is not a usable chat completion."""


class _Retry(Exception):
    def __init__(self, reason: str, detail: str, wait: float | None = None):
        super().__init__(detail)
        self.reason, self.detail, self.wait = reason, detail, wait


class LLMClient:
    """Chat completions with caching, bounded concurrency, retries and structured-output negotiation."""

    def __init__(self, config: LLMConfig, cache: ResponseCache | None = None):
        self.config = config
        self.cache = cache
        self.stats = LLMStats()
        self._endpoint = config.base_url.rstrip("/")
        register_url_credentials(config.base_url)
        self._candidate: str | None = None  # auto mode: form to try next while not settled
        self._rejected: set[str] = set()  # auto mode: forms this endpoint refused (so llamacpp -> openai -> plain)
        self._ever_succeeded = False
        self._states: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._sync = BackgroundLoop("medsynth-llm-loop")  # for complete_sync

    def __repr__(self) -> str:
        return f"LLMClient(base_url={strip_credentials(self.config.base_url)!r}, model={self.config.model!r})"

    # -- public API ------------------------------------------------------------------------------------
    async def complete(self, messages: list[dict], *, schema: dict | None = None, seed: int | None = None,
                       temperature: float | None = None, max_tokens: int | None = None) -> LLMResponse:
        """One chat completion. Never raises for a single failed request (see module doc)."""
        params = self._params(temperature, max_tokens)
        key = self._cache_key(messages, params, seed, schema) if self.cache is not None else None
        if key is not None:
            hit = self.cache.get(key)
            # An oversized cached answer (stored before the size cap) is a miss: it is asked again.
            if hit is not None and isinstance(hit.get("text"), str) and len(hit["text"]) <= MAX_ANSWER_BYTES:
                self.stats.cache_hits += 1
                return LLMResponse(text=hit["text"], prompt_tokens=int(hit.get("prompt_tokens") or 0),
                                   completion_tokens=int(hit.get("completion_tokens") or 0), cached=True,
                                   mode=str(hit.get("mode") or ""))
        state = self._state()
        self.stats.llm_calls += 1
        if schema is not None and self.config.structured == "auto" and self._settled_mode() is None:
            async with state.mode_lock:  # negotiate the format once, not N times in parallel
                if self._settled_mode() is None:
                    response = await self._request(state, messages, params, seed, schema)
                    return self._store(key, response)
        response = await self._request(state, messages, params, seed, schema)
        return self._store(key, response)

    def complete_sync(self, messages: list[dict], *, schema: dict | None = None, seed: int | None = None,
                      temperature: float | None = None, max_tokens: int | None = None) -> LLMResponse:
        """Blocking `complete` for notebooks and simple loops. Runs on a private background event loop, so it
        also works where a loop is already running (Jupyter) and from several threads at once."""
        loop = self._sync.get()
        future = asyncio.run_coroutine_threadsafe(
            self.complete(messages, schema=schema, seed=seed, temperature=temperature, max_tokens=max_tokens),
            loop)
        return future.result()

    async def aclose(self) -> None:
        """Close HTTP connections (of the running loop and of the background loop, if any)."""
        loop = asyncio.get_running_loop()
        state = self._states.pop(loop, None)
        if state is not None:
            await state.client.close()
        await asyncio.to_thread(self._sync.stop, self._close_loop_state)

    def close(self) -> None:
        """Synchronous counterpart of `aclose` for `complete_sync` users."""
        self._sync.stop(self._close_loop_state)

    def rebase(self, base_url: str) -> None:
        """Point the client at a new URL (an embedded server restarted on another port). Connections to the
        old URL are dropped; the structured-output form is negotiated again for the new endpoint."""
        self.config.base_url = base_url
        self._endpoint = base_url.rstrip("/")
        register_url_credentials(base_url)
        self._candidate = None
        self._rejected.clear()
        self._states.clear()

    @property
    def mode(self) -> str | None:
        """The structured mode in use for this endpoint, once known."""
        if self.config.structured != "auto":
            return self.config.structured
        return self._settled_mode()

    # -- request with retries --------------------------------------------------------------------------
    async def _request(self, state: _LoopState, messages: list[dict], params: dict, seed: int | None,
                       schema: dict | None) -> LLMResponse:
        mode = await self._mode_for(state, schema)
        attempts = 0
        deadline = self.config.request_deadline
        async with state.semaphore:
            start = time.monotonic()
            while True:
                attempts += 1
                left = deadline - (time.monotonic() - start)
                try:
                    text, usage = await asyncio.wait_for(self._send(state, messages, params, seed, schema, mode),
                                                         timeout=max(left, 0.001))
                except asyncio.TimeoutError:
                    retry = _Retry("deadline", f"no complete answer within the {deadline:g} s request deadline")
                    return self._give_up(retry, attempts, mode)
                except openai.APIStatusError as exc:
                    next_mode = self._fallback(exc, mode, schema)
                    if next_mode is not None:
                        log.info("endpoint %s rejected the %s output form (HTTP %s); trying %s",
                                 self._public(), mode, exc.status_code, next_mode)
                        self.stats.retry_reasons["format_fallback"] += 1
                        mode = self._candidate = next_mode
                        attempts -= 1  # a format fallback is not a retry
                        continue
                    problem = self._classify_status(exc, mode)
                    if isinstance(problem, LLMResponse):
                        return problem
                    retry = problem
                except openai.APITimeoutError:
                    retry = _Retry("timeout", f"no answer within {self.config.timeout:g} s")
                except openai.APIConnectionError as exc:
                    retry = _Retry("connection", _one_line(_root_cause(exc)))
                except (_BadResponse, openai.APIResponseValidationError) as exc:
                    retry = _Retry("bad_response", _one_line(exc))
                else:
                    return self._succeeded(text, usage, mode, schema)
                left = deadline - (time.monotonic() - start)
                if attempts > self.config.max_retries or left <= 0:
                    return self._give_up(retry, attempts, mode)
                self.stats.retries += 1
                self.stats.retry_reasons[retry.reason] += 1
                wait = retry.wait if retry.wait is not None else self._backoff(attempts)
                wait = min(wait, left)
                log.warning("LLM request failed (%s: %s); retry %d/%d in %.1f s", retry.reason, retry.detail,
                            attempts, self.config.max_retries, wait)
                await asyncio.sleep(wait)

    async def _send(self, state: _LoopState, messages: list[dict], params: dict, seed: int | None,
                    schema: dict | None, mode: str) -> tuple[str, Any]:
        kwargs: dict[str, Any] = {"model": self.config.model, "messages": messages, **params}
        if seed is not None:
            kwargs["seed"] = seed
        response_format = _response_format(mode, schema)
        if response_format is not None:
            kwargs["response_format"] = response_format
        try:
            completion = await state.client.chat.completions.create(**kwargs)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # the SDK lets a broken body through raw
            raise _BadResponse(f"response body is not JSON ({exc})") from exc
        try:
            message = completion.choices[0].message
            text = message.content
        except Exception as exc:  # a string, an empty choices list, a body of another shape…
            raise _BadResponse(f"not a chat completion ({type(exc).__name__}: {exc})") from exc
        if text is None:
            raise _BadResponse("chat completion without message content")
        self._check_model(getattr(completion, "model", None))
        return text, getattr(completion, "usage", None)

    def _check_model(self, reported: object) -> None:
        """Refuse an endpoint that answers with another model than the one asked for: its answers would be
        cached and stored under the wrong name. Hosted APIs report dated variants (gpt-4o → gpt-4o-2024-08-06)
        and some servers the file name, so a prefix or path-suffix match is accepted; no name is no check."""
        if not isinstance(reported, str) or not reported.strip():
            return
        if not same_model(self.config.model, reported):
            raise EndpointError(f"asked for model {self.config.model!r} but the endpoint answered as {reported!r}; "
                                "check --model / OPENAI_MODEL against GET /v1/models", where=self._public())

    def _public(self) -> str:
        """The endpoint as shown in messages: no credentials."""
        return strip_credentials(self._endpoint)

    def _succeeded(self, text: str, usage: Any, mode: str, schema: dict | None) -> LLMResponse:
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        self._ever_succeeded = True
        if schema is not None and self.config.structured == "auto" and self._endpoint not in _ENDPOINT_MODES:
            _ENDPOINT_MODES[self._endpoint] = mode
        return LLMResponse(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                           cached=False, mode=mode if schema is not None else "")

    def _give_up(self, retry: _Retry, attempts: int, mode: str) -> LLMResponse:
        if retry.reason == "connection" and not self._ever_succeeded:
            raise EndpointError(f"cannot reach the LLM endpoint ({retry.detail}) after {attempts} attempts; "
                                "start the server or check the base URL (--base-url / OPENAI_BASE_URL)",
                                where=self._public())
        return self._failed(f"gave up after {attempts} attempts: {retry.reason}: {retry.detail}", mode,
                            failure="endpoint")

    def _failed(self, reason: str, mode: str, status: int | None = None, failure: str = "request") -> LLMResponse:
        self.stats.errors += 1
        return LLMResponse(text=None, prompt_tokens=0, completion_tokens=0, cached=False, error=_one_line(reason),
                           mode=mode, status=status, failure=failure)

    def _classify_status(self, exc: openai.APIStatusError, mode: str) -> _Retry | LLMResponse:
        """Retry, fail this request, or raise EndpointError for an HTTP error status."""
        status = exc.status_code
        detail = f"HTTP {status}: {_error_message(exc)}"
        if status in (401, 403):
            raise EndpointError(f"the LLM endpoint rejected the API key ({detail}); set OPENAI_API_KEY or the "
                                "config api_key for this endpoint", where=self._public())
        if status == 404:
            raise EndpointError(f"model {self.config.model!r} or route not found ({detail}); check the model "
                                f"name (GET {self._public()}/models lists them) and that the base URL ends in /v1",
                                where=self._public())
        if status == 429:
            return _Retry("429", detail, _retry_after(exc))
        if status in RETRYABLE_STATUS:
            return _Retry(str(status), detail)
        return self._failed(detail, mode, status)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter, so parallel workers do not retry in lockstep."""
        return min(BACKOFF_CAP, self.config.backoff_base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    # -- structured-output negotiation -----------------------------------------------------------------
    def _settled_mode(self) -> str | None:
        return _ENDPOINT_MODES.get(self._endpoint)

    async def _mode_for(self, state: _LoopState, schema: dict | None) -> str:
        if schema is None:
            return ""
        if self.config.structured != "auto":
            return self.config.structured
        settled = self._settled_mode()
        if settled is not None:
            return settled
        if self._candidate is None:
            self._candidate = await self._guess_mode(state)
        return self._candidate

    async def _guess_mode(self, state: _LoopState) -> str:
        host = (urlparse(self._endpoint).hostname or "").lower()
        if host == "api.openai.com":
            return "openai"
        kind = await self._probe(state)
        if kind == "llamacpp":
            return "llamacpp"
        if kind == "json_schema":
            return "openai"
        return "llamacpp" if host in LOCAL_HOSTS else "openai"

    async def _probe(self, state: _LoopState) -> str | None:
        """Ask GET /models who serves it; any failure just means 'unknown'."""
        if self._endpoint in _ENDPOINT_KINDS:
            return _ENDPOINT_KINDS[self._endpoint]
        kind = None
        try:
            page = await state.client.with_options(timeout=min(5.0, self.config.timeout)).models.list()
            owners = {str(getattr(m, "owned_by", "") or "").lower() for m in page.data}
            if owners & LLAMACPP_OWNERS:
                kind = "llamacpp"
            elif owners & JSON_SCHEMA_OWNERS:
                kind = "json_schema"
        except Exception as exc:  # noqa: BLE001 - probing is best effort
            log.debug("GET %s/models failed: %s", self._public(), _one_line(exc))
        _ENDPOINT_KINDS[self._endpoint] = kind
        return kind

    def _fallback(self, exc: openai.APIStatusError, mode: str, schema: dict | None) -> str | None:
        """The next, simpler output form when the server rejected this one, or None to treat as an error."""
        if schema is None or self.config.structured != "auto" or mode not in FALLBACK_ORDER[:-1]:
            return None
        if self._settled_mode() is not None or exc.status_code not in FALLBACK_STATUS:
            return None
        text = (_error_message(exc) + " " + str(getattr(exc, "body", "") or "")).lower()
        if exc.status_code == 500 or any(word in text for word in FORMAT_WORDS):
            # A guessed llama.cpp form refused by a vLLM/SGLang server (400) moves on to json_schema, not plain.
            self._rejected.add(mode)
            return next(m for m in FALLBACK_ORDER if m not in self._rejected)
        return None

    def request_key(self, messages: list[dict], *, schema: dict | None = None, seed: int | None = None,
                    temperature: float | None = None, max_tokens: int | None = None) -> str:
        """The fingerprint of a request as `complete` would send it, without the endpoint: model, messages,
        sampling, seed, output format.

        Callers that keep their own record of answers (bench's answer journal) use it to tell whether a stored
        answer came from the very same request. It leaves the endpoint out on purpose: a journal is committed
        beside its predictions and read on other machines, where the same model is served at another address."""
        return self._cache_key(messages, self._params(temperature, max_tokens), seed, schema, endpoint=False)

    def cache_key(self, messages: list[dict], *, schema: dict | None = None, seed: int | None = None,
                  temperature: float | None = None, max_tokens: int | None = None) -> str:
        """The response cache's key: `request_key` plus the endpoint (see `endpoint_identity`), so answers a
        server gave under some model name are never replayed for another server using that name."""
        return self._cache_key(messages, self._params(temperature, max_tokens), seed, schema)

    def _params(self, temperature: float | None, max_tokens: int | None) -> dict:
        return {
            "temperature": self.config.temperature if temperature is None else temperature,
            "top_p": self.config.top_p,
            "max_tokens": self.config.max_tokens if max_tokens is None else max_tokens,
        }

    # -- caching ---------------------------------------------------------------------------------------
    def _cache_key(self, messages: list[dict], params: dict, seed: int | None, schema: dict | None,
                   endpoint: bool = True) -> str:
        # The configured mode (not the negotiated one) keeps keys stable across runs; the endpoint without
        # credentials (and without a loopback port) tells two servers serving the same model name apart.
        request = {
            **({"endpoint": endpoint_identity(self.config.base_url)} if endpoint else {}),
            "model": self.config.model,
            "messages": messages,
            "params": params,
            "seed": seed,
            "response_format": {"mode": self.config.structured, "schema": schema} if schema is not None else None,
        }
        return ResponseCache.key(request)

    def _store(self, key: str | None, response: LLMResponse) -> LLMResponse:
        """Cache a usable answer; one over the parser's size cap is not kept (it is rejected anyway, and a
        50 MB answer must not cost 50 MB of cache), so the request is simply asked again next time."""
        too_big = response.text is not None and len(response.text) > MAX_ANSWER_BYTES
        if key is not None and response.text is not None and self.cache is not None and not too_big:
            self.cache.put(key, {"text": response.text, "prompt_tokens": response.prompt_tokens,
                                 "completion_tokens": response.completion_tokens, "mode": response.mode})
        return response

    # -- event-loop plumbing ---------------------------------------------------------------------------
    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        for stale in [lp for lp in self._states if lp.is_closed()]:
            del self._states[stale]
        state = self._states.get(loop)
        if state is None:
            client = openai.AsyncOpenAI(base_url=self.config.base_url, api_key=self._api_key(),
                                        timeout=self.config.timeout, max_retries=0)
            state = _LoopState(client, asyncio.Semaphore(self.config.concurrency), asyncio.Lock())
            self._states[loop] = state
        return state

    def _api_key(self) -> str:
        if self.config.api_key is not None and self.config.api_key.get_secret_value():
            key = self.config.api_key.get_secret_value()
        else:
            key = os.environ.get("OPENAI_API_KEY") or LOCAL_API_KEY
        if key != LOCAL_API_KEY and len(key) >= 8:  # a 1-letter dummy key must not blank out every "x"
            register_secret(key)  # masked in every message we build from what the server says (see _one_line)
        return key

    def _close_loop_state(self, loop: asyncio.AbstractEventLoop):
        """The HTTP client opened on `loop` (the background loop), closed there; None when there is none."""
        state = self._states.pop(loop, None)
        return state.client.close() if state is not None else None


def same_model(asked: str, reported: str) -> bool:
    """Whether `reported` (what the server says it ran) names the model `asked` for: equal, a dated or
    quantised variant (`asked-…`, `asked:…`), or the same name with or without an org/path prefix."""
    a, r = asked.strip().lower(), reported.strip().lower()
    if a == r or r.startswith((a + "-", a + ":", a + "@")) or a.startswith((r + "-", r + ":")):
        return True
    base = lambda s: s.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".gguf")  # noqa: E731
    return base(a) == base(r) or base(r).startswith(base(a) + "-")


def endpoint_identity(base_url: str) -> str:
    """The endpoint as part of a cache key: no credentials, and a loopback host without its port, since an
    embedded server gets a new port on each start and its answers must still be found."""
    parts = urlparse(strip_credentials(base_url.rstrip("/")))
    host = (parts.hostname or "").lower()
    if host in LOCAL_HOSTS:
        return f"local{parts.path}"
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def _response_format(mode: str, schema: dict | None) -> dict | None:
    if schema is None or mode in ("", "plain"):
        return None
    if mode == "llamacpp":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": False}}


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds from Retry-After (seconds or HTTP date) or retry-after-ms, capped; None when absent."""
    headers = getattr(exc.response, "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return min(RETRY_AFTER_CAP, max(0.0, float(headers["retry-after-ms"]) / 1000))
    except ValueError:
        pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return min(RETRY_AFTER_CAP, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return min(RETRY_AFTER_CAP, max(0.0, when.timestamp() - time.time()))
    except (TypeError, ValueError):
        return None


def _error_message(exc: openai.APIStatusError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return _one_line(inner["message"])
        if isinstance(inner, str):
            return _one_line(inner)
        if body.get("detail"):
            return _one_line(body["detail"])
    return _one_line(getattr(exc, "message", "") or exc)


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None and exc.__cause__ is not exc:
        exc = exc.__cause__
    return exc


def _one_line(value: object, limit: int = 300) -> str:
    """One printable line, API keys masked. Every error, retry warning and failed-request reason passes here,
    and servers do echo credentials back (a misconfigured proxy's 401 body, a debug error page)."""
    text = mask_secrets(str(value))
    text = " ".join(text.split()) or type(value).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"

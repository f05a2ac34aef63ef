"""One place that turns CLI/API options into a ready LLM client: an OpenAI-compatible endpoint the user
named (`--base-url/--model`, or OPENAI_BASE_URL / OPENAI_MODEL), or the embedded local model started on
127.0.0.1 for the duration of the session and stopped on exit."""

from __future__ import annotations

import asyncio
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from platformdirs import user_cache_dir
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from medsynth.llm.cache import ResponseCache
from medsynth.llm.client import LLMClient, LLMConfig, LLMResponse, StructuredMode, endpoint_from_env
from medsynth.llm.pool import PROBE_TIMEOUT, EndpointPool, probe_endpoints, split_urls

if TYPE_CHECKING:
    from medsynth.llm.embedded import LocalServer


class EmbeddedClient(LLMClient):
    """The client of the embedded llama-server: lets the first request finish alone, then has the server share
    its prompt with the other slots (`LocalServer.share_prompt_cache`), so a run that starts N requests at once
    evaluates the task's long system prompt once instead of N times."""

    def __init__(self, config: LLMConfig, cache: ResponseCache | None, server: "LocalServer"):
        super().__init__(config, cache)
        self.server = server
        self.warm = threading.Event()  # set once the prompt is shared; cleared when the server restarts
        self._warm_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        if server.slots < 2:
            self.warm.set()  # nothing to share with

    async def complete(self, messages: list[dict], **kwargs) -> LLMResponse:
        if self.warm.is_set():
            return await super().complete(messages, **kwargs)
        lock = self._warm_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            if not self.warm.is_set():
                response = await super().complete(messages, **kwargs)
                if response.text is not None and not response.cached:  # it reached the server: slot 0 holds it
                    await asyncio.to_thread(self.server.share_prompt_cache)
                    self.warm.set()
                return response
        return await super().complete(messages, **kwargs)


@dataclass
class LLMSession:
    client: LLMClient | EndpointPool  # a pool presents the same interface (several --base-url)
    model_name: str
    restart: Callable[[], bool] | None  # restarts a dead embedded server; None for remote endpoints
    server: "LocalServer | None" = None  # the embedded server (engine, slots, URLs); None for remote endpoints

    def served_by(self) -> dict:
        """What answers this session's requests, for stats.json and the dataset card (no URLs: they may carry
        credentials): the embedded server's engine, slots, threads and context per slot, or how many remote
        endpoints; and the requests kept in flight in all."""
        in_flight = self.client.config.concurrency
        if self.server is not None:
            s = self.server
            return {"server": s.engine, "slots": s.slots, "threads": s.n_threads, "context": s.n_ctx,
                    "in_flight": in_flight}
        return {"server": "remote", "endpoints": len(split_urls(self.client.config.base_url)), "in_flight": in_flight}


def _remote_client(urls: list[str], model: str, common: dict, cache: ResponseCache | None,
                   allow_mixed_models: bool) -> LLMClient | EndpointPool:
    """One endpoint: a plain client, as always. Several: probed once (all down, or different models, is a
    one-line error), then pooled as one logical endpoint."""
    if len(urls) == 1:
        return LLMClient(LLMConfig(base_url=urls[0], model=model, **common), cache)
    key = common["api_key"].get_secret_value() if common.get("api_key") else None
    probes = probe_endpoints(urls, key, allow_mixed_models=allow_mixed_models,
                             timeout=min(PROBE_TIMEOUT, common["timeout"]))
    return EndpointPool([LLMConfig(base_url=url, model=model, **common) for url in urls], cache, probes)


def default_cache_path() -> Path:
    """Response cache shared by all runs (keyed by the full request), overridable with MEDSYNTH_CACHE_DIR."""
    root = Path(os.environ.get("MEDSYNTH_CACHE_DIR") or user_cache_dir("medsynth"))
    root.mkdir(parents=True, exist_ok=True)
    return root / "responses.sqlite"


def _client_default(name: str) -> object:
    """LLMConfig's default for `name`: the request defaults (max_tokens, timeout, ...) are set there once."""
    return LLMConfig.model_fields[name].default


class SessionConfig(BaseModel):
    """Which LLM a command talks to and how: an OpenAI-compatible endpoint (`base_url` + `model`, or
    OPENAI_BASE_URL / OPENAI_MODEL) or the embedded model `llm`, plus the request defaults. The CLI fills one
    from its options (and takes its option defaults from here); notebooks build one directly."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    llm: str = "qwen"  # embedded model: qwen, tiny or a .gguf path (unused with base_url)
    base_url: str | list[str] | None = None  # several: one pool (medsynth.llm.pool)
    model: str | None = None
    allow_mixed_models: bool = False  # a pool whose endpoints serve different models is refused otherwise
    concurrency: int | None = Field(None, ge=1)  # None: the embedded server's slot count, 1 for --base-url
    temperature: float = Field(_client_default("temperature"), ge=0.0, le=2.0)
    max_tokens: int = Field(_client_default("max_tokens"), ge=1)
    timeout: float = Field(_client_default("timeout"), gt=0.0)
    structured: StructuredMode = _client_default("structured")  # type: ignore[assignment]
    cache: bool | Path = True  # False: no response cache; a Path: that cache file
    threads: int | None = Field(None, ge=1)  # CPU threads for the embedded model (None: all cores)
    n_ctx: int = Field(4096, ge=256)
    max_restarts: int = Field(3, ge=0)
    server: str | None = None  # embedded engine: llama-server | llama-cpp-python | auto (None: $MEDSYNTH_SERVER)
    slots: int | None = Field(None, ge=1)  # parallel slots of the embedded llama-server (None: its default)
    progress: bool = True  # the one-time "assembling the model" bar (off with --no-progress)


@contextmanager
def llm_session(config: SessionConfig | None = None, *, log_dir: Path | None = None,
                **fields: object) -> Iterator[LLMSession]:
    """A ready client for `config` (keyword `fields` override or replace it: `llm_session(base_url=..., model=...)`),
    with the embedded server started for the session and stopped on exit; `log_dir` gets its log. `base_url` may
    name several endpoints (a list, or comma-separated as OPENAI_BASE_URL may be): they are served as one pool
    (medsynth.llm.pool), `concurrency` requests in flight on each. `concurrency` defaults to the embedded server's
    slot count (so every slot has a request to decode) and to 1 for a remote endpoint; `server` picks the embedded
    engine (llama-server | llama-cpp-python | auto; default $MEDSYNTH_SERVER, else auto), `slots` its parallel
    slots and `n_ctx` the context of each."""
    cfg = SessionConfig(**{**(config.model_dump() if config else {}), **fields})
    llm, threads, n_ctx, max_restarts, cache = cfg.llm, cfg.threads, cfg.n_ctx, cfg.max_restarts, cfg.cache
    base_url, model = endpoint_from_env(",".join(split_urls(cfg.base_url)) or None, cfg.model)
    concurrency, server, slots = cfg.concurrency, cfg.server, cfg.slots
    response_cache = None
    if cache:
        response_cache = ResponseCache(cache if isinstance(cache, Path) else default_cache_path())
    key = os.environ.get("OPENAI_API_KEY")
    common = dict(temperature=cfg.temperature, max_tokens=cfg.max_tokens, timeout=cfg.timeout,
                  structured=cfg.structured, api_key=SecretStr(key) if key else None)
    if base_url:
        if not model:
            from medsynth.errors import UsageError

            raise UsageError("--base-url needs --llm-model (or OPENAI_MODEL) naming the model to call")
        yield LLMSession(_remote_client(split_urls(base_url), model, {**common, "concurrency": concurrency or 1},
                                        response_cache, cfg.allow_mixed_models), model, None)
        return

    from medsynth.llm.embedded import LocalServer, resolve_model

    path, name = resolve_model(llm, progress=cfg.progress)
    log = (log_dir / "llm-server.log") if log_dir else None
    # llama.cpp defaults to half the cores for decoding; on a 2-core machine that halves tokens/s.
    server_proc = LocalServer(path, name, n_ctx=n_ctx, n_threads=threads or os.cpu_count() or 1,
                              log_path=log, engine=server, slots=slots)
    url = server_proc.start()
    config = LLMConfig(base_url=url, model=name, concurrency=concurrency or server_proc.slots, **common)
    client = EmbeddedClient(config, response_cache, server_proc)
    restarts = {"n": 0}

    def restart() -> bool:
        # Called after several requests in a row failed. A server that is still alive but failing (hung,
        # answering errors) is restarted too: returning True for it without a restart would let the build
        # loop retry it forever, since failed requests never count towards the request cap.
        if restarts["n"] >= max_restarts:
            return False
        restarts["n"] += 1
        new_url = server_proc.restart()
        if server_proc.slots > 1:
            client.warm.clear()  # a new process starts with empty caches: share the prompt again
        if new_url != client.config.base_url:  # the old port was taken meanwhile: follow the server
            client.rebase(new_url)
        return True

    try:
        yield LLMSession(client, name, restart, server_proc)
    finally:
        server_proc.stop()

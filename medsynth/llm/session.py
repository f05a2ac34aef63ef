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
from pydantic import SecretStr

from medsynth.llm.cache import ResponseCache
from medsynth.llm.client import LLMClient, LLMConfig, LLMResponse, endpoint_from_env

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
    client: LLMClient
    model_name: str
    restart: Callable[[], bool] | None  # restarts a dead embedded server; None for remote endpoints
    server: "LocalServer | None" = None  # the embedded server (engine, slots, URLs); None for remote endpoints


def default_cache_path() -> Path:
    """Response cache shared by all runs (keyed by the full request), overridable with MEDSYNTH_CACHE_DIR."""
    root = Path(os.environ.get("MEDSYNTH_CACHE_DIR") or user_cache_dir("medsynth"))
    root.mkdir(parents=True, exist_ok=True)
    return root / "responses.sqlite"


@contextmanager
def llm_session(*, llm: str = "qwen", base_url: str | None = None, model: str | None = None,
                concurrency: int | None = None, temperature: float = 0.8, max_tokens: int = 256, timeout: float = 180.0,
                cache: bool | Path = True, log_dir: Path | None = None, n_ctx: int = 4096,
                max_restarts: int = 3, structured: str = "auto",
                threads: int | None = None, server: str | None = None,
                slots: int | None = None) -> Iterator[LLMSession]:
    """`concurrency` defaults to the embedded server's slot count (so every slot has a request to decode) and
    to 1 for a remote endpoint. `server` picks the embedded engine (llama-server | llama-cpp-python | auto;
    default $MEDSYNTH_SERVER, else auto); `slots` its parallel slots and `n_ctx` the context of each."""
    base_url, model = endpoint_from_env(base_url, model)
    response_cache = None
    if cache:
        response_cache = ResponseCache(cache if isinstance(cache, Path) else default_cache_path())
    key = os.environ.get("OPENAI_API_KEY")
    common = dict(temperature=temperature, max_tokens=max_tokens, timeout=timeout, structured=structured,
                  api_key=SecretStr(key) if key else None)
    if base_url:
        if not model:
            from medsynth.errors import UsageError

            raise UsageError("--base-url needs --model (or OPENAI_MODEL) naming the model to call")
        config = LLMConfig(base_url=base_url, model=model, concurrency=concurrency or 1, **common)
        yield LLMSession(LLMClient(config, response_cache), model, None)
        return

    from medsynth.llm.embedded import LocalServer, resolve_model

    path, name = resolve_model(llm)
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

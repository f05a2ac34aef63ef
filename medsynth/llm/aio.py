"""Run a coroutine to completion from synchronous code, also inside Jupyter (whose event loop is already
running, so `asyncio.run` would refuse): there the coroutine runs on a fresh loop in a worker thread."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable, TypeVar

T = TypeVar("T")
log = logging.getLogger("medsynth.llm")


def run_sync(coro: Awaitable[T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="medsynth-loop") as pool:
        return pool.submit(asyncio.run, coro).result()


class BackgroundLoop:
    """A private event loop on a daemon thread, started on first use: how the LLM client and the endpoint pool
    serve blocking `complete_sync` calls from any thread, inside Jupyter too. `stop` runs an optional closing
    coroutine on the loop first (connections opened there must be closed there), then ends the thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def stop(self, closing: Callable[[asyncio.AbstractEventLoop], Awaitable[None] | None] | None = None) -> None:
        """Stop the loop (if one runs), after awaiting `closing(loop)` on it; closing is best effort."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or loop.is_closed():
            return
        coro = closing(loop) if closing is not None else None
        if coro is not None:
            try:
                asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=10)
            except Exception as exc:  # noqa: BLE001 - closing is best effort
                log.debug("closing connections on the %s loop failed: %s", self._name, exc)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        loop.close()

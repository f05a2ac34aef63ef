"""Run a coroutine to completion from synchronous code, also inside Jupyter (whose event loop is already
running, so `asyncio.run` would refuse): there the coroutine runs on a fresh loop in a worker thread."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, TypeVar

T = TypeVar("T")


def run_sync(coro: Awaitable[T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="medsynth-loop") as pool:
        return pool.submit(asyncio.run, coro).result()

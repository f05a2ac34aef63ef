"""The slot loop's restart rule: one outage, one restart, however many requests were in flight when it began."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import SimpleNamespace

from medsynth.generate.slots import Outcome, run_slots


@dataclass
class _Cfg:
    n: int = 6
    max_request_factor: float = 3.0
    max_endpoint_failures: int = 1
    progress: bool = False


class _Store:
    """The two questions the loop asks a RunStore, answered in memory (commit is passed in)."""

    path = "memory"

    def done_slots(self) -> set[int]:
        return set()

    def count_examples(self) -> int:
        return 0


def test_requests_in_flight_when_the_server_died_use_up_one_restart_not_four():
    """Four requests are in flight when the server dies; all four fail. Only the first failure may ask for a
    restart: the other three were sent before it, so the run needs one restart (max_restarts=1 in the CLI's
    fault tests) and must not stop for lack of a second."""
    restarts: list[int] = []
    alive = asyncio.Event()
    sent_before_restart: set[int] = set()

    async def run_slot(slot: int) -> Outcome:
        if not restarts:  # the server is down until the first restart
            sent_before_restart.add(slot)
            await asyncio.sleep(0.01 * slot)  # the in-flight requests fail one after another
            return Outcome(slot, "failed", error="connection")
        await alive.wait()
        return Outcome(slot, "kept")

    def restart() -> bool:
        restarts.append(1)
        alive.set()
        return len(restarts) <= 1

    client = SimpleNamespace(config=SimpleNamespace(concurrency=4), stats=SimpleNamespace(
        llm_calls=0, prompt_tokens=0, completion_tokens=0))
    kept: list[int] = []
    result = asyncio.run(run_slots(_Cfg(), client, _Store(), run_slot, desc="t", unit="ex", noun="examples",
                                   on_endpoint_failure=restart, commit=lambda out: kept.append(out.slot) or "kept"))
    assert len(sent_before_restart) == 4
    assert restarts == [1]
    assert sorted(kept) == list(range(6)) and result["stopped"] is None

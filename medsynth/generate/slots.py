"""The request-slot loop shared by `build ner|re` (medsynth.generate.build) and `build chat` (medsynth.chat.build).

Slots 0, 1, 2, … run, at most `client.config.concurrency` at once, until `n` outcomes are kept (or, with
`slot_limit`, until every slot below it is done). Slots already in the store are skipped; a failed slot is
retried later; a run of failed slots calls `on_endpoint_failure` (which may restart a dead local server) or
stops with EndpointError; every other outcome is committed to the RunStore at once, so a re-run resumes.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from tqdm import tqdm

from medsynth.errors import EndpointError
from medsynth.llm.client import LLMClient
from medsynth.data.store import RunStore
from medsynth.records import Example


class SlotConfig(Protocol):
    """The options of a build config that the loop reads (BuildConfig and ChatConfig both have them)."""

    n: int
    max_request_factor: float
    max_endpoint_failures: int
    progress: bool


@dataclass
class Outcome:
    """What one request slot came to; `error` says why a failed slot failed."""

    slot: int
    status: str  # kept | rejected | failed
    reason: str | None = None
    example: Example | None = None
    norm: str | None = None
    repairs: Counter = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


def request_cap(cfg: SlotConfig) -> int:
    """How many slots a build may use before it gives up on reaching n kept (each engine stops at the same one)."""
    return max(int(cfg.n * cfg.max_request_factor), cfg.n + 20)


def record(store: RunStore, out: Outcome) -> str:
    """Commit one slot's outcome to the store; returns the final status ('kept' or 'rejected')."""
    return store.record(out.slot, status=out.status, reason=out.reason, repairs=out.repairs,
                        prompt_tokens=out.prompt_tokens, completion_tokens=out.completion_tokens,
                        example=out.example, norm=out.norm)


async def run_slots(cfg: SlotConfig, client: LLMClient, store: RunStore, run_slot: Callable[[int], Awaitable[Outcome]],
                    *, desc: str, unit: str, noun: str, on_endpoint_failure: Callable[[], bool] | None = None,
                    slot_limit: int | None = None, commit: Callable[[Outcome], str] | None = None,
                    on_failed: Callable[[Outcome], Any] | None = None, t0: float | None = None) -> dict:
    """Run slots until `cfg.n` are kept; returns {"seconds", "endpoint_failures", "stopped"}.

    `slot_limit` (annotate mode): run each slot below it once, kept or not — no request cap, and the bar counts
    slots done. `commit(out)` stores a finished outcome and returns its final status (default: `record`);
    `on_failed(out)` sees each failed outcome before it is retried. `noun` names what is kept in the error.
    """
    t0 = time.monotonic() if t0 is None else t0
    commit = commit or (lambda out: record(store, out))
    done = store.done_slots()
    kept = store.count_examples()
    cap = request_cap(cfg)
    in_flight: dict[asyncio.Task, int] = {}
    # Restarts so far, and the restart count each request was sent under: requests already in flight when the
    # endpoint died fail together, and must not use up a second restart for the outage the first one fixed.
    restarts, sent_under = 0, {}
    next_slot, failures, consecutive, stop_reason = 0, Counter(), 0, None
    initial = min(kept, cfg.n) if slot_limit is None else sum(1 for s in done if s < slot_limit)
    bar = tqdm(total=slot_limit or cfg.n, initial=initial, desc=desc, unit=unit, disable=not cfg.progress,
               dynamic_ncols=True)
    try:
        while True:
            width = max(1, client.config.concurrency)
            # generation runs until n are kept; annotate mode until every slot below slot_limit is done
            while (slot_limit is not None or kept + len(in_flight) < cfg.n) and len(in_flight) < width:
                while next_slot in done or next_slot in in_flight.values():
                    next_slot += 1
                if slot_limit is not None and next_slot >= slot_limit:
                    break
                if slot_limit is None and len(done) + len(in_flight) >= cap:
                    stop_reason = stop_reason or "request_cap"
                    break
                task = asyncio.ensure_future(run_slot(next_slot))
                in_flight[task], sent_under[task] = next_slot, restarts
                next_slot += 1
            if not in_flight:
                break
            finished, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                slot, stale = in_flight.pop(task), sent_under.pop(task) < restarts
                out = task.result()
                if out.status == "failed":
                    if on_failed is not None:
                        on_failed(out)
                    failures[out.error or "?"] += 1
                    next_slot = min(next_slot, slot)  # retry this slot later (its finished calls are cached)
                    if stale:  # sent before the last restart: the outage it saw is already dealt with
                        continue
                    consecutive += 1
                    if consecutive >= cfg.max_endpoint_failures:
                        if not (on_endpoint_failure and on_endpoint_failure()):
                            raise EndpointError(f"{consecutive} requests in a row failed (last: {out.error}); "
                                                f"{kept} {noun} are kept in {store.path} — re-run to resume")
                        consecutive, restarts = 0, restarts + 1
                    continue
                consecutive = 0
                status = commit(out)
                done.add(slot)
                if status == "kept":
                    kept += 1
                    bar.update(1 if kept <= cfg.n and slot_limit is None else 0)
                if slot_limit is not None:
                    bar.update(1)  # annotate: progress is slots done, kept or not
                s = client.stats
                bar.set_postfix(req=len(done), rej=len(done) - kept, calls=s.llm_calls,
                                tok=s.prompt_tokens + s.completion_tokens, refresh=False)
    finally:
        for task in in_flight:
            task.cancel()
        bar.close()
    return {"seconds": round(time.monotonic() - t0, 2), "endpoint_failures": dict(failures),
            "stopped": stop_reason if kept < cfg.n else None}

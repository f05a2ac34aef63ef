"""An append-only record of LLM answers, kept beside the predictions they produced.

Why: a zero-shot run over a full test split takes hours on a CPU and spans sessions and machines. The response
cache lives in the user's cache folder and does not travel with the repository, so a run resumed on a fresh
checkout would pay for every answer again. This JSON Lines file is small, diffable and committed with the
predictions: each line holds the request fingerprint (`LLMClient.request_key`), the raw answer, its token
counts and the wall time it took, so a run resumes from it anywhere and its speed and cost stay recorded.

A line cut short by an interrupted write is dropped on load (the file is cut back to its last whole line);
any other damaged line is a one-line error naming FILE:LINE, so nothing already answered is silently lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from tqdm import tqdm

from medsynth.llm.aio import run_sync
from medsynth.errors import MedsynthError
from medsynth.data.jsonl import json_lines
from medsynth.llm.client import LLMClient

T = TypeVar("T")

KEYS = ("key", "answer")


class AnswerJournal:
    """Request fingerprint → recorded answer; every `add` is one flushed line."""

    def __init__(self, path: Path | str, fresh: bool = False):
        self.path = Path(path)
        self._rows: dict[str, dict] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh and self.path.exists():
            self.path.unlink()
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        whole = raw if raw.endswith(b"\n") or not raw else raw[: raw.rfind(b"\n") + 1]
        if len(whole) != len(raw):
            with open(self.path, "r+b") as fh:  # an interrupted append: keep every whole line, drop the stub
                fh.truncate(len(whole))
        for where, row in json_lines(self.path, "answer record", keys=KEYS):
            if not isinstance(row["key"], str):
                raise MedsynthError("an answer's key must be a string", where=where, value=row["key"])
            self._rows[row["key"]] = row

    def get(self, key: str) -> dict | None:
        return self._rows.get(key)

    def add(self, key: str, record: dict) -> None:
        row = {"key": key, **record}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._rows[key] = row

    def __len__(self) -> int:
        return len(self._rows)


class Answerer:
    """Answers a request from the journal when it holds the very same request, else asks the LLM and records it.

    Each answer is a dict: its `key`, `answer` (raw text or None), token counts, `seconds` and `cached` (a
    response-cache hit, which cost nothing), plus `from_journal` when it was read back. `seconds` is the time since
    the previous answer landed, so the intervals add up to the run's wall time whatever the concurrency. Identical
    requests in flight at once share one call (masked relation sentences repeat), so each is asked and recorded
    once."""

    def __init__(self, client: LLMClient, journal: AnswerJournal | None = None):
        self.client, self.journal = client, journal
        self._last = time.monotonic()
        self._asked: dict[str, asyncio.Task] = {}

    async def answer(self, messages: list[dict], *, schema: dict | None, **request) -> dict:
        key = self.client.request_key(messages, schema=schema, **request)
        kept = self.journal.get(key) if self.journal is not None else None
        if kept is not None:
            return {**kept, "from_journal": True}
        if key not in self._asked:
            self._asked[key] = asyncio.ensure_future(self._ask(key, messages, schema, request))
        return await self._asked[key]

    async def _ask(self, key: str, messages: list[dict], schema: dict | None, request: dict) -> dict:
        # The client bounds requests in flight (--concurrency); no second semaphore here.
        resp = await self.client.complete(messages, schema=schema, **request)
        now = time.monotonic()
        record = {"answer": resp.text, "prompt_tokens": resp.prompt_tokens,
                  "completion_tokens": resp.completion_tokens, "seconds": round(now - self._last, 3),
                  "cached": resp.cached}
        self._last = now
        if self.journal is not None and resp.text is not None:  # a failed request is asked again on resume
            self.journal.add(key, record)
        return {"key": key, **record}


def answer_all(client: LLMClient, journal: AnswerJournal | None, requests: Sequence[list[dict]], *,
               schema: dict | None, request: dict, decode: Callable[[int, dict], T], default: T, desc: str,
               unit: str, progress: bool = True) -> tuple[list[T], list[dict | None]]:
    """Answer every request (a message list each) concurrently through one `Answerer`, decoding each answer as it
    lands, with a progress bar. Returns the decoded results in request order (`default` for any left unanswered
    by an interrupt) and the answer records (`answer_totals` turns them into cost and speed).

    Zero-shot NER and RE baselines differ only in their messages and in how an answer becomes a result; the
    asking, recording, resuming and progress bar are the same, and live here once."""
    return run_sync(_answer_all(Answerer(client, journal), requests, schema, request, decode, default,
                                tqdm(total=len(requests), desc=desc, unit=unit, disable=not progress,
                                     dynamic_ncols=True)))


async def _answer_all(asker: Answerer, requests: Sequence[list[dict]], schema: dict | None, request: dict,
                      decode: Callable[[int, dict], T], default: T, bar: tqdm) -> tuple[list[T], list[dict | None]]:
    results: list[T] = [default] * len(requests)
    records: list[dict | None] = [None] * len(requests)

    async def one(i: int) -> None:
        records[i] = await asker.answer(requests[i], schema=schema, **request)
        results[i] = decode(i, records[i])
        bar.update(1)

    try:
        await asyncio.gather(*(one(i) for i in range(len(requests))))
    finally:
        bar.close()
    return results, records


def answer_totals(records: list[dict | None]) -> dict:
    """What the answers cost, over every item, whether answered now or in an earlier session.

    Each distinct request counts once (items that repeat a request share its answer). `llm_seconds` sums the
    recorded wall time of answers the LLM actually produced (cache hits excluded, as they cost nothing), so
    `timed_answers / llm_seconds` is the LLM's real rate however many sessions the run spanned."""
    done = [r for r in records if r is not None]
    distinct = list({r.get("key", id(r)): r for r in done}.values())
    timed = [r for r in distinct if not r.get("cached")]
    return {"from_journal": sum(1 for r in done if r.get("from_journal")),
            "timed_answers": len(timed),
            "llm_seconds": round(sum(float(r.get("seconds") or 0) for r in timed), 2),
            "prompt_tokens": sum(int(r.get("prompt_tokens") or 0) for r in distinct),
            "completion_tokens": sum(int(r.get("completion_tokens") or 0) for r in distinct)}


"""The build loop: plan → prompt → LLM → parse → align → filter → store, then export.

Request slots are numbered 0, 1, 2, … and each slot's plan (and LLM seed) is a pure function of the run seed,
so a re-run replays the same requests from the response cache. Slots run until `n` examples are kept; the
dataset is the first `n` kept examples in slot order. A finished slot is committed to the store at once, so an
interrupted run resumes where it stopped, and a larger `--n` only adds slots.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from medsynth import prompt as prompting
from medsynth.aio import run_sync
from medsynth.align import AlignConfig, align
from medsynth.errors import EndpointError, MedsynthError
from medsynth.export import export_all
from medsynth.filter import check_example, normalize_text
from medsynth.llm.client import LLMClient
from medsynth.parse import parse_answer
from medsynth.plan import Plan, PlanStats, make_plan
from medsynth.spec import TaskSpec
from medsynth.store import RunStore
from medsynth.types import Example


class BuildConfig(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    task: TaskSpec
    n: int = Field(gt=0)
    out: Path
    seed: int = 13
    format: prompting.OutputFormat = "json"
    temperature: float = 0.8
    max_tokens: int = 256
    fuzzy_threshold: float = 0.85
    max_request_factor: float = Field(default=4.0, gt=1, description="give up after n * factor requests")
    max_endpoint_failures: int = Field(default=8, description="consecutive failed requests before stopping")
    plan_stats: PlanStats | None = None
    progress: bool = True


@dataclass
class Outcome:
    slot: int
    status: str  # kept | rejected | failed
    reason: str | None = None
    example: Example | None = None
    norm: str | None = None
    repairs: Counter = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


def annotate_answer(raw: str | None, task: TaskSpec, plan: Plan, fmt: str, fuzzy: float
                    ) -> tuple[str | None, list, Counter, str | None]:
    """parse → align → filter for one answer: (text, entities, repairs, rejection reason or None)."""
    parsed = parse_answer(raw, fmt)
    repairs: Counter = Counter(parsed.repairs)
    if parsed.error:
        return None, [], repairs, f"parse:{parsed.error}"
    aligned = align(parsed.text, parsed.mentions, AlignConfig(labels=task.label_names, fuzzy_threshold=fuzzy),
                    targets=plan.targets)
    repairs.update(aligned.repairs)
    repairs.update({f"dropped:{k}": v for k, v in aligned.rejections.items()})
    checked = check_example(parsed.text, aligned.entities, task, plan)
    repairs.update(checked.repairs)
    return parsed.text, checked.entities, repairs, (None if checked.kept else checked.reason)


class Builder:
    """Runs one build against an LLM client; `on_endpoint_failure` may restart a dead local server."""

    def __init__(self, cfg: BuildConfig, client: LLMClient, model_name: str,
                 on_endpoint_failure: Callable[[], bool] | None = None):
        self.cfg = cfg
        self.client = client
        self.model_name = model_name
        self.on_endpoint_failure = on_endpoint_failure
        self.prompt_hash = prompting.prompt_hash(cfg.task, cfg.format)
        self.params = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens, "format": cfg.format}

    def identity(self) -> dict:
        return {"task": self.cfg.task.registry_name, "format": self.cfg.format, "seed": self.cfg.seed,
                "model": self.model_name, "prompt_hash": self.prompt_hash, "params": self.params}

    async def run_slot(self, slot: int) -> Outcome:
        cfg = self.cfg
        plan = make_plan(cfg.task, slot, cfg.seed, cfg.plan_stats)
        resp = await self.client.complete(
            prompting.messages(cfg.task, plan, cfg.format), schema=prompting.schema(cfg.task, plan, cfg.format),
            seed=plan.seed, temperature=cfg.temperature, max_tokens=cfg.max_tokens,
        )
        if resp.text is None:
            return Outcome(slot, "failed", error=resp.error or "no response")
        text, entities, repairs, reason = annotate_answer(resp.text, cfg.task, plan, cfg.format, cfg.fuzzy_threshold)
        out = Outcome(slot, "rejected" if reason else "kept", reason, repairs=repairs,
                      prompt_tokens=resp.prompt_tokens, completion_tokens=resp.completion_tokens)
        if reason is None:
            out.example = Example(
                id=f"{cfg.task.name}-{slot:06d}", text=text, entities=entities,
                meta={"task": cfg.task.registry_name, "model": self.model_name, "prompt_hash": self.prompt_hash,
                      "params": self.params, "seed": plan.seed,
                      "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "plan": {"slot": slot, "style": plan.style,
                               "targets": [t.model_dump(include={"text", "label"}) for t in plan.targets]}},
            )
            problems = out.example.check_spans()
            if problems:  # cannot happen after align; refuse rather than store a broken span
                out.status, out.reason, out.example = "rejected", "span_invariant", None
            else:
                out.norm = normalize_text(text)
        return out

    async def run(self, store: RunStore) -> dict:
        cfg = self.cfg
        t0 = time.monotonic()
        done = store.done_slots()
        kept = store.count_examples()
        cap = max(int(cfg.n * cfg.max_request_factor), cfg.n + 20)
        in_flight: dict[asyncio.Task, int] = {}
        next_slot, failures, consecutive = 0, Counter(), 0
        bar = tqdm(total=cfg.n, initial=min(kept, cfg.n), desc=f"build {cfg.task.name}", unit="ex",
                   disable=not cfg.progress, dynamic_ncols=True)
        stop_reason = None
        try:
            while True:
                while kept + len(in_flight) < cfg.n and len(in_flight) < max(1, self.client.config.concurrency):
                    while next_slot in done:
                        next_slot += 1
                    if len(done) + len(in_flight) >= cap:
                        stop_reason = stop_reason or "request_cap"
                        break
                    in_flight[asyncio.ensure_future(self.run_slot(next_slot))] = next_slot
                    next_slot += 1
                if not in_flight:
                    break
                finished, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    slot = in_flight.pop(task)
                    out = task.result()
                    if out.status == "failed":
                        failures[out.error or "?"] += 1
                        consecutive += 1
                        next_slot = min(next_slot, slot)  # retry this slot later
                        if consecutive >= cfg.max_endpoint_failures:
                            if not (self.on_endpoint_failure and self.on_endpoint_failure()):
                                raise EndpointError(f"{consecutive} requests in a row failed (last: {out.error}); "
                                                    f"{kept} examples are kept in {store.path} — re-run to resume")
                            consecutive = 0
                        continue
                    consecutive = 0
                    status = store.record(slot, status=out.status, reason=out.reason, repairs=out.repairs,
                                          prompt_tokens=out.prompt_tokens, completion_tokens=out.completion_tokens,
                                          example=out.example, norm=out.norm)
                    done.add(slot)
                    if status == "kept":
                        kept += 1
                        bar.update(1 if kept <= cfg.n else 0)
                    s = self.client.stats
                    bar.set_postfix(req=len(done), rej=len(done) - kept, calls=s.llm_calls,
                                    tok=s.prompt_tokens + s.completion_tokens, refresh=False)
        finally:
            for task in in_flight:
                task.cancel()
            bar.close()
        return {"seconds": round(time.monotonic() - t0, 2), "endpoint_failures": dict(failures),
                "stopped": stop_reason if kept < cfg.n else None}


def finish(store: RunStore, cfg: BuildConfig, identity: dict, run_info: dict, llm_stats: dict) -> dict:
    """Export the first n kept examples and write stats.json; returns the stats."""
    examples = store.examples(limit=cfg.n)
    last_slot = int(examples[-1].meta["plan"]["slot"]) if len(examples) == cfg.n else None
    totals = store.totals(up_to_slot=last_slot)
    stats = {
        "task": cfg.task.registry_name, "model": identity["model"], "requested": cfg.n, "kept": len(examples),
        "rejected": totals["rejected"], "requests": totals["requests"],
        "llm_calls": llm_stats.get("llm_calls", 0), "cache_hits": llm_stats.get("cache_hits", 0),
        "retries": llm_stats.get("retries", 0), "prompt_tokens": totals["prompt_tokens"],
        "completion_tokens": totals["completion_tokens"],
        "completion_tokens_per_kept": round(totals["completion_tokens"] / max(len(examples), 1), 1),
        "seconds": run_info.get("seconds", 0.0), "repairs": totals["repairs"], "rejections": totals["rejections"],
        "this_run": {**llm_stats, **run_info},
        "notes": "llm_calls, cache_hits, retries, seconds and this_run describe this invocation; the other "
                 "counters cover every request that produced this dataset (cumulative over resumes).",
    }
    export_all(cfg.out, examples, cfg.task, identity, totals, stats)
    return stats


def already_built(cfg: BuildConfig) -> bool:
    """True when `cfg.out` already holds at least n kept examples of this task, format and seed, so the
    exports can be rewritten without starting or calling any LLM."""
    if not (cfg.out / "store.sqlite").exists():
        return False
    with RunStore(cfg.out) as store:
        ident = store.identity()
        same = (ident.get("task"), ident.get("format"), ident.get("seed")) == (
            cfg.task.registry_name, cfg.format, cfg.seed)
        return same and store.count_examples() >= cfg.n


def export_existing(cfg: BuildConfig, source: Path | None = None) -> dict:
    """Export the first n kept examples of an existing run (0 LLM calls) into `cfg.out`.

    With `source`, the run is read from another directory without taking its lock (SQLite WAL lets a reader
    see a consistent snapshot while a build is still writing): this is how learning-curve subsets (the first
    250, 500, … examples) are cut from one long run.
    """
    with RunStore(source or cfg.out, lock=source is None) as store:
        if store.count_examples() < cfg.n:
            raise MedsynthError(f"the run holds {store.count_examples()} kept examples, fewer than --n {cfg.n}",
                                where=str(store.path))
        return finish(store, cfg, store.identity(), {"seconds": 0.0}, {"llm_calls": 0, "cache_hits": 0})


def run_build(cfg: BuildConfig, client: LLMClient, model_name: str,
              on_endpoint_failure: Callable[[], bool] | None = None) -> dict:
    """Build (or resume) `cfg.out` and export it. Exports are written even when the run stops early."""
    builder = Builder(cfg, client, model_name, on_endpoint_failure)
    identity = builder.identity()
    with RunStore(cfg.out) as store:
        store.bind(identity)
        run_info: dict = {}
        try:
            run_info = run_sync(builder.run(store))
        finally:
            stats = finish(store, cfg, identity, run_info, client.stats.as_dict())
    if stats["kept"] < cfg.n:
        raise MedsynthError(
            f"kept {stats['kept']} of {cfg.n} after {stats['requests']} requests (stopped: "
            f"{run_info.get('stopped')}); see {cfg.out / 'stats.json'} for rejection reasons", where=str(cfg.out))
    return stats

"""`build … --engine ray`: the slots of a build as a Ray Data pipeline, for a Ray cluster.

Rows are slots. A row map makes each slot's plan and prompt (`Builder.first_ask` / `Builder.request`), an
actor stage sends the request to the LLM, a row map parses, aligns and filters the answer (`Builder.settle`),
and a second LLM stage and row map serve the one re-ask a slot may need. The driver reads the finished rows as
they arrive and commits each slot to the `RunStore` at once, so resume, `--n`, ids, the response cache and the
exports are those of the local engine (medsynth.generate.slots): it runs the same code on the same slots.

Which slots: like the local loop, which starts a slot only while kept + in flight < n, each wave asks for as
many of the lowest slots not yet done as examples are missing; a rejected or failed slot makes the next wave
ask again. So a run ends with the same slots done, the same kept examples and the same counters as a local
run, whatever arrives first, and `data.jsonl` is byte-identical (given the same `created` time, see
`build.created_stamp`). A slot that failed, runs of failed slots and the request cap are handled as there.

Why the LLM stage calls medsynth's `LLMClient` and not `ray.data.llm`'s HTTP processor
(`HttpRequestProcessorConfig` + `build_processor`, Ray 2.60): that processor posts a payload to one URL and
raises for a row whose retries ran out, which stops the whole dataset. A build needs what `LLMClient` and
`EndpointPool` do per request: the response cache keyed by the request (replay and resume at no LLM cost),
the structured-output form negotiated per server (llama.cpp's json_object+schema vs json_schema) with its
fallbacks, a failed request counted and its slot retried later, a refused model name, and several
`--base-url` servers as one pool. The stage sends exactly the request the local engine sends, so both hit the
same cache entries. A vLLM engine inside the cluster is served the same way: start vLLM's OpenAI-compatible
server on the GPU nodes and pass their URLs as `--base-url`.

Ray is imported here only, and this module only when `--engine ray` is used: `import medsynth` stays light.
The cache file is the driver's `MEDSYNTH_CACHE_DIR` path: on one machine every worker shares it; on a cluster
each node keeps its own file at that path unless it is shared storage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from tqdm import tqdm

from medsynth.errors import EndpointError, MedsynthError, UsageError
from medsynth.generate.slots import Outcome, record, request_cap
from medsynth.llm.cache import ResponseCache
from medsynth.llm.client import LLMClient, LLMConfig, LLMStats
from medsynth.llm.pool import EndpointPool, Probe

if TYPE_CHECKING:
    from medsynth.data.store import RunStore
    from medsynth.generate.build import Builder, BuildConfig

RAY_EXTRA = "medsynth[ray]"
ASKS_PER_SLOT = 2  # a slot asks once, or twice when a mention-free plan was answered with a mention
LLM_STAGE_CPUS = 0.25  # the LLM stage waits on the network: it must not hold a core the row maps could use
FORWARDED_ENV = ("SOURCE_DATE_EPOCH",)  # what the workers of a Ray instance started here inherit
USAGE_KEYS = ("llm_calls", "cache_hits", "errors", "prompt_tokens", "completion_tokens")


def import_ray() -> Any:
    """Ray, or a one-line error naming the extra that installs it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the pipeline API; a bare `ray` install lacks its dependencies)
    except ImportError as exc:
        raise UsageError(f"--engine ray needs Ray: pip install '{RAY_EXTRA}' ({exc})") from None
    return ray


def check_supported(cfg: "BuildConfig") -> None:
    """Refuse, in one line, what the Ray engine does not run: annotate mode (a slot there is k votes on a given
    text, asked by the annotator itself)."""
    if cfg.annotate is not None:
        raise UsageError("--engine ray generates; --annotate runs on the local engine (leave --engine at local)")


# -- what travels to the workers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ClientRecipe:
    """How a worker makes the driver's LLM client: the endpoint configs (API key included: the workers send
    the requests), the response cache's path and, for a pool, what the probe said about each endpoint. A client
    itself holds event loops, threads and SQLite connections, which do not travel."""

    configs: tuple[LLMConfig, ...]
    cache_path: Path | None
    pooled: bool
    probes: tuple[Probe, ...] = ()

    @classmethod
    def of(cls, client: LLMClient | EndpointPool) -> "ClientRecipe":
        cache = client.cache.path if client.cache is not None else None
        if isinstance(client, EndpointPool):
            return cls(tuple(m.config for m in client.members), cache, True, tuple(client.probes))
        return cls((client.config.model_copy(),), cache, False)

    def make(self) -> LLMClient | EndpointPool:
        cache = ResponseCache(self.cache_path) if self.cache_path is not None else None
        if self.pooled:
            return EndpointPool(list(self.configs), cache, list(self.probes))
        return LLMClient(self.configs[0], cache)

    @property
    def concurrency(self) -> int:
        return sum(c.concurrency for c in self.configs)


@dataclass(frozen=True)
class BuildRecipe:
    """How a worker makes the build's `Builder` (its config and the model name; no client)."""

    cfg: "BuildConfig"
    model_name: str

    def make(self) -> "Builder":
        from medsynth.generate.build import Builder

        return Builder(self.cfg, None, self.model_name)


@dataclass(frozen=True)
class _Box:
    """A row value that is a Python object (an Ask, an Outcome, an LLMResponse, an error, or None). Ray Data keeps
    any non-Arrow object in an object column and moves it with its own serializer; boxing every value, None
    included, keeps each column one type (a bare None beside objects becomes a float NaN in a block)."""

    value: Any = None


# -- the stages ---------------------------------------------------------------------------------------------
class _Prompt:
    """Row map: slot → its plan and prompt (the first Ask)."""

    def __init__(self, recipe: BuildRecipe):
        self.recipe = recipe

    def __call__(self, row: dict) -> dict:
        builder = self.recipe.make()
        return {"slot": row["slot"], "step": _Box(builder.first_ask(int(row["slot"]))),
                "answer": _Box(), "usage": json.dumps(dict.fromkeys(USAGE_KEYS, 0)), "fatal": _Box()}


class _Settle:
    """Row map: an answer → parse → align → filter → the slot's Outcome (or its re-ask)."""

    def __init__(self, recipe: BuildRecipe):
        self.recipe = recipe

    def __call__(self, row: dict) -> dict:
        if row["answer"].value is None:  # settled earlier, or the LLM stage stopped on an endpoint error
            return row
        step = self.recipe.make().settle(row["step"].value, row["answer"].value)
        return {**row, "step": _Box(step), "answer": _Box()}


class _AskLLM:
    """Actor stage: sends each row's pending request through medsynth's own client (see the module doc). One
    client per actor, so `--concurrency` bounds the requests in flight as in the local engine."""

    def __init__(self, builder: BuildRecipe, client: ClientRecipe):
        self.builder = builder.make()
        self.client = client.make()

    async def __call__(self, batch: dict) -> dict:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        done = await asyncio.gather(*(self._ask(row) for row in rows))
        return {key: [row[key] for row in done] for key in batch}

    async def _ask(self, row: dict) -> dict:
        from medsynth.generate.build import Ask

        step = row["step"].value
        if row["fatal"].value is not None or not isinstance(step, Ask):
            return row
        try:
            resp = await self.client.complete(**self.builder.request(step))
        except MedsynthError as exc:  # the endpoint cannot work at all: the driver stops with this line
            return {**row, "fatal": _Box(exc)}
        usage = json.loads(row["usage"])
        usage["cache_hits" if resp.cached else "llm_calls"] += 1
        usage["errors"] += resp.text is None
        if not resp.cached:
            usage["prompt_tokens"] += resp.prompt_tokens
            usage["completion_tokens"] += resp.completion_tokens
        return {**row, "answer": _Box(resp), "usage": json.dumps(usage)}


def _pipeline(ray: Any, slots: list[int], builder: BuildRecipe, client: ClientRecipe) -> Any:
    """The dataset of one wave: slots → prompt → (LLM → settle) × ASKS_PER_SLOT, one row per slot."""
    ds = ray.data.from_items([{"slot": s} for s in slots], override_num_blocks=len(slots))
    ds = ds.map(_Prompt(builder))
    width = max(1, client.concurrency)  # one actor, `--concurrency` requests in flight (summed over a pool)
    for _ in range(ASKS_PER_SLOT):
        ds = ds.map_batches(_AskLLM, fn_constructor_args=(builder, client), batch_size=1, num_cpus=LLM_STAGE_CPUS,
                            compute=ray.data.ActorPoolStrategy(size=1, max_tasks_in_flight_per_actor=width,
                                                               max_concurrent_calls_per_actor=width))
        ds = ds.map(_Settle(builder))
    return ds


def _outcomes(ray: Any, slots: list[int], builder: BuildRecipe, client: ClientRecipe
              ) -> Iterator[tuple[Outcome, dict]]:
    """Each slot's Outcome and LLM usage, in the order they finish."""
    for row in _pipeline(ray, slots, builder, client).iter_rows():
        if row["fatal"].value is not None:
            raise row["fatal"].value
        yield row["step"].value, json.loads(row["usage"])


# -- the driver ---------------------------------------------------------------------------------------------
def _connect(ray: Any) -> bool:
    """Join the Ray instance already started in this process, else `RAY_ADDRESS`'s cluster, else start a local
    one; True when this call started or joined it (and so shuts it down at the end)."""
    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    ray.init(address=os.environ.get("RAY_ADDRESS") or None, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env} if env else None)
    return True


def _next_wave(done: set[int], missing: int, cap: int) -> list[int]:
    """The lowest `missing` slots not done yet, within the request cap."""
    room = min(missing, cap - len(done))
    wave: list[int] = []
    slot = 0
    while len(wave) < room:
        if slot not in done:
            wave.append(slot)
        slot += 1
    return wave


@dataclass
class _Failures:
    """Failed slots by error, and the run of failures in a row that stops (or restarts) the endpoint."""

    cfg: "BuildConfig"
    on_endpoint_failure: Callable[[], bool] | None
    by_error: Counter
    in_a_row: int = 0

    def failed(self, out: Outcome, kept: int, store: "RunStore") -> bool:
        """Count a failed slot; True when the endpoint was restarted (the next wave uses its new address)."""
        self.by_error[out.error or "?"] += 1
        self.in_a_row += 1
        if self.in_a_row < self.cfg.max_endpoint_failures:
            return False
        if not (self.on_endpoint_failure and self.on_endpoint_failure()):
            raise EndpointError(f"{self.in_a_row} requests in a row failed (last: {out.error}); {kept} examples "
                                f"are kept in {store.path} — re-run to resume")
        self.in_a_row = 0
        return True


def run_on_ray(builder: "Builder", store: "RunStore", *,
               commit: Callable[["RunStore", Outcome], str] | None = None) -> tuple[dict, dict]:
    """Run the build's slots on Ray until n are kept; returns (run info, LLM stats) for stats.json.
    `commit(store, out)` stores a finished slot and returns its final status (default: `slots.record`)."""
    cfg = builder.cfg
    commit = commit or record
    check_supported(cfg)
    ray = import_ray()
    assert builder.client is not None
    recipe, client = BuildRecipe(cfg, builder.model_name), ClientRecipe.of(builder.client)
    t0 = time.monotonic()
    done, kept, cap = store.done_slots(), store.count_examples(), request_cap(cfg)
    failures = _Failures(cfg, builder.endpoint_failed, Counter())  # the local engine's restart rule
    usage: Counter = Counter()
    stop_reason = None
    owned = _connect(ray)
    _quiet(ray, cfg.progress)
    bar = tqdm(total=cfg.n, initial=min(kept, cfg.n), desc=f"build {cfg.task.name} (ray)", unit="ex",
               disable=not cfg.progress, dynamic_ncols=True)
    try:
        while kept < cfg.n:
            wave = _next_wave(done, cfg.n - kept, cap)
            if not wave:
                stop_reason = "request_cap"
                break
            for out, used in _outcomes(ray, wave, recipe, client):
                usage.update(used)
                if out.status == "failed":
                    if failures.failed(out, kept, store):
                        client = ClientRecipe.of(builder.client)
                    continue
                failures.in_a_row = 0
                done.add(out.slot)
                kept += commit(store, out) == "kept"
                bar.set_postfix(req=len(done), rej=len(done) - kept, refresh=False)
                bar.update(min(kept, cfg.n) - bar.n)
    finally:
        bar.close()
        if owned:
            ray.shutdown()
    info = {"seconds": round(time.monotonic() - t0, 2), "endpoint_failures": dict(failures.by_error),
            "stopped": stop_reason if kept < cfg.n else None}
    stats = LLMStats(**{k: usage[k] for k in USAGE_KEYS}).as_dict()
    return info, stats


def _quiet(ray: Any, progress: bool) -> None:
    """Ray Data's own progress bars only when the build shows one, and its per-wave execution plans (INFO) in
    Ray's log files rather than on stderr, where the build's own bar and one-line errors are."""
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    ray.data.DataContext.get_current().enable_progress_bars = progress

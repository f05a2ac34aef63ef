"""The build loop: plan → prompt → LLM → parse → align → filter → store, then export.

Request slots are numbered 0, 1, 2, … and each slot's plan (and LLM seed) is a pure function of the run seed,
so a re-run replays the same requests from the response cache. Slots run until `n` examples are kept; the
dataset is the first `n` kept examples in slot order. A finished slot is committed to the store at once, so an
interrupted run resumes where it stopped, and a larger `--n` only adds slots.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field

from medsynth.hashing import DEFAULT_SEED
from medsynth.generate import annotate as annotating
from medsynth.generate import prompt as prompting
from medsynth.llm.aio import run_sync
from medsynth.generate.align import AlignConfig, align
from medsynth.errors import MedsynthError
from medsynth.data.export import export_all
from medsynth.generate.filter import NEGATIVE_NOT_EMPTY, check_example, normalize_text
from medsynth.llm.client import LLMClient, LLMResponse
from medsynth.generate.parse import parse_answer
from medsynth.generate.plan import Plan, PlanStats, make_plan
from medsynth.quality.curate import CurateConfig, curate
from medsynth.generate.relate import relate
from medsynth.generate.slots import Outcome, run_slots
from medsynth.spec import TaskSpec
from medsynth.data.store import DirLock, RunStore
from medsynth.records import Example


class BuildConfig(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    task: TaskSpec
    n: int = Field(gt=0)
    out: Path
    seed: int = DEFAULT_SEED
    format: prompting.OutputFormat = "json"
    temperature: float = 0.8
    max_tokens: int = 256
    fuzzy_threshold: float = 0.85
    max_request_factor: float = Field(default=4.0, gt=1, description="give up after n * factor requests")
    max_endpoint_failures: int = Field(default=8, description="consecutive failed requests before stopping")
    plan_stats: PlanStats | None = None
    reference_card: dict | None = Field(default=None, description="what the card says about --reference "
                                        "(name, size, the stats used); not part of the run identity")
    span_conventions: dict | None = Field(default=None, description="span conventions derived from a labelled "
                                          "--reference (label -> conventions); already merged into `task`")
    annotate: Path | None = Field(default=None, description="label the texts of this file instead of "
                                  "generating (annotate mode, see annotate.py); n caps how many")
    votes: int = Field(default=1, ge=1, le=15, description="annotate mode: label each text this many times (one "
                       "greedy, the rest sampled) and keep the spans a majority returns (self-consistency)")
    curate: CurateConfig = Field(default_factory=CurateConfig)
    served_by: dict | None = Field(default=None, description="the server, slots and requests in flight that "
                                   "answer (LLMSession.served_by); for stats.json and the card, not the identity")
    engine: Literal["local", "ray"] = Field(default="local", description="what runs the slots: this process's "
                                            "async loop, or a Ray Data pipeline (medsynth.generate.ray_engine)")
    progress: bool = True


@dataclass
class Annotation:
    """One answer after parse → align → filter (→ relate, for re tasks)."""

    text: str | None
    entities: list
    relations: list
    repairs: Counter
    reason: str | None  # rejection reason, None when kept
    leaked: list[str] = field(default_factory=list)  # negative_not_empty: the task mentions a negative named


@dataclass
class Ask:
    """One LLM request of a generation slot and what its answer is for. A slot asks once, or twice when a
    mention-free plan was answered with a mention: the re-ask carries the first answer's repairs and tokens."""

    slot: int
    plan: Plan
    seed: int  # the LLM seed of this request (the plan's, or the re-ask's)
    leaked: list[str] | None = None  # the re-ask: the negatives the first answer labelled
    first_repairs: Counter | None = None  # the re-ask: what the first answer's annotation repaired
    tokens: tuple[int, int] = (0, 0)  # (prompt, completion) tokens spent by the slot's earlier requests


def created_stamp() -> str:
    """An example's `created` time: now (UTC, seconds), or SOURCE_DATE_EPOCH when set (the reproducible-builds
    convention), so two runs of one command, on one engine or another, can be compared byte for byte."""
    fixed = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    when = datetime.fromtimestamp(int(fixed), timezone.utc) if fixed.isdigit() else datetime.now(timezone.utc)
    return when.isoformat(timespec="seconds")


def annotate(raw: str | None, task: TaskSpec, plan: Plan, fmt: str, fuzzy: float) -> Annotation:
    """parse → align → filter, then (re tasks) map relations onto the final entities and apply the plan.
    Relations come last because the filter may still add or drop entities, which moves indices."""
    parsed = parse_answer(raw, fmt)
    repairs: Counter = Counter(parsed.repairs)
    if parsed.error:
        return Annotation(None, [], [], repairs, f"parse:{parsed.error}")
    aligned = align(parsed.text, parsed.mentions, AlignConfig(labels=task.label_names, fuzzy_threshold=fuzzy),
                    targets=plan.targets)
    repairs.update(aligned.repairs)
    repairs.update({f"dropped:{k}": v for k, v in aligned.rejections.items()})
    checked = check_example(parsed.text, aligned.entities, task, plan)
    repairs.update(checked.repairs)
    if not checked.kept or task.kind != "re":
        return Annotation(parsed.text, checked.entities, [], repairs, None if checked.kept else checked.reason,
                          checked.leaked)
    related = relate(parsed.text, checked.entities, parsed.relations, task, plan, fuzzy)
    repairs.update(related.repairs)
    return Annotation(parsed.text, checked.entities, related.relations, repairs, related.rejection)


def annotate_answer(raw: str | None, task: TaskSpec, plan: Plan, fmt: str, fuzzy: float
                    ) -> tuple[str | None, list, Counter, str | None]:
    """parse → align → filter for one answer: (text, entities, repairs, rejection reason or None)."""
    ann = annotate(raw, task, plan, fmt, fuzzy)
    return ann.text, ann.entities, ann.repairs, ann.reason


def reask_seed(seed: int) -> int:
    """The LLM seed of a re-ask, derived from the plan's: deterministic, so a re-run replays it from the cache."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"reask|{seed}".encode()).digest()[:4], "big") % (2**31 - 1)


OPTION_KEYS = ("source", "annotate_sha256", "plan_stats")  # identity keys present only when their option is


def option_identity(cfg: BuildConfig, corpus: annotating.Corpus | None = None) -> dict:
    """Identity keys of the optional sources of a build: the annotate input (by content) and the reference
    statistics. Empty for a plain build, so the identity of existing runs is unchanged."""
    extra: dict = {}
    if cfg.annotate is not None:
        corpus = corpus or annotating.read_corpus(cfg.annotate)
        extra.update({"source": annotating.SOURCE, "annotate_sha256": corpus.sha256})
    if cfg.plan_stats is not None:
        extra["plan_stats"] = cfg.plan_stats.model_dump(mode="json", exclude_none=True)
    if cfg.span_conventions:
        extra["span_conventions"] = cfg.span_conventions
    return extra


def negatives_identity(task: TaskSpec) -> dict:
    """What the card says about real negatives (vocabulary groups drawn, re-asks); {} for a task that uses
    neither, so the identity (and card) of runs from such tasks is unchanged."""
    from medsynth.generate.plan import vocabulary_groups

    out: dict = {}
    if task.vocabulary_distractors and task.kind in ("ner", "re"):
        out.update({"vocabulary_groups": sorted(vocabulary_groups(task)),
                    "excluded_groups": task.excluded_distractor_groups(), "rate": task.vocabulary_rate})
    if task.recheck_empty and task.kind == "ner":
        out["recheck_empty"] = True
    return {"negatives": out} if out else {}


def _plan_meta(plan: Plan) -> dict:
    """The plan as stored in each example's meta; the planned relation only for re tasks, so NER meta
    (and everything derived from it) stays as it was."""
    meta = {"slot": plan.slot, "style": plan.style,
            "targets": [t.model_dump(include={"text", "label"}) for t in plan.targets]}
    if plan.distractors or plan.negatives:  # absent without them, so older meta stays as it was
        meta["distractors"] = [d.model_dump(include={"text", "label"}) for d in plan.distractors + plan.negatives]
    if plan.relation is not None:
        rel = plan.relation
        meta["relation"] = {"relation": rel.relation, "label": rel.label, "head_first": rel.head_first,
                            "head": rel.head.model_dump(include={"text", "label"}),
                            "tail": rel.tail.model_dump(include={"text", "label"})}
    return meta


def _refused(slot: int, resp) -> Outcome:
    """Annotate mode: the server refused this text's request itself (HTTP 4xx, e.g. context exceeded). Asking
    again or restarting the server gives the same answer, so it is a counted rejection and the run goes on."""
    return Outcome(slot, "rejected", f"request_refused:{resp.status}")


class Builder:
    """Runs one build against an LLM client; `on_endpoint_failure` may restart a dead local server. The slot's
    steps are methods of their own (`first_ask`, `request`, `settle`) so that the Ray engine runs the same code
    as stages of a pipeline; there `client` is None (the pipeline's LLM stage sends the requests)."""

    def __init__(self, cfg: BuildConfig, client: LLMClient | None, model_name: str,
                 on_endpoint_failure: Callable[[], bool] | None = None):
        self.cfg = cfg
        self.client = client
        self.model_name = model_name
        self.on_endpoint_failure = on_endpoint_failure
        self._last_refused = False  # the latest failed request was refused by the server (HTTP 4xx)
        if cfg.task.kind == "re" and cfg.format != "json":
            raise MedsynthError("relation tasks need the json output format (inline markup has no relations)",
                                field="format", value=cfg.format)
        self.prompt_hash = prompting.prompt_hash(cfg.task, cfg.format)
        self.params = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens, "format": cfg.format}
        self.annotator: annotating.Annotator | None = None
        self.slot_limit: int | None = None  # annotate: one slot per input text, no more
        if cfg.annotate is not None:
            self.annotator = annotating.Annotator(cfg.task, annotating.read_corpus(cfg.annotate), cfg.n,
                                                  cfg.max_tokens, cfg.fuzzy_threshold, cfg.votes)
            self.prompt_hash, self.params = self.annotator.prompt_hash, self.annotator.params
            self.slot_limit = self.annotator.slots

    def identity(self) -> dict:
        corpus = self.annotator.corpus if self.annotator else None
        negatives = negatives_identity(self.cfg.task) if self.annotator is None else {}
        return {"task": self.cfg.task.registry_name, "format": self.cfg.format, "seed": self.cfg.seed,
                "model": self.model_name, "prompt_hash": self.prompt_hash, "params": self.params,
                **option_identity(self.cfg, corpus), **negatives}

    async def _annotate_slot(self, slot: int) -> Outcome:
        """Annotate mode: the slot's text comes from the input file, only the labels from the LLM."""
        assert self.annotator is not None
        resp, src, labelled = await self.annotator.label(self.client, slot)
        if labelled is None:
            return _refused(slot, resp) if resp.refused else self._failed(slot, resp)
        out = Outcome(slot, "rejected" if labelled.reason else "kept", labelled.reason, repairs=labelled.repairs,
                      prompt_tokens=resp.prompt_tokens, completion_tokens=resp.completion_tokens)
        if labelled.reason is None:
            out.example = Example(
                id=f"{self.cfg.task.name}-{slot:06d}", text=src.text, entities=labelled.entities,
                meta={"task": self.cfg.task.registry_name, "model": self.model_name,
                      "prompt_hash": self.prompt_hash, "params": self.params, "seed": 0,
                      "created": created_stamp(), **self.annotator.meta(slot, src),
                      **({"weight": labelled.weight} if labelled.weight is not None else {})})
            if out.example.check_spans():  # cannot happen after align; refuse rather than store a broken span
                out.status, out.reason, out.example = "rejected", "span_invariant", None
            else:
                out.norm = normalize_text(src.text)
        return out

    def first_ask(self, slot: int) -> Ask:
        """The first request of a generation slot: its plan (a pure function of the run seed and the slot)."""
        plan = make_plan(self.cfg.task, slot, self.cfg.seed, self.cfg.plan_stats)
        return Ask(slot, plan, plan.seed)

    def request(self, ask: Ask) -> dict:
        """The keyword arguments of `LLMClient.complete` for `ask`: the prompt, the output schema, seed and
        sampling. Kept apart from the sending so another engine (medsynth.generate.ray_engine) sends the very
        same request, and so hits the same cache entries."""
        cfg = self.cfg
        return {"messages": prompting.messages(cfg.task, ask.plan, cfg.format, ask.leaked),
                "schema": prompting.schema(cfg.task, ask.plan, cfg.format), "seed": ask.seed,
                "temperature": cfg.temperature, "max_tokens": cfg.max_tokens}

    def settle(self, ask: Ask, resp: LLMResponse) -> Ask | Outcome:
        """What an answer makes of its slot: parse → align → filter into an Outcome, or, when a mention-free plan
        was answered with a mention, the one re-ask (an Ask); a failed request is a failed Outcome."""
        cfg = self.cfg
        if resp.text is None:
            return self._failed(ask.slot, resp)
        ann = annotate(resp.text, cfg.task, ask.plan, cfg.format, cfg.fuzzy_threshold)
        tokens = (ask.tokens[0] + resp.prompt_tokens, ask.tokens[1] + resp.completion_tokens)
        if ask.first_repairs is None and ann.reason == NEGATIVE_NOT_EMPTY:  # ask once more, then reject it
            return Ask(ask.slot, ask.plan, reask_seed(ask.plan.seed), ann.leaked, ann.repairs, tokens)
        if ask.first_repairs is not None:
            ann.repairs.update(ask.first_repairs + Counter({"negative_reasked": 1}))
        return self._outcome(ask, ann, tokens)

    def _outcome(self, ask: Ask, ann: Annotation, tokens: tuple[int, int]) -> Outcome:
        """The slot's Outcome from its final annotation: a kept example (with its plan in meta) or a rejection."""
        cfg, reason = self.cfg, ann.reason
        out = Outcome(ask.slot, "rejected" if reason else "kept", reason, repairs=ann.repairs,
                      prompt_tokens=tokens[0], completion_tokens=tokens[1])
        if reason is None:
            reasked = ask.first_repairs is not None
            plan_meta = {**_plan_meta(ask.plan), **({"reasked": True} if reasked else {})}
            out.example = Example(
                id=f"{cfg.task.name}-{ask.slot:06d}", text=ann.text, entities=ann.entities, relations=ann.relations,
                meta={"task": cfg.task.registry_name, "model": self.model_name, "prompt_hash": self.prompt_hash,
                      "params": self.params, "seed": ask.seed, "created": created_stamp(), "plan": plan_meta},
            )
            problems = out.example.check_spans()
            if problems:  # cannot happen after align; refuse rather than store a broken span
                out.status, out.reason, out.example = "rejected", "span_invariant", None
            else:
                out.norm = normalize_text(ann.text)
        return out

    async def run_slot(self, slot: int) -> Outcome:
        """One slot: plan → prompt → LLM → parse → align → filter (→ the one re-ask) → its Outcome."""
        if self.annotator is not None:
            return await self._annotate_slot(slot)
        step: Ask | Outcome = self.first_ask(slot)
        while isinstance(step, Ask):
            step = self.settle(step, await self.client.complete(**self.request(step)))
        return step

    def _failed(self, slot: int, resp) -> Outcome:
        self._last_refused = resp.refused
        return Outcome(slot, "failed", error=resp.error or "no response")

    def endpoint_failed(self) -> bool:
        """After a run of failed requests: restart a dead local server, unless the server refused the requests
        itself (HTTP 4xx: a restart cannot fix the request; the run stops with the server's message)."""
        if self._last_refused or self.on_endpoint_failure is None:
            return False
        return self.on_endpoint_failure()

    async def run(self, store: RunStore) -> dict:
        """Run slots until n examples are kept; annotate mode until every text slot is done (a rejected text
        does not make another text appear), which `slot_limit` bounds."""
        return await run_slots(self.cfg, self.client, store, self.run_slot, desc=f"build {self.cfg.task.name}",
                               unit="ex", noun="examples", on_endpoint_failure=self.endpoint_failed,
                               slot_limit=self.slot_limit)


def finish(store: RunStore, cfg: BuildConfig, identity: dict, run_info: dict, llm_stats: dict) -> dict:
    """Export the first n kept examples and write stats.json; returns the stats."""
    examples = store.examples(limit=cfg.n)
    last_slot = int(examples[-1].meta["plan"]["slot"]) if len(examples) == cfg.n else None
    if cfg.annotate is not None:  # annotate: the kept examples among the first n texts
        examples = [ex for ex in store.examples() if int(ex.meta["plan"]["slot"]) < cfg.n]
        last_slot = cfg.n - 1
    totals = store.totals(up_to_slot=last_slot)
    stats = {
        "task": cfg.task.registry_name, "model": identity["model"], "requested": cfg.n, "kept": len(examples),
        "rejected": totals["rejected"], "requests": totals["requests"],
        "llm_calls": llm_stats.get("llm_calls", 0), "cache_hits": llm_stats.get("cache_hits", 0),
        "retries": llm_stats.get("retries", 0), "prompt_tokens": totals["prompt_tokens"],
        "completion_tokens": totals["completion_tokens"],
        "completion_tokens_per_kept": round(totals["completion_tokens"] / max(len(examples), 1), 1),
        "seconds": run_info.get("seconds", 0.0), "repairs": totals["repairs"], "rejections": totals["rejections"],
        "this_run": {**llm_stats, **run_info, **({"served_by": cfg.served_by} if cfg.served_by else {})},
        "notes": "llm_calls, cache_hits, retries, seconds and this_run describe this invocation; the other "
                 "counters cover every request that produced this dataset (cumulative over resumes).",
    }
    examples, curated = curate(examples, store.out_dir, cfg.curate, cfg.task)
    stats["kept"], stats["curation"] = len(examples), curated
    if cfg.reference_card is not None:
        stats["reference"] = cfg.reference_card
    card_identity = {**identity, **({"reference": cfg.reference_card} if cfg.reference_card else {}),
                     **({"annotate_input": cfg.annotate.name} if cfg.annotate is not None else {})}
    export_all(cfg.out, examples, cfg.task, card_identity, totals, stats, quality_dir=store.out_dir)
    return stats


def _option_mismatch(stored: dict, options: dict) -> str | None:
    """Which optional source differs between a stored run and this build, in words (None when none does).
    JSON round-trip because the store keeps identity values as JSON. Needed besides `RunStore.bind`, which
    only compares keys the new identity has: a plain build must not resume an annotate or reference run."""
    wanted = json.loads(json.dumps(options, sort_keys=True))
    for key in OPTION_KEYS:
        if stored.get(key) != wanted.get(key):
            if key == "plan_stats":
                return "different --reference statistics (another reference, or none)"
            sha = stored.get("annotate_sha256")
            return (f"the --annotate input with sha256 {str(sha)[:12]}…" if sha else "generated text, not --annotate")
    return None


def _same_options(stored: dict, cfg: BuildConfig) -> bool:
    """Whether a stored run was made with this build's optional sources (annotate input, reference stats)."""
    return _option_mismatch(stored, option_identity(cfg)) is None


def _check_options(store: RunStore, identity: dict) -> None:
    """Refuse, in one line, to mix a run with examples made from another annotate input or reference."""
    if not store.count_examples():
        return
    why = _option_mismatch(store.identity(), {k: identity[k] for k in OPTION_KEYS if k in identity})
    if why:
        raise MedsynthError(f"this output directory holds a run made with {why}; use the same options to resume, "
                            "or another --out", where=str(store.out_dir))


def already_built(cfg: BuildConfig) -> bool:
    """True when `cfg.out` already holds at least n kept examples of this task, format and seed, so the
    exports can be rewritten without starting or calling any LLM."""
    if not (cfg.out / "store.sqlite").exists():
        return False
    with RunStore(cfg.out) as store:
        ident = store.identity()
        same = (ident.get("task"), ident.get("format"), ident.get("seed")) == (
            cfg.task.registry_name, cfg.format, cfg.seed) and _same_options(ident, cfg)
        if same and cfg.annotate is not None:
            slots = min(cfg.n, len(annotating.read_corpus(cfg.annotate).texts))
            return annotating.done(store.done_slots(), slots)
        return same and store.count_examples() >= cfg.n


def export_existing(cfg: BuildConfig, source: Path | None = None) -> dict:
    """Export the first n kept examples of an existing run (0 LLM calls) into `cfg.out`.

    With `source`, the run is read from another directory without taking its lock (SQLite WAL lets a reader
    see a consistent snapshot while a build is still writing): this is how learning-curve subsets (the first
    250, 500, … examples) are cut from one long run.
    """
    same = source is None or Path(source).resolve() == Path(cfg.out).resolve()
    with RunStore(source or cfg.out, lock=same) as store, _out_lock(cfg.out, held=same):
        if "task" not in store.identity():
            raise MedsynthError("the run store holds no run (empty, or not made by `medsynth build`)",
                                where=str(store.path))
        if cfg.annotate is None and store.count_examples() < cfg.n:
            raise MedsynthError(f"the run holds {store.count_examples()} kept examples, fewer than --n {cfg.n}",
                                where=str(store.path))
        return finish(store, cfg, store.identity(), {"seconds": 0.0}, {"llm_calls": 0, "cache_hits": 0})


@contextmanager
def _out_lock(out: Path, held: bool) -> Iterator[None]:
    """The output folder's lock for an export into another folder than the run's (`export --run R --out U`):
    the same lock a build takes, so two writers never mix their sets in U."""
    if held:
        yield
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    with DirLock(Path(out)):
        yield


def run_build(cfg: BuildConfig, client: LLMClient, model_name: str,
              on_endpoint_failure: Callable[[], bool] | None = None) -> dict:
    """Build (or resume) `cfg.out` and export it. Exports are written even when the run stops early."""
    builder = Builder(cfg, client, model_name, on_endpoint_failure)
    identity = builder.identity()
    with RunStore(cfg.out) as store:
        _check_options(store, identity)
        store.bind(identity)
        # An interrupted run returns no run_info; its wall time is still this invocation's cost in stats.json.
        run_info: dict = {}
        t0 = time.monotonic()
        llm_stats: dict | None = None
        try:
            if cfg.engine == "ray":
                from medsynth.generate.ray_engine import run_on_ray  # Ray is imported only when asked for

                run_info, llm_stats = run_on_ray(builder, store)
            else:
                run_info = run_sync(builder.run(store))
        finally:
            run_info.setdefault("seconds", round(time.monotonic() - t0, 2))
            run_info["engine"] = cfg.engine  # stats.json's this_run says what ran the slots
            stats = finish(store, cfg, identity, run_info, llm_stats or client.stats.as_dict())
    if cfg.annotate is not None:  # every text has an outcome; rejected texts are counted, not retried
        return stats
    if stats["curation"]["input"] < cfg.n:  # curation may drop some afterwards; generation itself finished
        raise MedsynthError(
            f"kept {stats['kept']} of {cfg.n} after {stats['requests']} requests (stopped: "
            f"{run_info.get('stopped')}); see {cfg.out / 'stats.json'} for rejection reasons", where=str(cfg.out))
    return stats

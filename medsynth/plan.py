"""Label-first planning (Cao's label module): decide y before asking the LLM for x.

Each request slot gets a plan — which target mentions (with labels) the sentence must contain, how many, and
which style constraint (note type / section, length) — before any prompt is written. Plans are a pure function
of (task, run seed, slot), so re-running a build replays the same requests (and hits the response cache), and
growing `--n` only appends slots. Lexicon terms are drawn from a seeded permutation per label, walked in
order, so coverage stays balanced: every term is used once before any is used twice.
"""

from __future__ import annotations

import hashlib
import random
from functools import lru_cache

from pydantic import BaseModel, Field

from medsynth.spec import StyleSpec, TaskSpec
from medsynth.types import Mention


class Plan(BaseModel):
    slot: int
    seed: int = Field(description="per-request LLM seed, derived from the run seed and the slot")
    style: str
    style_description: str
    min_words: int
    max_words: int
    targets: list[Mention] = Field(default_factory=list)


class PlanStats(BaseModel):
    """Targets the planner may steer towards a reference corpus (issue: reference matching)."""

    mentions_weights: dict[int, float] | None = None
    label_weights: dict[str, float] | None = None


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@lru_cache(maxsize=64)
def _permutation(task_key: str, label: str, terms: tuple[str, ...], run_seed: int) -> tuple[str, ...]:
    order = list(dict.fromkeys(t.strip() for t in terms if t.strip()))
    _rng(task_key, label, run_seed).shuffle(order)
    return tuple(order)


def _pick_style(styles: list[StyleSpec], rng: random.Random) -> StyleSpec:
    return rng.choices(styles, weights=[s.weight for s in styles], k=1)[0]


def _mention_count(task: TaskSpec, rng: random.Random, stats: PlanStats | None) -> int:
    if rng.random() < task.empty_fraction:
        return 0
    lo, hi = task.mentions_per_sentence
    lo = max(lo, 1)
    if stats and stats.mentions_weights:
        options = [k for k in stats.mentions_weights if lo <= k <= hi] or list(range(lo, hi + 1))
        return rng.choices(options, weights=[stats.mentions_weights.get(k, 0.0) or 1e-6 for k in options], k=1)[0]
    return rng.randint(lo, hi)


def _labels_for(task: TaskSpec, k: int, slot: int, rng: random.Random, stats: PlanStats | None) -> list[str]:
    names = task.label_names
    if stats and stats.label_weights:
        weights = [stats.label_weights.get(n, 0.0) or 1e-6 for n in names]
        return rng.choices(names, weights=weights, k=k)
    # Round-robin from a slot-dependent offset keeps the label mix even across the run.
    offset = rng.randrange(len(names))
    return [names[(offset + j) % len(names)] for j in range(k)]


class Planner:
    """Plans slots in order. Each slot's style, mention count and labels depend on that slot alone; the
    lexicon term for the r-th use of a label is term r of the label's seeded permutation, so terms are used
    round-robin and every term appears once before any appears twice."""

    def __init__(self, task: TaskSpec, run_seed: int = 13, stats: PlanStats | None = None):
        self.task, self.run_seed, self.stats = task, run_seed, stats
        self._labels: list[list[str]] = []  # labels chosen for each slot planned so far
        self._uses: list[dict[str, int]] = []  # per-label uses before each slot
        self._running: dict[str, int] = {name: 0 for name in task.label_names}

    def _extend_to(self, slot: int) -> None:
        while len(self._labels) <= slot:
            s = len(self._labels)
            rng = _rng(self.task.registry_name, self.run_seed, s, "labels")
            k = _mention_count(self.task, rng, self.stats)
            labels = _labels_for(self.task, k, s, rng, self.stats)
            self._uses.append(dict(self._running))
            self._labels.append(labels)
            for lab in labels:
                self._running[lab] += 1

    def plan(self, slot: int) -> Plan:
        self._extend_to(slot)
        task = self.task
        rng = _rng(task.registry_name, self.run_seed, slot, "style")
        style = _pick_style(task.styles, rng)
        uses = dict(self._uses[slot])
        targets: list[Mention] = []
        seen: set[str] = set()
        for label in self._labels[slot]:
            perm = _permutation(task.registry_name, label, tuple(task.lexicon[label]), self.run_seed)
            term = perm[uses[label] % len(perm)]
            uses[label] += 1
            if term.lower() in seen:  # only when a lexicon is shorter than one sentence's mentions
                continue
            seen.add(term.lower())
            targets.append(Mention(text=term, label=label))
        seed = int.from_bytes(hashlib.sha256(f"{self.run_seed}|{slot}".encode()).digest()[:4], "big") % (2**31 - 1)
        return Plan(slot=slot, seed=seed, style=style.name, style_description=style.description,
                    min_words=style.min_words, max_words=style.max_words, targets=targets)


_PLANNERS: dict[tuple, Planner] = {}


def make_plan(task: TaskSpec, slot: int, run_seed: int = 13, stats: PlanStats | None = None) -> Plan:
    """The plan for one request slot; deterministic in (task, slot, run_seed, stats)."""
    key = (id(task), task.registry_name, run_seed, None if stats is None else stats.model_dump_json())
    if key not in _PLANNERS:
        _PLANNERS[key] = Planner(task, run_seed, stats)
    return _PLANNERS[key].plan(slot)

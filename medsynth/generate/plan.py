"""Label-first planning (Cao's label module): decide y before asking the LLM for x.

Each request slot gets a plan — which target mentions (with labels) the sentence must contain, how many, and
which style constraint (note type / section, length) — before any prompt is written. Plans are a pure function
of (task, run seed, slot), so re-running a build replays the same requests (and hits the response cache), and
growing `--n` only appends slots. Lexicon terms are drawn from a seeded permutation per label, walked in
order, so coverage stays balanced: every term is used once before any is used twice.

For `kind: re` tasks a plan also fixes a relation (`PlannedRelation`): a head and a tail mention whose labels fit
one of the task's relations, which of them comes first, and the label the sentence must express — a relation
name (cycling evenly) or "none" for `negative_fraction` of the plans. NER plans are untouched by this.
"""

from __future__ import annotations

import random
from functools import lru_cache

from pydantic import BaseModel, Field

from medsynth.hashing import DEFAULT_SEED, seeded_rng, stable_seed
from medsynth.errors import MedsynthError
from medsynth.spec import StyleSpec, TaskSpec
from medsynth.records import NO_RELATION, Mention


class PlannedRelation(BaseModel):
    """The relation a `kind: re` sentence must (or, for label "none", must not) express between two planned
    mentions — fixed before the LLM writes anything, so the label does not depend on what the LLM says."""

    relation: str = Field(description="the task relation whose signature (head/tail labels) the pair has")
    label: str = Field(description="the relation name, or 'none': both mentioned, no relation stated")
    head: Mention
    tail: Mention
    head_first: bool = Field(description="whether the head argument comes first in the sentence")

    @property
    def negative(self) -> bool:
        return self.label == NO_RELATION


class Plan(BaseModel):
    slot: int
    seed: int = Field(description="per-request LLM seed, derived from the run seed and the slot")
    style: str
    style_description: str
    min_words: int
    max_words: int
    targets: list[Mention] = Field(default_factory=list)
    distractors: list[Mention] = Field(default_factory=list, description="terms to write in but NOT label "
                                       "(label = the distractor group's name)")
    negatives: list[Mention] = Field(default_factory=list, description="terms from medsynth's shipped "
                                     "distractor vocabulary to write in but NOT label (label = the group's name)")
    relation: PlannedRelation | None = Field(default=None, description="re tasks only; None for ner")


class PlanStats(BaseModel):
    """Distributions the planner steers towards (reference matching, `build --reference`): statistics of a
    real corpus, never its text. Each field is optional; an absent one leaves that choice as the task plans it.

    - `mentions_weights`: share of sentences with k task mentions (k = 0 replaces the task's empty_fraction;
      counts outside the task's mentions_per_sentence range fold onto its nearest end);
    - `label_weights`: share of mentions per task label;
    - `length_weights`: share of sentences with k words; each slot draws a length and asks for a window
      around it instead of the style's min/max words (styles still choose the wording).
    """

    mentions_weights: dict[int, float] | None = None
    label_weights: dict[str, float] | None = None
    length_weights: dict[int, float] | None = None


def _rng(*parts: object) -> random.Random:
    return seeded_rng(*parts)


@lru_cache(maxsize=64)
def _permutation(task_key: str, label: str, terms: tuple[str, ...], run_seed: int) -> tuple[str, ...]:
    order = list(dict.fromkeys(t.strip() for t in terms if t.strip()))
    _rng(task_key, label, run_seed).shuffle(order)
    return tuple(order)


def _pick_style(styles: list[StyleSpec], rng: random.Random) -> StyleSpec:
    return rng.choices(styles, weights=[s.weight for s in styles], k=1)[0]


def _empty_share(task: TaskSpec, stats: PlanStats | None) -> float:
    """The reference's share of mention-less sentences when it has one, else the task's empty_fraction."""
    weights = stats.mentions_weights if stats else None
    if weights and 0 in weights:
        return weights[0] / (sum(weights.values()) or 1.0)
    return task.empty_fraction


def _folded_weights(weights: dict[int, float], lo: int, hi: int) -> dict[int, float]:
    """Reference counts outside [lo, hi] fold onto the nearest end, so a reference with 7-mention sentences
    still pulls the mean up instead of being ignored."""
    folded = {k: 0.0 for k in range(lo, hi + 1)}
    for k, w in weights.items():
        if k > 0:
            folded[min(max(k, lo), hi)] += w
    return folded


def _mention_count(task: TaskSpec, rng: random.Random, stats: PlanStats | None) -> int:
    if rng.random() < _empty_share(task, stats):
        return 0
    lo, hi = task.mentions_per_sentence
    lo = max(lo, 1)
    if stats and stats.mentions_weights:
        folded = _folded_weights(stats.mentions_weights, lo, hi)
        options = list(folded)
        return rng.choices(options, weights=[folded[k] or 1e-6 for k in options], k=1)[0]
    return rng.randint(lo, hi)


def word_window(length: int) -> tuple[int, int]:
    """min/max words asked for around a drawn reference length: ±20 % (at least ±2), never under 3 words."""
    spread = max(2, round(0.2 * length))
    return max(3, length - spread), max(5, length + spread)


def _words_for(style: StyleSpec, stats: PlanStats | None, rng: random.Random) -> tuple[int, int]:
    """The slot's word range: the style's, or a window around a length drawn from the reference. The draw has
    its own random stream (and happens only with length_weights), so plans without it are unchanged."""
    if not (stats and stats.length_weights):
        return style.min_words, style.max_words
    options = sorted(stats.length_weights)
    length = rng.choices(options, weights=[stats.length_weights[k] or 1e-6 for k in options], k=1)[0]
    return word_window(length)


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

    def __init__(self, task: TaskSpec, run_seed: int = DEFAULT_SEED, stats: PlanStats | None = None):
        self.task, self.run_seed, self.stats = task, run_seed, stats
        self._labels: list[list[str]] = []  # labels chosen for each slot planned so far
        self._uses: list[dict[str, int]] = []  # per-label uses before each slot
        self._running: dict[str, int] = {name: 0 for name in task.label_names}
        self._relations: list[tuple[str, str, bool]] = []  # re: (relation, label or "none", head_first) per slot
        self._relation_uses = {"positive": 0, "negative": 0}

    def _extend_to(self, slot: int) -> None:
        while len(self._labels) <= slot:
            s = len(self._labels)
            rng = _rng(self.task.registry_name, self.run_seed, s, "labels")
            if self.task.kind == "re":
                labels = self._relation_labels(s, rng)
            else:
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
        if task.kind == "re":
            return self._relation_plan(slot, style, uses)
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
        seed = _llm_seed(self.run_seed, slot)
        min_words, max_words = self._words(slot, style)
        return Plan(slot=slot, seed=seed, style=style.name, style_description=style.description,
                    min_words=min_words, max_words=max_words, targets=targets,
                    distractors=self._distractors(slot, seen), negatives=self._negatives(slot, seen, not targets))

    def _words(self, slot: int, style: StyleSpec) -> tuple[int, int]:
        return _words_for(style, self.stats, _rng(self.task.registry_name, self.run_seed, slot, "length"))

    def _distractors(self, slot: int, taken: set[str]) -> list[Mention]:
        """At most one hard negative per sentence, from its own RNG stream so that tasks without distractors
        plan exactly as before. Groups alternate by slot; terms follow the group's seeded permutation."""
        task = self.task
        if not task.distractors or not task.distractor_rate:
            return []
        rng = _rng(task.registry_name, self.run_seed, slot, "distractors")
        if rng.random() >= task.distractor_rate:
            return []
        group = task.distractors[rng.randrange(len(task.distractors))]
        perm = _permutation(task.registry_name, "distractor:" + group.name, tuple(group.terms), self.run_seed)
        term = perm[rng.randrange(len(perm))]
        return [] if term.lower() in taken else [Mention(text=term, label=group.name)]

    def _negatives(self, slot: int, taken: set[str], empty: bool) -> list[Mention]:
        """One or two vocabulary distractors from different groups, on their own RNG stream (so targets and
        task distractors plan exactly as without them). A mention-free sentence always gets them: it needs a
        topic, and one that is not a task entity makes it a real negative."""
        task = self.task
        groups = vocabulary_groups(task)
        if not task.vocabulary_distractors or not groups:
            return []
        rng = _rng(task.registry_name, self.run_seed, slot, "vocabulary")
        if not empty and rng.random() >= task.vocabulary_rate:
            return []
        picked: list[Mention] = []
        for key in rng.sample(sorted(groups), k=min(len(groups), rng.randint(1, 2))):
            name, terms = groups[key]
            term = terms[rng.randrange(len(terms))]
            if term.lower() not in taken:
                taken.add(term.lower())
                picked.append(Mention(text=term, label=name))
        return picked

    # -- relation extraction (kind: re) -------------------------------------------------------------------
    def _relation_labels(self, slot: int, rng: random.Random) -> list[str]:
        """Decide slot's relation (positive labels cycle evenly, negatives take the planned share exactly)
        and return its mention labels: head label, tail label, then any extra mentions' labels."""
        task = self.task
        negative = _is_negative(slot, task.negative_fraction, _rng(task.registry_name, self.run_seed,
                                                                       "negatives").random())
        key = "negative" if negative else "positive"
        rel = task.relations[self._relation_uses[key] % len(task.relations)]
        self._relation_uses[key] += 1
        head_first = rng.random() < 0.5
        lo, hi = task.mentions_per_sentence
        k = rng.randint(max(lo, 2), max(hi, 2))
        extras = _labels_for(task, k - 2, slot, rng, self.stats)
        self._relations.append((rel.name, NO_RELATION if negative else rel.name, head_first))
        return [rel.head, rel.tail, *extras]

    def _relation_plan(self, slot: int, style: StyleSpec, uses: dict[str, int]) -> Plan:
        """Targets for an re slot: the planned pair in the planned order, then the extra mentions. A term
        already taken in this sentence is replaced by the next one of its permutation (a symmetric
        Gene-Gene pair must not plan one gene twice), without disturbing the round-robin accounting."""
        task = self.task
        seen: set[str] = set()
        picked: list[Mention | None] = []
        for label in self._labels[slot]:
            perm = _permutation(task.registry_name, label, tuple(task.lexicon[label]), self.run_seed)
            free = [perm[(uses[label] + j) % len(perm)] for j in range(len(perm))]
            uses[label] += 1
            term = next((t for t in free if t.lower() not in seen), None)
            if term is not None:
                seen.add(term.lower())
            picked.append(None if term is None else Mention(text=term, label=label))
        head, tail, *extras = picked
        name, label, head_first = self._relations[slot]
        if head is None or tail is None:
            raise MedsynthError("needs at least two distinct lexicon terms to plan a pair", where=task.name,
                                field=f"lexicon.{self._labels[slot][1]}")
        first, second = (head, tail) if head_first else (tail, head)
        min_words, max_words = self._words(slot, style)
        return Plan(slot=slot, seed=_llm_seed(self.run_seed, slot), style=style.name,
                    style_description=style.description, min_words=min_words, max_words=max_words,
                    targets=[first, second, *[m for m in extras if m is not None]],
                    distractors=self._distractors(slot, seen), negatives=self._negatives(slot, seen, False),
                    relation=PlannedRelation(relation=name, label=label, head=head, tail=tail,
                                             head_first=head_first))


_VOCAB_CACHE: dict[tuple[int, str], dict[str, tuple[str, tuple[str, ...]]]] = {}


def vocabulary_groups(task: TaskSpec) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The vocabulary groups `task` may draw (key -> (shown name, terms)): every shipped group except the
    excluded ones, each without the terms that are (or contain, as a whole word) the task's own lexicon terms
    or positive examples — a look-alike must never be something the task labels."""
    from medsynth.generate.distractors import vocabulary

    key = (id(task), task.registry_name)
    if key in _VOCAB_CACHE:
        return _VOCAB_CACHE[key]
    own = {t.strip().lower() for terms in task.lexicon.values() for t in terms if len(t.strip()) >= 3}
    own |= {p.strip().lower() for lab in task.labels for p in lab.positive_examples if len(p.strip()) >= 3}
    excluded = set(task.excluded_distractor_groups())
    out = {}
    for gkey, group in vocabulary().items():
        if gkey in excluded:
            continue
        terms = tuple(t for t in group.terms if not (set(_word_grams(t)) & own))
        if terms:
            out[gkey] = (group.name, terms)
    _VOCAB_CACHE[key] = out
    return out


def _word_grams(term: str) -> list[str]:
    """Every run of whole words in `term`, lower-cased: "insulin receptor" -> insulin, receptor, both."""
    words = term.lower().split()
    return [" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)]


def _is_negative(slot: int, fraction: float, phase: float) -> bool:
    """Low-discrepancy choice: every prefix of slots holds round(n * fraction) ± 1 negatives, so even a
    small run gets its share (independent coin flips would not), and a seeded phase varies which slots."""
    return int((slot + 1) * fraction + phase) > int(slot * fraction + phase)


def _llm_seed(run_seed: int, slot: int) -> int:
    """The per-request LLM seed (same formula as the NER path)."""
    return stable_seed(run_seed, slot)


_PLANNERS: dict[tuple, Planner] = {}


def make_plan(task: TaskSpec, slot: int, run_seed: int = DEFAULT_SEED, stats: PlanStats | None = None) -> Plan:
    """The plan for one request slot; deterministic in (task, slot, run_seed, stats)."""
    key = (id(task), task.registry_name, run_seed, None if stats is None else stats.model_dump_json())
    if key not in _PLANNERS:
        _PLANNERS[key] = Planner(task, run_seed, stats)
    return _PLANNERS[key].plan(slot)

"""Quality gate for one aligned example: keep it, repair it, or reject it with a counted reason.

Runs after `align` (which guarantees exact spans) and before `store`. Checks, in order:
- the text itself: length against the plan's style, no markup or JSON left in it, no empty text;
- the plan: at least one planned target mention is annotated (or present and then annotated);
- completeness: an unannotated, word-bounded occurrence of a seed-lexicon term is added with its label
  (an unlabelled mention teaches a tagger that it is `O` — worse than no example);
- label guidelines: mentions equal to a label's own negative examples ("patients", "dose") are dropped;
- planned look-alikes: a planned distractor the answer labels anyway loses its label (`distractor_dropped` for
  the task's own distractors, `distractor:unlabelled` for the shipped vocabulary's);
- real negatives (`recheck_empty`): a mention-free plan whose answer still holds a task mention, or a lexicon
  term as a whole word in any case, is refused as `negative_not_empty` (the build re-asks it once first).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from medsynth.generate.plan import Plan
from medsynth.spec import TaskSpec
from medsynth.records import Entity, spans_overlap

NEGATIVE_NOT_EMPTY = "negative_not_empty"
_MARKUP = re.compile(r"\]\(|\[[A-Za-z]+\]|\{\s*\"|\"\s*:|<[A-Za-z/][^>]{0,20}>|```")


@dataclass
class FilterResult:
    entities: list[Entity]
    kept: bool
    reason: str | None = None
    repairs: Counter = field(default_factory=Counter)
    leaked: list[str] = field(default_factory=list)  # negative_not_empty: the task mentions the answer named


def normalize_text(text: str) -> str:
    """Key for exact-duplicate detection: case, spacing and punctuation do not make a new example."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


_PATTERN_CACHE: dict[tuple[int, str], list[tuple[re.Pattern, str]]] = {}


def _lexicon_patterns(task: TaskSpec) -> list[tuple[re.Pattern, str]]:
    key = (id(task), task.registry_name)
    if key in _PATTERN_CACHE:
        return _PATTERN_CACHE[key]
    pats = []
    for label, terms in task.lexicon.items():
        for term in sorted({t.strip() for t in terms if len(t.strip()) >= 3}, key=len, reverse=True):
            # Short or all-caps terms (ACE, AR, MTX) match case-sensitively so they never hit ordinary words.
            flags = 0 if (len(term) <= 4 or term.isupper()) else re.IGNORECASE
            pats.append((re.compile(r"(?<![\w-])" + re.escape(term) + r"(?![\w-])", flags), label))
    _PATTERN_CACHE[key] = pats
    return pats


def _covered(start: int, end: int, entities: list[Entity]) -> bool:
    return any(spans_overlap((start, end), (e.start, e.end)) for e in entities)


def complete_from_lexicon(text: str, entities: list[Entity], task: TaskSpec) -> tuple[list[Entity], int]:
    """Add word-bounded lexicon matches that no entity covers; longest terms first, no overlaps created."""
    added: list[Entity] = []
    for pattern, label in _lexicon_patterns(task):
        for m in pattern.finditer(text):
            if not _covered(m.start(), m.end(), entities + added):
                added.append(Entity(start=m.start(), end=m.end(), label=label, text=m.group()))
    return sorted(entities + added, key=lambda e: e.start), len(added)


_ABBR_AFTER = re.compile(r"\s*\(\s*([A-Z][A-Za-z0-9\-]{0,9}[A-Z0-9]?)\s*\)")


def complete_abbreviations(text: str, entities: list[Entity]) -> tuple[list[Entity], int]:
    """An entity followed by "(ABBR)" defines ABBR: label it, and its later stand-alone uses, with the same
    label. LLMs often list the long form and forget the abbreviation, which would teach a tagger that "(SMA)"
    after a disease name is not a mention."""
    added: list[Entity] = []
    for ent in list(entities):
        m = _ABBR_AFTER.match(text, ent.end)
        if not m or not any(c.isupper() for c in m.group(1)):
            continue
        abbr = m.group(1)
        for occ in re.finditer(r"(?<![\w-])" + re.escape(abbr) + r"(?![\w-])", text):
            if occ.start() >= m.start(1) and not _covered(occ.start(), occ.end(), entities + added):
                added.append(Entity(start=occ.start(), end=occ.end(), label=ent.label, text=abbr))
    return sorted(entities + added, key=lambda e: e.start), len(added)


def _drop_negatives(entities: list[Entity], task: TaskSpec) -> tuple[list[Entity], int]:
    negatives = {lab.name: {n.lower().strip() for n in lab.negative_examples} for lab in task.labels}
    kept = [e for e in entities if e.text.lower().strip() not in negatives.get(e.label, set())]
    return kept, len(entities) - len(kept)


def _label_tag(task: TaskSpec) -> re.Pattern:
    return re.compile(r"\((?:" + "|".join(re.escape(n) for n in task.label_names) + r")\)")


def _drop_distractors(entities: list[Entity], plan: Plan, vocabulary: bool = False) -> tuple[list[Entity], int]:
    """The plan said these terms are not entities; an LLM that labels them anyway is overruled. `vocabulary`:
    the shipped vocabulary's terms (plan.negatives) instead of the task's own distractors."""
    banned = {" ".join(d.text.lower().split()) for d in (plan.negatives if vocabulary else plan.distractors)}
    kept = [e for e in entities if " ".join(e.text.lower().split()) not in banned]
    return kept, len(entities) - len(kept)


def _targets_hit(entities: list[Entity], plan: Plan) -> int:
    norm = {(" ".join(e.text.lower().split()), e.label) for e in entities}
    hit = 0
    for t in plan.targets:
        key = " ".join(t.text.lower().split())
        if (key, t.label) in norm or any(key in n and lab == t.label for n, lab in norm):
            hit += 1
    return hit


def check_example(text: str, entities: list[Entity], task: TaskSpec, plan: Plan) -> FilterResult:
    """Decide on one example. `entities` must already satisfy the span invariant (from `align`)."""
    repairs: Counter = Counter()
    words = len(text.split())
    if words < max(4, plan.min_words // 2):
        return FilterResult(entities, False, "too_short", repairs)
    if words > plan.max_words * 2 + 10:
        return FilterResult(entities, False, "too_long", repairs)
    if _MARKUP.search(text):
        return FilterResult(entities, False, "markup_in_text", repairs)
    if _label_tag(task).search(text):  # "sudden cardiac death (Disease)": the annotation leaked into x
        return FilterResult(entities, False, "label_in_text", repairs)
    entities = repair_entities(text, entities, task, repairs, plan)
    if plan.targets and _targets_hit(entities, plan) == 0:
        return FilterResult(entities, False, "missing_targets", repairs)
    if not plan.targets and task.recheck_empty and task.kind == "ner":
        leaked = negative_leaks(text, entities, task)
        if leaked:
            return FilterResult(entities, False, NEGATIVE_NOT_EMPTY, repairs, leaked)
    if not plan.targets and entities:
        repairs["unplanned_entities"] += 1
    return FilterResult(entities, True, None, repairs)


def negative_leaks(text: str, entities: list[Entity], task: TaskSpec) -> list[str]:
    """What makes a mention-free sentence not a negative: its labelled mentions, then lexicon terms (3+
    characters) found as whole words in any case — lexicon completion matches short and all-caps terms
    case-sensitively, but a sentence planned without a gene should not say "Tp53" either."""
    leaked = list(dict.fromkeys(e.text for e in entities))
    lowered = text.lower()
    for terms in task.lexicon.values():
        for term in {t.strip() for t in terms if len(t.strip()) >= 3}:
            if term.lower() in lowered and (m := re.search(r"(?<![\w-])" + re.escape(term) + r"(?![\w-])", text,
                                                           re.IGNORECASE)):
                leaked.append(m.group())
    return list(dict.fromkeys(leaked))


def repair_entities(text: str, entities: list[Entity], task: TaskSpec, repairs: Counter,
                    plan: Plan | None = None) -> list[Entity]:
    """The entity-level repairs, shared by generated and annotated (`build --annotate`) text: drop echoed
    label names, clause-long "mentions", a label's negative examples and (with a plan) its distractors; then
    add unlabelled lexicon terms and abbreviations of labelled mentions. Each change is counted in `repairs`."""
    named = [e for e in entities if e.text.strip().lower() in {n.lower() for n in task.label_names}]
    if named:  # a "mention" that is the label's own name ("Disease") is an echo of the prompt, not an entity
        repairs["label_name_dropped"] += len(named)
        entities = [e for e in entities if e not in named]
    long = [e for e in entities if len(e.text.split()) > 10 or len(e.text) > 100]
    if long:  # a "mention" spanning a clause is an annotation failure, not an entity
        repairs["entity_too_long_dropped"] += len(long)
        entities = [e for e in entities if e not in long]
    entities, dropped = _drop_negatives(entities, task)
    if dropped:
        repairs["negative_example_dropped"] += dropped
    if plan is not None:
        entities, dropped = _drop_distractors(entities, plan)
        if dropped:
            repairs["distractor_dropped"] += dropped
        entities, dropped = _drop_distractors(entities, plan, vocabulary=True)
        if dropped:
            repairs["distractor:unlabelled"] += dropped
    entities, added = complete_from_lexicon(text, entities, task)
    if added:
        repairs["lexicon_added"] += added
    entities, added = complete_abbreviations(text, entities)
    if added:
        repairs["abbreviation_added"] += added
    return entities


def check_annotation(text: str, entities: list[Entity], task: TaskSpec) -> FilterResult:
    """The gate for labels put on the user's own text (`build --annotate`). The text is given, not written by
    the LLM, so the text rules (length, markup, label tags in the text) do not apply, and there is no plan to
    hit: only the entity repairs run, and a text with no entity is kept as a negative example."""
    repairs: Counter = Counter()
    return FilterResult(repair_entities(text, entities, task, repairs), True, None, repairs)

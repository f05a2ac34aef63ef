"""Relations after align: map the LLM's relation strings onto aligned entities, check them, apply the plan.

Runs after `align` and `filter` (so entity indices are final) and before `store`. An LLM states a relation
as two argument strings and a label; this module turns that into `Relation(head, tail, label)` over
`Example.entities`, or counts why it could not:

1. label: exact relation name, else case/separator-insensitive (`relation:label_case`), else dropped
   (`relation:unknown_label`).
2. arguments: every entity whose text equals the string, else equals it case-insensitively, else the
   entities the aligner places the string on (trimmed, normalised, snapped, fuzzy — `relation:arg_repaired`).
   All occurrences are linked, as the task guidelines ask ("link every mention"). No entity: dropped
   (`relation:missing_argument`); the same entity on both sides: dropped (`relation:self_relation`).
3. signature: (head label, tail label) must be the relation's; when only the reversed direction fits,
   the arguments are swapped (`relation:direction_swapped`), else dropped (`relation:bad_signature`).
4. one label per pair: a repeat is dropped (`relation:duplicate`), a second label on the same pair too
   (`relation:label_conflict`, the first listed wins) so every candidate pair has a single class.
5. the plan (label first: y was fixed before x was written): a positive plan's relation between the planned
   head and tail is asserted by the plan (`relation:from_plan` for each link the LLM did not list itself);
   a "none" plan whose pair the LLM nevertheless related, or a positive plan whose pair it gave another
   label, is rejected (`relation_contradicts_plan`): text and plan disagree, and nothing tells which is right.
   Planned arguments that are not both aligned entities reject the example (`missing_targets`).
Extra valid relations between other pairs are kept.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from medsynth.generate.align import AlignConfig, align
from medsynth.generate.parse import RawRelation
from medsynth.generate.plan import Plan
from medsynth.spec import RelationSpec, TaskSpec
from medsynth.records import Entity, Mention, Relation

__all__ = ["RelateResult", "relate", "entity_indices"]


@dataclass
class RelateResult:
    relations: list[Relation]
    repairs: Counter = field(default_factory=Counter)
    rejection: str | None = None


def _key(label: str) -> str:
    return re.sub(r"[\s_\-:]+", "", label.casefold())


def _resolve_label(label: str, task: TaskSpec) -> tuple[RelationSpec | None, bool]:
    """(relation spec, whether the label needed a case/separator repair); (None, False) when unknown."""
    by_name = {r.name: r for r in task.relations}
    if label.strip() in by_name:
        return by_name[label.strip()], False
    for rel in task.relations:
        if _key(rel.name) == _key(label) and _key(label):
            return rel, True
    return None, False


def entity_indices(arg: str, text: str, entities: list[Entity], labels: list[str],
                   fuzzy_threshold: float = 0.85) -> tuple[list[int], bool]:
    """Indices of the entities an argument string names, and whether the aligner had to repair it.

    Exact text first, then case-insensitive, then the aligner's placement of the string (so "'Cisplatin'",
    "cis-platin" or "beta-blocker" still find "cisplatin", "cisplatin", "β-blocker").
    """
    a = arg.strip()
    if not a or not entities:
        return [], False
    exact = [i for i, e in enumerate(entities) if e.text == a]
    if exact:
        return exact, False
    folded = [i for i, e in enumerate(entities) if e.text.casefold() == a.casefold()]
    if folded:
        return folded, False
    config = AlignConfig(labels=labels, fuzzy_threshold=fuzzy_threshold)
    placed = align(text, [Mention(text=a, label=labels[0])], config)
    hits = [i for i, e in enumerate(entities)
            if any(e.start < p.end and p.start < e.end for p in placed.entities)]
    return hits, bool(hits)


def _words(s: str) -> str:
    return " " + " ".join(re.sub(r"[^\w]+|_", " ", s.casefold()).split()) + " "


def planned_indices(target: Mention, entities: list[Entity]) -> list[int]:
    """Entities that realise a planned mention: same label and the same words, else one containing the
    other word-wise (as the filter's target check does: "cisplatin" planned, "cisplatin therapy" listed)."""
    key = _words(target.text)
    same = [i for i, e in enumerate(entities) if e.label == target.label and _words(e.text) == key]
    if same or not key.strip():
        return same
    return [i for i, e in enumerate(entities)
            if e.label == target.label and _words(e.text).strip() and (key in _words(e.text) or _words(e.text) in key)]


def _pair_key(head: int, tail: int, rel: RelationSpec) -> tuple[int, int]:
    return (min(head, tail), max(head, tail)) if rel.symmetric else (head, tail)


class _Collector:
    """Relations accepted so far, one label per pair, with the counters for what was dropped."""

    def __init__(self, task: TaskSpec, repairs: Counter):
        self.specs = {r.name: r for r in task.relations}
        self.repairs = repairs
        self.by_pair: dict[tuple[int, int], Relation] = {}

    def add(self, head: int, tail: int, rel: RelationSpec, count: bool = True) -> bool:
        key = _pair_key(head, tail, rel)
        old = self.by_pair.get(key)
        if old is not None:
            if count:
                self.repairs["relation:duplicate" if old.label == rel.name else "relation:label_conflict"] += 1
            return False
        self.by_pair[key] = Relation(head=head, tail=tail, label=rel.name)
        return True

    def between(self, heads: list[int], tails: list[int]) -> list[Relation]:
        """Accepted relations linking any of `heads` with any of `tails`, in either direction."""
        a, b = set(heads), set(tails)
        return [r for r in self.by_pair.values() if (r.head in a and r.tail in b) or (r.head in b and r.tail in a)]

    def relations(self) -> list[Relation]:
        return sorted(self.by_pair.values(), key=lambda r: (r.head, r.tail, r.label))


def _orient(head: int, tail: int, rel: RelationSpec, entities: list[Entity]) -> tuple[int, int] | None:
    """(head, tail) when the signature fits, swapped when only the reverse fits, None when neither does."""
    lh, lt = entities[head].label, entities[tail].label
    if (lh, lt) == (rel.head, rel.tail):
        return head, tail
    if (lt, lh) == (rel.head, rel.tail):
        return tail, head
    return None


def _add_listed(raw: RawRelation, text: str, entities: list[Entity], task: TaskSpec, fuzzy: float,
                found: _Collector) -> None:
    """Check one listed relation and add every link it makes; count exactly one outcome per problem."""
    repairs = found.repairs
    rel, fixed = _resolve_label(raw.label, task)
    if rel is None:
        repairs["relation:unknown_label"] += 1
        return
    if fixed:
        repairs["relation:label_case"] += 1
    labels = task.label_names
    heads, repaired_h = entity_indices(raw.head, text, entities, labels, fuzzy)
    tails, repaired_t = entity_indices(raw.tail, text, entities, labels, fuzzy)
    if not heads or not tails:
        repairs["relation:missing_argument"] += 1
        return
    if repaired_h or repaired_t:
        repairs["relation:arg_repaired"] += 1
    pairs = [(h, t) for h in heads for t in tails if h != t]
    if not pairs:
        repairs["relation:self_relation"] += 1
        return
    oriented = [_orient(h, t, rel, entities) for h, t in pairs]
    if any(o is None for o in oriented):
        repairs["relation:bad_signature"] += 1
        return
    if any(o != p for o, p in zip(oriented, pairs)):
        repairs["relation:direction_swapped"] += 1
    for h, t in oriented:  # type: ignore[misc]  # None was ruled out above
        found.add(h, t, rel)


def _apply_plan(plan: Plan, entities: list[Entity], task: TaskSpec, found: _Collector) -> str | None:
    """Assert (or check the absence of) the planned relation; returns a rejection reason or None."""
    planned = plan.relation
    if planned is None:
        return None
    heads, tails = planned_indices(planned.head, entities), planned_indices(planned.tail, entities)
    if not heads or not tails:
        return "missing_targets"
    listed = found.between(heads, tails)
    if planned.negative:
        return "relation_contradicts_plan" if listed else None
    if any(r.label != planned.label for r in listed):
        return "relation_contradicts_plan"
    rel = found.specs[planned.label]
    for h in heads:
        for t in tails:
            if h != t and found.add(h, t, rel, count=False):
                found.repairs["relation:from_plan"] += 1
    return None


def relate(text: str, entities: list[Entity], raw: list[RawRelation], task: TaskSpec, plan: Plan,
           fuzzy_threshold: float = 0.85) -> RelateResult:
    """Relations over `entities` (already aligned and filtered) from the LLM's list and the plan."""
    repairs: Counter = Counter()
    found = _Collector(task, repairs)
    for item in raw:
        _add_listed(item, text, entities, task, fuzzy_threshold, found)
    reason = _apply_plan(plan, entities, task, found)
    return RelateResult(relations=found.relations(), repairs=repairs, rejection=reason)

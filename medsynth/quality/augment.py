"""Augment: label-preserving copies that teach what generated text under-shows.

Biomedical corpora define an abbreviation once ("myotonic dystrophy (DM)") and then use it alone; every lone use is
a mention. Generated sentences define abbreviations but seldom reuse them. Measured on NCBI-disease
(`benchmarks/results/label-conventions.md`):
- abbreviation-shaped mentions are about a third of the test gold but a tenth of the generated mentions;
- lone abbreviations are most of what a synthetic-trained model misses.

`abbreviation_copies` adds, for each generated "long form (ABBR)" pair labelled with one type, a copy of the
sentence with the abbreviation alone in its place: "... in patients with DM were ...". Both spans are known, so
the copy's labels are exact, and no LLM call and no corpus text is involved.
"""

from __future__ import annotations

import re
from typing import Sequence

from medsynth.evaluate.diagnose import shape
from medsynth.hashing import seeded_rng
from medsynth.records import DERIVED_FROM, Entity, Example
from medsynth.spec import TaskSpec

_OPEN = re.compile(r"\s*\(\s*$")
_CLOSE = re.compile(r"^\s*\)")
_SENTENCE_START = re.compile(r"(^|[.!?:]\s+)$")


def _definition(text: str, long: Entity, abbr: Entity) -> int | None:
    """End offset of "long (ABBR)" when `abbr` is an abbreviation-shaped mention right after `long` in
    parentheses, with the same label; else None."""
    if abbr.label != long.label or abbr.start < long.end:
        return None
    if not _OPEN.search(text[long.end:abbr.start]) or shape(abbr.text.split()) != "abbreviation":
        return None
    close = _CLOSE.match(text[abbr.end:])
    return abbr.end + close.end() if close else None


def _lone_copy(ex: Example, i: int, j: int, end: int) -> Example:
    """`ex` with entity i's long form and the parenthesised entity j replaced by j's text alone."""
    long, abbr = ex.entities[i], ex.entities[j]
    text = ex.text[:long.start] + abbr.text + ex.text[end:]
    delta = len(text) - len(ex.text)
    entities = []
    for k, e in enumerate(ex.entities):
        if k == i:
            continue
        if k == j:
            e = Entity(start=long.start, end=long.start + len(abbr.text), label=abbr.label, text=abbr.text)
        elif e.start >= end:
            e = e.model_copy(update={"start": e.start + delta, "end": e.end + delta})
        entities.append(e)
    meta = {**ex.meta, DERIVED_FROM: ex.id, "augment": "abbreviation_alone"}
    return Example(id=f"{ex.id}-abbr{j}", text=text, entities=sorted(entities, key=lambda e: e.start), meta=meta)


def abbreviation_copies(examples: Sequence[Example]) -> tuple[list[Example], int]:
    """One copy per defined abbreviation, and how many examples were skipped because they carry relations
    (whose entity indices a copy would have to remap)."""
    copies: list[Example] = []
    skipped = 0
    for ex in examples:
        ents = ex.entities
        pairs = [(i, j, end) for i in range(len(ents)) for j in range(len(ents))
                 if (end := _definition(ex.text, ents[i], ents[j])) is not None]
        if pairs and ex.relations:
            skipped += 1
            continue
        for i, j, end in pairs:
            inside = [k for k, e in enumerate(ents) if k not in (i, j) and e.start < end and e.end > ents[i].start]
            if not inside:  # another mention inside the replaced stretch would be lost
                copies.append(_lone_copy(ex, i, j, end))
    return copies, skipped


# -- varied look-alikes: copies with other terms in the planned distractor (and mention) slots -------------------

def _occurrence(text: str, term: str, taken: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The first whole-word, case-insensitive occurrence of `term` in `text` that overlaps no taken span."""
    for m in re.finditer(r"(?<!\w)" + re.escape(term) + r"(?!\w)", text, flags=re.IGNORECASE):
        if all(m.end() <= s or m.start() >= e for s, e in taken):
            return m.start(), m.end()
    return None


def _distractor_terms(task: TaskSpec) -> dict[str, tuple[str, ...]]:
    """Shown group name -> the terms a copy may put in its place: the task's own distractor groups and the
    shipped vocabulary groups the task draws (which never hold the task's lexicon terms)."""
    from medsynth.generate.plan import vocabulary_groups

    out = {name: terms for name, terms in vocabulary_groups(task).values()}
    for group in task.distractors:
        out[group.name] = tuple(group.terms)
    return out


def _slots(ex: Example, groups: dict[str, tuple[str, ...]], lexicon: dict[str, list[str]] | None
           ) -> list[tuple[int, int, tuple[str, ...], str | None]]:
    """(start, end, candidate terms, label or None), in text order, for every planned distractor found unlabelled
    in the text and for every mention; a mention's candidates are its label's lexicon terms with `lexicon`, else
    none (it is carried over as it stands)."""
    taken = [(e.start, e.end) for e in ex.entities]
    slots: list[tuple[int, int, tuple[str, ...], str | None]] = []
    for d in ex.meta.get("plan", {}).get("distractors", []):
        pool = groups.get(str(d.get("label")), ())
        where = _occurrence(ex.text, str(d.get("text", "")), taken) if pool else None
        if where:
            taken.append(where)
            slots.append((*where, pool, None))
    slots += [(e.start, e.end, tuple(lexicon.get(e.label, ())) if lexicon else (), e.label) for e in ex.entities]
    return sorted(slots)


def _varied(ex: Example, slots: list[tuple[int, int, tuple[str, ...], str | None]], copy: int) -> Example | None:
    """Copy number `copy` of `ex` with each slot's stretch replaced by a seeded pick from its candidates (never
    a term already in the sentence) and every mention moved with the text; None when nothing could be replaced."""
    rng = seeded_rng("vary", ex.id, copy)
    present = ex.text.lower()
    picks: dict[int, str] = {}
    for i, (start, end, pool, _) in enumerate(slots):
        free = [t for t in pool if t.lower() not in present and t.lower() != ex.text[start:end].lower()]
        if free:
            picks[i] = free[rng.randrange(len(free))]
    if not picks:
        return None
    text, last, entities = "", 0, []
    for i, (start, end, _, label) in enumerate(slots):
        new = picks.get(i, ex.text[start:end])
        if i in picks and new[:1].islower() and _SENTENCE_START.search(ex.text[:start]):
            new = new[0].upper() + new[1:]
        text += ex.text[last:start]
        if label is not None:
            entities.append(Entity(start=len(text), end=len(text) + len(new), label=label, text=new))
        text += new
        last = end
    text += ex.text[last:]
    meta = {**ex.meta, DERIVED_FROM: ex.id, "augment": "varied_terms"}
    return Example(id=f"{ex.id}-vary{copy}", text=text, entities=entities, meta=meta)


def varied_copies(examples: Sequence[Example], task: TaskSpec, copies: int, mentions: bool = False
                  ) -> tuple[list[Example], int]:
    """`copies` copies of each example with planned look-alikes, each look-alike replaced by another term of its
    distractor group (and, with `mentions`, each mention by another lexicon term of its label); how many
    examples were skipped because they carry relations.

    Why: a from-scratch gene task lost to zero-shot prompting mostly on false alarms — drugs, cell types, numbers
    the model had seen unlabelled only a few dozen times. Varying the planned look-alikes shows it many more of
    them in the same (LLM-written) contexts, with exact labels, at no LLM cost.
    """
    groups = _distractor_terms(task)
    lexicon = task.lexicon if mentions else None
    out: list[Example] = []
    skipped = 0
    for ex in examples:
        slots = _slots(ex, groups, lexicon)
        if not any(pool for _, _, pool, _ in slots):
            continue
        if ex.relations:
            skipped += 1
            continue
        out += [c for k in range(1, copies + 1) if (c := _varied(ex, slots, k)) is not None]
    return out, skipped

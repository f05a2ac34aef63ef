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
from medsynth.records import DERIVED_FROM, Entity, Example

_OPEN = re.compile(r"\s*\(\s*$")
_CLOSE = re.compile(r"^\s*\)")


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

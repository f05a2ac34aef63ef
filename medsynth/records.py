"""The records that flow between steps: entities, relations, examples.

`Entity` keeps the invariant `text[start:end] == entity.text` for every stored example; `Example.check_spans`
enforces it so no exporter ever sees a misplaced span.
"""

from __future__ import annotations

from typing import Any, Sequence

from pydantic import BaseModel, Field

def spans_overlap(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """True when half-open spans (start, end, ...) share at least one position (touching spans do not).
    Extra items (a label) are ignored, so scored (start, end, label) spans work as they are."""
    return a[0] < b[1] and b[0] < a[1]


#: Example.meta key naming the example a derived copy was made from (export puts both in one split).
DERIVED_FROM = "derived_from"


class Entity(BaseModel):
    start: int = Field(ge=0)
    end: int = Field(gt=0)
    label: str
    text: str


def span_keys(entities: Sequence[Entity]) -> set[tuple[int, int, str]]:
    """The (start, end, label) of each entity: two labellings of one text agree exactly when these sets are equal."""
    return {(e.start, e.end, e.label) for e in entities}


class Relation(BaseModel):
    head: int = Field(ge=0, description="index into Example.entities")
    tail: int = Field(ge=0, description="index into Example.entities")
    label: str


class Example(BaseModel):
    id: str
    text: str
    entities: list[Entity] = Field(default_factory=list)
    relations: list[Relation] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)

    def check_spans(self) -> list[str]:
        """Return one message per broken invariant (empty when the example is sound)."""
        problems = []
        for i, e in enumerate(self.entities):
            if e.end > len(self.text) or e.start >= e.end:
                problems.append(f"entities[{i}] offsets {e.start}:{e.end} outside text of length {len(self.text)}")
            elif self.text[e.start : e.end] != e.text:
                problems.append(f"entities[{i}] text {e.text!r} != text[{e.start}:{e.end}] {self.text[e.start:e.end]!r}")
        for i, r in enumerate(self.relations):
            for side in ("head", "tail"):
                if getattr(r, side) >= len(self.entities):
                    problems.append(f"relations[{i}].{side} = {getattr(r, side)} names no entity")
        return problems


class Mention(BaseModel):
    """A mention as the LLM (or a user file) states it: a string and a label, offsets optional."""

    text: str
    label: str
    start: int | None = None
    end: int | None = None


NO_RELATION = "none"


class RelPair(BaseModel):
    """One candidate (head, tail) entity pair in one sentence: the unit relation classifiers train and are
    scored on. `pairs.jsonl` files (written by `build re` exports and by the benchmark loaders) hold one per
    line, so the generation side and the training side share nothing but this record.

    Entity labels are *task* labels (e.g. Gene, Disease); `label` is a task relation name or "none".
    """

    id: str
    text: str
    head: Entity
    tail: Entity
    label: str = NO_RELATION
    split: str = "train"
    meta: dict[str, Any] = Field(default_factory=dict)

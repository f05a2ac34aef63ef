"""BRAT standoff folders: `NAME.txt` (the text) beside `NAME.ann` (its annotations), read as `SpanDoc`s.

`.ann` lines used: `T` text-bound entities (`T1<TAB>Disease 10 17<TAB>mention`) and `R` relations
(`R1<TAB>Treats Arg1:T3 Arg2:T1`). A discontinuous entity (`0 5;9 14`) cannot be a contiguous span: it is skipped
and counted in `stats["discontinuous_entities_skipped"]`, as is any relation naming it. Events, attributes,
normalisations, equivalences and notes (`E`, `A`, `M`, `N`, `*`, `#`) are not needed for NER or pair RE and are
counted in `stats["ignored_annotation_lines"]`.

An entity whose offsets do not hold its mention text in the `.txt` is an error naming the `.ann` file and line:
a shifted offset would put every tag of the document on the wrong tokens.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from medsynth.data.corpora.base import read_text
from medsynth.data.corpora.spans import SpanDoc, SpanRelation
from medsynth.errors import MedsynthError
from medsynth.records import Entity

_SPAN = re.compile(r"^(\d+) (\d+)$")
_ARG = re.compile(r"^[A-Za-z0-9_-]+:(\S+)$")


def brat_documents(folder: Path) -> list[Path]:
    """The `.txt` files of a BRAT folder (sorted by name) that have an `.ann` beside them."""
    return sorted(p for p in folder.glob("*.txt") if p.with_suffix(".ann").is_file())


def _entity(ann: Path, lineno: int, cols: list[str], text: str) -> Entity | None:
    """The entity of a `T` line, or None when it is discontinuous."""
    where = f"{ann}:{lineno}"
    if len(cols) != 3 or " " not in cols[1]:
        raise MedsynthError("expected 'Tn<TAB>Label START END<TAB>text'", where=where, value="\t".join(cols))
    label, _, offsets = cols[1].partition(" ")
    if ";" in offsets:
        return None
    m = _SPAN.match(offsets)
    if not m:
        raise MedsynthError("entity offsets must be 'START END' (whole numbers)", where=where, value=offsets)
    s, e = int(m.group(1)), int(m.group(2))
    held = text[s:e]
    if not s < e <= len(text) or held.replace("\n", " ") != cols[2].replace("\n", " "):
        raise MedsynthError(f"offsets {s}:{e} hold {held[:40]!r} in {ann.with_suffix('.txt').name} (text length "
                            f"{len(text)}), not the annotated mention", where=where, value=cols[2])
    return Entity(start=s, end=e, label=label, text=held)


def _relation(ann: Path, lineno: int, cols: list[str]) -> SpanRelation:
    parts = cols[1].split() if len(cols) >= 2 else []
    args = [_ARG.match(p) for p in parts[1:]]
    if len(parts) != 3 or not all(args):
        raise MedsynthError("expected 'Rn<TAB>Label Arg1:Tn Arg2:Tm'", where=f"{ann}:{lineno}", value="\t".join(cols))
    return SpanRelation(head=args[0].group(1), tail=args[1].group(1), label=parts[0])  # type: ignore[union-attr]


def read_brat_doc(txt: Path, stats: dict[str, Any]) -> SpanDoc:
    """One document: its text and the contiguous entities and relations of its `.ann` file."""
    ann = txt.with_suffix(".ann")
    text = read_text(txt, "BRAT text file")
    doc = SpanDoc(id=txt.stem, text=text, source=str(txt))
    skipped: set[str] = set()
    relations: list[tuple[int, SpanRelation]] = []
    for lineno, line in enumerate(read_text(ann, "BRAT annotation file").split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        cols = line.split("\t")
        kind = cols[0][:1]
        if kind == "T":
            ent = _entity(ann, lineno, cols, text)
            if ent is None:
                skipped.add(cols[0])
                stats["discontinuous_entities_skipped"] = stats.get("discontinuous_entities_skipped", 0) + 1
            else:
                doc.entities[cols[0]] = ent
        elif kind == "R":
            relations.append((lineno, _relation(ann, lineno, cols)))
        else:
            stats["ignored_annotation_lines"] = stats.get("ignored_annotation_lines", 0) + 1
    for lineno, rel in relations:
        if rel.head in skipped or rel.tail in skipped:
            stats["relations_on_discontinuous_skipped"] = stats.get("relations_on_discontinuous_skipped", 0) + 1
            continue
        for arg in (rel.head, rel.tail):
            if arg not in doc.entities:
                raise MedsynthError("relation argument names no entity of this file", where=f"{ann}:{lineno}",
                                    value=arg)
        doc.relations.append(rel)
    return doc


def read_brat(folder: str | Path) -> tuple[list[SpanDoc], dict[str, Any]]:
    """Every document of a BRAT folder and what had to be skipped; a folder without any is an error."""
    folder = Path(folder)
    stats: dict[str, Any] = {}
    texts = brat_documents(folder)
    if not texts:
        raise MedsynthError("BRAT folder holds no NAME.txt with a NAME.ann beside it (empty split?)", where=str(folder))
    docs = [read_brat_doc(t, stats) for t in texts]
    stats["documents"] = len(docs)
    return docs, stats

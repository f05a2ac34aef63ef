"""Character-span documents (BRAT, data.jsonl, ChemProt entities) turned into NER sentences or relation pairs.

Formats that annotate character offsets in running text all become `SpanDoc`s; this module is the one place that
cuts them into sentences and tokens, so every such format gives the same records:

- NER: each sentence is tokenised with `medsynth.data.tokens.tokenize` (the benchmark IOB files' tokenisation:
  punctuation split off) and tagged with `spans_to_bio`. Nested or overlapping mentions cannot be IOB-tagged; the
  longest (then first) is kept and the rest counted in `stats["overlapping_entities_skipped"]`.
- RE: a candidate is every ordered pair of mentions in one sentence whose (head label, tail label) is the argument
  type pair of at least one annotated relation in the corpus (as ChemProt's Chemical x Gene candidates); its label
  is the annotated relation or "none". Gold relations whose arguments sit in different sentences or overlap cannot
  be candidates and are counted, so a report can say how much recall is capped.

Sentences are cut by `rel.split_sentences` (never inside a mention), plus a break after every newline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from medsynth.data.corpora.base import IOBSentence
from medsynth.data.corpora.rel import split_sentences
from medsynth.data.tokens import spans_to_bio, tokenize
from medsynth.records import NO_RELATION, Entity, RelPair


@dataclass
class SpanRelation:
    head: str  # entity id
    tail: str
    label: str


@dataclass
class SpanDoc:
    """Text with mentions keyed by id (document offsets) and relations between those ids."""

    id: str
    text: str
    source: str  # the file the text came from ("file" or "file:line" for one-sentence rows)
    entities: dict[str, Entity] = field(default_factory=dict)
    relations: list[SpanRelation] = field(default_factory=list)
    presplit: bool = False  # the text is one sentence already (a data.jsonl row): never cut it
    line: int = 1  # line of `source` the text starts on
    breaks: list[int] = field(default_factory=list)  # offsets that always start a sentence (a title's end)
    protected: list[tuple[int, int]] = field(default_factory=list)  # spans never cut besides the mentions


def _sentences(doc: SpanDoc) -> list[tuple[int, int]]:
    if doc.presplit:
        return [(0, len(doc.text))] if doc.text.strip() else []
    protected = [(e.start, e.end) for e in doc.entities.values()] + doc.protected
    newlines = [i + 1 for i, ch in enumerate(doc.text) if ch == "\n"]
    return split_sentences(doc.text, protected, breaks=newlines + doc.breaks)


def _where(doc: SpanDoc, offset: int) -> str:
    if doc.presplit:
        return doc.source
    return f"{doc.source}:{doc.line + doc.text.count(chr(10), 0, offset)}"


def _inside(ents: Iterable[tuple[str, Entity]], s0: int, s1: int) -> list[tuple[str, Entity]]:
    return [(k, e) for k, e in ents if s0 <= e.start and e.end <= s1]


def _local(ent: Entity, offset: int) -> Entity:
    return Entity(start=ent.start - offset, end=ent.end - offset, label=ent.label, text=ent.text)


def _non_overlapping(ents: list[Entity]) -> tuple[list[Entity], int]:
    """Longest-then-first mentions that do not overlap a kept one, and how many were dropped."""
    kept: list[Entity] = []
    for e in sorted(ents, key=lambda x: (-(x.end - x.start), x.start)):
        if all(e.end <= k.start or k.end <= e.start for k in kept):
            kept.append(e)
    return sorted(kept, key=lambda x: x.start), len(ents) - len(kept)


def _count(stats: dict[str, Any], key: str, n: int = 1) -> None:
    if n:
        stats[key] = stats.get(key, 0) + n


def ner_sentences(docs: Iterable[SpanDoc], stats: dict[str, Any]) -> list[IOBSentence]:
    """Token/IOB2 sentences of every document, in document then text order (see the module docstring)."""
    out: list[IOBSentence] = []
    for doc in docs:
        for s0, s1 in _sentences(doc):
            sub = doc.text[s0:s1]
            toks = tokenize(sub)
            if not toks:
                continue
            ents, dropped = _non_overlapping([_local(e, s0) for _, e in _inside(doc.entities.items(), s0, s1)])
            _count(stats, "overlapping_entities_skipped", dropped)
            tags = spans_to_bio(toks, ents)
            _count(stats, "entities_lost_to_tokens", len(ents) - sum(t.startswith("B-") for t in tags))
            out.append(IOBSentence([t.text for t in toks], tags, _where(doc, s0)))
    return out


def relation_signatures(docs: Iterable[SpanDoc]) -> set[tuple[str, str]]:
    """(head label, tail label) of every annotated relation: which mention pairs are candidates."""
    return {(d.entities[r.head].label, d.entities[r.tail].label) for d in docs for r in d.relations}


def re_pairs(docs: Iterable[SpanDoc], split: str, prefix: str, signatures: set[tuple[str, str]],
             stats: dict[str, Any]) -> list[RelPair]:
    """Candidate pairs of every sentence labelled from the documents' relations (see the module docstring)."""
    pairs: list[RelPair] = []
    for doc in docs:
        gold = {(r.head, r.tail): r.label for r in doc.relations}
        _count(stats, "gold_relations", len(gold))
        found: set[tuple[str, str]] = set()
        for si, (s0, s1) in enumerate(_sentences(doc)):
            members = _inside(doc.entities.items(), s0, s1)
            for (hk, he), (tk, te) in ((a, b) for a in members for b in members if a[0] != b[0]):
                if (he.label, te.label) not in signatures:
                    continue
                if he.start < te.end and te.start < he.end:  # nested mentions cannot both be marked
                    continue
                found.add((hk, tk))
                pairs.append(RelPair(id=f"{prefix}-{split}-{doc.id}-{hk}-{tk}", text=doc.text[s0:s1],
                                     head=_local(he, s0), tail=_local(te, s0), label=gold.get((hk, tk), NO_RELATION),
                                     split=split, meta={"source": _where(doc, s0), "doc": doc.id, "sentence": si,
                                                        "args": [hk, tk]}))
        _count(stats, "gold_relations_lost", len(set(gold) - found))
    stats["pairs"] = len(pairs)
    stats.setdefault("gold_relations", 0)
    stats.setdefault("gold_relations_lost", 0)
    stats["note"] = ("lost = annotated relations whose arguments sit in different sentences or overlap "
                     "(a sentence-level pair classifier never sees them)")
    return pairs

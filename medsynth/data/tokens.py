"""Word tokenization with character offsets, shared by export (BIO tags), zero-shot placement and predict.

The benchmark IOB files (NCBI-disease, BC5CDR) split every punctuation mark into its own token and keep runs
of letters and digits together ("ataxia - telangiectasia", "T - cell"), so medsynth does the same: its BIO
data then lines up token-for-token with what it is evaluated on.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Sequence

from medsynth.records import Entity

_TOKEN = re.compile(r"[^\W_]+|\S", re.UNICODE)

Span = tuple[int, int, str]  # word-level entity: (start, end exclusive, type)


class Token(NamedTuple):
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    return [Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def spans_to_bio(tokens: list[Token], entities: list[Entity]) -> list[str]:
    """IOB2 tags for `tokens`: a token is inside an entity when their character ranges overlap.

    Entities are assumed non-overlapping (the aligner guarantees it); an entity that starts inside a token
    (a sub-word mention such as "HER2" in "HER2-positive" is fine, but "diabet" in "diabetes" is not) claims the
    whole token, which is what a word-level model can represent.
    """
    tags = ["O"] * len(tokens)
    for ent in sorted(entities, key=lambda e: e.start):
        first = True
        for i, tok in enumerate(tokens):
            if tok.end <= ent.start or tok.start >= ent.end:
                continue
            if tags[i] != "O":  # token already claimed by an earlier entity
                first = False
                continue
            tags[i] = ("B-" if first else "I-") + ent.label
            first = False
    return tags


def bio_to_spans(tokens: list[Token], tags: list[str], text: str) -> list[Entity]:
    """Character-span entities from IOB2 tags over `tokens` of `text` (an I- after O or another type opens one)."""
    entities: list[Entity] = []
    cur: list[int] | None = None  # [start, end, label_index]
    label = ""

    def close() -> None:
        if cur is not None:
            entities.append(Entity(start=cur[0], end=cur[1], label=label, text=text[cur[0] : cur[1]]))

    for tok, tag in zip(tokens, tags):
        if tag == "O" or not tag:
            close()
            cur = None
            continue
        prefix, _, typ = tag.partition("-")
        if prefix == "B" or cur is None or typ != label:
            close()
            cur, label = [tok.start, tok.end], typ
        else:
            cur[1] = tok.end
    close()
    return entities


def detokenize(tokens: list[str]) -> tuple[str, list[Token]]:
    """Join pre-tokenized words (from an IOB file) into text with a space between tokens, keeping offsets."""
    out: list[Token] = []
    pos = 0
    for tok in tokens:
        out.append(Token(tok, pos, pos + len(tok)))
        pos += len(tok) + 1
    return " ".join(tokens), out


def iob2_spans(tags: Sequence[str]) -> list[Span]:
    """Entities as (start, end_exclusive, type), exactly as seqeval strict IOB2 finds them.

    An entity is a B-X followed by the longest run of I-X. An I- that does not continue a B- of its own type
    starts nothing and is ignored (the strict rule), which is why gold files must be repaired on reading.
    """
    spans: list[Span] = []
    start = -1
    typ = ""
    for i, tag in enumerate(tags):
        if tag[0] == "I" and start >= 0 and tag[2:] == typ:
            continue
        if start >= 0:
            spans.append((start, i, typ))
            start = -1
        if tag[0] == "B":
            start, typ = i, tag[2:]
    if start >= 0:
        spans.append((start, len(tags), typ))
    return spans

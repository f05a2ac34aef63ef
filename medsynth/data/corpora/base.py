"""What every corpus reader shares: the NER record (`IOBSentence`), split names, UTF-8 decoding, tag rules.

Kept apart from `ner.py` (the built-in presets) so the format readers (`conll`, `brat`, `jsonl_corpus`, ...) and the
presets can import it without importing each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from medsynth.data.jsonl import read_utf8

SPLITS = ("train", "devel", "test")
# The MTL files call the development split "devel"; users type "dev" or "validation" as well.
SPLIT_ALIASES = {"dev": "devel", "validation": "devel", "valid": "devel", "val": "devel", "development": "devel",
                 "training": "train", "testing": "test"}
# O, or B-/I- followed by a type with no whitespace that neither starts nor ends with '-' (seqeval strips those,
# so a type like "X-" would silently score as "X").
TAG_RE = re.compile(r"^(?:O|[BI]-[^\s\-](?:\S*[^\s\-])?)$")
# The same types with every prefix a token file may use: IOB1/IOB2 (B, I), BIOES (E, S) and BILOU (L, U).
ANY_SCHEME_TAG_RE = re.compile(r"^(?:O|[BIESLU]-[^\s\-](?:\S*[^\s\-])?)$")
DOCSTART = "-DOCSTART-"


@dataclass
class IOBSentence:
    tokens: list[str]
    tags: list[str]
    source: str  # "file:line" of the sentence's first token, so any score can be traced back to the input
    repaired: int = 0  # tags changed from I- to B- because they opened an entity (see read_iob)


def canonical_split(split: str) -> str | None:
    """"train" / "devel" / "test" for a split name or alias (dev, validation, training ...); None when unknown."""
    key = SPLIT_ALIASES.get(split.lower(), split.lower())
    return key if key in SPLITS else None


def read_text(path: Path, what: str = "file") -> str:
    """The decoded text of a corpus file (BOM dropped); missing or unreadable is one error naming the file."""
    return read_utf8(path, what, bom=True)


def entity_types(tags: list[str]) -> set[str]:
    return {t[2:] for t in tags if t != "O"}

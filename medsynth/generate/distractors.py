"""The shipped distractor vocabulary (`distractors.yaml`) and which of its groups a task may draw from.

Why: a model trained only on sentences whose every salient term is an entity learns "salient term = entity".
A gene-mention task written from scratch scored below zero-shot prompting because half of its predictions were
chemicals, diseases, species, person names and lab abbreviations that its generated data never showed
unlabelled. Any task therefore gets hard negatives from a general vocabulary, except the groups that overlap its
own labels (a gene task must not be told that "TP53" is not an entity). Which groups overlap is declared in
the task (`distractor_groups_exclude`) or inferred from its label names (each group lists `keywords`), falling
back to the head of a label's definition when its name matches no group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from medsynth.errors import MedsynthError

VOCABULARY_FILE = "distractors.yaml"


@dataclass(frozen=True)
class VocabularyGroup:
    """One kind of look-alike: its key (`chemicals`), the name shown to the LLM, label keywords and terms."""

    key: str
    name: str
    keywords: frozenset[str]
    terms: tuple[str, ...]


@lru_cache(maxsize=1)
def vocabulary() -> dict[str, VocabularyGroup]:
    """The shipped groups by key, in file order. A broken file is a packaging bug: one line naming it."""
    where = f"medsynth/generate/{VOCABULARY_FILE}"
    try:
        raw = yaml.safe_load(resources.files("medsynth.generate").joinpath(VOCABULARY_FILE).read_text("utf-8"))
        groups = {key: VocabularyGroup(key, str(g["name"]), frozenset(k.lower() for k in g["keywords"]),
                                       tuple(str(t) for t in g["terms"])) for key, g in raw.items()}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as err:
        raise MedsynthError(f"cannot read the distractor vocabulary: {err}", where=where) from None
    return groups


def _name_words(name: str) -> set[str]:
    """"GeneOrGeneProduct", "gene_product", "CELL-LINE" -> lower-case words, plus the whole name."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    words = {w.lower() for w in re.split(r"[\s_\-:/]+", spaced) if w}
    return words | {name.lower()}


def _definition_head(definition: str, max_words: int = 12) -> set[str]:
    """The words of a definition's first clause: what the label *is*, before any "not X" look-alikes."""
    head = re.split(r"[.;:(]", definition, maxsplit=1)[0]
    return {w.lower() for w in re.findall(r"[A-Za-z][A-Za-z\-]*", head)[:max_words]}


def automatic_exclusions(labels: list[tuple[str, str]]) -> list[str]:
    """Groups whose keywords match a label's name, else (for a name matching none) its definition's head.

    `labels` holds (name, definition) pairs. The name is trusted first because definitions also name the
    look-alikes a label excludes ("proteins ... are never Chemical").
    """
    groups = vocabulary()
    found: list[str] = []
    for name, definition in labels:
        hits = [k for k, g in groups.items() if g.keywords & _name_words(name)]
        if not hits:
            hits = [k for k, g in groups.items() if g.keywords & _definition_head(definition)]
        found += [k for k in hits if k not in found]
    return [k for k in groups if k in found]


def unknown_groups(keys: list[str]) -> list[str]:
    """Keys that are not groups of the shipped vocabulary (for the spec's one-line validation error)."""
    return [k for k in keys if k not in vocabulary()]

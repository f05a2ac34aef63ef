"""Span boundary conventions from evidence: which neighbouring words a labelled reference puts inside its spans.

Why: annotation guidelines rarely say whether "mouse", "gene", "receptor" or "domain" belong to a gene
mention, and corpora disagree; the LLM then picks its own convention ("leptin" where the corpus says "leptin
receptor") and the trained model is scored wrong on every boundary. A labelled reference (`build --reference`)
answers the question with counts: for each word that stands directly before (after) a gold span of a label,
how often it is the span's first (last) token instead. Words that are inside most of the time, often enough,
and rarely a whole span by themselves become the label's convention:

- a guideline sentence and invented example spans on the label's prompt line (`LabelSpec.span_guideline`,
  `span_examples`; the examples join the task's own lexicon terms with the boundary words, never corpus text);
- span rules (`span_include`, `span_include_after`) that `export --apply-span-rules` applies
  (`medsynth.quality.span_rules`).

Only counts and single boundary words leave this module; no reference sentence or mention list does.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from statistics import mean, median
from typing import Iterable

from medsynth.records import Example
from medsynth.spec import LabelSpec, TaskSpec

_WORD = r"[A-Za-z][A-Za-z\-]*"
_BEFORE = re.compile(rf"(?<![\w-])({_WORD})\s+$")
_AFTER = re.compile(rf"\s+({_WORD})(?![\w-])")
_PLAIN = re.compile(rf"^{_WORD}$")

MIN_INSIDE = 3  # a convention needs at least this many gold spans showing it ...
MIN_SHARE = 0.005  # ... and this share of the label's spans
INSIDE_RATE = 0.6  # inside at least this often when the word neighbours a span
ALONE_RATE = 0.2  # a word that is often a whole span by itself is a mention, not a boundary word
# Name pieces a corpus writes with a space ("IL 6", "NF kappa B", "type II") pass these rules too and reach the
# prompt as boundary words ("il", "nf", "ii"). Keeping only common words (>= 3 letters, mostly lower case) was
# tried on devel and lost 1.3 F1 with more boundary errors (benchmarks/notes/gene-from-scratch.md), so they stay.
TOP_WORDS = 8
EXAMPLES = 4


class _Counts:
    """Per-label tallies over the reference's gold spans."""

    def __init__(self) -> None:
        self.lengths: list[int] = []
        self.inside = {"before": Counter(), "after": Counter()}
        self.outside = {"before": Counter(), "after": Counter()}
        self.alone: Counter = Counter()
        self.mentions: set[str] = set()


def _covered(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(s < end and start < e for s, e in spans)


def _tally(ex: Example, mapping: dict[str, str], counts: dict[str, _Counts]) -> None:
    """Add one reference example: span lengths, boundary words inside spans and neighbours outside them."""
    spans = [(e.start, e.end) for e in ex.entities]
    for e in ex.entities:
        label = mapping.get(e.label)
        if label is None:
            continue
        c, tokens = counts[label], e.text.split()
        c.lengths.append(len(tokens))
        c.mentions.add(e.text.lower())
        if len(tokens) == 1 and _PLAIN.match(tokens[0]):
            c.alone[tokens[0].lower()] += 1
        if len(tokens) >= 2:
            for side, tok in (("before", tokens[0]), ("after", tokens[-1])):
                if _PLAIN.match(tok):
                    c.inside[side][tok.lower()] += 1
        if (m := _BEFORE.search(ex.text, 0, e.start)) and not _covered(m.start(1), m.end(1), spans):
            c.outside["before"][m.group(1).lower()] += 1
        if (m := _AFTER.match(ex.text, e.end)) and not _covered(m.start(1), m.end(1), spans):
            c.outside["after"][m.group(1).lower()] += 1


def _boundary_words(c: _Counts, side: str) -> list[dict]:
    """Words inside spans on `side` most of the times they neighbour one, often enough, and rarely alone."""
    floor = max(MIN_INSIDE, MIN_SHARE * len(c.lengths))
    words = []
    for word, inside in c.inside[side].items():
        outside = c.outside[side][word]
        if inside >= floor and inside / (inside + outside) >= INSIDE_RATE and c.alone[word] < ALONE_RATE * inside:
            words.append({"word": word, "inside": inside, "outside": outside})
    return sorted(words, key=lambda w: (-w["inside"], w["word"]))[:TOP_WORDS]


def _quoted(words: list[dict], n: int = 5) -> str:
    names = [f'"{w["word"]}"' for w in words[:n]]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def guideline(label: str, conv: dict) -> str:
    """The prompt sentence for one label's conventions."""
    n = conv["median_tokens"]
    text = f"{label} spans in real text are typically {n:g} word{'' if n == 1 else 's'} long"
    sides = []
    if conv["before"]:
        sides.append(f"a directly preceding {_quoted(conv['before'])}")
    if conv["after"]:
        sides.append(f"a directly following {_quoted(conv['after'])}")
    return text + (f" and include {' and '.join(sides)} in the span." if sides else ".")


def example_spans(terms: Iterable[str], conv: dict, gold: set[str]) -> list[str]:
    """Invented spans: the task's own lexicon terms joined with the boundary words (never a gold mention)."""
    pool = [t.strip() for t in terms if t.strip() and len(t.split()) <= 2]
    pairs = [(w["word"], "before") for w in conv["before"][:2]] + [(w["word"], "after") for w in conv["after"][:2]]
    out: list[str] = []
    for i, (word, side) in enumerate(pairs):
        for term in pool[i:] + pool[:i]:
            low = term.lower()
            if low.startswith(word + " ") or low.endswith(" " + word) or low == word:
                continue
            span = f"{word} {term}" if side == "before" else f"{term} {word}"
            if span.lower() not in gold and span not in out:
                out.append(span)
                break
    return out[:EXAMPLES]


def derive_conventions(examples: list[Example], mapping: dict[str, str], task: TaskSpec) -> dict[str, dict]:
    """Per task label with gold spans: span count, token lengths, boundary words, guideline and example spans.
    `mapping` maps reference labels to task labels (see reference._task_label_map)."""
    counts: dict[str, _Counts] = defaultdict(_Counts)
    for ex in examples:
        _tally(ex, mapping, counts)
    out: dict[str, dict] = {}
    for label in task.label_names:
        c = counts.get(label)
        if c is None or not c.lengths:
            continue
        conv = {"spans": len(c.lengths), "median_tokens": round(median(c.lengths), 1),
                "mean_tokens": round(mean(c.lengths), 2),
                "before": _boundary_words(c, "before"), "after": _boundary_words(c, "after")}
        conv["guideline"] = guideline(label, conv)
        conv["examples"] = example_spans(sorted(task.lexicon.get(label, [])), conv, c.mentions)
        out[label] = conv
    return out


def _merged(words: list[str], extra: list[dict]) -> list[str]:
    seen = {w.lower() for w in words}
    return words + [w["word"] for w in extra if w["word"] not in seen]


def with_conventions(task: TaskSpec, conventions: dict[str, dict] | None) -> TaskSpec:
    """`task` with the derived conventions on its labels: guideline and examples for the prompt, boundary
    words added to the span rules. Without conventions, `task` itself (its prompts stay unchanged)."""
    if not conventions:
        return task

    def merge(lab: LabelSpec) -> LabelSpec:
        conv = conventions.get(lab.name)
        if conv is None:
            return lab
        return lab.model_copy(update={
            "span_include": _merged(lab.span_include, conv["before"]),
            "span_include_after": _merged(lab.span_include_after, conv["after"]),
            "span_guideline": conv["guideline"], "span_examples": list(conv["examples"])})

    return task.model_copy(update={"labels": [merge(lab) for lab in task.labels]})

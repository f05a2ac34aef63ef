"""Lexical and annotation diversity of a generated set — LLM outputs repeat heavily, so make it visible.

distinct-n (Li et al. 2016) is the share of n-grams that are unique across the whole set: a model writing the
same phrases over and over scores low even when no two sentences are identical. Unique mentions per label tell
whether the tagger sees many different names or the same ten; the sentence-opening table shows the template a
small model falls into ("A 45-year-old man ...").
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

from medsynth.generate.filter import normalize_text
from medsynth.spec import TaskSpec
from medsynth.records import Example

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased words (letters/digits runs, the medsynth tokenizer without its punctuation tokens)."""
    return [w.lower() for w in _WORD.findall(text)]


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique n-grams / all n-grams over the set (n-grams never cross sentence boundaries); 0.0 when none."""
    grams: Counter = Counter()
    for text in texts:
        toks = words(text)
        grams.update(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
    total = sum(grams.values())
    return round(len(grams) / total, 4) if total else 0.0


def opening(text: str, k: int = 3) -> str:
    return " ".join(words(text)[:k])


def top_openings(texts: Sequence[str], k: int = 3, top: int = 10) -> list[dict]:
    """The most repeated first-k-word openings (only those used more than once)."""
    counts = Counter(o for o in (opening(t, k) for t in texts) if o)
    n = max(len(texts), 1)
    return [{"opening": o, "count": c, "share": round(c / n, 4)} for o, c in counts.most_common(top) if c > 1]


def _label_names(examples: Sequence[Example], task: TaskSpec | None) -> list[str]:
    if task is not None:
        return task.label_names
    return sorted({e.label for ex in examples for e in ex.entities})


def mention_stats(examples: Sequence[Example], labels: list[str]) -> dict:
    """Unique mention strings (case-insensitive) per label and overall, with the unique/total ratio."""
    per_label = {}
    for lab in labels:
        ments = [e.text.lower() for ex in examples for e in ex.entities if e.label == lab]
        per_label[lab] = {"mentions": len(ments), "unique": len(set(ments)),
                          "unique_ratio": round(len(set(ments)) / len(ments), 4) if ments else 0.0}
    every = [e.text.lower() for ex in examples for e in ex.entities]
    overall = {"mentions": len(every), "unique": len(set(every)),
               "unique_ratio": round(len(set(every)) / len(every), 4) if every else 0.0}
    return {"per_label": per_label, "overall": overall}


def label_coverage(examples: Sequence[Example], labels: list[str]) -> dict:
    """Examples with at least one mention of each label; labels never used are listed (a task label the
    generator ignores is a silent hole in the training data)."""
    n = max(len(examples), 1)
    counts = {lab: sum(1 for ex in examples if any(e.label == lab for e in ex.entities)) for lab in labels}
    return {"examples_with_label": counts, "share": {k: round(v / n, 4) for k, v in counts.items()},
            "missing": [lab for lab, c in counts.items() if c == 0]}


def style_coverage(examples: Sequence[Example], task: TaskSpec | None) -> dict:
    counts = Counter(str(ex.meta.get("plan", {}).get("style", "?")) for ex in examples)
    planned = [s.name for s in task.styles] if task is not None else []
    return {"counts": dict(sorted(counts.items())),
            "covered": len([s for s in planned if counts.get(s)]) if planned else len(counts),
            "planned": len(planned), "missing": [s for s in planned if not counts.get(s)]}


def mentions_histogram(examples: Sequence[Example]) -> dict[str, int]:
    """{mentions in a sentence: sentences}, keys as strings so the dict survives JSON unchanged."""
    counts = Counter(len(ex.entities) for ex in examples)
    return {str(k): counts[k] for k in sorted(counts)}


def diversity(examples: Sequence[Example], task: TaskSpec | None = None, top: int = 10) -> dict:
    """All diversity numbers for the dataset card (JSON-ready)."""
    texts = [ex.text for ex in examples]
    labels = _label_names(examples, task)
    norms = [normalize_text(t) for t in texts]
    return {
        "examples": len(examples),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "distinct_3": distinct_n(texts, 3),
        "unique_sentences": len(set(norms)),
        "unique_sentence_ratio": round(len(set(norms)) / len(norms), 4) if norms else 0.0,
        "mentions": mention_stats(examples, labels),
        "mentions_per_sentence": mentions_histogram(examples),
        "label_coverage": label_coverage(examples, labels),
        "style_coverage": style_coverage(examples, task),
        "top_openings": top_openings(texts, 3, top),
    }

"""Why a NER system misses: every error put into one kind, plus overlap-tolerant scores.

Strict entity F1 counts a mention found with one word too many twice, as a false positive and as a false
negative. The issue behind a low score decides what to change in generation. *What* counts as a mention shows
as spurious and missed entities; *where a mention ends* (the corpus's boundary conventions) shows as boundary
errors. So the bench report splits the strict errors into those kinds and adds the overlap score. In the overlap
score an entity counts when it overlaps one of the same type. The gap between the two F1s is what boundary
conventions cost.

Works on stored prediction rows alone ({tokens, gold, pred}), like `medsynth.evaluate.scores`, so it reruns in seconds
with `bench --report-only`. It writes kinds and counts, never mention strings: the rows come from real test sets.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Sequence

from medsynth.data.tokens import Span, iob2_spans
from medsynth.records import spans_overlap

#: Kinds of a predicted entity that is not in gold (strictly), and of a gold entity that was not predicted.
PRED_KINDS = ("spurious", "boundary", "wrong_type", "boundary_and_type")
GOLD_KINDS = ("missed", "boundary", "wrong_type", "boundary_and_type")
#: How a boundary error's span sits against the other side's span.
BOUNDARY_KINDS = ("shorter", "longer", "shifted")
#: Surface shapes reported for spurious and missed entities.
SHAPES = ("abbreviation", "one_word", "multi_word")

_UPPER = re.compile(r"[A-Z]")
_LETTER = re.compile(r"[A-Za-z]")


def shape(tokens: Sequence[str]) -> str:
    """abbreviation (a short mostly-uppercase form such as 'DM', 'A-T', 'G6PD'), one_word or multi_word.

    Abbreviations get their own shape because corpora label every later use of an abbreviation. Generated
    sentences define abbreviations but seldom reuse them, so lone abbreviations are a suspected blind spot.
    """
    compact = "".join(tokens)
    letters = len(_LETTER.findall(compact))
    upper = len(_UPPER.findall(compact))
    if len(compact) <= 8 and upper >= 2 and 2 * upper >= letters:
        return "abbreviation"
    words = [t for t in tokens if _LETTER.search(t)]
    return "one_word" if len(words) <= 1 else "multi_word"


def _boundary_kind(span: Span, other: Span) -> str:
    """How `span` sits against `other` (same type, overlapping, different bounds)."""
    if other[0] <= span[0] and span[1] <= other[1]:
        return "shorter"
    if span[0] <= other[0] and other[1] <= span[1]:
        return "longer"
    return "shifted"


def _kind(span: Span, others: list[Span]) -> tuple[str, Span | None]:
    """The error kind of an unmatched entity against the other side's entities, with the entity that decided it.

    Order matters when several overlap: same bounds with another type first, then a same-type overlap
    (a boundary error), then any overlap (boundary and type)."""
    hits = [o for o in others if spans_overlap(span, o)]
    if not hits:
        return "none", None
    for o in hits:
        if o[:2] == span[:2]:
            return "wrong_type", o
    for o in hits:
        if o[2] == span[2]:
            return "boundary", o
    return "boundary_and_type", hits[0]


def sentence_errors(tokens: Sequence[str], gold: Sequence[str], pred: Sequence[str]) -> Counter:
    """Counts for one sentence. Keys: correct, predicted, gold, pred:<kind>, gold:<kind>,
    boundary:<shorter|longer|shifted> (predicted side), spurious:<shape>, missed:<shape>, and the overlap
    counts overlap_pred (predictions that overlap a gold entity of their type) and overlap_gold (gold
    entities overlapped by a prediction of their type)."""
    gs, ps = iob2_spans(gold), iob2_spans(pred)
    c: Counter = Counter(predicted=len(ps), gold=len(gs), correct=len(set(gs) & set(ps)))
    _count_side(c, tokens, ps, gs, "pred", "spurious")
    _count_side(c, tokens, gs, ps, "gold", "missed")
    return c


def _count_side(c: Counter, tokens: Sequence[str], spans: list[Span], others: list[Span], side: str,
                none_kind: str) -> None:
    """Add one side's counts: predictions against gold (`side` "pred", an unmatched one is "spurious") or gold
    against predictions ("gold", "missed"). Boundary details are kept for the predicted side only."""
    other_set = set(others)
    for s in spans:
        c[f"overlap_{side}"] += any(spans_overlap(s, o) and o[2] == s[2] for o in others)
        if s in other_set:
            continue
        kind, other = _kind(s, others)
        kind = none_kind if kind == "none" else kind
        c[f"{side}:{kind}"] += 1
        if kind == none_kind:
            c[f"{none_kind}:{shape(tokens[s[0]:s[1]])}"] += 1
        elif kind == "boundary" and side == "pred":
            c[f"boundary:{_boundary_kind(s, other)}"] += 1


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def error_summary(rows: Sequence[dict]) -> dict:
    """Error kinds and overlap scores over stored prediction rows (one system).

    Invariants the tests check: correct + the pred kinds = predicted; correct + the gold kinds = gold; the
    overlap scores are never below the strict ones."""
    total: Counter = Counter()
    for r in rows:
        total.update(sentence_errors(r["tokens"], r["gold"], r["pred"]))
    n_pred, n_gold, correct = total["predicted"], total["gold"], total["correct"]
    strict_p = correct / n_pred if n_pred else 0.0
    strict_r = correct / n_gold if n_gold else 0.0
    overlap_p = total["overlap_pred"] / n_pred if n_pred else 0.0
    overlap_r = total["overlap_gold"] / n_gold if n_gold else 0.0
    return {
        "n_sentences": len(rows),
        "predicted": n_pred,
        "gold": n_gold,
        "correct": correct,
        "strict": {"precision": strict_p, "recall": strict_r, "f1": _f1(strict_p, strict_r)},
        "overlap": {"precision": overlap_p, "recall": overlap_r, "f1": _f1(overlap_p, overlap_r)},
        "false_positives": {k: total[f"pred:{k}"] for k in PRED_KINDS},
        "false_negatives": {k: total[f"gold:{k}"] for k in GOLD_KINDS},
        "boundary": {k: total[f"boundary:{k}"] for k in BOUNDARY_KINDS},
        "spurious_shape": {k: total[f"spurious:{k}"] for k in SHAPES},
        "missed_shape": {k: total[f"missed:{k}"] for k in SHAPES},
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def errors_table(results: dict[str, dict], order: list[str], title: str) -> str:
    """Markdown: strict vs overlap F1, then where the false positives and false negatives come from."""
    lines = [f"### Errors: {title}", "",
             "| system | strict F1 | overlap F1 | predicted | correct | spurious | boundary (shorter/longer/shifted) "
             "| wrong type | boundary+type | gold | missed | missed abbreviations | gold boundary |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in order:
        r = results[name]
        fp, fn, b = r["false_positives"], r["false_negatives"], r["boundary"]
        lines.append(
            f"| {name} | {_pct(r['strict']['f1'])} | {_pct(r['overlap']['f1'])} | {r['predicted']} | {r['correct']} "
            f"| {fp['spurious']} | {fp['boundary']} ({b['shorter']}/{b['longer']}/{b['shifted']}) "
            f"| {fp['wrong_type']} | {fp['boundary_and_type']} | {r['gold']} | {fn['missed']} "
            f"| {r['missed_shape']['abbreviation']} | {fn['boundary']} |")
    return "\n".join(lines) + (
        "\n\nEvery predicted entity that is not an exact gold entity is spurious (overlaps no gold entity), a "
        "boundary error (overlaps a gold entity of its type; shorter, longer or shifted against it), wrong type "
        "(same words, other type) or boundary+type. Every gold entity not predicted exactly is missed (nothing "
        "overlaps it) or partly found. Overlap F1 counts an entity when it overlaps one of its own type, so the "
        "gap to strict F1 is the cost of boundary conventions. Abbreviations: short, mostly upper-case forms.\n")


def write_error_report(out: Path, rows_by_system: dict[str, list[dict]], order: list[str], title: str) -> dict:
    """errors.json and errors.md in OUT for the stored prediction rows of each system (read once by the caller,
    which scores the same rows)."""
    out = Path(out)
    results = {name: error_summary(rows) for name, rows in sorted(rows_by_system.items())}
    (out / "errors.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "errors.md").write_text(errors_table(results, [n for n in order if n in results], title),
                                   encoding="utf-8")
    return results

"""Relation-extraction scores: P/R/F1 over the positive labels, per-label scores, bootstrap CIs, stored predictions.

The headline number is micro P/R/F1 over every relation label except "none" — ChemProt's official micro-F1 over
the five CPR groups, and for a single relation (GAD, CDR) exactly the binary F1 of the positive class. A pair
counts as a true positive only when the predicted label equals a (non-none) gold label; predicting CPR:3 for a
CPR:4 pair is one false positive and one false negative.

Intervals: percentile bootstrap over pairs. Each pair's (correct, predicted, gold) counts are computed once and
resampled with the same numpy routine the NER scores use (`evaluate.ci_from_counts`).

Stored predictions (`re_predictions_record`): one JSON line per pair with the sentence, both entities, gold and
predicted label (and the fold), so every score recomputes from the file alone (`scores_from_re_records`).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medsynth.errors import MedsynthError
from medsynth.evaluate.scores import _prf, ci_from_counts, write_records
from medsynth.data.jsonl import json_lines
from medsynth.records import NO_RELATION, RelPair

_RECORD_KEYS = ("id", "gold", "pred")

__all__ = ["re_scores", "pair_counts", "re_predictions_record", "scores_from_re_records", "read_re_records",
           "write_records", "fold_summary"]


def _check(gold: Sequence[str], pred: Sequence[str]) -> None:
    if len(gold) != len(pred):
        raise MedsynthError(f"gold has {len(gold)} pairs but pred has {len(pred)}", field="pred")
    for side, labels in (("gold", gold), ("pred", pred)):
        for i, lab in enumerate(labels):
            if not isinstance(lab, str) or not lab:
                raise MedsynthError(f"pair {i}: label must be a non-empty string", field=side, value=lab)


def pair_counts(gold: Sequence[str], pred: Sequence[str], negative: str = NO_RELATION) -> np.ndarray:
    """(n_pairs, 3) int array of per-pair [correct, predicted positive, gold positive]."""
    _check(gold, pred)
    g = np.array([x != negative for x in gold], dtype=np.int64)
    p = np.array([x != negative for x in pred], dtype=np.int64)
    tp = np.array([a == b and a != negative for a, b in zip(gold, pred)], dtype=np.int64)
    return np.stack([tp, p, g], axis=1).reshape(-1, 3)


def re_scores(gold: Sequence[str], pred: Sequence[str], negative: str = NO_RELATION) -> dict[str, Any]:
    """Micro and macro P/R/F1 over positive labels, and per-label scores (support = gold pairs)."""
    counts = pair_counts(gold, pred, negative)
    overall = {**_prf(*(float(x) for x in counts.sum(axis=0))), "support": int(counts[:, 2].sum())}
    labels = sorted({x for x in (*gold, *pred) if x != negative})
    per_label = {}
    for lab in labels:
        tp = sum(1 for a, b in zip(gold, pred) if a == b == lab)
        n_pred = sum(1 for b in pred if b == lab)
        n_gold = sum(1 for a in gold if a == lab)
        per_label[lab] = {**_prf(tp, n_pred, n_gold), "support": n_gold}
    gold_labels = [lab for lab in labels if per_label[lab]["support"]]
    macro = float(np.mean([per_label[lab]["f1"] for lab in gold_labels])) if gold_labels else 0.0
    accuracy = float(np.mean([a == b for a, b in zip(gold, pred)])) if gold else 0.0
    return {"overall": overall, "macro_f1": macro, "per_label": per_label, "accuracy": accuracy,
            "n_pairs": len(gold)}


# ---------------------------------------------------------------------------------------------------------------
# stored predictions


def re_predictions_record(pairs: Sequence[RelPair], pred: Sequence[str], system: str,
                          probs: Sequence[dict[str, float]] | None = None, fold: int | None = None) -> list[dict]:
    """One JSON-able row per pair: {system, id, fold, source, text, head, tail, gold, pred[, probs]}."""
    if len(pairs) != len(pred):
        raise MedsynthError(f"{len(pairs)} pairs but {len(pred)} predictions", field="pred")
    rows = []
    for i, (p, lab) in enumerate(zip(pairs, pred)):
        row = {"system": system, "id": p.id, "fold": fold, "source": p.meta.get("source", ""), "text": p.text,
               "head": p.head.model_dump(), "tail": p.tail.model_dump(), "gold": p.label, "pred": lab}
        if probs is not None:
            row["probs"] = {k: round(float(v), 5) for k, v in probs[i].items()}
        rows.append(row)
    return rows


def read_re_records(path: str | Path) -> list[dict]:
    """Rows written by `write_records`; a bad line is one error naming FILE:LINE."""
    rows = []
    for where, row in json_lines(path, "predictions file", _RECORD_KEYS):
        for k in ("gold", "pred"):
            if not isinstance(row[k], str) or not row[k]:
                raise MedsynthError("label must be a non-empty string", where=where, field=k, value=row[k])
        rows.append(row)
    return rows


def fold_summary(per_fold: dict[str, float]) -> dict[str, float]:
    """Mean and sample standard deviation over folds (sd 0 for a single fold)."""
    vals = list(per_fold.values())
    return {"mean": float(np.mean(vals)), "sd": float(statistics.stdev(vals)) if len(vals) > 1 else 0.0,
            "n_folds": len(vals)}


def scores_from_re_records(rows: Sequence[dict], n: int = 1000, seed: int = 13, alpha: float = 0.05) -> dict:
    """{system, n_pairs, overall, macro_f1, per_label, accuracy, ci, folds?}: pooled scores with a pair
    bootstrap CI; when rows come from several folds, per-fold F1 and their mean ± sd as well (the GAD
    convention reports the fold mean)."""
    if not rows:
        raise MedsynthError("no prediction rows to score")
    systems = {r.get("system", "") for r in rows}
    if len(systems) > 1:
        raise MedsynthError(f"rows mix several systems; score them one at a time: {', '.join(sorted(systems))}")
    gold = [r["gold"] for r in rows]
    pred = [r["pred"] for r in rows]
    out = {"system": systems.pop(), **re_scores(gold, pred),
           "ci": ci_from_counts(pair_counts(gold, pred), n=n, seed=seed, alpha=alpha)}
    folds = sorted({r.get("fold") for r in rows if r.get("fold") is not None})
    if folds:
        per_fold = {}
        for k in folds:
            sub = [r for r in rows if r.get("fold") == k]
            per_fold[str(k)] = re_scores([r["gold"] for r in sub], [r["pred"] for r in sub])["overall"]
        out["folds"] = {"per_fold": per_fold,
                        **{m: fold_summary({k: v[m] for k, v in per_fold.items()}) for m in ("precision", "recall",
                                                                                              "f1")}}
    return out

"""Scores for both benchmark kinds, bootstrap confidence intervals and stored predictions.

NER (`entity_scores`): seqeval's strict IOB2 entity matching (an entity counts only when type, start and end all
match), the convention of the NCBI-disease / BC5CDR literature, so numbers are comparable with published ones.

Relations (`re_scores`): micro P/R/F1 over every relation label except "none" — ChemProt's official micro-F1 over
the five CPR groups, and for a single relation (GAD, CDR) exactly the binary F1 of the positive class. A pair
counts as a true positive only when the predicted label equals a (non-none) gold label; predicting CPR:3 for a
CPR:4 pair is one false positive and one false negative.

A single F1 on a few hundred sentences says little on its own, so every score comes with a bootstrap interval
over sentences (NER) or pairs (RE). Resampling re-runs seqeval far too slowly, so `sentence_counts` computes each
sentence's (correct, predicted, gold) entity counts once with a span extractor equivalent to seqeval strict IOB2
(the tests check it against seqeval on random tag sequences), `pair_counts` does the same per pair, and the
bootstrap only resamples those counts with numpy (`ci_from_counts`, shared by both kinds).

Predictions are stored one row per sentence (`predictions_record`) or pair (`re_predictions_record`) so that
scores and intervals can be recomputed from the stored rows (`scores_from_records`, `scores_from_re_records`)
without running any model again.
"""

from __future__ import annotations

import re
import statistics
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from medsynth.errors import MedsynthError
from medsynth.data.jsonl import json_lines, write_jsonl
from medsynth.data.tokens import Span, iob2_spans  # noqa: F401  (scores and diagnose read word spans alike)
from medsynth.records import NO_RELATION, RelPair

# Same rule as medsynth.data.corpora.ner: O, or B-/I- plus a type seqeval will not alter (no whitespace, no edge '-').
_TAG_RE = re.compile(r"^(?:O|[BI]-[^\s\-](?:\S*[^\s\-])?)$")
_CHUNK = 200  # resamples per numpy batch: bounds memory at about _CHUNK * n_sentences * 8 bytes



def _check(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], what: str = "pred") -> None:
    """Same number of sentences, same length per sentence, and only IOB2 tags: seqeval would raise a bare
    ValueError (or, for odd tags, quietly parse them differently) on any of these."""
    if len(gold) != len(pred):
        raise MedsynthError(f"gold has {len(gold)} sentences but {what} has {len(pred)}", field=what)
    seen: set[str] = set()
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise MedsynthError(f"sentence {i}: gold has {len(g)} tags but {what} has {len(p)}", field=what)
        for side, tags in (("gold", g), (what, p)):
            for j, tag in enumerate(tags):
                if tag in seen:
                    continue
                if not isinstance(tag, str) or not _TAG_RE.match(tag):
                    raise MedsynthError(
                        f"sentence {i} token {j}: tag is not O, B-TYPE or I-TYPE (IOB2)", field=side, value=tag
                    )
                seen.add(tag)


def sentence_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> np.ndarray:
    """(n_sentences, 3) int array of per-sentence [correct, predicted, gold] entity counts (strict matching)."""
    _check(gold, pred)
    out = np.zeros((len(gold), 3), dtype=np.int64)
    for i, (g, p) in enumerate(zip(gold, pred)):
        gs, ps = iob2_spans(g), iob2_spans(p)
        out[i] = (len(set(gs) & set(ps)) if gs and ps else 0, len(ps), len(gs))
    return out


def _prf(tp: float, n_pred: float, n_gold: float) -> dict[str, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0  # == 2PR/(P+R), and 0 when tp == 0
    return {"precision": float(p), "recall": float(r), "f1": float(f)}


def entity_scores(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """seqeval strict IOB2 entity-level scores.

    Returns {"overall": {precision, recall, f1, support, predicted, correct}, "per_type": {type: {precision,
    recall, f1, support}}}; values are floats in 0..1, support (gold entities) and counts are ints. A type only
    predicted, never in gold, appears with support 0. When nothing is to be found and nothing is predicted, all
    scores are 0 (seqeval would return NaN with a warning).
    """
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    gold = [list(s) for s in gold]
    pred = [list(s) for s in pred]
    counts = sentence_counts(gold, pred)  # also validates shapes and tags
    correct, predicted, support = (int(x) for x in counts.sum(axis=0))
    overall: dict[str, Any] = {**_prf(0, 0, 0), "support": support, "predicted": predicted, "correct": correct}
    per_type: dict[str, dict] = {}
    if predicted or support:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zero_division=0 is the intended convention, not news
            report = classification_report(
                gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
            )
        for name, row in report.items():
            scores = {
                "precision": float(row["precision"]),
                "recall": float(row["recall"]),
                "f1": float(row["f1-score"]),
                "support": int(row["support"]),
            }
            if name == "micro avg":
                overall.update(scores)
            elif not name.endswith(" avg"):
                per_type[name] = scores
    return {"overall": overall, "per_type": dict(sorted(per_type.items()))}


def _resample_sums(counts: np.ndarray, n: int, seed: int) -> np.ndarray:
    """(n, 3) sums of `counts` over n bootstrap resamples of its rows (sentences)."""
    m = len(counts)
    rng = np.random.default_rng(seed)
    sums = np.empty((n, counts.shape[1]), dtype=np.int64)
    cols = [np.ascontiguousarray(counts[:, k]) for k in range(counts.shape[1])]
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        idx = rng.integers(0, m, size=(hi - lo, m))
        for k, col in enumerate(cols):
            sums[lo:hi, k] = col[idx].sum(axis=1)
    return sums


def _prf_arrays(sums: np.ndarray) -> dict[str, np.ndarray]:
    tp, n_pred, n_gold = (sums[:, k].astype(float) for k in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 0.0)
        r = np.where(n_gold > 0, tp / np.maximum(n_gold, 1), 0.0)
        f = np.where(n_pred + n_gold > 0, 2 * tp / np.maximum(n_pred + n_gold, 1), 0.0)
    return {"precision": p, "recall": r, "f1": f}


def _check_bootstrap_args(n: int, alpha: float, m: int) -> None:
    if m == 0:
        raise MedsynthError("no sentences to bootstrap")
    if n < 1:
        raise MedsynthError("number of bootstrap resamples must be positive", field="n", value=n)
    if not 0 < alpha < 1:
        raise MedsynthError("alpha must lie strictly between 0 and 1", field="alpha", value=alpha)


def ci_from_counts(counts: np.ndarray, n: int = 1000, seed: int = 13, alpha: float = 0.05) -> dict:
    """Percentile bootstrap intervals from per-sentence counts (see `sentence_counts`)."""
    counts = np.asarray(counts, dtype=np.int64).reshape(-1, 3)
    _check_bootstrap_args(n, alpha, len(counts))
    stats = _prf_arrays(_resample_sums(counts, n, seed))
    q = [alpha / 2, 1 - alpha / 2]
    return {k: tuple(float(x) for x in np.quantile(v, q)) for k, v in stats.items()}


def bootstrap_ci(
    gold: list[list[str]], pred: list[list[str]], n: int = 1000, seed: int = 13, alpha: float = 0.05
) -> dict:
    """Sentence-level percentile bootstrap of overall P/R/F1: {"f1": (lo, hi), "precision": ..., "recall": ...}.

    Sentences, not entities, are resampled because entities in one sentence are not independent (a boundary
    error often costs a false positive and a false negative together).
    """
    return ci_from_counts(sentence_counts(gold, pred), n=n, seed=seed, alpha=alpha)


def paired_bootstrap(
    gold: list[list[str]], pred_a: list[list[str]], pred_b: list[list[str]], n: int = 1000, seed: int = 13
) -> dict:
    """Paired bootstrap test that system A's F1 beats system B's on the same sentences (Koehn 2004).

    Both systems are scored on the same resampled sentences each round; `p_value` is the share of rounds in
    which A's F1 is not above B's (one-sided). Returns {"f1_a", "f1_b", "delta", "p_value", "n"}.
    """
    ca, cb = sentence_counts(gold, pred_a), sentence_counts(gold, pred_b)
    _check_bootstrap_args(n, 0.05, len(ca))
    both = np.concatenate([ca, cb], axis=1)  # resample the same rows for A and B
    sums = _resample_sums(both, n, seed)
    fa = _prf_arrays(sums[:, :3])["f1"]
    fb = _prf_arrays(sums[:, 3:])["f1"]
    point_a = _prf(*ca.sum(axis=0))["f1"]
    point_b = _prf(*cb.sum(axis=0))["f1"]
    return {
        "f1_a": point_a,
        "f1_b": point_b,
        "delta": point_a - point_b,
        "p_value": float(np.mean(fa - fb <= 0)),
        "n": n,
    }


# ---------------------------------------------------------------------------------------------------------------
# stored predictions

_RECORD_KEYS = ("source", "tokens", "gold", "pred")


def predictions_record(sentences: Sequence[Any], pred_tags: Sequence[Sequence[str]], system: str) -> list[dict]:
    """One JSON-able row per sentence: {system, source, tokens, gold, pred}.

    `sentences` are `medsynth.data.corpora.ner.IOBSentence`s (anything with .tokens, .tags, .source). Storing tokens and
    both tag sequences makes every score recomputable from the file alone.
    """
    if len(sentences) != len(pred_tags):
        raise MedsynthError(f"{len(sentences)} sentences but {len(pred_tags)} predictions", field="pred_tags")
    rows = []
    for i, (sent, pred) in enumerate(zip(sentences, pred_tags)):
        if len(pred) != len(sent.tokens):
            raise MedsynthError(
                f"sentence {i}: {len(sent.tokens)} tokens but {len(pred)} predicted tags", where=sent.source
            )
        rows.append(
            {"system": system, "source": sent.source, "tokens": list(sent.tokens), "gold": list(sent.tags),
             "pred": list(pred)}
        )
    return rows


def _check_rows(rows: Sequence[dict]) -> str:
    systems = set()
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise MedsynthError("prediction row is not an object", field=f"rows[{i}]", value=type(row).__name__)
        for key in _RECORD_KEYS:
            if key not in row:
                raise MedsynthError(f"prediction row lacks {key!r}", field=f"rows[{i}]", value=row.get("source"))
        if not (len(row["tokens"]) == len(row["gold"]) == len(row["pred"])):
            raise MedsynthError(
                f"prediction row has {len(row['tokens'])} tokens, {len(row['gold'])} gold and {len(row['pred'])} "
                "pred tags",
                field=f"rows[{i}]",
                value=row["source"],
            )
        systems.add(row.get("system", ""))
    if len(systems) > 1:
        raise MedsynthError(f"rows mix several systems; score them one at a time: {', '.join(sorted(systems))}")
    return systems.pop() if systems else ""


def scores_from_records(rows: Sequence[dict], n: int = 1000, seed: int = 13, alpha: float = 0.05) -> dict:
    """Recompute scores and intervals from stored rows: {system, n_sentences, overall, per_type, ci}."""
    system = _check_rows(rows)
    gold = [list(r["gold"]) for r in rows]
    pred = [list(r["pred"]) for r in rows]
    scores = entity_scores(gold, pred)
    return {
        "system": system,
        "n_sentences": len(rows),
        **scores,
        "ci": bootstrap_ci(gold, pred, n=n, seed=seed, alpha=alpha),
    }


def same_sentences(a: Sequence[dict], b: Sequence[dict]) -> bool:
    """Whether two prediction records hold the same test sentences in the same order: the same tokens and gold
    tags. Not the `source` field, which carries the data folder's path and so differs between machines (and
    between `--data-dir` copies) for one and the same test split."""
    return len(a) == len(b) and all(x["tokens"] == y["tokens"] and x["gold"] == y["gold"] for x, y in zip(a, b))


def write_records(path: str | Path, rows: Iterable[dict]) -> Path:
    """Store rows as JSON Lines (one sentence per line, greppable and diffable), atomically."""
    return write_jsonl(path, rows)


def read_records(path: str | Path) -> list[dict]:
    """Rows written by `write_records`; a bad line is an error naming FILE:LINE."""
    rows = []
    for where, row in json_lines(path, "predictions file", _RECORD_KEYS):
        _check_record(row, where)
        rows.append(row)
    return rows


def _check_record(row: dict, where: str) -> None:
    """Shape of one stored row, checked where the file and line are still known (scoring would otherwise
    fail later on a bare index, or — for a string where a list belongs — count its characters as tokens)."""
    for key in ("tokens", "gold", "pred"):
        seq = row[key]
        if not isinstance(seq, list) or not all(isinstance(x, str) for x in seq):
            raise MedsynthError("must be a list of strings", where=where, field=key, value=str(seq)[:60])
    if not len(row["tokens"]) == len(row["gold"]) == len(row["pred"]):
        raise MedsynthError(f"{len(row['tokens'])} tokens, {len(row['gold'])} gold and {len(row['pred'])} pred "
                            "tags; they must match", where=where, field="pred", value=row.get("source"))
    for key in ("gold", "pred"):
        for tag in row[key]:
            if not _TAG_RE.match(tag):
                raise MedsynthError("tag is not O, B-TYPE or I-TYPE (IOB2)", where=where, field=key, value=tag)


# ---------------------------------------------------------------------------------------------------------------
# relation scores


def _check_labels(gold: Sequence[str], pred: Sequence[str]) -> None:
    if len(gold) != len(pred):
        raise MedsynthError(f"gold has {len(gold)} pairs but pred has {len(pred)}", field="pred")
    for side, labels in (("gold", gold), ("pred", pred)):
        for i, lab in enumerate(labels):
            if not isinstance(lab, str) or not lab:
                raise MedsynthError(f"pair {i}: label must be a non-empty string", field=side, value=lab)


def pair_counts(gold: Sequence[str], pred: Sequence[str], negative: str = NO_RELATION) -> np.ndarray:
    """(n_pairs, 3) int array of per-pair [correct, predicted positive, gold positive]."""
    _check_labels(gold, pred)
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


# stored relation predictions

_RE_RECORD_KEYS = ("id", "gold", "pred")


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
    for where, row in json_lines(path, "predictions file", _RE_RECORD_KEYS):
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

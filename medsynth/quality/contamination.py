"""Benchmark contamination: 13-gram overlap between generated texts and benchmark test sentences.

Why: medsynth's numbers are only honest if the generator did not copy (or was not prompted with) the test set.
An LLM trained on PubMed may reproduce NCBI-disease or BC5CDR sentences verbatim; a synthetic example sharing a
13-word run with a test sentence (the GPT-3 / Llama decontamination convention) is flagged, and so is a short
text that equals a test sentence outright. Any overlap is flagged — a single copied sentence inflates a test
score for that sentence.

Texts are compared as lower-cased word sequences (letters/digits runs), so the benchmark's tokenised form
("ataxia - telangiectasia ( A - T )") and ordinary text ("ataxia-telangiectasia (A-T)") meet.
"""

from __future__ import annotations

from functools import lru_cache

import logging
from pathlib import Path
from typing import Iterable, Sequence

from medsynth.errors import MedsynthError
from medsynth.quality.diversity import words
from medsynth.records import Example

log = logging.getLogger(__name__)

DEFAULT_N = 13
MIN_WHOLE_WORDS = 6
# NER benchmark test splits read through medsynth.data.corpora.ner (bc5cdr holds both the chemical and disease files'
# sentences, so loading it once covers all three BC5CDR variants).
DEFAULT_CORPORA = ("ncbi-disease", "bc5cdr")


def ngrams(toks: Sequence[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))


def _as_items(texts: Sequence[str | Example], ids: Sequence[str] | None) -> list[tuple[str, str]]:
    items = []
    for i, t in enumerate(texts):
        if isinstance(t, Example):
            items.append((t.id, t.text))
        else:
            items.append((ids[i] if ids is not None else str(i), str(t)))
    return items


def contamination(texts: Sequence[str | Example], reference_texts: Sequence[str], n: int = DEFAULT_N,
                  ids: Sequence[str] | None = None, max_listed: int = 50) -> dict:
    """Which generated texts share an n-gram (or their whole text) with any reference text.

    `texts` are Examples (their ids are reported) or strings (ids from `ids`, else positions).
    """
    ref_grams: set[tuple[str, ...]] = set()
    ref_whole: set[tuple[str, ...]] = set()
    for ref in reference_texts:
        toks = words(ref)
        ref_grams.update(ngrams(toks, n))
        if MIN_WHOLE_WORDS <= len(toks) < n:  # "Results :" equals many short texts; copying it means nothing
            ref_whole.add(tuple(toks))
    flagged: list[str] = []
    overlapping: set[tuple[str, ...]] = set()
    for ex_id, text in _as_items(texts, ids):
        toks = words(text)
        hits = {g for g in ngrams(toks, n) if g in ref_grams}
        if tuple(toks) in ref_whole:
            hits.add(tuple(toks))
        if hits:
            flagged.append(ex_id)
            overlapping |= hits
    total = len(texts)
    shown = sorted(" ".join(g) for g in overlapping)
    return {
        "n": n,
        "examples": total,
        "reference_texts": len(reference_texts),
        "flagged": len(flagged),
        "share": round(len(flagged) / total, 4) if total else 0.0,
        "flagged_ids": flagged,
        "overlapping_ngrams": shown[:max_listed],
        "overlapping_ngram_count": len(overlapping),
    }


def benchmark_test_texts(data_dir: str | Path | None = None,
                         corpora: Sequence[str] = DEFAULT_CORPORA) -> dict[str, list[str]]:
    """{corpus: detokenised test sentences} for the benchmark corpora found; {} when no data directory exists.

    A missing data directory is normal (a pip install has no benchmarks), so it yields nothing rather than an
    error; a corpus whose files are absent is skipped with a log line. RE corpora are not IOB files: pass their
    texts to `contamination` directly.
    """
    from medsynth.data.corpora.ner import resolve_data_dir

    try:
        root = resolve_data_dir(data_dir)
    except MedsynthError:
        return {}
    return _test_texts(str(root), tuple(corpora))


@lru_cache(maxsize=4)
def _test_texts(root: str, corpora: tuple[str, ...]) -> dict[str, list[str]]:
    """Parsed once per process: every export of every build checks contamination against the same files."""
    from medsynth.data.corpora.ner import load_corpus
    from medsynth.data.tokens import detokenize

    out: dict[str, list[str]] = {}
    for name in corpora:
        try:
            out[name] = [detokenize(s.tokens)[0] for s in load_corpus(name, "test", root)]
        except MedsynthError as err:
            log.info("contamination: skipping %s (%s)", name, err)
    return out


def contamination_against_benchmarks(texts: Sequence[str | Example], data_dir: str | Path | None = None,
                                     n: int = DEFAULT_N) -> dict | None:
    """`contamination` against every default benchmark test split present, per corpus and in total;
    None when no benchmark data is available."""
    refs = benchmark_test_texts(data_dir)
    if not refs:
        return None
    per = {name: contamination(texts, ref, n) for name, ref in refs.items()}
    every = [t for ref in refs.values() for t in ref]
    return {**contamination(texts, every, n), "per_corpus": {k: {kk: v[kk] for kk in ("flagged", "share")}
                                                              for k, v in per.items()}}

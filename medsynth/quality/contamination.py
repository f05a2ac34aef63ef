"""Benchmark contamination: 13-gram overlap between generated texts and benchmark test sentences, and how much of
a task's lexicon (and of the generated mentions) the benchmarks annotate as mentions.

Why: medsynth's numbers are only honest if the generator did not copy (or was not prompted with) the test set.
An LLM trained on PubMed may reproduce NCBI-disease or BC5CDR sentences verbatim; a synthetic example sharing a
13-word run with a test sentence (the GPT-3 / Llama decontamination convention) is flagged, and so is a short
text that equals a test sentence outright. Any overlap is flagged — a single copied sentence inflates a test
score for that sentence.

Lexicon overlap: a seed lexicon written from knowledge of a field will share terms with any corpus of that field;
that is expected, but a large share of terms that are mentions of the *test* split means the synthetic data
rehearses exactly what is scored. The card reports, for each benchmark found and its train and test splits, the
share of the task's lexicon terms and of the distinct generated mentions that occur there as annotated mentions.

Benchmarks are any `read_corpus` specs (presets by default; a user's corpus path works the same).

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
        root = str(resolve_data_dir(data_dir))
    except MedsynthError:
        root = ""  # no benchmark folder: presets are skipped, a user's corpus path is still read
    return _test_texts(root, _readable(root, corpora))


def _readable(root: str, corpora: Sequence[str]) -> tuple[str, ...]:
    """The specs worth trying: all with a benchmark folder, else only existing paths."""
    return tuple(corpora) if root else tuple(c for c in corpora if Path(c).exists())


@lru_cache(maxsize=4)
def _test_texts(root: str, corpora: tuple[str, ...]) -> dict[str, list[str]]:
    """Parsed once per process: every export of every build checks contamination against the same files."""
    from medsynth.data.corpora import read_corpus
    from medsynth.data.tokens import detokenize

    out: dict[str, list[str]] = {}
    for name in corpora:
        try:
            corpus = read_corpus(name, "ner", data_dir=root or None)
            out[name] = [detokenize(s.tokens)[0] for s in corpus.split("test")]
        except MedsynthError as err:
            log.info("contamination: skipping %s (%s)", name, err)
    return out


def contamination_against_benchmarks(texts: Sequence[str | Example], data_dir: str | Path | None = None,
                                     n: int = DEFAULT_N, corpora: Sequence[str] = DEFAULT_CORPORA) -> dict | None:
    """`contamination` against every benchmark test split present (`corpora`: any `read_corpus` specs), per
    corpus and in total; None when no benchmark data is available."""
    refs = benchmark_test_texts(data_dir, corpora)
    if not refs:
        return None
    per = {name: contamination(texts, ref, n) for name, ref in refs.items()}
    every = [t for ref in refs.values() for t in ref]
    return {**contamination(texts, every, n), "per_corpus": {k: {kk: v[kk] for kk in ("flagged", "share")}
                                                              for k, v in per.items()}}


# --- lexicon overlap ----------------------------------------------------------------------------------------------

OVERLAP_SPLITS = ("train", "test")


def _norm(text: str) -> str:
    return " ".join(words(text))


def benchmark_mentions(data_dir: str | Path | None = None, corpora: Sequence[str] = DEFAULT_CORPORA
                       ) -> dict[str, dict[str, set[str]]]:
    """{corpus: {split: normalised annotated mention strings}} for the train and test splits found; {} when there
    is no benchmark data (as `benchmark_test_texts`)."""
    from medsynth.data.corpora.ner import resolve_data_dir

    try:
        root = str(resolve_data_dir(data_dir))
    except MedsynthError:
        root = ""
    return _mentions(root, _readable(root, corpora))


@lru_cache(maxsize=4)
def _mentions(root: str, corpora: tuple[str, ...]) -> dict[str, dict[str, set[str]]]:
    from medsynth.data.corpora import read_corpus

    out: dict[str, dict[str, set[str]]] = {}
    for name in corpora:
        try:
            corpus = read_corpus(name, "ner", data_dir=root or None)
            splits = {s: _sentence_mentions(corpus.split(s)) for s in OVERLAP_SPLITS if s in corpus.splits}
        except MedsynthError as err:
            log.info("lexicon overlap: skipping %s (%s)", name, err)
            continue
        if splits:
            out[name] = splits
    return out


def _sentence_mentions(sentences: list) -> set[str]:
    """Normalised mention strings of IOB2 sentences (any entity type)."""
    found: set[str] = set()
    for s in sentences:
        current: list[str] = []
        for tok, tag in [*zip(s.tokens, s.tags), ("", "O")]:
            if tag.startswith("I-") and current:
                current.append(tok)
                continue
            if current:
                found.add(_norm(" ".join(current)))
            current = [tok] if tag.startswith("B-") else []
    return found - {""}


def lexicon_overlap(lexicon_terms: Sequence[str], generated_mentions: Sequence[str],
                    mentions: dict[str, dict[str, set[str]]], max_listed: int = 20) -> dict:
    """Per corpus and split: how many (and which, up to `max_listed`) lexicon terms and distinct generated
    mentions occur as annotated mentions there."""
    terms = sorted({_norm(t) for t in lexicon_terms} - {""})
    generated = sorted({_norm(m) for m in generated_mentions} - {""})
    per: dict[str, dict] = {}
    for name, splits in mentions.items():
        per[name] = {}
        for split, found in splits.items():
            hit_terms = [t for t in terms if t in found]
            hit_gen = [m for m in generated if m in found]
            per[name][split] = {
                "lexicon_terms": len(hit_terms),
                "lexicon_share": round(len(hit_terms) / len(terms), 4) if terms else 0.0,
                "generated_mentions": len(hit_gen),
                "generated_share": round(len(hit_gen) / len(generated), 4) if generated else 0.0,
                "lexicon_terms_listed": hit_terms[:max_listed]}
    return {"lexicon_size": len(terms), "distinct_generated_mentions": len(generated), "per_corpus": per}


def lexicon_overlap_against_benchmarks(examples: Sequence[Example], task: object, data_dir: str | Path | None = None,
                                       corpora: Sequence[str] = DEFAULT_CORPORA) -> dict | None:
    """`lexicon_overlap` of the task's lexicon and the examples' mentions against the benchmarks found; None
    when none is."""
    mentions = benchmark_mentions(data_dir, corpora)
    if not mentions:
        return None
    lexicon = [t for terms in getattr(task, "lexicon", {}).values() for t in terms]
    generated = [e.text for ex in examples for e in ex.entities]
    return lexicon_overlap(lexicon, generated, mentions)

"""Real benchmark test sets (and train splits, for the supervised upper bound) read from IOB2 files.

Synthetic data is only worth what it scores on human-annotated text, so every number medsynth reports comes from
these loaders. They are strict on purpose: a silently mis-read tag or a shifted column would corrupt every score
computed downstream, so bad input stops with one line naming the file, the line and the value.

File format (MTL-Bioinformatics-2016 / BioBERT / BLURB NER files): one token per line, `token TAB tag`, a blank
line between sentences. Extra middle columns (CoNLL-style POS/chunk columns) are accepted: the first column is
the token and the last column is the tag, and every line of a file must have the same number of columns.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, TypeVar

from medsynth.data.corpora.base import SPLITS, IOBSentence, canonical_split
from medsynth.data.corpora.conll import read_conll
from medsynth.errors import MedsynthError

log = logging.getLogger(__name__)

ENV_DATA_DIR = "MEDSYNTH_DATA_DIR"


@dataclass
class CorpusInfo:
    name: str
    labels: list[str]
    files: dict[str, Path]  # split -> file
    description: str


@dataclass(frozen=True)
class _CorpusDef:
    folder: str  # relative to the data dir; holds {train,devel,test}.tsv
    labels: tuple[str, ...]
    description: str
    files: dict[str, str] = field(default_factory=lambda: {s: f"{s}.tsv" for s in SPLITS})


CORPORA: dict[str, _CorpusDef] = {
    "ncbi-disease": _CorpusDef(
        "ncbi-disease/MTL-Bioinformatics-2016/NCBI-disease-IOB",
        ("Disease",),
        "NCBI-disease (Dogan et al. 2014), PubMed abstracts, disease mentions; MTL-Bioinformatics-2016 IOB2 files",
    ),
    "bc5cdr-chem": _CorpusDef(
        "bc5cdr/MTL-Bioinformatics-2016/BC5CDR-chem-IOB",
        ("Chemical",),
        "BioCreative V CDR (Li et al. 2016), chemical mentions only; MTL-Bioinformatics-2016 IOB2 files",
    ),
    "bc5cdr-disease": _CorpusDef(
        "bc5cdr/MTL-Bioinformatics-2016/BC5CDR-disease-IOB",
        ("Disease",),
        "BioCreative V CDR (Li et al. 2016), disease mentions only; MTL-Bioinformatics-2016 IOB2 files",
    ),
    "bc5cdr": _CorpusDef(
        "bc5cdr/MTL-Bioinformatics-2016/BC5CDR-IOB",
        ("Chemical", "Disease"),
        "BioCreative V CDR (Li et al. 2016), chemical and disease mentions; MTL-Bioinformatics-2016 IOB2 files",
    ),
}


def list_corpora() -> list[str]:
    return sorted(CORPORA)


# ---------------------------------------------------------------------------------------------------------------
# data directory


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[3]  # medsynth/data/corpora/ner.py -> the checkout


def data_dir_candidates() -> list[Path]:
    """Where the data is looked for when neither `--data-dir` nor MEDSYNTH_DATA_DIR is given, in order.

    CI checks the repo out with `../shared` beside it; a user may instead keep `shared/` inside the clone.
    """
    return [_repo_root().parent / "shared" / "data", Path.cwd() / "shared" / "data"]


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """`data_dir` argument > env MEDSYNTH_DATA_DIR > <repo>/../shared/data > ./shared/data.

    An explicit choice (argument or env) that does not exist is an error rather than a silent fall-back: scoring
    against a different copy of the data than the user asked for would be worse than stopping.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise MedsynthError("data directory not found", where=str(path), field="--data-dir")
        return path
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise MedsynthError(f"data directory named by {ENV_DATA_DIR} not found", where=str(path))
        return path
    candidates = data_dir_candidates()
    for path in candidates:
        if path.is_dir():
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise MedsynthError(
        f"benchmark data directory not found; looked in {looked}; pass --data-dir or set {ENV_DATA_DIR}"
    )


def _canonical_split(split: str) -> str:
    key = canonical_split(split)
    if key is None:
        raise MedsynthError(f"unknown split; known splits: {', '.join(SPLITS)} (or dev)", field="split", value=split)
    return key


def _corpus_def(name: str) -> _CorpusDef:
    if name not in CORPORA:
        raise MedsynthError(f"unknown corpus; known corpora: {', '.join(list_corpora())}", field="corpus", value=name)
    return CORPORA[name]


def corpus_info(name: str, data_dir: str | Path | None = None) -> CorpusInfo:
    """The corpus's labels and resolved split files (files are not checked for existence here)."""
    spec = _corpus_def(name)
    root = resolve_data_dir(data_dir) / spec.folder
    return CorpusInfo(
        name=name,
        labels=list(spec.labels),
        files={split: root / fname for split, fname in spec.files.items()},
        description=spec.description,
    )


# ---------------------------------------------------------------------------------------------------------------
# reading IOB files


def read_iob(path: str | Path, *, repair: bool = True) -> list[IOBSentence]:
    """Read a token-TAB-tag IOB2 file into sentences (the strict reading every built-in preset uses).

    Tolerated: `\\r\\n` line ends, a UTF-8 BOM, a missing final blank line, runs of blank lines, spaces around
    columns, `-DOCSTART-` lines (treated as sentence breaks), extra middle columns (first column = token, last =
    tag, same count on every line).

    An I- tag that opens an entity (after O, at sentence start, or after another type: IOB1 style) is not valid
    IOB2, and seqeval's strict mode would silently drop that entity from the gold standard. With `repair=True`
    (the default) it is turned into B-, counted in `IOBSentence.repaired` and logged; with `repair=False` it is
    an error.

    Errors (MedsynthError, "FILE:LINE, value ...: reason"): a tag that is not O / B-TYPE / I-TYPE, a line without
    a tab, a column count that changes within the file, an empty token or one containing whitespace, bytes that
    are not UTF-8, a file with no sentences. `conll.read_conll` is the lenient sibling (spaces, BIOES, comments).
    """
    return read_conll(path, sep="\t", scheme="iob2", comments=False, repair=repair)


def load_corpus(name: str, split: str = "test", data_dir: str | Path | None = None) -> list[IOBSentence]:
    """Sentences of one split of a known corpus; tags of a type the corpus does not declare are an error."""
    info = corpus_info(name, data_dir)
    key = _canonical_split(split)
    path = info.files[key]
    if not path.is_file():
        raise MedsynthError(f"{name} {key} file not found (is the data directory complete?)", where=str(path))
    sentences = read_iob(path)
    allowed = set(info.labels)
    for sent in sentences:
        for i, tag in enumerate(sent.tags):
            if tag != "O" and tag[2:] not in allowed:
                file, _, line = sent.source.rpartition(":")
                raise MedsynthError(
                    f"label not declared for corpus {name} (labels: {', '.join(info.labels)})",
                    where=f"{file}:{int(line) + i}",
                    value=tag,
                )
    return sentences


def corpus_labels(sentences: Sequence[IOBSentence]) -> list[str]:
    """Entity types that actually occur in `sentences`, sorted."""
    return sorted({t[2:] for s in sentences for t in s.tags if t != "O"})


# ---------------------------------------------------------------------------------------------------------------
# labels and sampling


def label_mapping(
    task_labels: list[str], corpus_labels: list[str], mapping: dict[str, str] | None = None
) -> dict[str, str]:
    """Which corpus label each task label's predictions count as: {task label: corpus label}.

    Default: identity by case-insensitive name ("disease" -> "Disease"); `mapping` entries ({task: corpus})
    override or extend it, and several task labels may map onto one corpus label (e.g. Drug and Chemical ->
    Chemical).

    A corpus label that no task label maps onto is an error: the model could never predict it, so recall would
    be capped for a reason that has nothing to do with the data (pick the single-type corpus, e.g.
    bc5cdr-disease, or pass a mapping). Task labels the corpus lacks are left out of the returned mapping and
    their predictions are dropped (turned into O) before scoring: the corpus never annotated them, so counting
    them as false positives would punish the model for the corpus's scope.
    """
    by_lower = {c.lower(): c for c in corpus_labels}
    result = {t: by_lower[t.lower()] for t in task_labels if t.lower() in by_lower}
    for task_label, corpus_label in (mapping or {}).items():
        if task_label not in task_labels:
            raise MedsynthError(
                f"label mapping names a label the task does not have (task labels: {', '.join(task_labels)})",
                field="mapping",
                value=task_label,
            )
        if corpus_label not in corpus_labels:
            raise MedsynthError(
                f"label mapping targets a label the corpus does not have (corpus labels: {', '.join(corpus_labels)})",
                field=f"mapping.{task_label}",
                value=corpus_label,
            )
        result[task_label] = corpus_label
    missing = [c for c in corpus_labels if c not in result.values()]
    if missing:
        raise MedsynthError(
            f"test split has labels the task does not have: {', '.join(missing)} (corpus labels: "
            f"{', '.join(corpus_labels)}; task labels: {', '.join(task_labels)}); choose a corpus with only the "
            "task's types or pass a label mapping"
        )
    return result


def map_tags(tags: list[str], mapping: dict[str, str]) -> list[str]:
    """Rename predicted task-label tags to corpus labels; tags of unmapped task labels become O."""
    out = []
    for tag in tags:
        if tag == "O":
            out.append(tag)
            continue
        target = mapping.get(tag[2:])
        out.append(f"{tag[:2]}{target}" if target else "O")
    return out


T = TypeVar("T")


def sample(sentences: Sequence[T], limit: int | None, seed: int = 13) -> list[T]:
    """A fixed, seeded subset of `limit` sentences for `--limit`, in corpus order.

    Seeded rather than "the first N" because corpus files are ordered by document: the first N sentences are a
    handful of abstracts, not a sample of the test set. The same seed and limit always pick the same sentences,
    so runs with different systems stay comparable.
    """
    items = list(sentences)
    if limit is None or limit >= len(items):
        return items
    if limit < 1:
        raise MedsynthError("limit must be a positive number of sentences", field="--limit", value=limit)
    keep = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in keep]

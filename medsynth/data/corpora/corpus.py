"""`read_corpus(spec, kind)`: one entry point for every annotated corpus, a built-in preset or a user's path.

A spec is a preset name (`ncbi-disease`, `bc5cdr-chem`, `bc5cdr-disease`, `bc5cdr`, `chemprot-gene` for NER;
`gad`, `chemprot`, `bc5cdr-cid` for RE) or a path:

- a file is the test split (any format `readers.detect_format` knows);
- a folder holding files or sub-folders named by split (`train`, `devel` / `dev` / `validation`, `test`, also
  inside longer names such as `ncbi_train.tsv` or `chemprot_test_gs/`) gives those splits;
- a folder that is itself one split (a BRAT folder holding `.txt` + `.ann` files, a saved `datasets` Dataset)
  is the test split, and a saved DatasetDict gives its own splits (each split folder is a saved Dataset);
- a medsynth run folder (no split names, but `data.jsonl` / `pairs.jsonl`) is the test split.

Records are those the built-in loaders always returned, so callers need no change: `IOBSentence`s for NER,
`RelPair`s for RE. Splits are read when first asked for and kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from medsynth.data.corpora import ner, rel
from medsynth.data.corpora.base import SPLITS, IOBSentence, canonical_split, entity_types, read_text
from medsynth.data.corpora.labels import map_pair, map_sentence, resolve_label_map
from medsynth.data.corpora.readers import FORMATS, Raw, detect_format, hf_split_names, read_raw
from medsynth.data.corpora.spans import SpanDoc, ner_sentences, re_pairs, relation_signatures
from medsynth.errors import MedsynthError
from medsynth.records import NO_RELATION, RelPair

KINDS = ("ner", "re")
NER_PRESETS = (*ner.list_corpora(), "chemprot-gene")
RE_PRESETS = rel.RE_DATASETS
_RE_PRESET_LABELS = {"gad": ("Gene", "Disease", "Association"),
                     "chemprot": ("Chemical", "Gene", *rel.CHEMPROT_GROUPS),
                     "bc5cdr-cid": ("Chemical", "Disease", "CID")}
_SPLIT_WORD = re.compile(r"[^a-z0-9]+")

Records = list  # list[IOBSentence] for NER, list[RelPair] for RE


@dataclass
class Corpus:
    """An annotated corpus: its split names, and each split's records on demand (label map applied)."""

    name: str  # the spec as given
    kind: str  # "ner" or "re"
    format: str  # "preset" or one of readers.FORMATS
    splits: list[str]  # canonical names present, in train, devel, test order
    declared: list[str] | None = None  # a preset's labels; None: found by reading every split
    label_map: dict[str, str] | None = None
    task_labels: Sequence[str] | None = None
    _load: Callable[[str], tuple[Records, dict[str, Any]]] | None = None
    _cache: dict[str, tuple[Records, dict[str, Any]]] = field(default_factory=dict)
    _mapping: dict[str, str] | None = None

    def _raw(self, split: str) -> tuple[Records, dict[str, Any]]:
        if split not in self._cache:
            assert self._load is not None
            records, stats = self._load(split)
            if not records:
                what = "sentences" if self.kind == "ner" else "candidate pairs"
                raise MedsynthError(f"the {split} split holds no {what} (empty split)", where=self.name)
            self._cache[split] = (records, stats)
        return self._cache[split]

    def corpus_labels(self) -> list[str]:
        """Labels as the corpus spells them (entity types; for RE also relation names), before the label map."""
        if self.declared is not None:
            return list(self.declared)
        found: set[str] = set()
        for split in self.splits:
            records, _ = self._raw(split)
            if self.kind == "ner":
                found |= {t for s in records for t in entity_types(s.tags)}
            else:
                found |= {x for p in records for x in (p.head.label, p.tail.label, p.label) if x != NO_RELATION}
        return sorted(found)

    def mapping(self) -> dict[str, str]:
        """{corpus label: task label or "O"}; unknown labels on either side are one error (labels.py)."""
        if self._mapping is None and not self.label_map and self.task_labels is None:
            return {}  # identity: no need to read every split to learn the labels
        if self._mapping is None:
            self._mapping = resolve_label_map(self.corpus_labels(), self.label_map, self.task_labels, self.name)
        return self._mapping

    @property
    def labels(self) -> list[str]:
        """Labels after the label map (what the records carry), sorted."""
        mapping = self.mapping()
        return sorted({mapping.get(c, c) for c in self.corpus_labels()} - {"O"})

    def split(self, name: str = "test") -> Records:
        """Records of one split (`dev` / `validation` are `devel`); a split the corpus lacks is one error."""
        key = canonical_split(name)
        if key not in self.splits:
            raise MedsynthError(f"no such split; this corpus has: {', '.join(self.splits)}", where=self.name,
                                field="split", value=name)
        records, _ = self._raw(key)
        mapping = self.mapping()
        if all(k == v for k, v in mapping.items()):
            return records
        if self.kind == "ner":
            return [map_sentence(s, mapping) for s in records]
        return [p for p in (map_pair(p, mapping) for p in records) if p is not None]

    def describe(self, name: str = "test") -> dict[str, Any]:
        """What a result was scored or trained on, for `.meta.json`, `train_log.json` and cards: the spec, its
        format, the split, how many records and their content hash (after the label map), so two results can be
        told to come from the same data even when the files moved."""
        records = self.split(name)
        return {"spec": self.name, "format": self.format, "split": canonical_split(name) or name,
                "records": len(records), "content_hash": records_hash(records),
                "label_map": dict(self.label_map or {})}

    def stats(self, name: str = "test") -> dict[str, Any]:
        """What reading the split skipped or repaired (repairs, discontinuous or lost relations, ...)."""
        key = canonical_split(name) or name
        records, stats = self._raw(key)
        if self.kind == "ner":
            return {**stats, "sentences": len(records), "repaired_tags": sum(s.repaired for s in records)}
        return dict(stats)


def records_hash(records: Records) -> str:
    """A short sha256 of a split's records (tokens and tags, or relation pairs), independent of file layout and
    format: the same sentences read from CoNLL or BRAT hash alike only if tokens and tags agree."""
    import hashlib
    import json

    digest = hashlib.sha256()
    for r in records:
        row = [r.tokens, r.tags] if isinstance(r, IOBSentence) else r.model_dump(mode="json", exclude={"split"})
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()[:16]


# --- presets ------------------------------------------------------------------------------------------------------


def _chemprot_gene(split: str, data_dir: str | Path | None) -> tuple[list[IOBSentence], dict[str, Any]]:
    """Gene mentions (GENE-Y and GENE-N, as one `Gene` type) of ChemProt's abstracts, sentence by sentence.

    Sentences are cut exactly as the `chemprot` RE preset cuts them (no cut inside any chemical or gene mention, the
    title always its own sentence), so the NER and RE views of ChemProt agree on sentence boundaries.
    """
    key = rel._split("chemprot", split)
    folder, abstracts, entities, _ = rel._CHEMPROT_FILES[key]
    base = ner.resolve_data_dir(data_dir) / rel._CHEMPROT_DIR / folder
    docs = rel._chemprot_docs(base / abstracts)
    ents = rel._chemprot_entities(base / entities, docs)
    lines = {ln.split("\t", 1)[0]: no for no, ln in enumerate(read_text(base / abstracts).split("\n"), start=1)}
    span_docs = []
    for pmid, (title, abstract) in docs.items():
        doc_ents = ents.get(pmid, {})
        span_docs.append(SpanDoc(
            id=pmid, text=title + " " + abstract, source=str(base / abstracts), line=lines.get(pmid, 1),
            entities={t: e for t, e in doc_ents.items() if e.label == "Gene"},
            breaks=[len(title) + 1], protected=[(e.start, e.end) for e in doc_ents.values() if e.label != "Gene"]))
    stats: dict[str, Any] = {"documents": len(span_docs)}
    return ner_sentences(span_docs, stats), stats


def _preset(spec: str, kind: str, data_dir: str | Path | None, fold: int) -> Corpus:
    if kind == "ner":
        if spec == "chemprot-gene":
            return Corpus(spec, kind, "preset", list(SPLITS), declared=["Gene"],
                          _load=lambda s: _chemprot_gene(s, data_dir))
        labels = ner.corpus_info(spec, data_dir).labels
        return Corpus(spec, kind, "preset", list(SPLITS), declared=labels,
                      _load=lambda s: (ner.load_corpus(spec, s, data_dir), {}))

    def load_re(split: str) -> tuple[list[RelPair], dict[str, Any]]:
        c = rel.load_re_corpus(spec, split, data_dir, fold=fold)
        return c.pairs, c.stats

    splits = ["train", "test"] if spec == "gad" else list(SPLITS)
    return Corpus(spec, kind, "preset", splits, declared=list(_RE_PRESET_LABELS[spec]), _load=load_re)


# --- paths --------------------------------------------------------------------------------------------------------


def _split_of(child: Path) -> str | None:
    """The split a file or folder name stands for ('ncbi_train.tsv' -> train), None when it names none."""
    stem = child.name.split(".")[0].lower() if child.is_file() else child.name.lower()
    found = {canonical_split(w) for w in _SPLIT_WORD.split(stem) if w} - {None}
    if len(found) > 1:
        raise MedsynthError(f"name fits several splits ({', '.join(sorted(found))}); rename it", where=str(child))
    return found.pop() if found else None


def _split_children(folder: Path) -> dict[str, tuple[Path, str]]:
    """{split: (path, format)} of the folder's split-named children with a readable format."""
    out: dict[str, tuple[Path, str]] = {}
    for child in sorted(folder.iterdir()):
        if child.name.startswith(".") or child.suffix.lower() == ".ann":
            continue
        fmt = detect_format(child)
        split = _split_of(child) if fmt else None
        if split is None:
            continue
        if split in out:
            raise MedsynthError(f"two candidates for the {split} split: {out[split][0].name} and {child.name}",
                                where=str(folder))
        out[split] = (child, fmt)  # type: ignore[assignment]
    return out


def _layout(path: Path, kind: str, fmt: str | None) -> dict[str, tuple[Path, str]]:
    """{split: (path, format)} for a user's path (see the module docstring)."""
    if not path.exists():
        raise MedsynthError("corpus not found: neither a file or folder nor a preset "
                            f"(presets: {', '.join(NER_PRESETS if kind == 'ner' else RE_PRESETS)})", where=str(path))
    if path.is_file() or (fmt or detect_format(path)) == "brat":  # a folder of .txt + .ann is one split
        found = fmt or detect_format(path)
        if found is None:
            raise MedsynthError(f"cannot tell the corpus format from the name; known formats: {', '.join(FORMATS)} "
                                "(token files .tsv/.conll/.iob/.bio/.bioes/.txt, .jsonl, .spacy, BRAT or datasets "
                                "folders)", where=str(path))
        return {"test": (path, found)}
    if (fmt or detect_format(path)) == "hf":
        names = hf_split_names(path)
        if names is None:
            return {"test": (path, "hf")}
        got: dict[str, tuple[Path, str]] = {}
        for name in names:
            key = canonical_split(name)
            if key and key not in got:
                got[key] = (path / name, "hf")
        if not got:
            raise MedsynthError(f"saved DatasetDict has no train/validation/test split (has {', '.join(names)})",
                                where=str(path))
        return got
    children = _split_children(path)
    if fmt:
        children = {k: (p, fmt) for k, (p, _) in children.items()}
    if children:
        return children
    for name in (("pairs.jsonl", "data.jsonl") if kind == "re" else ("data.jsonl",)):
        if (path / name).is_file():
            return {"test": (path / name, "jsonl")}
    raise MedsynthError("folder holds no corpus: no train/devel/test files or folders, no BRAT .txt + .ann, no "
                        "saved datasets, no data.jsonl", where=str(path))


def _records(raw: Raw, kind: str, split: str, prefix: str, signatures: set[tuple[str, str]], where: Path) -> Records:
    """NER sentences or RE pairs from one raw split; a format that cannot give the kind is one error."""
    if kind == "ner":
        if raw.pairs is not None:
            raise MedsynthError("holds relation pairs (pairs.jsonl), not NER annotations; use kind 're'",
                                where=str(where))
        return raw.sentences if raw.sentences is not None else ner_sentences(raw.docs or [], raw.stats)
    if raw.sentences is not None:
        raise MedsynthError("token/tag files hold no relations; relation corpora are BRAT folders, data.jsonl with "
                            "relations, or pairs.jsonl", where=str(where))
    return raw.pairs if raw.pairs is not None else re_pairs(raw.docs or [], split, prefix, signatures, raw.stats)


def _path_corpus(spec: str, path: Path, kind: str, fmt: str | None) -> Corpus:
    layout = _layout(path, kind, fmt)
    raws: dict[str, Raw] = {}

    def raw(split: str) -> Raw:
        if split not in raws:
            p, f = layout[split]
            raws[split] = read_raw(p, f, split)
        return raws[split]

    def load(split: str) -> tuple[Records, dict[str, Any]]:
        signatures: set[tuple[str, str]] = set()
        if kind == "re":  # candidate types come from the relations of every split, so splits agree on candidates
            signatures = relation_signatures(d for s in layout for d in (raw(s).docs or []))
        r = raw(split)
        return _records(r, kind, split, path.stem, signatures, layout[split][0]), r.stats

    ordered = [s for s in SPLITS if s in layout]
    return Corpus(spec, kind, layout[ordered[0]][1], ordered, _load=load)


def read_corpus(spec: str | Path, kind: str = "ner", *, label_map: dict[str, str] | None = None,
                task_labels: Sequence[str] | None = None, data_dir: str | Path | None = None, fold: int = 1,
                fmt: str | None = None) -> Corpus:
    """The corpus named by `spec` (a preset name or a path; see the module docstring).

    `label_map` ({corpus label: task label}, see `labels.parse_label_map`) renames labels; with `task_labels`
    (for RE: the task's entity labels and relation names) every corpus label must end up a task label. Both checks
    run when the first split is read. `data_dir` and `fold` (GAD) only matter for presets; `fmt` forces a format.
    """
    if kind not in KINDS:
        raise MedsynthError(f"unknown corpus kind; known: {', '.join(KINDS)}", field="kind", value=kind)
    if fmt is not None and fmt not in FORMATS:
        raise MedsynthError(f"unknown corpus format; known formats: {', '.join(FORMATS)}", field="format", value=fmt)
    text = str(spec)
    presets = NER_PRESETS if kind == "ner" else RE_PRESETS
    if text in presets and not Path(text).exists():
        corpus = _preset(text, kind, data_dir, fold)
    elif text in (RE_PRESETS if kind == "ner" else NER_PRESETS) and not Path(text).exists():
        raise MedsynthError(f"{text} is a {'relation' if kind == 'ner' else 'NER'} preset; {kind} presets: "
                            f"{', '.join(presets)}", field="corpus", value=text)
    else:
        corpus = _path_corpus(text, Path(text).expanduser(), kind, fmt)
    corpus.label_map, corpus.task_labels = label_map, task_labels
    return corpus

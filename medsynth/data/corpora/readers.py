"""Reading one split of any supported format into `Raw`: token sentences, span documents or relation pairs.

`corpus.read_corpus` picks the reader from the path (see `detect_format`); this module only knows formats, not
splits, presets or label maps. Formats:

- `conll`: token-per-line files (`conll.read_conll`: CoNLL / IOB1 / IOB2 / BIOES, tab or space separated);
- `brat`: a folder of `.txt` + `.ann` standoff files (`brat.read_brat`);
- `jsonl`: JSON Lines, one object per line, in one of three shapes, told apart by their keys:
  medsynth's own `data.jsonl` (`text`, `entities[{start, end, label, text?}]`, `relations[{head, tail, label}]`
  with head/tail indexing `entities`), token rows (`tokens` + `tags` or `ner_tags`, string tags), or
  `pairs.jsonl` relation pairs (`RelPair`: `text`, `head`, `tail`, `label`);
- `spacy`: a spaCy `DocBin` file (`.spacy`); entities from `doc.ents`, one sentence per `doc.sents` when the docs
  carry sentence boundaries, else one per doc; whitespace tokens are left out;
- `hf`: a Hugging Face `datasets` folder written by `save_to_disk` (`tokens` + `ner_tags`, ClassLabel or string).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsynth.data.corpora.base import ANY_SCHEME_TAG_RE, IOBSentence
from medsynth.data.corpora.brat import read_brat
from medsynth.data.corpora.conll import read_conll, to_iob2
from medsynth.data.corpora.rel import read_pairs
from medsynth.data.corpora.spans import SpanDoc, SpanRelation
from medsynth.data.jsonl import json_lines
from medsynth.errors import MedsynthError
from medsynth.records import Entity, RelPair

FORMATS = ("conll", "brat", "jsonl", "spacy", "hf")
CONLL_SUFFIXES = (".tsv", ".conll", ".conllu", ".iob", ".iob2", ".bio", ".bioes", ".txt", ".tab", ".csv")


@dataclass
class Raw:
    """One split as its format gives it: exactly one of the three lists is set."""

    sentences: list[IOBSentence] | None = None
    docs: list[SpanDoc] | None = None
    pairs: list[RelPair] | None = None
    stats: dict[str, Any] = field(default_factory=dict)


def detect_format(path: Path) -> str | None:
    """The format of one split's file or folder, from its name and (for folders) its contents; None if unknown."""
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "state.json").is_file() \
                or (path / "dataset_dict.json").is_file():
            return "hf"
        if any(p.with_suffix(".ann").is_file() for p in path.glob("*.txt")):
            return "brat"
        return None
    suffix = path.suffix.lower()
    if suffix == ".spacy":
        return "spacy"
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in CONLL_SUFFIXES:
        return "conll"
    return None


def read_raw(path: Path, fmt: str, split: str) -> Raw:
    """One split (a file or, for BRAT / saved datasets, a folder) in format `fmt`."""
    if fmt == "conll":
        return Raw(sentences=read_conll(path))
    if fmt == "brat":
        docs, stats = read_brat(path)
        return Raw(docs=docs, stats=stats)
    if fmt == "jsonl":
        return read_jsonl_corpus(path)
    if fmt == "spacy":
        return Raw(sentences=read_docbin(path))
    if fmt == "hf":
        return Raw(sentences=read_hf_split(path, split))
    raise MedsynthError(f"unknown corpus format; known formats: {', '.join(FORMATS)}", field="format", value=fmt)


# --- JSON Lines ---------------------------------------------------------------------------------------------------


def _entity(where: str, text: str, i: int, raw: Any) -> Entity:
    if not isinstance(raw, dict) or not all(k in raw for k in ("start", "end", "label")):
        raise MedsynthError("entity needs start, end and label", where=where, field=f"entities.{i}", value=raw)
    s, e, label = raw["start"], raw["end"], raw["label"]
    if not (isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(text)) or not isinstance(label, str):
        raise MedsynthError(f"offsets must be whole numbers with 0 <= start < end <= {len(text)} (text length)",
                            where=where, field=f"entities.{i}", value=f"{s}:{e}")
    if "text" in raw and raw["text"] != text[s:e]:
        raise MedsynthError(f"entity text does not match text[{s}:{e}] = {text[s:e]!r}", where=where,
                            field=f"entities.{i}.text", value=raw["text"])
    return Entity(start=s, end=e, label=label, text=text[s:e])


def _span_row(where: str, row: dict, n: int) -> SpanDoc:
    text = row["text"]
    if not isinstance(text, str):
        raise MedsynthError("text must be a string", where=where, field="text", value=text)
    ents = row.get("entities") or []
    rels = row.get("relations") or []
    if not isinstance(ents, list) or not isinstance(rels, list):
        raise MedsynthError("entities and relations must be lists", where=where, field="entities")
    doc = SpanDoc(id=str(row.get("id", n)), text=text, source=where, presplit=True,
                  entities={str(i): _entity(where, text, i, e) for i, e in enumerate(ents)})
    for i, r in enumerate(rels):
        ok = isinstance(r, dict) and all(isinstance(r.get(k), int) and str(r[k]) in doc.entities
                                         for k in ("head", "tail")) and isinstance(r.get("label"), str)
        if not ok:
            raise MedsynthError("relation needs head and tail (indexes into entities) and a label", where=where,
                                field=f"relations.{i}", value=r)
        doc.relations.append(SpanRelation(str(r["head"]), str(r["tail"]), r["label"]))
    return doc


def _token_row(where: str, row: dict) -> IOBSentence:
    key = "tags" if "tags" in row else "ner_tags"
    tokens, tags = row["tokens"], row[key]
    if not (isinstance(tokens, list) and all(isinstance(t, str) and t and not any(c.isspace() for c in t)
                                             for t in tokens)):
        raise MedsynthError("tokens must be a list of non-empty strings without whitespace", where=where,
                            field="tokens", value=tokens)
    if not (isinstance(tags, list) and len(tags) == len(tokens)):
        raise MedsynthError(f"{key} must be a list as long as tokens ({len(tokens)})", where=where, field=key,
                            value=tags)
    for tag in tags:
        if not isinstance(tag, str) or not ANY_SCHEME_TAG_RE.match(tag):
            raise MedsynthError("tag is not O or B-/I-/E-/S-TYPE", where=where, field=key, value=tag)
    iob, repaired = to_iob2([(where, t) for t in tags])
    return IOBSentence(list(tokens), iob, where, repaired)


def read_jsonl_corpus(path: Path) -> Raw:
    """A JSON Lines split in any of the three shapes (module docstring); shapes may not be mixed in one file."""
    docs: list[SpanDoc] = []
    sents: list[IOBSentence] = []
    pair_rows = 0
    for where, row in json_lines(path, "JSON Lines corpus"):
        if not isinstance(row, dict):
            raise MedsynthError("row must be a JSON object", where=where, value=row)
        if "head" in row and "tail" in row:
            pair_rows += 1
        elif "text" in row:
            docs.append(_span_row(where, row, len(docs)))
        elif "tokens" in row and ("tags" in row or "ner_tags" in row):
            sents.append(_token_row(where, row))
        else:
            raise MedsynthError("row needs text + entities (data.jsonl), tokens + tags, or text + head + tail "
                                "(pairs.jsonl)", where=where, value=sorted(row))
    shapes = [bool(docs), bool(sents), bool(pair_rows)]
    if sum(shapes) > 1:
        raise MedsynthError("file mixes row shapes (data.jsonl rows, token rows, relation pairs); use one",
                            where=str(path))
    if pair_rows:
        return Raw(pairs=read_pairs(path))
    if sents:
        return Raw(sentences=sents)
    if docs:
        return Raw(docs=docs, stats={"documents": len(docs)})
    raise MedsynthError("JSON Lines corpus holds no rows (empty split?)", where=str(path))


# --- spaCy DocBin -------------------------------------------------------------------------------------------------


def read_docbin(path: Path) -> list[IOBSentence]:
    """Sentences of a `.spacy` DocBin (needs only spaCy's blank vocabulary, no model download)."""
    import spacy
    from spacy.tokens import DocBin

    try:
        docs = list(DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab))
    except Exception as err:  # spaCy raises ValueError / msgpack errors / OSError for a file that is not a DocBin
        raise MedsynthError(f"not a spaCy DocBin file ({type(err).__name__})", where=str(path)) from None
    out: list[IOBSentence] = []
    for di, doc in enumerate(docs):
        spans = list(doc.sents) if doc.has_annotation("SENT_START") else [doc[:]]
        for span in spans:
            toks = [t for t in span if not t.is_space]
            if not toks:
                continue
            tags = ["O" if t.ent_iob_ in ("O", "") else f"{t.ent_iob_}-{t.ent_type_}" for t in toks]
            iob, repaired = to_iob2([(f"{path}#doc{di}", t) for t in tags])
            out.append(IOBSentence([t.text for t in toks], iob, f"{path}#doc{di}:{span.start_char}", repaired))
    if not out:
        raise MedsynthError("spaCy DocBin holds no sentences (empty split?)", where=str(path))
    return out


# --- Hugging Face datasets (save_to_disk) -------------------------------------------------------------------------


def hf_split_names(path: Path) -> list[str] | None:
    """The split names of a saved DatasetDict folder, or None for a single saved Dataset."""
    import json

    dd = path / "dataset_dict.json"
    if not dd.is_file():
        return None
    try:
        return list(json.loads(dd.read_text(encoding="utf-8"))["splits"])
    except (ValueError, KeyError, TypeError) as err:
        raise MedsynthError(f"unreadable dataset_dict.json ({type(err).__name__})", where=str(dd)) from None


def read_hf_split(path: Path, split: str) -> list[IOBSentence]:
    """Rows of one saved split (`split` is the DatasetDict key; ignored for a single Dataset)."""
    from datasets import Dataset, load_from_disk

    try:
        data = load_from_disk(str(path))
    except Exception as err:  # datasets raises FileNotFoundError / ValueError for folders it cannot read
        raise MedsynthError(f"not a datasets folder saved with save_to_disk ({type(err).__name__})",
                            where=str(path)) from None
    ds = data if isinstance(data, Dataset) else data[split]
    where = f"{path}/{split}" if not isinstance(data, Dataset) else str(path)
    tag_key = "ner_tags" if "ner_tags" in ds.features else "tags"
    if "tokens" not in ds.features or tag_key not in ds.features:
        raise MedsynthError("saved dataset needs 'tokens' and 'ner_tags' columns", where=where,
                            value=sorted(ds.features))
    feature = getattr(ds.features[tag_key], "feature", None)
    names = getattr(feature, "names", None)
    out: list[IOBSentence] = []
    for i, row in enumerate(ds):
        row_where = f"{where}:{i}"
        tags = [names[t] if names is not None and isinstance(t, int) else t for t in row[tag_key]]
        out.append(_token_row(row_where, {"tokens": row["tokens"], "tags": tags}))
    if not out:
        raise MedsynthError("saved dataset split holds no rows (empty split)", where=where)
    return out

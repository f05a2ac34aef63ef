"""Real relation-extraction benchmarks read as `RelPair`s (one candidate entity pair in one sentence).

Relation classifiers train and are scored on candidate pairs, so each loader turns its corpus into the same
unit the generation side writes to `pairs.jsonl`, with *task* entity labels (Gene, Disease, Chemical) and task
relation names (or "none"). How pairs are formed:

- `gad` — BioBERT's 10-fold GAD files (`RE/GAD/<fold>/{train,test}.tsv`). One row = one pair; the gene and the
  disease are already masked as `@GENE$` / `@DISEASE$` in the sentence, so the head/tail spans are those masks
  (which stay in the text). Label 1 → "Association", 0 → "none". `train.tsv` has no header, `test.tsv` has
  `index<TAB>sentence<TAB>label`; both are accepted in either file. There is no development split.
- `chemprot` — the original BioCreative VI files. Entity offsets are relative to `title + " " + abstract` (checked
  on every mention). Each document is split into sentences (`split_sentences`), and every CHEMICAL × GENE
  (GENE-Y or GENE-N) pair inside one sentence is a candidate; its label is the CPR group from
  `gold_standard.tsv` (CPR:3/4/5/6/9, the five evaluated groups) or "none". Gold relations whose arguments sit in
  different sentences, or whose two spans overlap, cannot be candidates; they are counted in `stats`.
- `bc5cdr-cid` — the PubTator CDR files, sentence level: every Chemical mention × Disease mention that co-occur
  in one sentence is a pair (mention level, so one CID fact may yield several pairs); the label is "CID" when
  the document's CID relations link any MeSH id of the chemical to any MeSH id of the disease (composite ids
  `D1|D2` count each part; `-1` links nothing). CID is a *document*-level relation, so gold CID facts whose
  chemical and disease never share a sentence are lost to a sentence-level system; they are counted in `stats`.

Sentence splitter (why a custom one: no model download, deterministic, and it must never cut an entity): a
boundary is `.`, `!` or `?` (optionally followed by a closing quote/bracket) + whitespace + an uppercase letter,
digit or opening bracket, unless the word before the period is a common abbreviation (e.g., i.e., et al., vs.,
Fig., ...) or a single capital initial; the title/abstract separator is always a boundary; and any boundary that
falls inside an entity mention is dropped, so mentions never straddle two sentences.

Errors are one line (MedsynthError) naming FILE:LINE and the value, like `corpora.read_iob`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from medsynth.data.corpora.base import read_text
from medsynth.data.corpora.ner import resolve_data_dir
from medsynth.errors import MedsynthError
from medsynth.data.jsonl import write_jsonl
from medsynth.records import NO_RELATION, Entity, RelPair

RE_DATASETS = ("bc5cdr-cid", "chemprot", "gad")
DEFAULT_TASK = {"gad": "gad", "chemprot": "chemprot", "bc5cdr-cid": "cdr"}
GAD_FOLDS = tuple(range(1, 11))
CHEMPROT_GROUPS = ("CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9")

_GAD_DIR = "gad/biomedbert-biobert-datasets/RE/GAD"
_CHEMPROT_DIR = "chemprot/Aitslab-nlp_2021/chemprot"
_CHEMPROT_FILES = {  # split -> folder, abstracts, entities, gold standard
    "train": ("chemprot_training", "chemprot_training_abstracts.tsv", "chemprot_training_entities.tsv",
              "chemprot_training_gold_standard.tsv"),
    "devel": ("chemprot_development", "chemprot_development_abstracts.tsv", "chemprot_development_entities.tsv",
              "chemprot_development_gold_standard.tsv"),
    "test": ("chemprot_test_gs", "chemprot_test_abstracts_gs.tsv", "chemprot_test_entities_gs.tsv",
             "chemprot_test_gold_standard.tsv"),
}
_CDR_FILES = {"train": "CDR_TrainingSet.PubTator.txt", "devel": "CDR_DevelopmentSet.PubTator.txt",
              "test": "CDR_TestSet.PubTator.txt"}
_CDR_DIR = "bc5cdr/bmip-2018/original-data"
_SPLIT_ALIASES = {"dev": "devel", "validation": "devel", "valid": "devel", "val": "devel", "development": "devel"}


@dataclass
class RECorpus:
    """Pairs of one split plus what the loader had to leave out (so reports can say how much recall is capped)."""

    pairs: list[RelPair]
    stats: dict[str, Any] = field(default_factory=dict)


def list_re_datasets() -> list[str]:
    return list(RE_DATASETS)


def _check_dataset(name: str) -> str:
    if name not in RE_DATASETS:
        raise MedsynthError(f"unknown relation dataset; known datasets: {', '.join(RE_DATASETS)}",
                            field="--dataset", value=name)
    return name


def _split(name: str, split: str) -> str:
    key = _SPLIT_ALIASES.get(split.lower(), split.lower())
    allowed = ("train", "test") if name == "gad" else ("train", "devel", "test")
    if key not in allowed:
        raise MedsynthError(f"{name} has no such split; known splits: {', '.join(allowed)}", field="split", value=split)
    return key


def _read_text(path: Path) -> str:
    return read_text(path, "file (is the data directory complete?)")


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    """(line number, line without its line end) for every non-blank line; split on \\n only (see read_iob)."""
    for lineno, line in enumerate(_read_text(path).split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield lineno, line


def load_re(name: str, split: str = "test", data_dir: str | Path | None = None, fold: int = 1) -> list[RelPair]:
    """Pairs of one split of a relation benchmark (see the module docstring for how pairs are formed)."""
    return load_re_corpus(name, split, data_dir, fold).pairs


def load_re_corpus(name: str, split: str = "test", data_dir: str | Path | None = None, fold: int = 1) -> RECorpus:
    name = _check_dataset(name)
    key = _split(name, split)
    root = resolve_data_dir(data_dir)
    if name == "gad":
        if fold not in GAD_FOLDS:
            raise MedsynthError("GAD folds are 1..10", field="--folds", value=fold)
        return read_gad(root / _GAD_DIR / str(fold) / f"{key}.tsv", split=key, fold=fold)
    if name == "chemprot":
        folder, *files = _CHEMPROT_FILES[key]
        base = root / _CHEMPROT_DIR / folder
        return read_chemprot(*(base / f for f in files), split=key)
    return read_pubtator_cid(root / _CDR_DIR / _CDR_FILES[key], split=key)


# ---------------------------------------------------------------------------------------------------------------
# GAD

_GAD_MASKS = (("@GENE$", "Gene"), ("@DISEASE$", "Disease"))


def read_gad(path: str | Path, split: str = "test", fold: int = 1) -> RECorpus:
    """One pair per row: head = the @GENE$ mask (Gene), tail = the @DISEASE$ mask (Disease)."""
    path = Path(path)
    pairs: list[RelPair] = []
    for lineno, line in _lines(path):
        cols = line.split("\t")
        if cols == ["index", "sentence", "label"]:
            continue
        where = f"{path}:{lineno}"
        if len(cols) not in (2, 3):
            raise MedsynthError("expected 'sentence<TAB>label' or 'index<TAB>sentence<TAB>label'", where=where,
                                value=line)
        text, lab = cols[-2], cols[-1].strip()
        if lab not in ("0", "1"):
            raise MedsynthError("label must be 0 or 1", where=where, value=lab)
        ents = []
        for mask, label in _GAD_MASKS:
            if text.count(mask) != 1:
                raise MedsynthError(f"sentence must hold exactly one {mask}", where=where, value=text)
            s = text.index(mask)
            ents.append(Entity(start=s, end=s + len(mask), label=label, text=mask))
        pairs.append(RelPair(id=f"gad-{fold}-{split}-{len(pairs):05d}", text=text, head=ents[0], tail=ents[1],
                             label="Association" if lab == "1" else NO_RELATION, split=split,
                             meta={"source": where, "fold": fold}))
    if not pairs:
        raise MedsynthError("GAD file holds no rows", where=str(path))
    return RECorpus(pairs, {"pairs": len(pairs), "fold": fold})


# ---------------------------------------------------------------------------------------------------------------
# sentence splitting

_ABBREV = {"e.g", "i.e", "al", "vs", "fig", "figs", "ref", "refs", "approx", "ca", "dr", "mr", "mrs", "ms", "no",
           "nos", "vol", "resp", "cf", "etc", "st", "inc", "ltd", "co", "sp", "spp", "var", "eq", "viz", "min", "max"}
_BOUNDARY = re.compile(r"[.!?][\"')\]]*(\s+)(?=[A-Z0-9(\[])")


def split_sentences(text: str, protected: Iterable[tuple[int, int]] = (), breaks: Iterable[int] = ()) -> list[tuple[int, int]]:
    """[start, end) character spans of sentences (trimmed of surrounding spaces). `protected` spans (entity
    mentions) are never cut; `breaks` are offsets that always start a new sentence (the abstract's start)."""
    cuts = set(breaks)
    for m in _BOUNDARY.finditer(text):
        word = re.search(r"(\S+)$", text[: m.start()])
        prev = word.group(1).lower().rstrip(".") if word else ""
        if prev.split(".")[-1] in _ABBREV or prev in _ABBREV or re.fullmatch(r"[a-z]", prev):
            continue
        cuts.add(m.end(1))
    inside = {c for c in cuts for s, e in protected if s < c < e}
    bounds = sorted(c for c in cuts - inside if 0 < c < len(text))
    spans = []
    for s, e in zip([0, *bounds], [*bounds, len(text)]):
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
    return spans


def _sentence_of(spans: list[tuple[int, int]], start: int, end: int) -> int:
    for i, (s, e) in enumerate(spans):
        if s <= start and end <= e:
            return i
    return -1


def _local(ent: Entity, offset: int) -> Entity:
    return Entity(start=ent.start - offset, end=ent.end - offset, label=ent.label, text=ent.text)


def _overlap(a: Entity, b: Entity) -> bool:
    return a.start < b.end and b.start < a.end


# ---------------------------------------------------------------------------------------------------------------
# ChemProt

_CHEMPROT_LABELS = {"CHEMICAL": "Chemical", "GENE-Y": "Gene", "GENE-N": "Gene"}


def _chemprot_docs(path: Path) -> dict[str, tuple[str, str]]:
    docs: dict[str, tuple[str, str]] = {}
    for lineno, line in _lines(path):
        cols = line.split("\t")
        if len(cols) != 3:
            raise MedsynthError("expected 'pmid<TAB>title<TAB>abstract'", where=f"{path}:{lineno}", value=line[:80])
        docs[cols[0]] = (cols[1], cols[2])
    return docs


def _chemprot_entities(path: Path, docs: dict[str, tuple[str, str]]) -> dict[str, dict[str, Entity]]:
    ents: dict[str, dict[str, Entity]] = {}
    for lineno, line in _lines(path):
        where = f"{path}:{lineno}"
        cols = line.split("\t")
        if len(cols) != 6:
            raise MedsynthError("expected 'pmid<TAB>Tn<TAB>type<TAB>start<TAB>end<TAB>text'", where=where, value=line)
        pmid, tid, typ, s, e, txt = cols
        if typ not in _CHEMPROT_LABELS:
            raise MedsynthError(f"entity type must be one of {', '.join(_CHEMPROT_LABELS)}", where=where, value=typ)
        if pmid not in docs:
            raise MedsynthError("entity of a document the abstracts file lacks", where=where, value=pmid)
        if not (s.isdigit() and e.isdigit()):
            raise MedsynthError("start and end must be whole numbers", where=where, value=f"{s} {e}")
        full = docs[pmid][0] + " " + docs[pmid][1]
        if full[int(s) : int(e)] != txt:
            raise MedsynthError(f"offsets {s}:{e} hold {full[int(s):int(e)]!r} in title+' '+abstract", where=where,
                                value=txt)
        ents.setdefault(pmid, {})[tid] = Entity(start=int(s), end=int(e), label=_CHEMPROT_LABELS[typ], text=txt)
    return ents


def _chemprot_gold(path: Path) -> tuple[dict[tuple[str, str, str], str], int]:
    """{(pmid, chemical Tn, gene Tn): group} and the number of rows (a few rows repeat a pair)."""
    gold: dict[tuple[str, str, str], str] = {}
    rows = 0
    for lineno, line in _lines(path):
        cols = line.split("\t")
        where = f"{path}:{lineno}"
        if len(cols) != 4 or not cols[2].startswith("Arg1:") or not cols[3].startswith("Arg2:"):
            raise MedsynthError("expected 'pmid<TAB>CPR:n<TAB>Arg1:Tn<TAB>Arg2:Tm'", where=where, value=line)
        if cols[1] not in CHEMPROT_GROUPS:
            raise MedsynthError(f"relation group must be one of {', '.join(CHEMPROT_GROUPS)}", where=where,
                                value=cols[1])
        gold[(cols[0], cols[2][5:], cols[3][5:])] = cols[1]
        rows += 1
    return gold, rows


def read_chemprot(abstracts: str | Path, entities: str | Path, gold_standard: str | Path,
                  split: str = "test") -> RECorpus:
    """Every Chemical × Gene pair within one sentence, labelled from gold_standard.tsv (else "none")."""
    abstracts, entities, gold_standard = Path(abstracts), Path(entities), Path(gold_standard)
    docs = _chemprot_docs(abstracts)
    ents = _chemprot_entities(entities, docs)
    gold, gold_rows = _chemprot_gold(gold_standard)
    pairs: list[RelPair] = []
    found: set[tuple[str, str, str]] = set()
    overlapping: set[tuple[str, str, str]] = set()
    for pmid, (title, abstract) in docs.items():
        full = title + " " + abstract
        doc_ents = ents.get(pmid, {})
        spans = split_sentences(full, [(e.start, e.end) for e in doc_ents.values()], breaks=[len(title) + 1])
        by_sent: dict[int, list[tuple[str, Entity]]] = {}
        for tid, e in doc_ents.items():
            by_sent.setdefault(_sentence_of(spans, e.start, e.end), []).append((tid, e))
        for si, members in sorted(by_sent.items()):
            if si < 0:
                continue
            s0, s1 = spans[si]
            chems = [(t, e) for t, e in members if e.label == "Chemical"]
            genes = [(t, e) for t, e in members if e.label == "Gene"]
            for (ct, ce), (gt, ge) in product(chems, genes):
                key = (pmid, ct, gt)
                if _overlap(ce, ge):  # nested mentions ("GABA" in "GABA receptor") cannot both be masked
                    overlapping.add(key)
                    continue
                label = gold.get(key, NO_RELATION)
                found.add(key)
                pairs.append(RelPair(id=f"chemprot-{split}-{pmid}-{ct}-{gt}", text=full[s0:s1], head=_local(ce, s0),
                                     tail=_local(ge, s0), label=label, split=split,
                                     meta={"source": f"{entities}", "doc": pmid, "sentence": si, "args": [ct, gt]}))
    lost_overlap = [k for k in gold if k in overlapping]
    lost_cross = [k for k in gold if k not in found and k not in overlapping]
    stats = {"pairs": len(pairs), "documents": len(docs), "gold_rows": gold_rows, "gold_relations": len(gold),
             "gold_relations_kept": len(gold) - len(lost_cross) - len(lost_overlap),
             "gold_relations_lost_cross_sentence": len(lost_cross), "gold_relations_lost_overlap": len(lost_overlap),
             "overlapping_pairs_skipped": len(overlapping),
             "note": "gold relations (unique pmid/Arg1/Arg2) lost because their arguments sit in different "
                     "sentences or overlap; overlapping candidate pairs are skipped"}
    return RECorpus(pairs, stats)


# ---------------------------------------------------------------------------------------------------------------
# BC5CDR (PubTator)

_PUBTATOR_LABELS = ("Chemical", "Disease")


@dataclass
class _Doc:
    title: str = ""
    abstract: str = ""
    mentions: list[tuple[Entity, frozenset[str]]] = field(default_factory=list)
    cid: set[tuple[str, str]] = field(default_factory=set)
    line: int = 0


def _pubtator_docs(path: Path) -> dict[str, _Doc]:
    docs: dict[str, _Doc] = {}
    for lineno, line in _lines(path):
        where = f"{path}:{lineno}"
        head = line[:30]
        if "|t|" in head or "|a|" in head:
            sep = "|t|" if "|t|" in head else "|a|"
            pmid, _, text = line.partition(sep)
            doc = docs.setdefault(pmid, _Doc(line=lineno))
            if sep == "|t|":
                doc.title = text
            else:
                doc.abstract = text
            continue
        cols = line.split("\t")
        pmid = cols[0]
        if pmid not in docs:
            raise MedsynthError("annotation before its document's title line", where=where, value=line[:80])
        if len(cols) == 4 and cols[1] == "CID":
            docs[pmid].cid.add((cols[2], cols[3]))
            continue
        if len(cols) not in (6, 7) or not (cols[1].isdigit() and cols[2].isdigit()):
            raise MedsynthError("expected a mention 'pmid<TAB>start<TAB>end<TAB>text<TAB>type<TAB>MeSH' or a "
                                "relation 'pmid<TAB>CID<TAB>chemical<TAB>disease'", where=where, value=line[:80])
        s, e, txt, typ, mesh = int(cols[1]), int(cols[2]), cols[3], cols[4], cols[5]
        if typ not in _PUBTATOR_LABELS:
            raise MedsynthError("mention type must be Chemical or Disease", where=where, value=typ)
        full = docs[pmid].title + " " + docs[pmid].abstract
        if full[s:e] != txt:
            raise MedsynthError(f"offsets {s}:{e} hold {full[s:e]!r} in title+' '+abstract", where=where, value=txt)
        ids = frozenset(i for i in mesh.split("|") if i and i != "-1")
        docs[pmid].mentions.append((Entity(start=s, end=e, label=typ, text=txt), ids))
    return docs


def read_pubtator_cid(path: str | Path, split: str = "test") -> RECorpus:
    """Chemical × Disease mention pairs co-occurring in one sentence; "CID" when their MeSH ids are linked."""
    path = Path(path)
    docs = _pubtator_docs(path)
    if not docs:
        raise MedsynthError("PubTator file holds no documents", where=str(path))
    pairs: list[RelPair] = []
    gold_total = 0
    gold_lost = 0
    for pmid, doc in docs.items():
        full = doc.title + " " + doc.abstract
        spans = split_sentences(full, [(m.start, m.end) for m, _ in doc.mentions], breaks=[len(doc.title) + 1])
        by_sent: dict[int, list[tuple[int, Entity, frozenset[str]]]] = {}
        for mi, (m, ids) in enumerate(doc.mentions):
            by_sent.setdefault(_sentence_of(spans, m.start, m.end), []).append((mi, m, ids))
        covered: set[tuple[str, str]] = set()
        for si, members in sorted(by_sent.items()):
            if si < 0:
                continue
            s0, s1 = spans[si]
            chems = [x for x in members if x[1].label == "Chemical"]
            dises = [x for x in members if x[1].label == "Disease"]
            for (ci, ce, cids), (di, de, dids) in product(chems, dises):
                if _overlap(ce, de):
                    continue
                links = {(c, d) for c in cids for d in dids} & doc.cid
                covered |= links
                pairs.append(RelPair(id=f"cdr-{split}-{pmid}-{ci}-{di}", text=full[s0:s1], head=_local(ce, s0),
                                     tail=_local(de, s0), label="CID" if links else NO_RELATION, split=split,
                                     meta={"source": f"{path}:{doc.line}", "doc": pmid, "sentence": si,
                                           "mesh": [sorted(cids), sorted(dids)]}))
        gold_total += len(doc.cid)
        gold_lost += len(doc.cid - covered)
    stats = {"pairs": len(pairs), "documents": len(docs), "gold_relations": gold_total,
             "gold_relations_kept": gold_total - gold_lost, "gold_relations_lost": gold_lost,
             "note": "lost = document CID facts whose chemical and disease never co-occur in one sentence"}
    return RECorpus(pairs, stats)


# ---------------------------------------------------------------------------------------------------------------
# pairs.jsonl


def read_pairs(path: str | Path) -> list[RelPair]:
    """RelPairs from a pairs.jsonl file; a bad line or a span that does not match its text is FILE:LINE."""
    path = Path(path)
    pairs = []
    for lineno, line in _lines(path):
        where = f"{path}:{lineno}"
        try:
            pair = RelPair.model_validate_json(line)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(x) for x in first.get("loc", ()))
            raise MedsynthError(f"not a RelPair: {first.get('msg', 'invalid')}", where=where, field=loc or None) from None
        for side in ("head", "tail"):
            e = getattr(pair, side)
            if pair.text[e.start : e.end] != e.text:
                raise MedsynthError(f"{side} text does not match text[{e.start}:{e.end}]", where=where,
                                    field=side, value=e.text)
        pairs.append(pair)
    return pairs


def write_pairs(path: str | Path, pairs: Iterable[RelPair]) -> Path:
    return write_jsonl(path, (p.model_dump() for p in pairs))

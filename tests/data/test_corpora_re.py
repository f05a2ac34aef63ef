"""Relation benchmark loaders (GAD TSV, ChemProt BioCreative VI TSVs, PubTator CDR), the sentence splitter and
pairs.jsonl. Every fixture sentence is invented; only the last tests read the real files (skipped without them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medsynth.data.corpora.rel import (
    list_re_datasets,
    load_re,
    load_re_corpus,
    read_chemprot,
    read_gad,
    read_pairs,
    read_pubtator_cid,
    split_sentences,
    write_pairs,
)
from medsynth.errors import MedsynthError
from tests.re_fixtures import gad_pair, write_gad_dir

REAL_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_real = pytest.mark.skipif(not REAL_DATA.is_dir(), reason="no ../shared/data")


# -- GAD ------------------------------------------------------------------------------------------------------


def test_gad_masks_become_spans_and_labels_map(tmp_path):
    root = write_gad_dir(tmp_path, folds=(1,), n_train=6, n_test=4)
    test = load_re("gad", "test", root, fold=1)  # header line skipped
    train = load_re("gad", "train", root, fold=1)  # no header
    assert len(test) == 4 and len(train) == 6
    p = test[0]
    assert p.text[p.head.start : p.head.end] == "@GENE$" and p.head.label == "Gene"
    assert p.text[p.tail.start : p.tail.end] == "@DISEASE$" and p.tail.label == "Disease"
    assert {x.label for x in test} == {"Association", "none"}
    assert p.meta["source"].endswith("test.tsv:2") and p.meta["fold"] == 1


def test_gad_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "t.tsv"
    bad.write_text("@GENE$ causes @DISEASE$.\t1\n@GENE$ and @DISEASE$.\t2\n", encoding="utf-8")
    with pytest.raises(MedsynthError, match=r"t\.tsv:2.*label must be 0 or 1"):
        read_gad(bad)
    bad.write_text("No masks in this sentence.\t1\n", encoding="utf-8")
    with pytest.raises(MedsynthError, match=r"t\.tsv:1.*exactly one @GENE\$"):
        read_gad(bad)
    with pytest.raises(MedsynthError, match="no such split"):
        load_re("gad", "devel", tmp_path)
    with pytest.raises(MedsynthError, match="folds are 1..10"):
        load_re("gad", "test", write_gad_dir(tmp_path), fold=11)


def test_unknown_dataset_lists_names(tmp_path):
    with pytest.raises(MedsynthError) as err:
        load_re("chemprot2", "test", tmp_path)
    msg = str(err.value)
    assert all(n in msg for n in list_re_datasets()) and "\n" not in msg


# -- sentence splitter ----------------------------------------------------------------------------------------


def test_split_sentences_respects_abbreviations_and_entities():
    text = "Zorbamine (e.g. in mice) binds KAPLIN. It was given at 5 mg. Dr. Vell saw no effect vs. placebo. Done."
    spans = [text[s:e] for s, e in split_sentences(text)]
    assert spans == ["Zorbamine (e.g. in mice) binds KAPLIN.", "It was given at 5 mg.",
                     "Dr. Vell saw no effect vs. placebo.", "Done."]
    # an entity that straddles a boundary keeps the two sentences together
    s = text.index("mg. Dr")
    assert len(split_sentences(text, protected=[(s, s + 7)])) == 3
    # forced break (title/abstract separator) even without a period
    title = "A title without stop Next part."
    assert [title[a:b] for a, b in split_sentences(title, breaks=[21])] == ["A title without stop", "Next part."]


# -- ChemProt -------------------------------------------------------------------------------------------------

CP_TITLE = "Zorbamine blocks KAPLIN."
CP_ABSTRACT = ("Zorbamine inhibited KAPLIN and TREXA2 kinase in vitro. Velastin had no effect on it. "
               "MOLVIN was later found to bind the drug.")


def _nth_index(text: str, word: str, nth: int) -> int:
    """Start offset of the nth (0-based) occurrence of word in text."""
    pos = -1
    for _ in range(nth + 1):
        pos = text.index(word, pos + 1)
    return pos


def _chemprot_files(tmp_path: Path, gold_extra: str = "") -> tuple[Path, Path, Path]:
    full = CP_TITLE + " " + CP_ABSTRACT
    ents = []

    def ent(tid: str, typ: str, word: str, nth: int = 0) -> None:
        pos = _nth_index(full, word, nth)
        ents.append(f"99\t{tid}\t{typ}\t{pos}\t{pos + len(word)}\t{word}")

    ent("T1", "CHEMICAL", "Zorbamine")
    ent("T2", "GENE-Y", "KAPLIN")
    ent("T3", "CHEMICAL", "Zorbamine", 1)
    ent("T4", "GENE-Y", "KAPLIN", 1)
    ent("T5", "GENE-N", "TREXA2 kinase")
    ent("T6", "CHEMICAL", "TREXA2")  # nested inside T5: the pair cannot be masked and is skipped
    ent("T7", "CHEMICAL", "Velastin")
    ent("T8", "GENE-N", "MOLVIN")
    abstracts = tmp_path / "abstracts.tsv"
    abstracts.write_text(f"99\t{CP_TITLE}\t{CP_ABSTRACT}\n", encoding="utf-8")
    entities = tmp_path / "entities.tsv"
    entities.write_text("\n".join(ents) + "\n", encoding="utf-8")
    gold = tmp_path / "gold.tsv"
    gold.write_text("99\tCPR:4\tArg1:T1\tArg2:T2\n99\tCPR:4\tArg1:T3\tArg2:T4\n"
                    "99\tCPR:9\tArg1:T7\tArg2:T8\n99\tCPR:3\tArg1:T6\tArg2:T5\n" + gold_extra, encoding="utf-8")
    return abstracts, entities, gold


def test_chemprot_pairs_within_sentences(tmp_path):
    corpus = read_chemprot(*_chemprot_files(tmp_path), split="test")
    by_args = {tuple(p.meta["args"]): p for p in corpus.pairs}
    # title: T1×T2; sentence 2: {T3,T6}×{T4,T5} minus the nested T6×T5; sentence 3: T7 alone; sentence 4: T8 alone
    assert set(by_args) == {("T1", "T2"), ("T3", "T4"), ("T3", "T5"), ("T6", "T4")}
    assert by_args[("T1", "T2")].label == "CPR:4" and by_args[("T1", "T2")].text == CP_TITLE
    assert by_args[("T3", "T4")].label == "CPR:4" and by_args[("T3", "T5")].label == "none"
    p = by_args[("T3", "T5")]
    assert p.text[p.head.start : p.head.end] == "Zorbamine" and p.tail.text == "TREXA2 kinase"
    assert p.head.label == "Chemical" and p.tail.label == "Gene"
    s = corpus.stats
    assert s["gold_relations"] == 4 and s["gold_relations_lost_cross_sentence"] == 1  # T7–T8 cross sentences
    assert s["gold_relations_lost_overlap"] == 1 and s["gold_relations_kept"] == 2


def test_chemprot_bad_lines(tmp_path):
    abstracts, entities, gold = _chemprot_files(tmp_path, gold_extra="99\tCPR:2\tArg1:T1\tArg2:T4\n")
    with pytest.raises(MedsynthError, match=r"gold\.tsv:5.*CPR:3"):
        read_chemprot(abstracts, entities, gold)
    abstracts, entities, gold = _chemprot_files(tmp_path)
    lines = entities.read_text().splitlines()
    lines[1] = lines[1].replace("KAPLIN", "KAPLAN")
    entities.write_text("\n".join(lines) + "\n")
    with pytest.raises(MedsynthError, match=r"entities\.tsv:2.*offsets"):
        read_chemprot(abstracts, entities, gold)


# -- BC5CDR PubTator ------------------------------------------------------------------------------------------

PT_TITLE = "Velastin-induced glorbitis in two patients."
PT_ABSTRACT = "Velastin and Zorbamine were given. Both developed glorbitis and vantoma. Zorbamine was stopped."


def _pubtator(tmp_path: Path, extra: str = "") -> Path:
    full = PT_TITLE + " " + PT_ABSTRACT
    lines = [f"7|t|{PT_TITLE}", f"7|a|{PT_ABSTRACT}"]

    def m(word: str, typ: str, mesh: str, nth: int = 0) -> None:
        pos = _nth_index(full, word, nth)
        lines.append(f"7\t{pos}\t{pos + len(word)}\t{word}\t{typ}\t{mesh}")

    m("Velastin", "Chemical", "C1")
    m("glorbitis", "Disease", "D1|D9")  # composite id: each part counts
    m("Velastin", "Chemical", "C1", 1)
    m("Zorbamine", "Chemical", "-1")
    m("glorbitis", "Disease", "D1", 1)
    m("vantoma", "Disease", "D2")
    m("Zorbamine", "Chemical", "C2", 1)
    lines += ["7\tCID\tC1\tD9", "7\tCID\tC2\tD2"]
    path = tmp_path / "cdr.PubTator.txt"
    path.write_text("\n".join(lines) + "\n" + extra + "\n", encoding="utf-8")
    return path


def test_pubtator_cid_pairs(tmp_path):
    corpus = read_pubtator_cid(_pubtator(tmp_path), split="test")
    assert len(corpus.pairs) == 1  # only the title has a chemical and a disease in one sentence
    p = corpus.pairs[0]
    assert (p.head.text, p.tail.text, p.label) == ("Velastin", "glorbitis", "CID")
    assert p.text == PT_TITLE
    assert corpus.stats["gold_relations"] == 2 and corpus.stats["gold_relations_lost"] == 1  # C2–D2 never co-occur


def test_pubtator_malformed_line(tmp_path):
    with pytest.raises(MedsynthError, match=r"PubTator\.txt:12.*expected a mention"):
        read_pubtator_cid(_pubtator(tmp_path, extra="7\tnot\ta mention"))


# -- pairs.jsonl ----------------------------------------------------------------------------------------------


def test_pairs_roundtrip_and_errors(tmp_path):
    path = write_pairs(tmp_path / "pairs.jsonl", [gad_pair(0, True), gad_pair(1, False, "validation")])
    back = read_pairs(path)
    assert [p.label for p in back] == ["Association", "none"] and back[1].split == "validation"
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n{not json\n")
    with pytest.raises(MedsynthError, match=r"pairs\.jsonl:2"):
        read_pairs(path)
    bad = gad_pair(2, True).model_copy(update={"text": "shifted " + gad_pair(2, True).text})
    write_pairs(path, [bad])
    with pytest.raises(MedsynthError, match=r"pairs\.jsonl:1.*head text does not match"):
        read_pairs(path)


# -- real files -----------------------------------------------------------------------------------------------


@needs_real
def test_real_gad_fold1_counts():
    test = load_re("gad", "test", fold=1)
    assert len(test) == 534 and sum(p.label == "Association" for p in test) == 281
    assert len(load_re("gad", "train", fold=1)) == 4796


@needs_real
def test_real_chemprot_gold_relations():
    test = load_re_corpus("chemprot", "test")
    s = test.stats
    assert s["gold_rows"] == 3458 and s["gold_relations"] == 3444  # 14 rows repeat a (pmid, Arg1, Arg2) pair
    assert s["gold_relations_lost_cross_sentence"] == 0 and s["gold_relations_lost_overlap"] == 0
    assert sum(p.label != "none" for p in test.pairs) == 3444
    train = load_re_corpus("chemprot", "train").stats
    assert train["gold_rows"] == 4157 and train["gold_relations_kept"] == 4128


@needs_real
def test_real_cdr_cid_counts():
    s = load_re_corpus("bc5cdr-cid", "test").stats
    assert s["gold_relations"] == 1066 and s["documents"] == 500
    assert 0 < s["gold_relations_lost"] < s["gold_relations"]

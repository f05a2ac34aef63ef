"""read_corpus over a user's own corpora: every format, split layouts, label maps and bad input.

Every corpus here is invented and written into tmp_path by the test itself; only the preset tests at the end read
the real files (skipped when ../shared/data is absent).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medsynth.data.corpora import parse_label_map, read_corpus
from medsynth.data.corpora.conll import read_conll
from medsynth.errors import MedsynthError

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

IOB = "The\tO\nflu\tB-Disease\nspread\tO\n\nAcute\tB-Disease\ngout\tI-Disease\n\n"
BIOES = "-DOCSTART- O\n\n# sent_id = 1\nSevere S-Disease\nheart B-Disease\nfailure E-Disease\n. O\n\n"
TEXT = "Aspirin relieves gout. Tamoxifen binds ESR1 in tumours.\nNo finding here."
ANN = ("T1\tChemical 0 7\tAspirin\nT2\tDisease 17 21\tgout\nT3\tChemical 23 32\tTamoxifen\n"
       "T4\tGene 39 43\tESR1\nT5\tDisease 44 50;51 58\tin tumours\nR1\tTreats Arg1:T1 Arg2:T2\n"
       "R2\tBinds Arg1:T3 Arg2:T4\nR3\tTreats Arg1:T3 Arg2:T5\nA1\tNegated T2\n")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def brat(folder: Path, name: str = "doc1", text: str = TEXT, ann: str = ANN) -> Path:
    write(folder / f"{name}.txt", text)
    write(folder / f"{name}.ann", ann)
    return folder


# --- CoNLL / IOB / BIOES ------------------------------------------------------------------------------------------


def test_single_file_is_the_test_split(tmp_path):
    c = read_corpus(write(tmp_path / "mine.tsv", IOB))
    assert c.splits == ["test"] and c.format == "conll" and c.labels == ["Disease"]
    assert [s.tags for s in c.split("test")] == [["O", "B-Disease", "O"], ["B-Disease", "I-Disease"]]
    with pytest.raises(MedsynthError, match=r"mine.tsv, field 'split', value 'train': no such split; this corpus has: test"):
        c.split("train")


def test_bioes_space_separated_with_docstart_and_comments(tmp_path):
    c = read_corpus(write(tmp_path / "x.bioes", BIOES))
    (sent,) = c.split()
    assert sent.tokens == ["Severe", "heart", "failure", "."]
    assert sent.tags == ["B-Disease", "B-Disease", "I-Disease", "O"]
    assert sent.source.endswith("x.bioes:4")


def test_conll_extra_columns_token_first_tag_last(tmp_path):
    (s,) = read_conll(write(tmp_path / "c.conll", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n"))
    assert s.tokens == ["EU", "rejects"] and s.tags == ["B-ORG", "O"]


def test_a_hash_token_line_is_not_a_comment(tmp_path):
    (s,) = read_conll(write(tmp_path / "h.tsv", "#\tO\nflu\tB-Disease\n"))
    assert s.tokens == ["#", "flu"]


def test_i_after_o_is_repaired_and_counted(tmp_path):
    c = read_corpus(write(tmp_path / "iob1.txt", "The O\nflu I-Disease\nand O\ngout I-Disease\n"))
    assert c.split()[0].tags == ["O", "B-Disease", "O", "B-Disease"]
    assert c.stats()["repaired_tags"] == 2


def test_mixed_tab_and_space_columns_is_one_line(tmp_path):
    path = write(tmp_path / "m.tsv", "The O\nflu\tB-Disease\n")
    with pytest.raises(MedsynthError) as err:
        read_corpus(path).split()
    assert f"{path}:2" in str(err.value) and "mixed tab and space" in str(err.value) and "\n" not in str(err.value)
    path = write(tmp_path / "n.tsv", "The\tO\nflu B-Disease\n")
    with pytest.raises(MedsynthError, match=r"n.tsv:2.*no tab.*mixed"):
        read_corpus(path).split()


def test_bioes_tags_are_an_error_for_the_strict_preset_reading(tmp_path):
    with pytest.raises(MedsynthError, match=r":1.*IOB2"):
        read_conll(write(tmp_path / "s.tsv", "flu\tS-Disease\n"), sep="\t", scheme="iob2")


# --- split layouts ------------------------------------------------------------------------------------------------


def test_folder_of_split_files_gives_splits_in_order(tmp_path):
    for name in ("mine_test.tsv", "mine_train.tsv", "dev.tsv"):
        write(tmp_path / "c" / name, IOB)
    write(tmp_path / "c" / "README.md", "not a split")
    c = read_corpus(tmp_path / "c")
    assert c.splits == ["train", "devel", "test"]
    assert c.split("validation") == c.split("devel")


def test_two_files_for_one_split_is_an_error(tmp_path):
    write(tmp_path / "c" / "dev.tsv", IOB)
    write(tmp_path / "c" / "validation.tsv", IOB)
    with pytest.raises(MedsynthError, match="two candidates for the devel split"):
        read_corpus(tmp_path / "c")


def test_empty_split_file_is_one_line(tmp_path):
    write(tmp_path / "c" / "train.tsv", IOB)
    empty = write(tmp_path / "c" / "test.tsv", "\n\n")
    c = read_corpus(tmp_path / "c")
    assert len(c.split("train")) == 2
    with pytest.raises(MedsynthError, match=f"{empty}: IOB file holds no sentences"):
        c.split("test")


def test_missing_path_names_the_presets(tmp_path):
    with pytest.raises(MedsynthError, match="corpus not found.*ncbi-disease"):
        read_corpus(tmp_path / "nope")
    with pytest.raises(MedsynthError, match="relation preset"):
        read_corpus("gad", "ner")


# --- BRAT ---------------------------------------------------------------------------------------------------------


def test_brat_entities_become_sentences_and_discontinuous_spans_are_counted(tmp_path):
    c = read_corpus(brat(tmp_path / "b"))
    assert c.format == "brat" and c.splits == ["test"]
    sents = c.split()
    assert [s.tokens for s in sents] == [["Aspirin", "relieves", "gout", "."],
                                          ["Tamoxifen", "binds", "ESR1", "in", "tumours", "."],
                                          ["No", "finding", "here", "."]]
    assert sents[1].tags == ["B-Chemical", "O", "B-Gene", "O", "O", "O"]
    assert [s.source for s in sents] == [f"{tmp_path / 'b' / 'doc1.txt'}:{n}" for n in (1, 1, 2)]
    stats = c.stats()
    assert stats["discontinuous_entities_skipped"] == 1 and stats["ignored_annotation_lines"] == 1
    assert c.labels == ["Chemical", "Disease", "Gene"]


def test_brat_relations_become_typed_candidate_pairs(tmp_path):
    c = read_corpus(brat(tmp_path / "b"), "re")
    pairs = c.split()
    got = {(p.text[p.head.start:p.head.end], p.text[p.tail.start:p.tail.end], p.label) for p in pairs}
    # candidates: Chemical->Disease (Treats) and Chemical->Gene (Binds) pairs inside one sentence
    assert got == {("Aspirin", "gout", "Treats"), ("Tamoxifen", "ESR1", "Binds")}
    assert c.stats()["relations_on_discontinuous_skipped"] == 1


def test_brat_relation_lost_across_sentences_is_counted(tmp_path):
    text = "Aspirin relieves gout. Tamoxifen binds ESR1 in tumours. Done."
    t = text.index("tumours")
    ann = f"T1\tChemical 0 7\tAspirin\nT2\tDisease {t} {t + 7}\ttumours\nT3\tDisease 17 21\tgout\n" \
          "R1\tTreats Arg1:T1 Arg2:T2\n"
    c = read_corpus(brat(tmp_path / "b", text=text, ann=ann), "re")
    assert [(p.head.text, p.tail.text, p.label) for p in c.split()] == [("Aspirin", "gout", "none")]
    assert c.stats()["gold_relations_lost"] == 1 and c.stats()["gold_relations"] == 1


def test_brat_offsets_that_do_not_match_the_text_name_file_and_line(tmp_path):
    folder = brat(tmp_path / "b", ann="T1\tChemical 0 7\tAspirin\nT2\tDisease 16 20\tgout\n")
    with pytest.raises(MedsynthError) as err:
        read_corpus(folder).split()
    msg = str(err.value)
    assert f"{folder / 'doc1.ann'}:2" in msg and "'gout'" in msg and "' gou'" in msg and "\n" not in msg


def test_brat_split_subfolders(tmp_path):
    brat(tmp_path / "c" / "train")
    brat(tmp_path / "c" / "test", name="doc9")
    c = read_corpus(tmp_path / "c")
    assert c.splits == ["train", "test"] and c.format == "brat"


# --- JSON Lines ---------------------------------------------------------------------------------------------------


def _row(text: str, ents: list[tuple[str, str]], rels: list[tuple[int, int, str]] = ()) -> str:
    entities = [{"start": text.index(m), "end": text.index(m) + len(m), "label": lab} for m, lab in ents]
    return json.dumps({"id": "x", "text": text, "entities": entities,
                       "relations": [{"head": h, "tail": t, "label": lab} for h, t, lab in rels]}) + "\n"


def test_data_jsonl_rows_are_sentences_and_relations(tmp_path):
    rows = (_row("Metformin lowers HbA1c in type 2 diabetes.", [("Metformin", "Drug"), ("type 2 diabetes", "Disease")],
                 [(0, 1, "Treats")]) + _row("Nothing here.", []))
    path = write(tmp_path / "run" / "data.jsonl", rows)
    ner = read_corpus(tmp_path / "run")  # a medsynth run folder: data.jsonl is the test split
    assert ner.split()[0].tags == ["B-Drug", "O", "O", "O", "B-Disease", "I-Disease", "I-Disease", "O"]
    assert ner.split()[1].source == f"{path}:2"
    (pair,) = read_corpus(path, "re").split()
    assert (pair.head.text, pair.tail.text, pair.label) == ("Metformin", "type 2 diabetes", "Treats")


def test_pairs_jsonl_and_token_rows(tmp_path):
    pair = {"id": "p1", "text": "A binds B.", "head": {"start": 0, "end": 1, "label": "Chemical", "text": "A"},
            "tail": {"start": 8, "end": 9, "label": "Gene", "text": "B"}, "label": "Binds"}
    pairs = read_corpus(write(tmp_path / "pairs.jsonl", json.dumps(pair) + "\n"), "re").split()
    assert pairs[0].label == "Binds"
    with pytest.raises(MedsynthError, match="relation pairs"):
        read_corpus(tmp_path / "pairs.jsonl").split()
    tok = read_corpus(write(tmp_path / "t.jsonl", '{"tokens": ["flu", "."], "tags": ["S-Disease", "O"]}\n'))
    assert tok.split()[0].tags == ["B-Disease", "O"]
    with pytest.raises(MedsynthError, match="token/tag files hold no relations"):
        read_corpus(tmp_path / "t.jsonl", "re").split()


def test_jsonl_entity_text_mismatch_names_line_and_field(tmp_path):
    row = {"text": "Mild flu.", "entities": [{"start": 0, "end": 4, "label": "Disease", "text": "flu"}]}
    path = write(tmp_path / "d.jsonl", "\n" + json.dumps(row) + "\n")
    with pytest.raises(MedsynthError, match=rf"{path}:2, field 'entities.0.text', value 'flu'"):
        read_corpus(path).split()


# --- spaCy DocBin and saved datasets ------------------------------------------------------------------------------


def test_spacy_docbin(tmp_path):
    spacy = pytest.importorskip("spacy")
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    doc = nlp("Severe heart failure was seen .")
    doc.ents = [doc.char_span(7, 20, label="Disease")]
    db = DocBin()
    db.add(doc)
    (tmp_path / "c").mkdir()
    db.to_disk(tmp_path / "c" / "train.spacy")
    db.to_disk(tmp_path / "c" / "dev.spacy")
    c = read_corpus(tmp_path / "c")
    assert c.splits == ["train", "devel"] and c.format == "spacy"
    (s,) = c.split("dev")
    assert s.tokens == ["Severe", "heart", "failure", "was", "seen", "."]
    assert s.tags == ["O", "B-Disease", "I-Disease", "O", "O", "O"]


def test_saved_datasets_folder_with_classlabel_tags(tmp_path):
    datasets = pytest.importorskip("datasets")
    feats = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                               "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-Gene", "I-Gene"]))})
    rows = {"tokens": [["BRCA1", "gene", "."], ["No", "genes"]], "ner_tags": [[1, 2, 0], [0, 0]]}
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=feats),
                               "validation": datasets.Dataset.from_dict(rows, features=feats)})
    dd.save_to_disk(str(tmp_path / "hf"))
    c = read_corpus(tmp_path / "hf")
    assert c.format == "hf" and c.splits == ["train", "devel"] and c.labels == ["Gene"]
    assert c.split("validation")[0].tags == ["B-Gene", "I-Gene", "O"]


# --- label maps ---------------------------------------------------------------------------------------------------


def test_parse_label_map():
    assert parse_label_map("GENE-Y=Gene, GENE-N=Gene,DISEASE=O") == {"GENE-Y": "Gene", "GENE-N": "Gene",
                                                                      "DISEASE": "O"}
    assert parse_label_map(None) == {}
    with pytest.raises(MedsynthError, match="field '--label-map', value 'Gene'"):
        parse_label_map("Gene")
    with pytest.raises(MedsynthError, match="mapped twice"):
        parse_label_map("A=B,A=C")


def test_label_map_renames_merges_and_drops(tmp_path):
    path = write(tmp_path / "m.tsv", "TP53\tB-GENE-Y\nKRAS\tB-GENE-N\nflu\tB-disease\nx\tB-Species\n")
    c = read_corpus(path, label_map={"GENE-Y": "Gene", "GENE-N": "Gene", "Species": "O"},
                    task_labels=["Gene", "Disease"])
    assert c.split()[0].tags == ["B-Gene", "B-Gene", "B-Disease", "O"]
    assert c.labels == ["Disease", "Gene"]


def test_unknown_labels_on_both_sides_are_one_line(tmp_path):
    path = write(tmp_path / "m.tsv", "TP53\tB-GENE-Y\nflu\tB-Disease\nx\tB-Species\n")
    c = read_corpus(path, label_map={"GENE-Y": "Gene", "Protein": "Gene"}, task_labels=["Gene", "Disease"])
    with pytest.raises(MedsynthError) as err:
        c.split()
    msg = str(err.value)
    assert "\n" not in msg and "does not have: Protein" in msg and "no task label: Species" in msg


def test_re_label_map_renames_entities_and_relations(tmp_path):
    c = read_corpus(brat(tmp_path / "b"), "re", label_map={"Binds": "O", "Chemical": "Drug"},
                    task_labels=["Drug", "Disease", "Gene", "Treats"])
    got = sorted((p.head.label, p.tail.label, p.label) for p in c.split())
    assert got == [("Drug", "Disease", "Treats"), ("Drug", "Gene", "none")]


# --- presets ------------------------------------------------------------------------------------------------------

needs_data = pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"benchmark data not found at {REAL_DATA}")


@needs_data
def test_presets_give_what_the_old_loaders_give():
    from medsynth.data.corpora import ner, rel

    assert read_corpus("bc5cdr-chem", data_dir=REAL_DATA).split("dev") == ner.load_corpus("bc5cdr-chem", "devel",
                                                                                           REAL_DATA)
    assert read_corpus("gad", "re", data_dir=REAL_DATA, fold=2).split() == rel.load_re("gad", "test", REAL_DATA, 2)


@needs_data
def test_chemprot_gene_preset_keeps_every_gene_mention():
    c = read_corpus("chemprot-gene", data_dir=REAL_DATA)
    assert c.splits == ["train", "devel", "test"] and c.labels == ["Gene"]
    test = c.split("test")
    stats = c.stats("test")
    mentions = sum(t.startswith("B-") for s in test for t in s.tags)
    # GENE-Y 6658 + GENE-N 3360 in the test entity file (chemprot/PROVENANCE.md)
    lost = stats.get("overlapping_entities_skipped", 0) + stats.get("entities_lost_to_tokens", 0)
    assert mentions + lost == 6658 + 3360 and lost < 20

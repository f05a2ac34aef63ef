"""IOB reading, corpus registry, label mapping and sampling.

Every IOB file here is invented and written into tmp_path (benchmark text must never appear in tests); only the
last tests read the real files, and they compare the loader with counts taken from the file itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medsynth.data.corpora import ner as corpora
from medsynth.data.corpora.ner import (
    IOBSentence,
    corpus_info,
    corpus_labels,
    label_mapping,
    list_corpora,
    load_corpus,
    map_tags,
    read_iob,
    resolve_data_dir,
    sample,
)
from medsynth.errors import MedsynthError

REPO = Path(__file__).resolve().parents[2]
REAL_DATA = REPO.parent / "shared" / "data"

GOOD = "Patients\tO\nwith\tO\nacute\tB-Disease\nflu\tI-Disease\n.\tO\n\nNo\tO\nfever\tB-Disease\n\n"


def write(tmp_path: Path, text: str | bytes, name: str = "toy.tsv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode("utf-8"))
    return path


def one_line_error(err: pytest.ExceptionInfo, path: Path, line: int, value: str) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    assert path.name in msg
    assert f"{path.name}:{line}" in msg, msg
    assert value in msg, msg
    return msg


# --- reading -----------------------------------------------------------------------------------------------------


def test_good_file(tmp_path):
    path = write(tmp_path, GOOD)
    sents = read_iob(path)
    assert [s.tokens for s in sents] == [["Patients", "with", "acute", "flu", "."], ["No", "fever"]]
    assert [s.tags for s in sents] == [["O", "O", "B-Disease", "I-Disease", "O"], ["O", "B-Disease"]]
    assert [s.source for s in sents] == [f"{path}:1", f"{path}:7"]
    assert all(s.repaired == 0 for s in sents)


@pytest.mark.parametrize("bad", ["B_Disease", "X", "B-", "E-Disease", "b-Disease", "B-Dis ease", "B--"])
def test_bad_tag(tmp_path, bad):
    path = write(tmp_path, f"A\tO\nB\tB-Disease\n\nC\t{bad}\nD\tO\n")
    with pytest.raises(MedsynthError) as err:
        read_iob(path)
    one_line_error(err, path, 4, repr(bad))


def test_line_without_tab(tmp_path):
    path = write(tmp_path, "A\tO\nB O\nC\tO\n")
    with pytest.raises(MedsynthError) as err:
        read_iob(path)
    msg = one_line_error(err, path, 2, "'B O'")
    assert "tab" in msg


def test_column_count_changes(tmp_path):
    path = write(tmp_path, "A\tNN\tO\nB\tNN\tB-Drug\n\nC\tO\n")
    with pytest.raises(MedsynthError) as err:
        read_iob(path)
    msg = one_line_error(err, path, 4, "'C\\tO'")
    assert "line 1 had 3" in msg


def test_extra_columns_first_is_token_last_is_tag(tmp_path):
    path = write(tmp_path, "A\tNN\tx\tO\nB\tNN\tx\tB-Drug\n")
    (sent,) = read_iob(path)
    assert sent.tokens == ["A", "B"]
    assert sent.tags == ["O", "B-Drug"]


def test_not_utf8(tmp_path):
    path = write(tmp_path, b"A\tO\n\nB\tO\ncaf\xe9\tB-Drug\n")
    with pytest.raises(MedsynthError) as err:
        read_iob(path)
    one_line_error(err, path, 4, "\\xe9")


def test_empty_token_and_whitespace_token(tmp_path):
    path = write(tmp_path, "A\tO\n\tO\n")
    with pytest.raises(MedsynthError) as err:
        read_iob(path)
    one_line_error(err, path, 2, "''")
    path = write(tmp_path, "A\tO\nB\u00a0C\tO\n", "nbsp.tsv")
    with pytest.raises(MedsynthError) as err:
        read_iob(path)
    one_line_error(err, path, 2, "B\\xa0C")


def test_i_after_o_is_repaired_and_counted(tmp_path):
    # I- after O, I- at sentence start, and I- after another type all open an entity (IOB1 style).
    path = write(tmp_path, "A\tO\nB\tI-Drug\nC\tI-Drug\n\nD\tI-Drug\nE\tB-Drug\nF\tI-Gene\n")
    first, second = read_iob(path)
    assert first.tags == ["O", "B-Drug", "I-Drug"]
    assert first.repaired == 1
    assert second.tags == ["B-Drug", "B-Drug", "B-Gene"]
    assert second.repaired == 2


def test_i_after_o_without_repair_is_an_error(tmp_path):
    path = write(tmp_path, "A\tO\nB\tB-Drug\nC\tI-Drug\nD\tO\nE\tI-Drug\n")
    with pytest.raises(MedsynthError) as err:
        read_iob(path, repair=False)
    one_line_error(err, path, 5, "'I-Drug'")


def test_crlf_and_bom_read_like_lf(tmp_path):
    lf = read_iob(write(tmp_path, GOOD, "lf.tsv"))
    crlf = read_iob(write(tmp_path, b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode(), "crlf.tsv"))
    assert [(s.tokens, s.tags) for s in crlf] == [(s.tokens, s.tags) for s in lf]
    assert not any(t.endswith("\r") for s in crlf for t in s.tokens + s.tags)


def test_missing_final_blank_line_and_extra_blank_lines(tmp_path):
    sents = read_iob(write(tmp_path, "\n\nA\tO\n\n\n\nB\tB-Drug\nC\tI-Drug"))
    assert [s.tokens for s in sents] == [["A"], ["B", "C"]]
    assert sents[1].tags == ["B-Drug", "I-Drug"]
    assert sents[1].source.endswith(":7")


def test_docstart_lines_are_sentence_breaks(tmp_path):
    sents = read_iob(write(tmp_path, "-DOCSTART-\tO\n\nA\tO\n-DOCSTART-\tO\nB\tB-Drug\n"))
    assert [s.tokens for s in sents] == [["A"], ["B"]]


def test_empty_or_missing_file(tmp_path):
    path = write(tmp_path, "\n\n")
    with pytest.raises(MedsynthError, match="no sentences"):
        read_iob(path)
    with pytest.raises(MedsynthError, match="nope.tsv"):
        read_iob(tmp_path / "nope.tsv")


# --- registry and data dir ---------------------------------------------------------------------------------------


def fake_data_dir(root: Path, text: str = GOOD) -> Path:
    folder = root / corpora.CORPORA["ncbi-disease"].folder
    folder.mkdir(parents=True)
    for split in ("train", "devel", "test"):
        (folder / f"{split}.tsv").write_text(text, encoding="utf-8")
    return root


def test_list_corpora():
    assert {"ncbi-disease", "bc5cdr-chem", "bc5cdr-disease", "bc5cdr"} <= set(list_corpora())


def test_unknown_corpus_lists_known(tmp_path):
    with pytest.raises(MedsynthError) as err:
        load_corpus("ncbi", data_dir=tmp_path)
    assert "'ncbi'" in str(err.value)
    assert all(name in str(err.value) for name in list_corpora())


def test_unknown_split_and_dev_alias(tmp_path):
    root = fake_data_dir(tmp_path)
    assert len(load_corpus("ncbi-disease", "dev", data_dir=root)) == 2
    with pytest.raises(MedsynthError, match="'validate'"):
        load_corpus("ncbi-disease", "validate", data_dir=root)


def test_missing_split_file_names_path(tmp_path):
    root = fake_data_dir(tmp_path)
    with pytest.raises(MedsynthError) as err:
        load_corpus("bc5cdr", "test", data_dir=root)
    assert "BC5CDR-IOB" in str(err.value) and "test.tsv" in str(err.value)


def test_undeclared_label_in_corpus_file(tmp_path):
    root = fake_data_dir(tmp_path, "A\tO\n\nB\tO\nC\tB-Chemical\n")
    with pytest.raises(MedsynthError) as err:
        load_corpus("ncbi-disease", data_dir=root)
    one_line_error(err, corpus_info("ncbi-disease", root).files["test"], 4, "'B-Chemical'")


def test_data_dir_resolution_order(tmp_path, monkeypatch):
    arg, env, default = tmp_path / "arg", tmp_path / "env", tmp_path / "default"
    for d in (arg, env, default):
        d.mkdir()
    monkeypatch.setattr(corpora, "data_dir_candidates", lambda: [tmp_path / "absent", default])
    monkeypatch.delenv(corpora.ENV_DATA_DIR, raising=False)
    assert resolve_data_dir() == default
    monkeypatch.setenv(corpora.ENV_DATA_DIR, str(env))
    assert resolve_data_dir() == env
    assert resolve_data_dir(arg) == arg
    with pytest.raises(MedsynthError, match="missing-arg"):
        resolve_data_dir(tmp_path / "missing-arg")
    monkeypatch.setenv(corpora.ENV_DATA_DIR, str(tmp_path / "missing-env"))
    with pytest.raises(MedsynthError, match="missing-env"):
        resolve_data_dir()


def test_no_data_dir_says_where_it_looked(tmp_path, monkeypatch):
    looked = [tmp_path / "one" / "data", tmp_path / "two" / "data"]
    monkeypatch.setattr(corpora, "data_dir_candidates", lambda: looked)
    monkeypatch.delenv(corpora.ENV_DATA_DIR, raising=False)
    with pytest.raises(MedsynthError) as err:
        load_corpus("ncbi-disease")
    assert all(str(p) in str(err.value) for p in looked)
    assert corpora.ENV_DATA_DIR in str(err.value)


def test_default_candidates_follow_the_ci_layout():
    assert corpora.data_dir_candidates()[0] == REPO.parent / "shared" / "data"


# --- labels and sampling -----------------------------------------------------------------------------------------


def test_label_mapping_identity_is_case_insensitive_and_drops_extra_task_labels():
    assert label_mapping(["disease", "Symptom"], ["Disease"]) == {"disease": "Disease"}


def test_label_mapping_corpus_label_without_task_label_is_an_error():
    with pytest.raises(MedsynthError) as err:
        label_mapping(["Disease"], ["Chemical", "Disease"])
    msg = str(err.value)
    assert "task does not have: Chemical" in msg
    assert "corpus labels: Chemical, Disease" in msg and "task labels: Disease" in msg


def test_label_mapping_explicit_and_many_to_one():
    got = label_mapping(["Drug", "Chemical", "Disease"], ["Chemical", "Disease"], {"Drug": "Chemical"})
    assert got == {"Drug": "Chemical", "Chemical": "Chemical", "Disease": "Disease"}
    with pytest.raises(MedsynthError, match="'Gene'"):
        label_mapping(["Drug"], ["Chemical"], {"Gene": "Chemical"})
    with pytest.raises(MedsynthError, match="'Protein'"):
        label_mapping(["Drug"], ["Chemical"], {"Drug": "Protein"})


def test_map_tags_renames_and_drops():
    mapping = {"Drug": "Chemical"}
    got = map_tags(["B-Drug", "I-Drug", "O", "B-Gene", "I-Gene"], mapping)
    assert got == ["B-Chemical", "I-Chemical", "O", "O", "O"]


def test_sample_is_seeded_sized_and_ordered():
    items = list(range(100))
    a = sample(items, 10)
    assert len(a) == 10 and a == sorted(a) and len(set(a)) == 10
    assert sample(items, 10) == a
    assert sample(items, 10, seed=14) != a
    assert sample(items, None) == items
    assert sample(items, 500) == items
    with pytest.raises(MedsynthError, match="limit"):
        sample(items, 0)


def test_corpus_labels():
    sents = [IOBSentence(["a", "b"], ["B-X", "O"], "f:1"), IOBSentence(["c"], ["B-A"], "f:4")]
    assert corpus_labels(sents) == ["A", "X"]


# --- the real files ----------------------------------------------------------------------------------------------

needs_data = pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"benchmark data not found at {REAL_DATA}")


def count_from_file(path: Path) -> tuple[int, int, set[str]]:
    """Sentences (blank-line separated blocks), tokens and tag values, counted independently of read_iob."""
    blocks = [b for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    lines = [line for b in blocks for line in b.strip("\n").split("\n")]
    return len(blocks), len(lines), {line.rsplit("\t", 1)[1] for line in lines}


@needs_data
@pytest.mark.parametrize(
    "name,label", [("ncbi-disease", "Disease"), ("bc5cdr-chem", "Chemical"), ("bc5cdr-disease", "Disease")]
)
def test_real_single_type_test_split(name, label):
    sents = load_corpus(name, "test", data_dir=REAL_DATA)
    n_sent, n_tok, tag_values = count_from_file(corpus_info(name, REAL_DATA).files["test"])
    assert len(sents) == n_sent
    assert sum(len(s.tokens) for s in sents) == n_tok
    assert {t for s in sents for t in s.tags} == tag_values == {"O", f"B-{label}", f"I-{label}"}
    assert corpus_labels(sents) == [label]
    assert sum(s.repaired for s in sents) == 0  # the shipped files are valid IOB2
    if name == "ncbi-disease":
        assert n_sent == 940  # the published test-set size (also in ncbi-disease/STATS.md)


@needs_data
def test_real_bc5cdr_combined_has_both_types():
    sents = load_corpus("bc5cdr", "test", data_dir=REAL_DATA)
    assert corpus_labels(sents) == ["Chemical", "Disease"]
    assert len(sents) == count_from_file(corpus_info("bc5cdr", REAL_DATA).files["test"])[0]

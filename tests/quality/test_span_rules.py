"""`--apply-span-rules`: boundaries move over the words a task's labels declare, and nothing else changes."""

from __future__ import annotations

import json

import pytest
import yaml
from pydantic import ValidationError

from medsynth.cli.main import main
from medsynth.quality.span_rules import SPAN_RULES, apply_span_rules
from medsynth.spec import LabelSpec, get_task
from medsynth.records import Example, Relation
from tests.helpers import (built_run, cache_env, data_rows, example_from,  # noqa: F401
                           with_extra_sentence)

_TASK = get_task("ncbi-disease")  # Disease: span_include hereditary, autosomal dominant, X-linked, ...


def _spans(ex: Example) -> list[str]:
    assert ex.check_spans() == []
    return [e.text for e in ex.entities]


def test_included_words_before_a_span_are_pulled_in_repeatedly_keeping_the_sentences_case():
    ex = example_from("Familial autosomal dominant dystonia and hereditary ataxia were compared.",
             [("dystonia", "Disease"), ("ataxia", "Disease")])
    (out,), counts = apply_span_rules([ex], _TASK)
    assert _spans(out) == ["Familial autosomal dominant dystonia", "hereditary ataxia"]
    assert counts == {"span_extended": 2, "span_trimmed": 0, "examples_changed": 1}
    assert out.meta[SPAN_RULES] == 2 and out.text == ex.text


def test_excluded_leading_words_are_trimmed_but_a_span_is_never_emptied():
    ex = example_from("The severe myopathy and the syndrome were noted.",
             [("The severe myopathy", "Disease"), ("the", "Disease")])
    (out,), counts = apply_span_rules([ex], _TASK)
    assert _spans(out) == ["myopathy", "the"]
    assert counts["span_trimmed"] == 1 and counts["span_extended"] == 0


@pytest.mark.parametrize("text, mention", [
    ("Nonhereditary ataxia was seen.", "ataxia"),          # the word must stand alone
    ("A non-hereditary ataxia was seen.", "ataxia"),       # hyphenated prefix is another word
    ("Hereditary, sporadic ataxia was seen.", "ataxia"),   # not directly before the span
    ("A hereditary BRCA1 carrier was seen.", "BRCA1"),     # the label has no rules here
])
def test_no_move_without_a_whole_word_directly_before_a_span_of_a_ruled_label(text, mention):
    ex = example_from(text, [(mention, "Gene" if mention == "BRCA1" else "Disease")])
    (out,), counts = apply_span_rules([ex], _TASK)
    assert out == ex and counts["examples_changed"] == 0


def test_an_extension_never_overlaps_another_entity_and_relation_indices_stay_valid():
    ex = example_from("X-linked hereditary ataxia responds to drug Z.",
             [("X-linked", "Trait"), ("ataxia", "Disease"), ("Z", "Chemical")],
             relations=[Relation(head=2, tail=1, label="treats")])
    (out,), _ = apply_span_rules([ex], _TASK)
    assert _spans(out) == ["X-linked", "hereditary ataxia", "Z"]  # stops before the other entity
    assert out.relations == ex.relations


def test_empty_span_words_are_refused_by_the_spec():
    with pytest.raises(ValidationError, match="empty word"):
        LabelSpec(name="Disease", definition="a disease", span_include=["hereditary", " "])


_HEREDITARY = with_extra_sentence(  # a Disease label that leaves "hereditary" outside its span
    "A hereditary myotonic dystrophy was noted.", [("myotonic dystrophy", "Disease")])


def test_export_apply_span_rules_end_to_end(cache_env, tmp_path, capsys):
    out = built_run(cache_env, _HEREDITARY)
    cut = cache_env / "cut"

    # The default ner task declares no span words: a one-line usage error, and nothing is written.
    capsys.readouterr()
    assert main(["export", "--run", str(out), "--n", "6", "--out", str(cut), "--apply-span-rules"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--apply-span-rules" in err and "span_include" in err
    assert not (cut / "data.jsonl").exists()

    # The same task with a rule for Disease, as a user would write it in a copied task file.
    spec = get_task("ner").model_dump(mode="json")
    for label in spec["labels"]:
        if label["name"] == "Disease":
            label["span_include"] = ["hereditary"]
    task_file = tmp_path / "ner.yaml"
    task_file.write_text(yaml.safe_dump(spec))
    assert main(["export", "--run", str(out), "--n", "6", "--out", str(cut), "--task-file", str(task_file),
                 "--apply-span-rules"]) == 0
    labelled = sum("A hereditary myotonic dystrophy" in r["text"] for r in data_rows(out))
    assert labelled >= 4  # prose-wrapped answers were not extended by the responder
    assert f"({labelled} span boundaries moved by the span rules)" in capsys.readouterr().out
    rows = data_rows(cut)
    assert sum(e["text"] == "hereditary myotonic dystrophy" for r in rows for e in r["entities"]) == labelled
    assert not any(e["text"] == "myotonic dystrophy" for r in rows for e in r["entities"])
    stats = json.loads((cut / "stats.json").read_text())
    assert stats["curation"]["relabelled"] == {"span_extended": labelled, "span_trimmed": 0,
                                               "examples_changed": labelled}
    assert f"extended {labelled} spans" in (cut / "README.md").read_text()
    # The rules travel with the data, so that a model trained on it applies them to its own spans too.
    assert stats["span_rules"] == {"Disease": {"span_include": ["hereditary"], "span_include_after": [],
                                               "span_exclude": []}}
    from medsynth.train.fit import data_record

    assert data_record(cut)["span_rules"] == stats["span_rules"]
    assert sum("hereditary myotonic dystrophy" in e["text"] for r in data_rows(out) for e in r["entities"]) == 0

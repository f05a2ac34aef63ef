"""Curation between the store and the exports: judge scores become `score`/`weight` columns, `--dedup` and
`--drop-phi` drop from the exported set (never from the store), and the card/quality.json say what happened."""

from __future__ import annotations

import json

from datasets import load_from_disk

from medsynth.cli.main import main
from medsynth.quality.dedup import find_duplicates
from medsynth.quality.judge import JudgeStore
from medsynth.quality.privacy import scan
from medsynth.data.store import RunStore
from tests import fake_generator
from tests.helpers import (build_with_double, built_run, cache_env, data_rows, example_from,  # noqa: F401
                           with_extra_sentence)
from tests.llm_double import LLMDouble


def _with_phi(request: dict) -> str:
    """The fake generator's answer; every third seed also names an invented doctor and phone number."""
    raw = fake_generator.answer(request)
    if int(request.get("seed") or 0) % 3 or not raw.startswith("{"):
        return raw
    obj = json.loads(raw)
    obj["text"] += " Call Dr. John Smith at (555) 123-4567."
    return json.dumps(obj)


def test_curation_flags_judge_scores_and_card(cache_env):
    out = cache_env / "run"
    with LLMDouble(_with_phi) as double:
        assert build_with_double("ner", double, out, 12) == 0
    with RunStore(out, lock=False) as store:
        stored = store.examples()
    assert len(stored) == 12
    phi_ids = set(scan(stored))
    dup_ids = set(find_duplicates(stored, 0.8).drop_ids)
    assert phi_ids, "the responder planted PHI-like text"

    # Judge two examples, then export with both flags: what is dropped is exactly what the controls flag.
    with JudgeStore(out) as judge:
        judge.put(stored[0].id, "judge-model", "p1", 2, "boundary errors", None, 10, 5)
        judge.put(stored[1].id, "judge-model", "p1", 5, "correct", None, 10, 5)
    cut = cache_env / "cut"
    assert main(["export", "--run", str(out), "--n", "12", "--out", str(cut), "--dedup", "--drop-phi"]) == 0
    kept = {r["id"] for r in data_rows(cut)}
    assert kept == {e.id for e in stored} - dup_ids - phi_ids
    stats = json.loads((cut / "stats.json").read_text())
    assert stats["curation"]["input"] == 12 and stats["curation"]["output"] == len(kept)
    assert stats["curation"]["dropped"] == {"duplicate": len(dup_ids), "phi": len(phi_ids - dup_ids)}
    card = (cut / "README.md").read_text()
    assert "## Data quality" in card and "### Curation" in card and "judge scores attached to" in card
    quality = json.loads((cut / "quality.json").read_text())
    assert quality["summary"]["privacy"]["flagged"] == 0  # the exported set is clean
    with RunStore(out, lock=False) as store:
        assert store.count_examples() == 12  # the store keeps everything

    # Without flags every example is exported; judged ones carry score and weight = score/5.
    full = cache_env / "full"
    assert main(["export", "--run", str(out), "--n", "12", "--out", str(full)]) == 0
    rows = {}
    for split in ("train", "validation"):
        for r in load_from_disk(str(full / "hf"))[split]:
            rows[r["id"]] = r
    assert len(rows) == 12
    assert (rows[stored[0].id]["score"], round(rows[stored[0].id]["weight"], 3)) == (2.0, 0.4)
    assert (rows[stored[1].id]["score"], rows[stored[1].id]["weight"]) == (5.0, 1.0)
    assert all(r["score"] is None and r["weight"] == 1.0 for i, r in rows.items() if i not in {stored[0].id, stored[1].id})
    assert json.loads((full / "quality.json").read_text())["summary"]["privacy"]["flagged"] == len(phi_ids)


def test_unjudged_exports_have_no_score_column(cache_env):
    out = cache_env / "run"
    with LLMDouble(fake_generator.answer) as double:
        assert build_with_double("ner", double, out, 3) == 0
    dd = load_from_disk(str(out / "hf"))
    assert "score" not in dd["train"].column_names and "weight" in dd["train"].column_names


def test_bad_dedup_threshold_is_a_usage_error(cache_env, capsys):
    out = cache_env / "run"
    with LLMDouble(fake_generator.answer) as double:
        assert build_with_double("ner", double, out, 2) == 0
    capsys.readouterr()
    assert main(["export", "--run", str(out), "--n", "2", "--out", str(cache_env / "x"), "--dedup-threshold", "0"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--dedup-threshold" in err and "Traceback" not in err


# -- --reuse-abbreviations: copies with the defined abbreviation used alone ------------------------------------

from medsynth.data.export import _split  # noqa: E402
from medsynth.quality.augment import abbreviation_copies  # noqa: E402
from medsynth.records import DERIVED_FROM, Example, Relation  # noqa: E402


def test_a_defined_abbreviation_gets_a_copy_where_it_stands_alone():
    ex = example_from("Patients with myotonic dystrophy (DM) and cataract were seen.",
             [("myotonic dystrophy", "Disease"), ("DM", "Disease"), ("cataract", "Disease")])
    copies, skipped = abbreviation_copies([ex])
    assert skipped == 0 and len(copies) == 1
    copy = copies[0]
    assert copy.text == "Patients with DM and cataract were seen."
    assert [(e.text, e.label) for e in copy.entities] == [("DM", "Disease"), ("cataract", "Disease")]
    assert copy.check_spans() == [] and copy.meta[DERIVED_FROM] == "e1" and copy.id != ex.id


def test_no_copy_without_a_real_abbreviation_of_the_same_type():
    cases = [
        example_from("A case of myotonic dystrophy (DM) was seen.", [("myotonic dystrophy", "Disease"), ("DM", "Chemical")]),
        example_from("A case of ectodermal dysplasia (Dysplasia) was seen.",  # not abbreviation-shaped
            [("ectodermal dysplasia", "Disease"), ("Dysplasia", "Disease")]),
        example_from("A case of myotonic dystrophy, DM, was seen.", [("myotonic dystrophy", "Disease"), ("DM", "Disease")]),
        example_from("A case of myotonic dystrophy (DM was seen.", [("myotonic dystrophy", "Disease"), ("DM", "Disease")]),
    ]
    assert abbreviation_copies(cases) == ([], 0)


def test_examples_with_relations_are_skipped_and_counted():
    ex = example_from("Cisplatin (CDDP) caused nephrotoxicity.", [("Cisplatin", "Chemical"), ("CDDP", "Chemical"),
                                                          ("nephrotoxicity", "Disease")],
             relations=[Relation(head=0, tail=2, label="CID")])
    assert abbreviation_copies([ex]) == ([], 1)


def test_two_definitions_give_two_copies_and_later_spans_shift():
    ex = example_from("Both Duchenne muscular dystrophy (DMD) and cystic fibrosis (CF) are inherited; CF is common.",
             [("Duchenne muscular dystrophy", "Disease"), ("DMD", "Disease"), ("cystic fibrosis", "Disease"),
              ("CF", "Disease"), ("CF", "Disease")])
    copies, _ = abbreviation_copies([ex])
    assert [c.text for c in copies] == [
        "Both DMD and cystic fibrosis (CF) are inherited; CF is common.",
        "Both Duchenne muscular dystrophy (DMD) and CF are inherited; CF is common."]
    assert all(c.check_spans() == [] for c in copies) and len({c.id for c in copies}) == 2


def test_a_copy_lands_in_the_split_of_its_original():
    originals = [Example(id=f"ner-{i:06d}", text="x") for i in range(200)]
    copies = [Example(id=f"{o.id}-abbr1", text="y", meta={DERIVED_FROM: o.id}) for o in originals]
    parts = _split(originals + copies)
    for split, exs in parts.items():
        ids = {e.id for e in exs}
        assert all((c.id in ids) == (c.meta[DERIVED_FROM] in ids) for c in copies), split


_DEFINES_ABBREVIATION = with_extra_sentence(  # every sentence also defines an abbreviation, both labelled
    "A history of myotonic dystrophy (DM) was noted.", [("myotonic dystrophy", "Disease"), ("DM", "Disease")])


def test_export_reuse_abbreviations_end_to_end(cache_env, capsys):
    out = built_run(cache_env, _DEFINES_ABBREVIATION)
    cut = cache_env / "cut"
    capsys.readouterr()
    assert main(["export", "--run", str(out), "--n", "6", "--out", str(cut), "--reuse-abbreviations"]) == 0
    defining = sum("(DM)" in r["text"] for r in data_rows(out))  # a prose-wrapped answer was not extended
    assert defining >= 4
    assert f"({defining} copies added by curation)" in capsys.readouterr().out
    rows = data_rows(cut)
    alone = [r for r in rows if r["meta"].get("augment") == "abbreviation_alone"]
    assert len(rows) == 6 + defining and len(alone) == defining
    assert all("A history of DM was noted." in r["text"] for r in alone)
    stats = json.loads((cut / "stats.json").read_text())
    assert stats["curation"]["added"] == {"abbreviation_alone": defining}
    assert f"added copies: abbreviation_alone {defining}" in (cut / "README.md").read_text()
    dd = load_from_disk(str(cut / "hf"))
    assert len(dd["train"]) + len(dd["validation"]) == 6 + defining
    with RunStore(out, lock=False) as store:
        assert store.count_examples() == 6  # copies live in the export only


# -- --vary-distractors: copies with other look-alikes in the planned distractor slots ----------------------------

from medsynth.generate.plan import vocabulary_groups  # noqa: E402
from medsynth.quality.augment import varied_copies  # noqa: E402
from medsynth.spec import get_task  # noqa: E402


def _planned(text: str, mentions: list[tuple[str, str]], distractors: list[tuple[str, str]], ex_id: str = "e1"):
    ex = example_from(text, mentions, ex_id)
    plan = {"slot": 0, "style": "s", "targets": [], "distractors": [{"text": t, "label": g} for t, g in distractors]}
    return ex.model_copy(update={"meta": {"plan": plan}})


def test_varied_copies_swap_the_look_alike_and_keep_the_labels_exact():
    task = get_task("ner")  # labels Chemical and Disease: the species and gene groups are drawn, not chemicals
    groups = {name: terms for name, terms in vocabulary_groups(task).values()}
    species = next(n for n in groups if "species" in n)
    ex = _planned("In mice given cisplatin, nephrotoxicity was severe.",
                  [("cisplatin", "Chemical"), ("nephrotoxicity", "Disease")], [("mice", species)])
    copies, skipped = varied_copies([ex], task, 3)
    assert skipped == 0 and len(copies) == 3 and len({c.id for c in copies}) == 3
    for c in copies:
        assert c.check_spans() == [] and c.meta[DERIVED_FROM] == "e1" and c.meta["augment"] == "varied_terms"
        assert [(e.text, e.label) for e in c.entities] == [("cisplatin", "Chemical"), ("nephrotoxicity", "Disease")]
        swapped = c.text[len("In "):c.text.index(" given")]
        assert swapped != "mice" and swapped in groups[species]
    assert varied_copies([ex], task, 3)[0] == copies  # seeded by the example id: the same copies every time


def test_varied_mentions_take_other_lexicon_terms_of_their_label():
    task = get_task("ner")
    ex = _planned("Aspirin relieved the migraine in rats.", [("Aspirin", "Chemical"), ("migraine", "Disease")],
                  [("rats", "nope: not a shown group name")])
    copies, _ = varied_copies([ex], task, 2, mentions=True)
    assert len(copies) == 2
    for c in copies:
        assert c.check_spans() == [] and c.text.endswith(" in rats.")  # an unknown group is left as written
        chem, dis = c.entities
        assert chem.text.lower() in {t.lower() for t in task.lexicon["Chemical"]}  # capitalised: it starts the text
        assert dis.text in task.lexicon["Disease"]
        assert (chem.label, dis.label) == ("Chemical", "Disease")


def test_no_copies_without_planned_look_alikes_found_unlabelled():
    task = get_task("ner")
    groups = {name: terms for name, terms in vocabulary_groups(task).values()}
    species = next(n for n in groups if "species" in n)
    cases = [_planned("Cisplatin caused nephrotoxicity.", [("Cisplatin", "Chemical"), ("nephrotoxicity", "Disease")], []),
             _planned("Cisplatin caused nephrotoxicity.", [("Cisplatin", "Chemical")], [("zebrafish", species)]),
             example_from("In mice given cisplatin.", [("cisplatin", "Chemical")])]  # no plan at all
    assert varied_copies(cases, task, 3) == ([], 0)


def test_a_look_alike_that_starts_the_sentence_stays_capitalised():
    task = get_task("ner")
    groups = {name: terms for name, terms in vocabulary_groups(task).values()}
    species = next(n for n in groups if "species" in n)
    ex = _planned("Mice given cisplatin lost weight. Rats did not.", [("cisplatin", "Chemical")],
                  [("Mice", species), ("Rats", species)])
    copies, _ = varied_copies([ex], task, 5)
    for c in copies:
        assert c.text[0].isupper() and c.text.split(". ")[1][0].isupper(), c.text


def test_vary_mentions_without_vary_distractors_is_refused_in_one_line(cache_env, capsys):
    with LLMDouble(fake_generator.answer) as double:
        assert build_with_double("ner", double, cache_env / "run", 2, "--vary-mentions") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--vary-mentions" in err and "Traceback" not in err


def test_a_mention_that_starts_the_sentence_is_carried_over_as_written():
    task = get_task("ner")
    groups = {name: terms for name, terms in vocabulary_groups(task).values()}
    species = next(n for n in groups if "species" in n)
    ex = _planned("nitric oxide levels rose in mice.", [("nitric oxide", "Chemical")], [("mice", species)])
    copies, _ = varied_copies([ex], task, 3)
    assert copies and all(c.text.startswith("nitric oxide levels rose in ") for c in copies)
    assert all(c.entities[0].text == "nitric oxide" and c.check_spans() == [] for c in copies)

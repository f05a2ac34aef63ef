"""`build re` end to end: label-first relation plans, prompts and schema, parsing relations out of messy
answers, the relation validator (`relate.py`), exports (data.jsonl, hf/, brat/, pairs.jsonl, card, stats) and
the CLI, against the loopback LLM double (a real HTTP server; no model is started)."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from medsynth.generate import prompt as prompting
from medsynth.generate.build import annotate
from medsynth.cli.main import main
from medsynth.errors import MedsynthError
from medsynth.data.export import brat_ann, relation_pairs
from medsynth.generate.parse import RawRelation, parse_json_answer
from medsynth.generate.plan import Plan, PlannedRelation, make_plan
from medsynth.generate.relate import relate
from medsynth.spec import TaskSpec, get_task, parse_task
from medsynth.records import NO_RELATION, Entity, Example, Mention, RelPair
from tests.helpers import build_with_double, cache_env, data_rows  # noqa: F401 (cache_env: fixture)
from tests.llm_double import LLMDouble


def _re_task(**kw) -> TaskSpec:
    data = dict(
        name="toy-re", kind="re", description="chemicals and genes",
        labels=[{"name": "Chemical", "definition": "a chemical"}, {"name": "Gene", "definition": "a gene"},
                {"name": "Disease", "definition": "a disease"}],
        relations=[{"name": "UP", "definition": "activates", "head": "Chemical", "tail": "Gene"},
                   {"name": "DOWN", "definition": "inhibits", "head": "Chemical", "tail": "Gene"},
                   {"name": "BINDS", "definition": "binds", "head": "Gene", "tail": "Gene", "symmetric": True}],
        styles=[{"name": "abstract", "description": "abstract", "min_words": 8, "max_words": 30}],
        lexicon={"Chemical": [f"chem{i}" for i in range(17)], "Gene": [f"GENE{i}" for i in range(23)],
                 "Disease": [f"disease{i}" for i in range(11)]},
        mentions_per_sentence=(2, 4), negative_fraction=0.3,
    )
    data.update(kw)
    return TaskSpec.model_validate(data)


# ---------------------------------------------------------------------------------------------------------------
# planning


def test_re_plans_are_deterministic_and_fit_the_signature():
    task = _re_task()
    assert [make_plan(task, s, 13) for s in range(50)] == [make_plan(task, s, 13) for s in range(50)]
    assert [make_plan(task, s, 13).relation for s in range(50)] != [make_plan(task, s, 14).relation for s in range(50)]
    specs = {r.name: r for r in task.relations}
    for slot in range(300):
        plan = make_plan(task, slot, 13)
        rel = plan.relation
        assert rel is not None and rel.relation in specs
        assert rel.label in (rel.relation, NO_RELATION)
        spec = specs[rel.relation]
        assert (rel.head.label, rel.tail.label) == (spec.head, spec.tail)
        assert rel.head.text.lower() != rel.tail.text.lower()
        first, second = plan.targets[:2]
        assert (first, second) == ((rel.head, rel.tail) if rel.head_first else (rel.tail, rel.head))
        assert 2 <= len(plan.targets) <= 4 and len({t.text.lower() for t in plan.targets}) == len(plan.targets)
        for t in plan.targets:
            assert t.text in task.lexicon[t.label]


def test_re_plans_balance_labels_negatives_and_order():
    task = _re_task()
    plans = [make_plan(task, s, 13) for s in range(600)]
    labels = Counter(p.relation.label for p in plans)
    assert labels[NO_RELATION] == 180  # exactly the planned share (low-discrepancy, not coin flips)
    for n in (10, 37, 100):  # ... in every prefix too, so small runs get their share
        assert abs(sum(p.relation.negative for p in plans[:n]) - 0.3 * n) <= 1
    positives = [labels[r.name] for r in task.relations]
    assert max(positives) - min(positives) <= 1  # positive labels cycle evenly
    negatives_by_signature = Counter(p.relation.relation for p in plans if p.relation.negative)
    assert max(negatives_by_signature.values()) - min(negatives_by_signature.values()) <= 1
    assert 0.4 < sum(p.relation.head_first for p in plans) / len(plans) < 0.6
    used = Counter(t.text for p in plans for t in p.targets if t.label == "Chemical")
    assert min(used[f"chem{i}"] for i in range(17)) > 0 and max(used.values()) - min(used.values()) <= 3


def test_negative_fraction_is_a_validated_field():
    assert all(make_plan(_re_task(negative_fraction=0.0), s, 13).relation.label != NO_RELATION for s in range(50))
    with pytest.raises(Exception):
        _re_task(negative_fraction=0.95)
    assert TaskSpec.model_fields["negative_fraction"].default == 0.3


def test_ner_plans_carry_no_relation():
    assert make_plan(get_task("ner"), 3, 13).relation is None


def test_shipped_re_tasks_plan_their_relations():
    for name in ("cdr", "gad", "chemprot"):
        task = get_task(name)
        plans = [make_plan(task, s, 13) for s in range(100)]
        assert {p.relation.label for p in plans} == {r.name for r in task.relations} | {NO_RELATION}


# ---------------------------------------------------------------------------------------------------------------
# prompt and schema


def test_re_prompt_and_schema():
    task = get_task("chemprot")
    plans = [make_plan(task, s, 13) for s in range(10)]
    pos = next(p for p in plans if not p.relation.negative)
    neg = next(p for p in plans if p.relation.negative)
    system = prompting.system_prompt(task, "json")
    assert "CPR:4" in system and "relation extraction" in system and '"relations"' in system
    assert f'the {pos.relation.label} relation with head "{pos.relation.head.text}"' in prompting.user_prompt(pos)
    assert "WITHOUT stating any relation" in prompting.user_prompt(neg)
    for plan, lo in ((pos, 1), (neg, 0)):
        sch = prompting.schema(task, plan, "json")
        assert sch["required"] == ["text", "entities", "relations"]
        assert sch["properties"]["entities"]["minItems"] == len(plan.targets)
        rels = sch["properties"]["relations"]
        assert rels["minItems"] == lo
        assert rels["items"]["properties"]["label"]["enum"] == [r.name for r in task.relations]
    ner = get_task("ner")
    assert "relations" not in json.dumps(prompting.schema(ner, make_plan(ner, 1, 13), "json"))
    assert "relation" not in prompting.user_prompt(make_plan(ner, 1, 13))


# ---------------------------------------------------------------------------------------------------------------
# parsing relations


def _parse(relations: object, entities: list | None = None):
    answer = {"text": "Aspirin inhibited COX-2.", "entities": entities or [], "relations": relations}
    return parse_json_answer(json.dumps(answer))


@pytest.mark.parametrize("relations,expected,repair", [
    ([{"head": "a", "tail": "b", "label": "UP"}], [("a", "b", "UP")], None),
    ([{"subject": "a", "object": "b", "relation": "UP"}], [("a", "b", "UP")], None),
    ([{"arg1": {"text": "a"}, "arg2": {"text": "b"}, "type": "UP"}], [("a", "b", "UP")], "relation:arg_as_object"),
    ([["a", "UP", "b"]], [("a", "b", "UP")], "relation:as_triple"),
    ({"head": "a", "tail": "b", "label": "UP"}, [("a", "b", "UP")], "relation:single_object"),
    ({"UP": [["a", "b"]], "DOWN": [{"head": "c", "tail": "d"}]}, [("a", "b", "UP"), ("c", "d", "DOWN")],
     "relation:as_mapping"),
    ([{"head": 0, "tail": 1, "label": "UP"}], [("x", "y", "UP")], "relation:arg_as_index"),
    ([{"head": "a", "label": "UP"}], [("a", "", "UP")], None),  # the validator counts the missing argument
    ([{"head": "a", "tail": "b"}], [("a", "b", "")], None),  # ... and the missing label
    (None, [], None),
    ([], [], None),
    ("a UP b", [], "relation:wrong_type"),
    (7, [], "relation:wrong_type"),
    ([None, 3, "x", ["a", "b"], {"label": "UP"}, {"head": "a", "tail": "b", "label": "UP"}],
     [("a", "b", "UP")], "relation:wrong_type"),
])
def test_parse_relations_survives_shapes(relations, expected, repair):
    res = _parse(relations, [{"text": "x", "label": "Chemical"}, {"text": "y", "label": "Gene"}])
    assert res.error is None
    assert [(r.head, r.tail, r.label) for r in res.relations] == expected
    if repair:
        assert res.repairs[repair] >= 1


def test_parse_relations_never_crashes_on_noise():
    rng = random.Random(5)
    atoms = [None, 0, -1, 99, True, 1.5, "", "x", [], {}, [1, 2, 3], {"head": None}, {"tail": []}, ["a", 1, "b"]]

    def junk(depth: int = 0):
        r = rng.random()
        if depth > 2 or r < 0.4:
            return rng.choice(atoms)
        if r < 0.7:
            return [junk(depth + 1) for _ in range(rng.randrange(4))]
        return {rng.choice(["head", "tail", "label", "arg1", "type", "UP", "x"]): junk(depth + 1) for _ in range(3)}

    for _ in range(400):
        res = _parse(junk(), [{"text": "x", "label": "Chemical"}])
        assert all(isinstance(r.head, str) and isinstance(r.tail, str) and isinstance(r.label, str)
                   for r in res.relations)
    assert parse_json_answer('{"text": "Aspirin works.", "entities": []}').relations == []  # NER answers


# ---------------------------------------------------------------------------------------------------------------
# the validator


def _ents(text: str, *spec: tuple[str, str]) -> list[Entity]:
    out, pos = [], 0
    for surface, label in spec:
        start = text.index(surface, pos)
        out.append(Entity(start=start, end=start + len(surface), label=label, text=surface))
        pos = start + len(surface)
    return sorted(out, key=lambda e: e.start)


def _plan(label: str | None, head=("chem1", "Chemical"), tail=("GENE1", "Gene"), relation: str = "UP") -> Plan:
    rel = None
    if label is not None:
        rel = PlannedRelation(relation=relation, label=label, head=Mention(text=head[0], label=head[1]),
                              tail=Mention(text=tail[0], label=tail[1]), head_first=True)
    return Plan(slot=0, seed=1, style="abstract", style_description="abstract", min_words=5, max_words=40,
                targets=[Mention(text=head[0], label=head[1]), Mention(text=tail[0], label=tail[1])], relation=rel)


TEXT = "In cells, chem1 activated GENE1 but chem2 blocked GENE2, and GENE1 bound GENE2 in disease1."
ENTS = _ents(TEXT, ("chem1", "Chemical"), ("GENE1", "Gene"), ("chem2", "Chemical"), ("GENE2", "Gene"),
             ("GENE1", "Gene"), ("GENE2", "Gene"), ("disease1", "Disease"))


def _relate(raw: list[tuple[str, str, str]], plan: Plan | None = None, text: str = TEXT, ents=ENTS):
    task = _re_task()
    return relate(text, ents, [RawRelation(*r) for r in raw], task, plan or _plan(None))


def _triples(res, ents=ENTS) -> set[tuple[str, str, str]]:
    return {(ents[r.head].text, ents[r.tail].text, r.label) for r in res.relations}


def test_validator_maps_strings_to_every_occurrence():
    res = _relate([("chem1", "GENE1", "UP")])
    assert [(r.head, r.tail, r.label) for r in res.relations] == [(0, 1, "UP"), (0, 4, "UP")]
    assert not res.repairs and res.rejection is None


def test_validator_swaps_reversed_direction():
    res = _relate([("GENE2", "chem2", "DOWN")])
    assert _triples(res) == {("chem2", "GENE2", "DOWN")} and res.repairs["relation:direction_swapped"] == 1
    assert all(ENTS[r.head].label == "Chemical" and ENTS[r.tail].label == "Gene" for r in res.relations)


def test_validator_counts_drops():
    res = _relate([("chem1", "GENE1", "UP"), ("chem1", "GENE1", "UP"),  # duplicate
                   ("chem1", "GENE1", "DOWN"),  # second label on a pair
                   ("chem1", "disease1", "UP"),  # Chemical-Disease: no such signature
                   ("chem1", "GENE9", "UP"), ("", "GENE1", "UP"),  # missing arguments
                   ("chem1", "GENE1", "ACTIVATES"), ("chem1", "GENE1", ""),  # unknown labels
                   ("chem2", "chem2", "UP")])  # self relation
    r = res.repairs
    assert r["relation:duplicate"] == 2 and r["relation:label_conflict"] == 2 and r["relation:bad_signature"] == 1
    assert r["relation:missing_argument"] == 2 and r["relation:unknown_label"] == 2 and r["relation:self_relation"] == 1
    assert _triples(res) == {("chem1", "GENE1", "UP")} and res.rejection is None


def test_validator_repairs_labels_and_argument_strings():
    res = _relate([("CHEM2", "'GENE2'", "down"), ("chem-1", "gene 1", "up")])
    assert _triples(res) == {("chem2", "GENE2", "DOWN"), ("chem1", "GENE1", "UP")}
    assert res.repairs["relation:label_case"] == 2 and res.repairs["relation:arg_repaired"] >= 1


def test_symmetric_relation_is_unordered():
    res = _relate([("GENE1", "GENE2", "BINDS"), ("GENE2", "GENE1", "BINDS")])
    pairs = {(min(r.head, r.tail), max(r.head, r.tail)) for r in res.relations}
    assert len(pairs) == len(res.relations) and res.repairs["relation:duplicate"] >= 1
    assert not res.repairs["relation:direction_swapped"]


def test_plan_asserts_the_planned_relation():
    res = _relate([], _plan("UP"))
    assert _triples(res) == {("chem1", "GENE1", "UP")} and res.repairs["relation:from_plan"] == 2
    listed = _relate([("chem1", "GENE1", "UP")], _plan("UP"))
    assert listed.relations == res.relations and not listed.repairs["relation:from_plan"]
    extra = _relate([("chem2", "GENE2", "DOWN")], _plan("UP"))  # other pairs keep what the LLM said
    assert ("chem2", "GENE2", "DOWN") in _triples(extra) and ("chem1", "GENE1", "UP") in _triples(extra)


def test_plan_contradictions_reject():
    assert _relate([("chem1", "GENE1", "UP")], _plan(NO_RELATION)).rejection == "relation_contradicts_plan"
    assert _relate([("GENE1", "chem1", "DOWN")], _plan(NO_RELATION)).rejection == "relation_contradicts_plan"
    assert _relate([("chem1", "GENE1", "DOWN")], _plan("UP")).rejection == "relation_contradicts_plan"
    ok = _relate([("chem2", "GENE2", "DOWN")], _plan(NO_RELATION))
    assert ok.rejection is None and _triples(ok) == {("chem2", "GENE2", "DOWN")}
    assert _relate([], _plan("UP", head=("chem7", "Chemical"))).rejection == "missing_targets"


def test_annotate_wires_parse_align_filter_relate():
    task = _re_task()
    plan = _plan("UP")
    raw = json.dumps({"text": "Treatment with chem1 strongly activated GENE1 in treated mice.",
                      "entities": [{"text": "chem1", "label": "Chemical"}, {"text": "GENE1", "label": "Gene"}],
                      "relations": [{"head": "GENE1", "tail": "chem1", "label": "UP"}, {"head": "x", "tail": "y",
                                                                                   "label": "UP"}]})
    ann = annotate(raw, task, plan, "json", 0.85)
    assert ann.reason is None and [(r.head, r.tail, r.label) for r in ann.relations] == [(0, 1, "UP")]
    assert ann.repairs["relation:direction_swapped"] == 1 and ann.repairs["relation:missing_argument"] == 1
    neg = annotate(raw, task, _plan(NO_RELATION), "json", 0.85)
    assert neg.reason == "relation_contradicts_plan"


# ---------------------------------------------------------------------------------------------------------------
# pairs and BRAT


def test_relation_pairs_cover_candidate_pairs_only():
    task = _re_task()
    ex = Example(id="t-1", text=TEXT, entities=ENTS, relations=_relate([("chem1", "GENE1", "UP"),
                                                                        ("GENE1", "GENE2", "BINDS")]).relations)
    pairs = relation_pairs([ex], task, {"t-1": "validation"})
    ids = {p.id for p in pairs}
    chems, genes = [0, 2], [1, 3, 4, 5]
    expected = {f"t-1:{c}-{g}" for c in chems for g in genes} | {f"t-1:{a}-{b}" for a in genes for b in genes if a < b}
    assert ids == expected and len(pairs) == len(ids)  # no Disease pairs, no reversed Gene-Gene duplicates
    by_id = {p.id: p for p in pairs}
    assert by_id["t-1:0-1"].label == "UP" and by_id["t-1:0-4"].label == "UP" and by_id["t-1:2-3"].label == NO_RELATION
    assert by_id["t-1:1-3"].label == "BINDS" and all(p.split == "validation" for p in pairs)
    assert RelPair.model_validate_json(by_id["t-1:0-1"].model_dump_json()).head.text == "chem1"


def _read_brat(txt: Path, ann: Path) -> tuple[str, list[Entity], list[tuple[int, int, str]]]:
    """A small independent BRAT standoff reader (T and R lines)."""
    text = txt.read_text(encoding="utf-8")
    ents: dict[str, Entity] = {}
    rels = []
    for line in ann.read_text(encoding="utf-8").splitlines():
        tid, body = line.split("\t", 1)[0], line.split("\t")[1]
        if tid.startswith("T"):
            label, spans = body.split(" ", 1)
            frags = [tuple(map(int, s.split())) for s in spans.split(";")]
            start, end = frags[0][0], frags[-1][1]
            assert line.split("\t")[2] == " ".join(text[a:b] for a, b in frags)
            ents[tid] = Entity(start=start, end=end, label=label, text=text[start:end])
        else:
            label, a1, a2 = body.split(" ")
            rels.append((a1.removeprefix("Arg1:"), a2.removeprefix("Arg2:"), label))
    order = list(ents)
    return text, list(ents.values()), [(order.index(h), order.index(t), lab) for h, t, lab in rels]


def test_brat_lines_and_newline_fragments(tmp_path):
    text = "chem1 blocks the\nGENE1 receptor."
    ex = Example(id="x", text=text, entities=[Entity(start=0, end=5, label="Chemical", text="chem1"),
                                              Entity(start=13, end=31, label="Gene", text=text[13:31])],
                 relations=[{"head": 0, "tail": 1, "label": "DOWN"}])
    ann = brat_ann(ex)
    assert ann.splitlines() == ["T1\tChemical 0 5\tchem1", "T2\tGene 13 16;17 31\tthe GENE1 receptor",
                                "R1\tDOWN Arg1:T1 Arg2:T2"]
    (tmp_path / "x.txt").write_text(text)
    (tmp_path / "x.ann").write_text(ann)
    assert _read_brat(tmp_path / "x.txt", tmp_path / "x.ann")[2] == [(0, 1, "DOWN")]


# ---------------------------------------------------------------------------------------------------------------
# `build re` end to end through the LLM double

_MUST = re.compile(r'"([^"]+)" \(([A-Za-z][\w\-]*)\)')
_POS = re.compile(r'the (\S+) relation with head "([^"]+)" and tail "([^"]+)"')
_NEG = re.compile(r'mention both "([^"]+)" and "([^"]+)" WITHOUT')


def re_answer(request: dict) -> str:
    """A scripted RE 'LLM': writes the planned mentions into a sentence and states relations, misbehaving in
    the ways small models do — reversed arguments, the relation left out, an unknown label, a made-up
    argument, a contradiction of a "none" plan, garbage — each on its own seeds."""
    seed = int(request.get("seed") or 0)
    user = request["messages"][-1]["content"]
    must = user.split("It must mention: ", 1)[1].split(". Mention", 1)[0]
    targets = _MUST.findall(must)
    if seed % 11 == 0:
        return "I cannot help with that."
    text = f"In study {seed}, " + " together with ".join(t for t, _ in targets) + " was examined in the cohort."
    ents = [{"text": t, "label": lab} for t, lab in targets]
    rels = []
    pos, neg = _POS.search(user), _NEG.search(user)
    if pos:
        label, head, tail = pos.groups()
        if seed % 5 == 1:
            rels.append({"head": tail, "tail": head, "label": label})  # reversed: the validator swaps it
        elif seed % 5 != 2:  # seed % 5 == 2: left out, the plan asserts it
            rels.append({"head": head, "tail": tail, "label": label})
    elif neg and seed % 13 == 3:
        head, tail = neg.groups()
        label = re.search(r"^- (\S+) \(head", request["messages"][0]["content"], re.M).group(1)
        rels.append({"head": head, "tail": tail, "label": label})  # contradicts the plan: rejected
    if seed % 7 == 0:
        rels += [{"head": "nothing said", "tail": targets[0][0], "label": rels[0]["label"] if rels else "X"},
                 {"head": targets[0][0], "tail": targets[1][0], "label": "MADE_UP"}]
    return json.dumps({"text": text, "entities": ents, "relations": rels})


def _build_re(double: LLMDouble, out: Path, n: int, *extra: str) -> int:
    return build_with_double("re", double, out, n, *extra)


_rows = data_rows


def test_build_re_end_to_end(cache_env):
    out = cache_env / "re"
    task = get_task("chemprot")
    with LLMDouble(re_answer) as double:
        assert _build_re(double, out, 40, "--task", "chemprot") == 0
        first = {p: (out / p).read_bytes() for p in ("data.jsonl", "pairs.jsonl", "README.md")}
        calls = double.chat_calls
        assert _build_re(double, out, 40, "--task", "chemprot") == 0  # resume: nothing left to ask
        assert double.chat_calls == calls
        assert not double.errors
    assert json.loads((out / "stats.json").read_text())["llm_calls"] == 0
    assert first == {p: (out / p).read_bytes() for p in first}

    rows = _rows(out)
    assert len(rows) == 40
    names = {r.name: r for r in task.relations}
    planned_labels = Counter()
    for r in rows:
        ex = Example.model_validate(r)
        assert not ex.check_spans()
        for rel in ex.relations:  # every argument is an aligned entity with the relation's signature
            head, tail = ex.entities[rel.head], ex.entities[rel.tail]
            assert r["text"][head.start:head.end] == head.text and r["text"][tail.start:tail.end] == tail.text
            assert (head.label, tail.label) == (names[rel.label].head, names[rel.label].tail)
        planned = r["meta"]["plan"]["relation"]
        planned_labels[planned["label"]] += 1
        on_planned = {rel.label for rel in ex.relations
                      if ex.entities[rel.head].text == planned["head"]["text"]
                      and ex.entities[rel.tail].text == planned["tail"]["text"]}
        assert on_planned == (set() if planned["label"] == NO_RELATION else {planned["label"]})
    assert planned_labels[NO_RELATION] >= 6 and len(planned_labels) >= 4

    stats = json.loads((out / "stats.json").read_text())
    for key in ("relation:direction_swapped", "relation:from_plan", "relation:unknown_label",
                "relation:missing_argument"):
        assert stats["repairs"].get(key, 0) >= 1, key
    assert stats["rejections"].get("relation_contradicts_plan", 0) >= 1
    assert stats["dataset"]["relations"]["pairs_per_label"][NO_RELATION] >= 1

    # pairs.jsonl: exactly the candidate (Chemical, Gene) pairs, labelled from data.jsonl
    pairs = [RelPair.model_validate_json(x) for x in (out / "pairs.jsonl").read_text().splitlines()]
    from datasets import load_from_disk

    dd = load_from_disk(str(out / "hf"))
    split = {i: s for s in ("train", "validation") for i in dd[s]["id"]}
    expected = {}
    for r in rows:
        on = {(x["head"], x["tail"]): x["label"] for x in r["relations"]}
        for h, eh in enumerate(r["entities"]):
            for t, et in enumerate(r["entities"]):
                if (eh["label"], et["label"]) == ("Chemical", "Gene"):
                    expected[f"{r['id']}:{h}-{t}"] = (on.get((h, t), NO_RELATION), split[r["id"]])
    assert {p.id: (p.label, p.split) for p in pairs} == expected
    assert all(p.text[p.head.start:p.head.end] == p.head.text for p in pairs)

    # hf/ carries the relations; brat/ parses back to the same entities and relations
    hf_rels = {i: rel for s in ("train", "validation") for i, rel in zip(dd[s]["id"], dd[s]["relations"])}
    brat = out / "brat"
    assert (brat / "annotation.conf").read_text().startswith("[entities]\nChemical\nGene\n")
    assert len(list(brat.glob("*.ann"))) == 40
    for r in rows:
        assert hf_rels[r["id"]] == r["relations"]
        text, ents, rels = _read_brat(brat / f"{r['id']}.txt", brat / f"{r['id']}.ann")
        assert text == r["text"] and [e.model_dump() for e in ents] == r["entities"]
        assert sorted(rels) == sorted((x["head"], x["tail"], x["label"]) for x in r["relations"])

    card = (out / "README.md").read_text()
    assert "## Relations" in card and "pairs.jsonl" in card and "relation:from_plan" in card


def test_build_re_default_task_and_smaller_reexport(cache_env):
    out = cache_env / "cdr"
    with LLMDouble(re_answer) as double:
        assert _build_re(double, out, 12) == 0
        rows = _rows(out)
        assert {r["meta"]["task"] for r in rows} == {"cdr.v1"}
        assert main(["export", "--run", str(out), "--n", "5", "--out", str(cache_env / "cdr5")]) == 0
    assert len(list((cache_env / "cdr5" / "brat").glob("*.ann"))) == 5
    assert {json.loads(x)["meta"]["example_id"] for x in (cache_env / "cdr5" / "pairs.jsonl").read_text().splitlines()
            } <= {r["id"] for r in rows[:5]}


@pytest.mark.parametrize("args,needle", [
    (["build", "re", "--task", "ner"], "use `build ner`"),
    (["build", "ner", "--task", "gad"], "use `build re`"),
    (["build", "re", "--task", "gad", "--format", "inline"], "--format json"),
])
def test_build_re_usage_errors_are_one_line(args, needle, cache_env, capsys):
    assert main([*args, "--n", "1", "--out", str(cache_env / "o"), "--base-url", "http://127.0.0.1:9/v1",
                 "--llm-model", "m", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and err.startswith("medsynth: error:")
    assert not (cache_env / "o" / "store.sqlite").exists()


@pytest.mark.parametrize("patch,needle", [
    ({"negative_fraction": 1.5}, "negative_fraction"),
    ({"relations": [{"name": "UP", "definition": "activates", "head": "Chemical", "tail": "Protein"}]},
     "not a defined label"),
    ({"relations": []}, "needs at least one relation"),
])
def test_bad_re_task_files_are_one_line(patch, needle, cache_env, capsys):
    import yaml

    data = _re_task().model_dump()
    data.update(patch)
    path = cache_env / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["build", "re", "--task-file", str(path), "--n", "1", "--out", str(cache_env / "o"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and str(path) in err
    with pytest.raises(MedsynthError):
        parse_task(data, "x")

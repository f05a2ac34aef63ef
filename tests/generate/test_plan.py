"""Label-first planning: deterministic per slot, balanced coverage, style constraints respected."""

from collections import Counter

from medsynth.generate.plan import PlanStats, make_plan
from medsynth.spec import TaskSpec


def _task(**kw) -> TaskSpec:
    data = dict(
        name="toy", description="biomedical", labels=[
            {"name": "Disease", "definition": "a disease"}, {"name": "Chemical", "definition": "a chemical"}],
        styles=[{"name": "abstract", "description": "abstract", "weight": 3, "min_words": 10, "max_words": 20},
                {"name": "note", "description": "clinical note", "weight": 1, "min_words": 8, "max_words": 15}],
        lexicon={"Disease": [f"disease{i}" for i in range(30)], "Chemical": [f"chem{i}" for i in range(20)]},
        mentions_per_sentence=(1, 3), empty_fraction=0.1,
    )
    data.update(kw)
    return TaskSpec.model_validate(data)


def test_plans_are_deterministic_and_seed_dependent():
    task = _task()
    assert make_plan(task, 7, 13) == make_plan(task, 7, 13)
    assert [make_plan(task, i, 13).targets for i in range(20)] != [make_plan(task, i, 14).targets for i in range(20)]
    assert len({make_plan(task, i, 13).seed for i in range(200)}) > 190


def test_targets_respect_counts_labels_and_lexicon():
    task = _task()
    for slot in range(300):
        plan = make_plan(task, slot, 13)
        assert 0 <= len(plan.targets) <= 3
        for t in plan.targets:
            assert t.text in task.lexicon[t.label]
        assert len({t.text for t in plan.targets}) == len(plan.targets)
        assert plan.min_words <= plan.max_words


def test_coverage_is_balanced():
    task = _task()
    used = Counter(t.text for slot in range(400) for t in make_plan(task, slot, 13).targets)
    disease = [used[f"disease{i}"] for i in range(30)]
    assert min(disease) > 0, "every lexicon term is used before any is heavily repeated"
    assert max(disease) - min(disease) <= max(3, 0.5 * max(disease))
    labels = Counter(t.label for slot in range(400) for t in make_plan(task, slot, 13).targets)
    assert abs(labels["Disease"] - labels["Chemical"]) < 0.2 * sum(labels.values())


def test_empty_fraction_and_style_weights():
    task = _task()
    plans = [make_plan(task, s, 13) for s in range(1000)]
    empty = sum(1 for p in plans if not p.targets)
    assert 50 < empty < 160  # ~10 %
    styles = Counter(p.style for p in plans)
    assert 2.0 < styles["abstract"] / styles["note"] < 4.5  # weights 3:1


def test_reference_stats_steer_the_mix():
    task = _task(empty_fraction=0.0)
    stats = PlanStats(mentions_weights={1: 1.0, 2: 0.0, 3: 0.0}, label_weights={"Disease": 1.0, "Chemical": 0.0})
    plans = [make_plan(task, s, 13, stats) for s in range(100)]
    assert all(len(p.targets) == 1 for p in plans)
    assert Counter(t.label for p in plans for t in p.targets)["Disease"] >= 99


def _with_distractors(rate: float) -> TaskSpec:
    return _task(distractor_rate=rate, distractors=[
        {"name": "gene", "note": "a gene symbol, never a Disease", "terms": [f"GENE{i}" for i in range(12)]},
        {"name": "population", "note": "a group of people", "terms": ["probands", "healthy controls"]}])


def test_distractors_leave_targets_untouched_and_follow_the_rate():
    plain, with_d = _task(), _with_distractors(0.5)
    plans = [make_plan(with_d, i, 13) for i in range(400)]
    # Hard negatives come from their own random stream: the labelled part of every plan is unchanged.
    assert [p.targets for p in plans] == [make_plan(plain, i, 13).targets for i in range(400)]
    assert all(not make_plan(plain, i, 13).distractors for i in range(50))
    share = sum(bool(p.distractors) for p in plans) / len(plans)
    assert 0.4 < share < 0.6
    groups = Counter(p.distractors[0].label for p in plans if p.distractors)
    assert set(groups) == {"gene", "population"}
    for p in plans:
        assert len(p.distractors) <= 1
        for d in p.distractors:
            group = next(g for g in with_d.distractors if g.name == d.label)
            assert d.text in group.terms and d.text.lower() not in {t.text.lower() for t in p.targets}
    assert not any(make_plan(_with_distractors(0.0), i, 13).distractors for i in range(100))


def test_distractors_reach_the_prompt_but_not_the_ner_prompt_hash():
    from medsynth.generate import prompt

    with_d = _with_distractors(1.0)
    plan = make_plan(with_d, 3, 13)
    text = prompt.user_prompt(plan)
    assert f'"{plan.distractors[0].text}"' in text and "NOT an entity" in text
    assert "NOT an entity" not in prompt.user_prompt(make_plan(_task(), 3, 13))
    assert prompt.prompt_hash(with_d, "json") == prompt.prompt_hash(_task(distractor_rate=0.0), "json")

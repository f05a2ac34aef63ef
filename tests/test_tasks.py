"""Checks on the shipped task files in tasks/: they validate, their lexicons are large and clean, and the
registry finds them by name.

Why: these files are what users copy and what the planner samples from; a duplicate or cross-labelled seed
term silently skews generated data, and a file that fails validation breaks every command that lists tasks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medsynth.errors import MedsynthError
from medsynth.spec import TaskSpec, get_task, load_task_file, registry

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"

# name -> (kind, {label: minimum lexicon size})
EXPECTED: dict[str, tuple[str, dict[str, int]]] = {
    "ner": ("ner", {"Chemical": 300, "Disease": 300}),
    "ncbi-disease": ("ner", {"Disease": 350}),
    "cdr": ("re", {"Chemical": 150, "Disease": 150}),
    "gad": ("re", {"Gene": 150, "Disease": 150}),
    "chemprot": ("re", {"Chemical": 150, "Gene": 150}),
}

EXPECTED_RELATIONS: dict[str, dict[str, tuple[str, str]]] = {
    "cdr": {"CID": ("Chemical", "Disease")},
    "gad": {"Association": ("Gene", "Disease")},
    "chemprot": {f"CPR:{n}": ("Chemical", "Gene") for n in (3, 4, 5, 6, 9)},
}


def _load(name: str) -> TaskSpec:
    return load_task_file(TASKS_DIR / f"{name}.yaml")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_file_validates_with_expected_name_kind_and_labels(name: str) -> None:
    spec = _load(name)
    kind, minimums = EXPECTED[name]
    assert spec.name == name
    assert spec.kind == kind
    assert set(spec.label_names) == set(minimums)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_lexicon_meets_minimum_size(name: str) -> None:
    spec = _load(name)
    for label, minimum in EXPECTED[name][1].items():
        distinct = {t.lower() for t in spec.lexicon[label]}
        assert len(distinct) >= minimum, f"{name}/{label}: {len(distinct)} distinct terms < {minimum}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_lexicon_terms_unique_and_clean(name: str) -> None:
    spec = _load(name)
    for label, terms in spec.lexicon.items():
        seen: dict[str, str] = {}
        for term in terms:
            assert isinstance(term, str) and term, f"{name}/{label}: empty or non-string term {term!r}"
            assert term == term.strip(), f"{name}/{label}: surrounding whitespace in {term!r}"
            assert "  " not in term, f"{name}/{label}: double space in {term!r}"
            key = term.lower()
            assert key not in seen, f"{name}/{label}: {term!r} duplicates {seen[key]!r} (case-insensitive)"
            seen[key] = term


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_negative_examples_are_not_seed_terms_of_the_same_label(name: str) -> None:
    spec = _load(name)
    for label in spec.labels:
        lexicon = {t.lower() for t in spec.lexicon[label.name]}
        clash = [n for n in label.negative_examples if n.lower() in lexicon]
        assert not clash, f"{name}/{label.name}: negative examples also in its lexicon: {clash}"


def test_ner_chemical_and_disease_lexicons_do_not_overlap() -> None:
    spec = _load("ner")
    chemical = {t.lower() for t in spec.lexicon["Chemical"]}
    disease = {t.lower() for t in spec.lexicon["Disease"]}
    assert not chemical & disease, f"terms under both labels: {sorted(chemical & disease)}"


def test_ner_examples_do_not_contradict_the_other_label() -> None:
    spec = _load("ner")
    by_name = {label.name: label for label in spec.labels}
    for label, other in (("Chemical", "Disease"), ("Disease", "Chemical")):
        other_terms = {t.lower() for t in spec.lexicon[other]}
        clash = [p for p in by_name[label].positive_examples if p.lower() in other_terms]
        assert not clash, f"{label} positive examples listed in the {other} lexicon: {clash}"


@pytest.mark.parametrize("name", ["ner", "ncbi-disease"])
def test_ner_tasks_have_rich_label_guidance(name: str) -> None:
    spec = _load(name)
    for label in spec.labels:
        assert len(label.positive_examples) >= 8, f"{name}/{label.name}: too few positive examples"
        assert len(label.negative_examples) >= 5, f"{name}/{label.name}: too few negative examples"
    assert 10 <= len(spec.guidelines) <= 15
    assert len(spec.styles) >= 8
    assert len({s.name for s in spec.styles}) == len(spec.styles), "duplicate style names"


@pytest.mark.parametrize("name", sorted(EXPECTED_RELATIONS))
def test_re_tasks_declare_expected_relations(name: str) -> None:
    spec = _load(name)
    got = {r.name: (r.head, r.tail) for r in spec.relations}
    assert got == EXPECTED_RELATIONS[name]
    assert spec.guidelines and spec.styles
    assert spec.mentions_per_sentence[0] >= 2, "an RE sentence needs room for a head and a tail"


def test_registry_finds_all_shipped_tasks() -> None:
    registry.cache_clear()  # another test may have cached a registry built before these files were read
    known = registry()
    for name in EXPECTED:
        assert name in known, f"registry lacks {name!r}; has {sorted(known)}"
        assert get_task(name).name == name
        assert get_task(f"{name}.v{known[name].version}").name == name


def test_entry_point_plugins_register_tasks(monkeypatch, tmp_path):
    """Python plugins register through the `medsynth.tasks` entry-point group (a TaskSpec, a callable or a path)."""
    import shutil
    from importlib import metadata

    from medsynth import spec

    custom = tmp_path / "custom.yaml"
    shutil.copy(Path(spec.__file__).resolve().parent.parent / "tasks" / "ncbi-disease.yaml", custom)
    custom.write_text(custom.read_text().replace("name: ncbi-disease", "name: my-plugin-task", 1))

    class EP:
        def __init__(self, name, obj):
            self.name, self._obj = name, obj

        def load(self):
            return self._obj

    def fake_entry_points(group=None):
        assert group == "medsynth.tasks"
        return [EP("from-path", str(custom))]

    monkeypatch.setattr(metadata, "entry_points", fake_entry_points)
    spec.registry.cache_clear()
    try:
        assert spec.get_task("my-plugin-task").label_names == ["Disease"]
        monkeypatch.setattr(metadata, "entry_points", lambda group=None: [EP("broken", lambda: 1 / 0)])
        spec.registry.cache_clear()
        with pytest.raises(spec.MedsynthError, match="entry point broken"):
            spec.registry()
    finally:
        spec.registry.cache_clear()


def test_older_task_versions_stay_resolvable() -> None:
    """A committed run built from v1 must re-export and resume with v1 after the file moves to v2."""
    registry.cache_clear()
    latest, v1 = get_task("ncbi-disease"), get_task("ncbi-disease.v1")
    assert latest.version >= 2 and v1.version == 1 and latest.name == v1.name == "ncbi-disease"
    assert latest.distractors and not v1.distractors
    assert latest.lexicon == v1.lexicon  # v2 only adds hard negatives
    assert get_task(latest.registry_name) == latest
    with pytest.raises(MedsynthError, match=r"older versions: .*ncbi-disease\.v1"):
        get_task("ncbi-disease.v9")

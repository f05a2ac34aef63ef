"""Task specs: what to generate — labels with definitions and examples, guidelines, styles, seed lexicons.

Task files are YAML (or JSON) validated with pydantic. Shipped tasks live in the repo's `tasks/` folder, which
is installed as the `medsynth.tasks` package, so they are found from a clone and from a pip install alike.
Third-party Python plugins register under the `medsynth.tasks` entry-point group: the entry point loads to a
`TaskSpec`, a callable returning one, or a path to a task file.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from medsynth.errors import MedsynthError

LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,39}$")


SPAN_RULE_KEYS = ("span_include", "span_include_after", "span_exclude")


class LabelSpec(BaseModel):
    name: str
    definition: str = Field(min_length=3)
    positive_examples: list[str] = Field(default_factory=list, description="mentions that ARE this label")
    negative_examples: list[str] = Field(default_factory=list, description="look-alikes that are NOT this label")
    span_include: list[str] = Field(default_factory=list, description=(
        "words that belong inside this label's span when they directly precede it (e.g. 'hereditary'); "
        "`export --apply-span-rules` extends generated spans over them"))
    span_exclude: list[str] = Field(default_factory=list, description=(
        "words that never start this label's span (e.g. 'severe'); `export --apply-span-rules` trims them"))
    span_include_after: list[str] = Field(default_factory=list, description=(
        "words that belong inside this label's span when they directly follow it (e.g. 'gene', 'receptor'); "
        "`export --apply-span-rules` extends generated spans over them"))
    span_guideline: str = Field(default="", description=(
        "a boundary rule shown to the LLM on this label's line (filled from a labelled --reference)"))
    span_examples: list[str] = Field(default_factory=list, description=(
        "example spans showing the boundary convention, shown to the LLM (invented, never corpus text)"))

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        # Labels travel into BIO tags, CoNLL columns, JSON schema enums and BRAT files: keep them plain.
        if not LABEL_RE.match(v):
            raise ValueError("must start with a letter and hold only letters, digits, '_' or '-' (max 40)")
        return v

    @field_validator("span_include", "span_exclude", "span_include_after")
    @classmethod
    def _words_ok(cls, v: list[str]) -> list[str]:
        # An empty word would match before every span and extend it over nothing forever.
        if any(not w.strip() for w in v):
            raise ValueError("holds an empty word")
        return [w.strip() for w in v]


class RelationSpec(BaseModel):
    name: str
    definition: str = Field(min_length=3)
    head: str = Field(description="entity label of the first argument")
    tail: str = Field(description="entity label of the second argument")
    symmetric: bool = False

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z][A-Za-z0-9_:\-]{0,39}$", v):
            raise ValueError("must start with a letter and hold only letters, digits, '_', ':' or '-'")
        return v


class StyleSpec(BaseModel):
    name: str
    description: str
    weight: float = Field(default=1.0, gt=0)
    min_words: int = Field(default=12, ge=3)
    max_words: int = Field(default=35, ge=3)

    @model_validator(mode="after")
    def _range(self) -> "StyleSpec":
        if self.min_words > self.max_words:
            raise ValueError(f"min_words {self.min_words} > max_words {self.max_words}")
        return self


class DistractorSpec(BaseModel):
    """Look-alike terms that planned sentences must contain *unlabelled* (hard negatives).

    Why: a model trained only on sentences whose every salient term is an entity learns "salient term =
    entity"; real text is full of genes, variants and populations next to diseases. Asking the LLM to write
    them in, and telling it they are not entities, is a constraint on x that sharpens y.
    """

    name: str = Field(min_length=1, description="what the terms are, e.g. 'gene or protein'")
    note: str = Field(min_length=3, description="shown to the LLM: why these are not entities")
    terms: list[str] = Field(min_length=1)


class TaskSpec(BaseModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    version: int = Field(default=1, ge=1)
    kind: Literal["ner", "re"] = "ner"
    description: str
    labels: list[LabelSpec] = Field(min_length=1)
    relations: list[RelationSpec] = Field(default_factory=list)
    guidelines: list[str] = Field(default_factory=list)
    styles: list[StyleSpec] = Field(min_length=1)
    lexicon: dict[str, list[str]] = Field(description="label -> seed mentions written for the project")
    mentions_per_sentence: tuple[int, int] = (1, 3)
    empty_fraction: float = Field(default=0.05, ge=0, le=0.5, description="share of sentences planned with no mention")
    negative_fraction: float = Field(default=0.3, ge=0, le=0.9, description=(
        "re tasks: share of plans whose planned pair must co-occur WITHOUT a relation (label 'none'); a "
        "classifier trained only on related pairs learns that co-occurrence means relation"))
    distractors: list[DistractorSpec] = Field(default_factory=list)
    distractor_rate: float = Field(default=0.0, ge=0, le=1, description="share of sentences planned with one distractor")
    # New machinery (issue 22): on by default for new tasks; shipped tasks whose committed runs must replay
    # from their stores and caches switch it off explicitly.
    vocabulary_distractors: bool = Field(default=True, description=(
        "draw hard negatives from medsynth's shipped distractor vocabulary (medsynth/generate/distractors.yaml)"))
    vocabulary_rate: float = Field(default=0.5, ge=0, le=1, description=(
        "share of sentences with mentions that also get 1-2 vocabulary distractors; mention-free sentences "
        "always get them"))
    distractor_groups_exclude: list[str] | None = Field(default=None, description=(
        "vocabulary groups never drawn because they overlap the task's labels; None: inferred from label names"))
    recheck_empty: bool = Field(default=True, description=(
        "a mention-free plan answered with a labelled mention or a lexicon term is re-asked once, then "
        "rejected as negative_not_empty"))
    span_conventions: bool = Field(default=True, description=(
        "with a labelled --reference, derive span boundary conventions per label (prompt + export span rules)"))

    @field_validator("distractor_groups_exclude")
    @classmethod
    def _groups_known(cls, v: list[str] | None) -> list[str] | None:
        if v:
            from medsynth.generate.distractors import unknown_groups, vocabulary

            bad = unknown_groups(v)
            if bad:
                raise ValueError(f"unknown group {bad[0]!r} (groups: {', '.join(vocabulary())})")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "TaskSpec":
        names = [label.name for label in self.labels]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate label names in {names}")
        for key, terms in self.lexicon.items():
            if key not in names:
                raise ValueError(f"lexicon key {key!r} is not a label (labels: {', '.join(names)})")
            if not [t for t in terms if t and t.strip()]:
                raise ValueError(f"lexicon for {key!r} is empty")
        for name in names:
            if name not in self.lexicon:
                raise ValueError(f"label {name!r} has no lexicon entry")
        for rel in self.relations:
            for side in ("head", "tail"):
                if getattr(rel, side) not in names:
                    raise ValueError(f"relation {rel.name!r} {side} {getattr(rel, side)!r} is not a defined label")
        if self.kind == "re" and not self.relations:
            raise ValueError("kind 're' needs at least one relation")
        return self

    @field_validator("mentions_per_sentence")
    @classmethod
    def _mention_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        """Checked here, not when the planner first draws (after the LLM started): [0, 0] leaves no count for
        a sentence that should hold mentions (empty sentences come from empty_fraction instead)."""
        lo, hi = value
        if not 0 <= lo <= hi <= 12:
            raise ValueError(f"mentions_per_sentence {list(value)} must satisfy 0 <= min <= max <= 12")
        if hi < 1:
            raise ValueError(f"mentions_per_sentence {list(value)} must allow at least one mention (max >= 1); "
                             "sentences without mentions come from empty_fraction")
        return value

    @property
    def registry_name(self) -> str:
        """Versioned name, as spacy-llm does: prompts and caches change when the task changes version."""
        return f"{self.name}.v{self.version}"

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    def span_rules(self) -> dict[str, dict[str, list[str]]]:
        """The labels' span rules as plain data (labels without any rule left out): written to an export's
        stats.json, carried into the model trained on it, applied again at prediction time."""
        out = {lab.name: {k: list(getattr(lab, k)) for k in SPAN_RULE_KEYS} for lab in self.labels}
        return {name: r for name, r in out.items() if any(r.values())}

    def excluded_distractor_groups(self) -> list[str]:
        """Vocabulary groups this task never draws: the declared list, else those its labels name."""
        if self.distractor_groups_exclude is not None:
            return list(self.distractor_groups_exclude)
        from medsynth.generate.distractors import automatic_exclusions

        return automatic_exclusions([(lab.name, lab.definition) for lab in self.labels])


def task_brief(task: TaskSpec, examples: int = 5, relations: bool = True) -> list[str]:
    """Prompt lines that tell a reviewing LLM what the task is: description, each label's definition with up to
    `examples` positive / negative examples, the relations (when `relations`) and the guidelines."""
    quoted = lambda values: ", ".join(f'"{v}"' for v in values[:examples])  # noqa: E731
    lines = [f"Task: {task.description.strip()}", "Entity types:"]
    for lab in task.labels:
        lines.append(f"- {lab.name}: {lab.definition.strip()}")
        if lab.positive_examples:
            lines.append(f"  are {lab.name}: {quoted(lab.positive_examples)}")
        if lab.negative_examples:
            lines.append(f"  are NOT {lab.name}: {quoted(lab.negative_examples)}")
    if relations and task.relations:
        lines.append("Relations:")
        lines += [f"- {r.name} ({r.head} -> {r.tail}): {r.definition.strip()}" for r in task.relations]
    if task.guidelines:
        lines.append("Guidelines:")
        lines += [f"- {g.strip()}" for g in task.guidelines]
    return lines


def _first_error(err: ValidationError) -> tuple[str, str, object]:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "(top level)"
    return field, first.get("msg", "invalid"), first.get("input")


def parse_task(data: object, where: str) -> TaskSpec:
    """Validate a task mapping; errors name the file, the field and the offending value in one line."""
    if not isinstance(data, dict):
        raise MedsynthError("a task file must hold a mapping at top level", where=where, value=type(data).__name__)
    try:
        return TaskSpec.model_validate(data)
    except RecursionError:
        raise MedsynthError("task is nested too deeply", where=where) from None
    except ValidationError as err:
        field, msg, value = _first_error(err)
        shown = value if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__
        if isinstance(value, (list, tuple)) and len(repr(value)) <= 40:
            shown = list(value)  # a short pair such as mentions_per_sentence [0, 0] is the value itself
        if field == "(top level)" or msg == "Field required":
            shown = None  # the "value" would be the whole mapping; the message names the key and value itself
        raise MedsynthError(msg, where=where, field=field, value=shown) from None


def load_task_file(path: str | Path) -> TaskSpec:
    path = Path(path)
    if not path.is_file():
        raise MedsynthError("task file not found", where=str(path))
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = err.object.count(b"\n", 0, err.start) + 1
        raise MedsynthError(f"not UTF-8 text (byte {err.start})", where=f"{path}:{line}",
                            value=err.object[err.start : err.end]) from None
    try:
        data = json.loads(raw) if path.suffix == ".json" else yaml.safe_load(raw)
    except RecursionError:
        raise MedsynthError("cannot parse task file: nested too deeply", where=str(path)) from None
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        line = getattr(getattr(err, "problem_mark", None), "line", getattr(err, "lineno", None))
        where = f"{path}:{line + 1 if isinstance(line, int) and not isinstance(err, json.JSONDecodeError) else line}"
        raise MedsynthError(f"cannot parse task file: {str(err).splitlines()[0]}", where=where) from None
    return parse_task(data, str(path))


def _builtin_files() -> list[Path]:
    """Shipped task files: the installed `medsynth.tasks` package, else the clone's `tasks/` folder."""
    try:
        root = resources.files("medsynth.tasks")
    except ModuleNotFoundError:  # running from a clone that was never pip-installed
        root = Path(__file__).resolve().parent.parent / "tasks"
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith((".yaml", ".yml", ".json")))


def _entry_point_tasks() -> dict[str, TaskSpec]:
    found: dict[str, TaskSpec] = {}
    for ep in metadata.entry_points(group="medsynth.tasks"):
        try:
            obj = ep.load()
            obj = obj() if callable(obj) and not isinstance(obj, TaskSpec) else obj
            spec = obj if isinstance(obj, TaskSpec) else load_task_file(obj)
        except MedsynthError:
            raise
        except Exception as err:  # a broken third-party plugin must not hide the shipped tasks
            raise MedsynthError(f"task plugin failed to load: {err}", where=f"entry point {ep.name}") from None
        found[spec.name] = spec
    return found


def all_versions() -> dict[str, TaskSpec]:
    """Every known task version by versioned name (`ncbi-disease.v1`, `ncbi-disease.v2`, …).

    An older version stays shipped (as `tasks/<name>.v<N>.yaml`) while committed runs were built from it, so
    they still resume from the response cache and re-export with the exact spec that made them. Not cached:
    only versioned look-ups (`NAME.vN`) read it; `registry()` caches the latest versions.
    """
    found: dict[str, TaskSpec] = {}
    for path in _builtin_files():
        spec = load_task_file(path)
        found[spec.registry_name] = spec
    for spec in _entry_point_tasks().values():  # plugins may override a shipped version
        found[spec.registry_name] = spec
    return found


@lru_cache(maxsize=1)
def registry() -> dict[str, TaskSpec]:
    """All known tasks by plain name, each at its latest version."""
    tasks: dict[str, TaskSpec] = {}
    for spec in all_versions().values():
        if spec.name not in tasks or spec.version > tasks[spec.name].version:
            tasks[spec.name] = spec
    return tasks


def get_task(name: str | None = None, task_file: str | Path | None = None) -> TaskSpec:
    """Resolve `--task NAME` (latest version), `--task NAME.vN` (that version) or `--task-file PATH`;
    an unknown name lists the known ones."""
    if task_file:
        return load_task_file(task_file)
    known = registry()
    if name in known:
        return known[name]
    versions = all_versions()
    if name in versions:
        return versions[name]
    older = sorted(v for v, spec in versions.items() if known.get(spec.name) is not spec)
    listed = ", ".join(sorted(known)) + (f" (older versions: {', '.join(older)})" if older else "")
    raise MedsynthError(f"unknown task; known tasks: {listed}", field="task", value=name)

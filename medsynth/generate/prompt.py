"""Prompts and output schemas for generation (x under constraints, with y written alongside).

Decode speed is the bottleneck on a CPU (~25 tok/s), so two output formats are offered and measured:
- `json`: {"text": ..., "entities": [{"text": ..., "label": ...}]} — the schema (enum labels, minItems = planned
  mentions) becomes a grammar on llama.cpp, so it always parses; mentions are repeated after the sentence.
- `inline`: {"text": "... [metformin](Chemical) ..."} — markdown-link markup inside the sentence; fewer tokens,
  and offsets come straight from the markup.
The system message is identical for every request of a task, so llama.cpp reuses its KV cache for that prefix
and only the short plan-specific user message is evaluated per request.
"""

from __future__ import annotations

from typing import Literal

from medsynth.hashing import prompt_hash as _prompt_hash
from medsynth.generate.plan import Plan
from medsynth.spec import TaskSpec

OutputFormat = Literal["json", "inline"]
FORMATS: tuple[str, ...] = ("json", "inline")
PROMPT_VERSION = "gen.v1"


def _label_block(task: TaskSpec) -> str:
    lines = []
    for label in task.labels:
        line = f"- {label.name}: {label.definition.strip()}"
        if label.positive_examples:
            line += f" Examples: {', '.join(label.positive_examples[:5])}."
        if label.negative_examples:
            line += f" Not {label.name}: {', '.join(label.negative_examples[:5])}."
        line += _span_convention(label)
        lines.append(line)
    return "\n".join(lines)


def _span_convention(label) -> str:
    """The label's boundary rule and example spans (from a labelled reference); "" when it has none, so the
    prompts of tasks without them are unchanged."""
    text = f" {label.span_guideline.strip()}" if label.span_guideline.strip() else ""
    if label.span_examples:
        text += f" Example spans: {', '.join(f'[{s}]' for s in label.span_examples[:6])}."
    return text


def _format_block(task: TaskSpec, fmt: OutputFormat) -> str:
    a, b = (task.label_names + task.label_names)[:2]
    if fmt == "inline":
        return (
            "Answer with JSON only: {\"text\": SENTENCE} where every entity in SENTENCE is written as "
            f"[mention](Label). Example: {{\"text\": \"The [first thing](Label) was seen with [another one](Label).\"}}\n"
            f"Labels: {', '.join(task.label_names)}. Mark EVERY entity of these types, not only the required ones."
        )
    return (
        "Answer with JSON only: {\"text\": SENTENCE, \"entities\": [{\"text\": MENTION, \"label\": LABEL}, ...]}. "
        "Each MENTION is copied character for character from SENTENCE. "
        f"List EVERY {' / '.join(task.label_names)} mention in SENTENCE, not only the required ones."
    )


def _relation_block(task: TaskSpec) -> str:
    return "\n".join(f"- {r.name} (head {r.head}, tail {r.tail}{', symmetric' if r.symmetric else ''}): "
                     f"{r.definition.strip()}" for r in task.relations)


def _re_system_prompt(task: TaskSpec, fmt: OutputFormat) -> str:
    """Relation tasks: the entity prompt plus relation types; more guidelines are kept because relation
    rules (negation, indication vs. induction) come after the entity rules in the task files."""
    guidelines = "\n".join(f"- {g.strip()}" for g in task.guidelines[:16])
    return (
        "You write realistic biomedical sentences and annotate them for named entity recognition and "
        "relation extraction.\n"
        f"Task: {task.description.strip()}\n"
        f"Entity types:\n{_label_block(task)}\n"
        f"Relation types:\n{_relation_block(task)}\n"
        f"Annotation guidelines:\n{guidelines}\n"
        "Write fluent, specific, varied text as found in real biomedical literature or clinical notes. "
        "Do not use real patient names, dates of birth, record numbers or addresses.\n"
        "Answer with JSON only: {\"text\": SENTENCE, \"entities\": [{\"text\": MENTION, \"label\": LABEL}, ...], "
        "\"relations\": [{\"head\": MENTION, \"tail\": MENTION, \"label\": RELATION}, ...]}. "
        "Each MENTION is copied character for character from SENTENCE. "
        f"List EVERY {' / '.join(task.label_names)} mention in SENTENCE, not only the required ones. "
        "In relations, list every relation SENTENCE states between two listed mentions, head and tail as the "
        "relation type defines them; list none when SENTENCE states none."
    )


def _relation_need(plan: Plan) -> str:
    """What the planned pair must (or must not) express; empty for NER plans."""
    rel = plan.relation
    if rel is None:
        return ""
    first, second = (rel.head, rel.tail) if rel.head_first else (rel.tail, rel.head)
    order = f" Mention \"{first.text}\" before \"{second.text}\"."
    if rel.negative:
        return (f"{order} It must mention both \"{rel.head.text}\" and \"{rel.tail.text}\" WITHOUT stating any "
                "relation between them (for example a negative or null finding, or mere co-occurrence); do not "
                "list a relation between them.")
    return (f"{order} It must clearly state the {rel.label} relation with head \"{rel.head.text}\" and tail "
            f"\"{rel.tail.text}\", and list it in relations.")


def system_prompt(task: TaskSpec, fmt: OutputFormat) -> str:
    if task.kind == "re" and fmt == "json":
        return _re_system_prompt(task, fmt)
    guidelines = "\n".join(f"- {g.strip()}" for g in task.guidelines[:10])
    return (
        "You write realistic biomedical sentences and annotate them for named entity recognition.\n"
        f"Task: {task.description.strip()}\n"
        f"Entity types:\n{_label_block(task)}\n"
        f"Annotation guidelines:\n{guidelines}\n"
        "Write fluent, specific, varied text as found in real biomedical literature or clinical notes. "
        "Do not use real patient names, dates of birth, record numbers or addresses.\n"
        f"{_format_block(task, fmt)}"
    )


def user_prompt(plan: Plan) -> str:
    if plan.targets:
        must = "; ".join(f"\"{m.text}\" ({m.label})" for m in plan.targets)
        need = f"It must mention: {must}."
    else:
        need = "It must not mention any entity of the listed types."
    style = plan.style_description.strip().rstrip(".")
    need += _relation_need(plan)  # "" for NER plans: their prompts (and cache keys) are unchanged
    return (f"Write ONE sentence of {plan.min_words} to {plan.max_words} words. Style: {style}. "
            f"{need}{_distract(plan)}{_negatives(plan)}")


def _negatives(plan: Plan) -> str:
    """Vocabulary distractors: "" without them, so prompts (and cache keys) of tasks that do not draw them
    are unchanged."""
    if not plan.negatives:
        return ""
    terms = "; ".join(f"\"{d.text}\" ({d.label})" for d in plan.negatives)
    if len(plan.negatives) == 1:
        return f" Also mention {terms} in the sentence; it is NOT one of the listed entity types: do not label it."
    return (f" Also mention {terms} in the sentence; these are NOT entities of the listed types: do not label "
            "them.")


def reask_prompt(plan: Plan, leaked: list[str]) -> str:
    """The user message for the one re-ask of a mention-free plan whose answer named a task entity."""
    named = ", ".join(f"\"{t}\"" for t in leaked[:5])
    return (f"{user_prompt(plan)} A previous attempt named {named}, which is an entity of the listed types. "
            "Write a different sentence that names NO entity of the listed types at all, and label none.")


def _distract(plan: Plan) -> str:
    """Hard negatives: terms the sentence must contain but the annotation must leave out."""
    if not plan.distractors:
        return ""
    terms = "; ".join(f"\"{d.text}\" ({d.label})" for d in plan.distractors)
    return f" Also mention {terms}, which is NOT an entity of the listed types: do not list it in entities."


def messages(task: TaskSpec, plan: Plan, fmt: OutputFormat = "json", leaked: list[str] | None = None
             ) -> list[dict]:
    """The chat messages for one plan; with `leaked`, the re-ask of a mention-free plan (see build.py)."""
    return [
        {"role": "system", "content": system_prompt(task, fmt)},
        {"role": "user", "content": reask_prompt(plan, leaked) if leaked else user_prompt(plan)},
    ]


def _entity_schema(task: TaskSpec) -> dict:
    return {
        "type": "object",
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": 120},
            "label": {"type": "string", "enum": task.label_names},
        },
        "required": ["text", "label"],
    }


def schema(task: TaskSpec, plan: Plan, fmt: OutputFormat = "json") -> dict:
    """JSON schema for the answer; on llama.cpp it becomes a grammar, so the shape is guaranteed."""
    text = {"type": "string", "minLength": 10, "maxLength": 600}
    if fmt == "inline":
        return {"type": "object", "properties": {"text": text}, "required": ["text"]}
    if task.kind == "re":
        return _re_schema(task, plan, text)
    n = len(plan.targets)
    entity = _entity_schema(task)
    # Without minItems this model tends to list a single entity; maxItems bounds runaway lists.
    entities = {"type": "array", "items": entity, "minItems": n, "maxItems": n + 4}
    return {"type": "object", "properties": {"text": text, "entities": entities}, "required": ["text", "entities"]}


def _re_schema(task: TaskSpec, plan: Plan, text: dict) -> dict:
    """The NER schema plus a relations array whose labels are an enum of the task's relation names; a
    positive plan needs at least one relation (a grammar cannot force *which* pair, the validator checks)."""
    entity = _entity_schema(task)
    arg = {"type": "string", "minLength": 1, "maxLength": 120}
    relation = {
        "type": "object",
        "properties": {"head": arg, "tail": arg, "label": {"type": "string", "enum": [r.name for r in task.relations]}},
        "required": ["head", "tail", "label"],
    }
    n = len(plan.targets)
    positive = plan.relation is not None and not plan.relation.negative
    return {
        "type": "object",
        "properties": {
            "text": text,
            "entities": {"type": "array", "items": entity, "minItems": n, "maxItems": n + 4},
            "relations": {"type": "array", "items": relation, "minItems": 1 if positive else 0, "maxItems": 8},
        },
        "required": ["text", "entities", "relations"],
    }


def prompt_hash(task: TaskSpec, fmt: OutputFormat) -> str:
    """Identifies the prompt template (not the plan): stored in every example's meta for provenance."""
    return _prompt_hash([PROMPT_VERSION, fmt, system_prompt(task, fmt)])

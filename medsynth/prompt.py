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

import hashlib
import json
from typing import Literal

from medsynth.plan import Plan
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
        lines.append(line)
    return "\n".join(lines)


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


def system_prompt(task: TaskSpec, fmt: OutputFormat) -> str:
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
    return f"Write ONE sentence of {plan.min_words} to {plan.max_words} words. Style: {style}. {need}"


def messages(task: TaskSpec, plan: Plan, fmt: OutputFormat = "json") -> list[dict]:
    return [
        {"role": "system", "content": system_prompt(task, fmt)},
        {"role": "user", "content": user_prompt(plan)},
    ]


def schema(task: TaskSpec, plan: Plan, fmt: OutputFormat = "json") -> dict:
    """JSON schema for the answer; on llama.cpp it becomes a grammar, so the shape is guaranteed."""
    text = {"type": "string", "minLength": 10, "maxLength": 600}
    if fmt == "inline":
        return {"type": "object", "properties": {"text": text}, "required": ["text"]}
    n = len(plan.targets)
    entity = {
        "type": "object",
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": 120},
            "label": {"type": "string", "enum": task.label_names},
        },
        "required": ["text", "label"],
    }
    # Without minItems this model tends to list a single entity; maxItems bounds runaway lists.
    entities = {"type": "array", "items": entity, "minItems": n, "maxItems": n + 4}
    return {"type": "object", "properties": {"text": text, "entities": entities}, "required": ["text", "entities"]}


def prompt_hash(task: TaskSpec, fmt: OutputFormat) -> str:
    """Identifies the prompt template (not the plan): stored in every example's meta for provenance."""
    payload = json.dumps([PROMPT_VERSION, fmt, system_prompt(task, fmt)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]

"""The distillation coach's prompts and parsers: the LLM reviews a small NER model's prediction, and writes the
unlabelled sentences it reviews. Beside `generate/prompt.py` and `generate/parse.py` in spirit, kept here because
only `chat/distill.py` asks these questions. The parsers never raise: an answer that is missing, not JSON, of the
wrong shape or with a label the task does not have comes back as a counted reason.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from medsynth.generate.parse import load_json_object
from medsynth.records import Entity, Mention
from medsynth.spec import TaskSpec, task_brief

COACH_VERSION = 1
VERDICTS = ("accept", "correct")
_VERDICT_WORDS = {"accept": "accept", "accepted": "accept", "ok": "accept", "correct": "correct",
                  "corrected": "correct", "correction": "correct", "reject": "correct"}
MAX_ENTITIES = 16
SENTENCE_SCHEMA = {"type": "object", "properties": {"text": {"type": "string", "minLength": 20, "maxLength": 600}},
                   "required": ["text"]}
NO_IDENTIFIERS = "Never include patient names, dates of birth, record numbers, phone numbers or addresses."


# ---------------------------------------------------------------------------------------------------------------
# the coach: prompt, schema, parser


def coach_schema(task: TaskSpec) -> dict:
    item = {"type": "object", "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 160},
                                             "label": {"type": "string", "enum": task.label_names}},
            "required": ["text", "label"]}
    return {"type": "object", "properties": {
        "verdict": {"type": "string", "enum": list(VERDICTS)},
        "entities": {"type": "array", "items": item, "maxItems": MAX_ENTITIES},
        "confidence": {"type": "integer", "enum": [1, 2, 3, 4, 5]}},
        "required": ["verdict", "entities", "confidence"]}


def coach_system(task: TaskSpec) -> str:
    """The coach sees what the generator sees: definitions, positive/negative examples and guidelines."""
    lines = ["You are an expert annotator coaching a small named entity recognition model.",
             *task_brief(task, examples=6, relations=False)]
    lines.append(
        "You get a sentence and the model's predicted entities. If the prediction is exactly right (every mention, "
        'right labels, exact boundaries, nothing extra), answer verdict "accept" and repeat the entities. '
        'Otherwise answer verdict "correct" and list the complete correct entities, each copied character for '
        "character from the sentence (an empty list when there are none). confidence: 1 (unsure) to 5 (certain). "
        'Answer with JSON only: {"verdict": "accept" or "correct", "entities": [{"text": MENTION, "label": LABEL}], '
        '"confidence": 1-5}.')
    return "\n".join(lines)


def coach_messages(task: TaskSpec, text: str, predicted: list[Entity]) -> list[dict]:
    pred = json.dumps([{"text": e.text, "label": e.label} for e in predicted], ensure_ascii=False)
    return [{"role": "system", "content": coach_system(task)},
            {"role": "user", "content": f"Sentence: {text}\nPredicted entities: {pred}"}]


@dataclass
class CoachVerdict:
    verdict: str  # accept | correct
    mentions: list[Mention]
    confidence: int
    repairs: Counter = field(default_factory=Counter)


def _confidence(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and 1 <= value <= 5 else None


def _mentions(value: object, labels: list[str], repairs: Counter) -> tuple[list[Mention] | None, str | None]:
    """Coach entities as mentions with task labels (case-insensitive); an unknown label skips the example."""
    if not isinstance(value, list):
        return None, "coach:bad_entities"
    by_lower = {lab.lower(): lab for lab in labels}
    out: list[Mention] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str) or not isinstance(item.get("label"), str):
            return None, "coach:bad_entities"
        text, label = item["text"].strip(), item["label"].strip()
        if not text:
            repairs["empty_mention"] += 1
            continue
        if label not in labels:
            if label.lower() not in by_lower:
                return None, "coach:unknown_label"
            label = by_lower[label.lower()]
            repairs["label_case"] += 1
        out.append(Mention(text=text, label=label))
    return out, None


def parse_coach(raw: str | None, labels: list[str]) -> tuple[CoachVerdict | None, str | None]:
    """(verdict, None) or (None, "coach:<reason>"). Never raises: None, noise, invalid JSON, odd shapes,
    a verdict or confidence out of range and labels the task does not have are all counted reasons."""
    obj, error, repairs = load_json_object(raw)
    if obj is None:
        return None, f"coach:{error}"
    verdict = _VERDICT_WORDS.get(str(obj.get("verdict", "")).strip().lower()) if isinstance(
        obj.get("verdict"), str) else None
    if verdict is None:
        return None, "coach:bad_verdict"
    confidence = _confidence(obj.get("confidence"))
    if confidence is None:
        return None, "coach:bad_confidence"
    entities = obj.get("entities")
    if entities is None and verdict == "accept":
        entities = []
    if entities is None:
        return None, "coach:missing_entities"
    mentions, err = _mentions(entities, labels, repairs)
    if mentions is None:
        return None, err
    return CoachVerdict(verdict, mentions, confidence, repairs), None


# ---------------------------------------------------------------------------------------------------------------
# unlabelled sentences


def sentence_messages(task: TaskSpec, style: Any) -> list[dict]:
    system = (f"You write realistic sentences of this kind: {task.description.strip()} Write one sentence in the "
              f"requested style, plain text without markup or labels. {NO_IDENTIFIERS} "
              'Answer with JSON only: {"text": SENTENCE}.')
    user = f"Style: {style.description.strip()} Length: {style.min_words} to {style.max_words} words."
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_sentence(raw: str | None) -> tuple[str | None, str | None]:
    """(sentence, None) or (None, "sentence:<reason>"); a bare one-line answer is accepted as the sentence."""
    obj, error, _ = load_json_object(raw)
    if obj is None:
        text = (raw or "").strip()
        if error != "no_json_object" or not text or "\n" in text:
            return None, f"sentence:{error}"
        obj = {"text": text}
    text = obj.get("text")
    if not isinstance(text, str):
        return None, "sentence:missing"
    text = " ".join(text.split())
    words = len(text.split())
    if words < 4:
        return None, "sentence:too_short"
    if words > 120:
        return None, "sentence:too_long"
    if re.search(r"[{}<>]|\]\(|\[\|", text):
        return None, "sentence:markup"
    return text, None

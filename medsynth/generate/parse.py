"""Parse raw LLM answers into (text, mentions) — surviving None, prose around the JSON, code fences,
trailing commas, single quotes, wrong types and half-finished output.

A parse failure is a counted outcome (`ParseResult.error`), never an exception: the builder records the reason
and moves on. Only the shape is checked here; whether mentions really sit in the text is the aligner's job.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

from medsynth.limits import MAX_ANSWER_BYTES  # noqa: F401  (re-exported: the parser's cap)
from medsynth.records import Mention

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_INLINE = re.compile(r"\[([^\[\]\n]{1,160}?)\]\(\s*([A-Za-z][A-Za-z0-9_:\-]{0,39})\s*\)")


@dataclass(frozen=True)
class RawRelation:
    """A relation as the LLM states it: argument strings (not yet entities) and a label (not yet checked);
    `relate.py` maps them onto aligned entities."""

    head: str
    tail: str
    label: str


@dataclass
class ParseResult:
    text: str | None = None
    mentions: list[Mention] = field(default_factory=list)
    error: str | None = None
    repairs: Counter = field(default_factory=Counter)
    relations: list[RawRelation] = field(default_factory=list)


def _balanced_objects(raw: str) -> list[str]:
    """Every top-level {...} block in `raw`, respecting strings, so prose before/after is ignored."""
    blocks, depth, start, in_str, esc = [], 0, None, False, False
    for i, ch in enumerate(raw):
        if in_str:
            esc = (ch == "\\") and not esc
            if ch == '"' and not esc:
                in_str = False
            elif ch != "\\":
                esc = False
            continue
        if ch == '"':
            in_str = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0 and start is not None:
                blocks.append(raw[start : i + 1])
    return blocks


def load_json_object(raw: str | None) -> tuple[dict | None, str | None, Counter]:
    """Best-effort: the first JSON object found in `raw`, plus the repairs that were needed to read it."""
    repairs: Counter = Counter()
    if raw is None:
        return None, "no_response", repairs
    if not isinstance(raw, str):
        return None, "empty_response", repairs
    if len(raw) > MAX_ANSWER_BYTES or len(raw.encode("utf-8", "replace")) > MAX_ANSWER_BYTES:
        return None, "too_large", repairs
    if not raw.strip():
        return None, "empty_response", repairs
    text = raw.strip()
    fence = _FENCE.search(text)
    if fence:
        text = fence.group(1).strip()
        repairs["code_fence"] += 1
    candidates = [text] if text.startswith("{") else []
    candidates += [b for b in _balanced_objects(text) if b != text]
    if not candidates:
        return None, "no_json_object", repairs
    if not text.startswith("{"):
        repairs["prose_around_json"] += 1
    for cand in candidates:
        for attempt, fixed in enumerate((cand, _TRAILING_COMMA.sub(r"\1", cand))):
            try:
                obj = json.loads(fixed)
            except RecursionError:  # 100,000 nested brackets: a counted rejection, never a crash
                return None, "too_deep", repairs
            except ValueError:  # JSONDecodeError, and a number too long to convert
                continue
            if isinstance(obj, dict):
                if attempt:
                    repairs["trailing_comma"] += 1
                return obj, None, repairs
    return None, "invalid_json", repairs


def _as_mentions(value: object, repairs: Counter) -> list[Mention]:
    """Accept the shapes small models produce: [{text,label}], [[text,label]], {label: [texts]}, [{label: text}]."""
    out: list[Mention] = []
    if isinstance(value, dict):
        repairs["entities_as_mapping"] += 1
        for label, texts in value.items():
            for t in texts if isinstance(texts, list) else [texts]:
                if isinstance(t, str):
                    out.append(Mention(text=t, label=str(label)))
        return out
    if not isinstance(value, list):
        return out
    for item in value:
        if isinstance(item, dict):
            text = item.get("text", item.get("mention", item.get("entity", item.get("name"))))
            label = item.get("label", item.get("type", item.get("entity_type")))
            if text is None and label is None and len(item) == 1:
                (label, text), = item.items()
            if isinstance(text, str) and isinstance(label, str):
                start, end = item.get("start"), item.get("end")
                ok = isinstance(start, int) and isinstance(end, int) and not isinstance(start, bool)
                out.append(Mention(text=text, label=label, start=start if ok else None, end=end if ok else None))
            else:
                repairs["entity_wrong_type"] += 1
        elif isinstance(item, (list, tuple)) and len(item) >= 2 and all(isinstance(x, str) for x in item[:2]):
            repairs["entity_as_pair"] += 1
            out.append(Mention(text=item[0], label=item[1]))
        else:
            repairs["entity_wrong_type"] += 1
    return out


def parse_json_answer(raw: str | None) -> ParseResult:
    """The `json` format: {"text": ..., "entities": [...]}."""
    obj, error, repairs = load_json_object(raw)
    if obj is None:
        return ParseResult(error=error, repairs=repairs)
    text = obj.get("text", obj.get("sentence"))
    if not isinstance(text, str) or not text.strip():
        return ParseResult(error="missing_text", repairs=repairs)
    ents = obj.get("entities", obj.get("annotations", []))
    mentions = _as_mentions(ents, repairs)
    relations = _as_relations(obj.get("relations", obj.get("relation")), mentions, repairs)
    return ParseResult(text=text.strip(), mentions=mentions, repairs=repairs, relations=relations)


_HEAD_KEYS = ("head", "arg1", "subject", "source", "from", "e1", "entity1", "head_entity")
_TAIL_KEYS = ("tail", "arg2", "object", "target", "to", "e2", "entity2", "tail_entity")
_REL_LABEL_KEYS = ("label", "type", "relation", "predicate", "rel", "relation_type")


def _first_key(item: dict, keys: tuple[str, ...]) -> object:
    return next((item[k] for k in keys if k in item), None)


def _arg_text(value: object, mentions: list[Mention], repairs: Counter) -> str:
    """An argument as a string: small models also write {"text": ...} or an index into their entity list.
    Anything else becomes "" so the validator counts it as a missing argument."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        inner = value.get("text", value.get("mention", value.get("name")))
        if isinstance(inner, str):
            repairs["relation:arg_as_object"] += 1
            return inner
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(mentions):
        repairs["relation:arg_as_index"] += 1
        return mentions[value].text
    return ""


def _relation_items(value: object, repairs: Counter) -> list:
    """Normalise the container: a list, a single relation object, or {label: [[head, tail], ...]}."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if _first_key(value, _HEAD_KEYS) is not None or _first_key(value, _TAIL_KEYS) is not None:
            repairs["relation:single_object"] += 1
            return [value]
        repairs["relation:as_mapping"] += 1
        items = []
        for label, pairs in value.items():
            for pair in pairs if isinstance(pairs, list) else [pairs]:
                if isinstance(pair, dict):
                    items.append({"label": label, **pair})
                elif isinstance(pair, (list, tuple)) and len(pair) == 2:
                    items.append({"head": pair[0], "tail": pair[1], "label": label})
                else:
                    items.append(pair)
        return items
    repairs["relation:wrong_type"] += 1
    return []


def _as_relations(value: object, mentions: list[Mention], repairs: Counter) -> list[RawRelation]:
    """Relations in any shape small models produce: [{head, tail, label}] (with common key synonyms),
    [head, label, tail] triples, one object, or a mapping by label. A missing key is absent (None or "")
    and costs nothing; an unreadable item is counted `relation:wrong_type` and skipped, never raised."""
    if value is None or value == "" or value == []:
        return []
    out: list[RawRelation] = []
    for item in _relation_items(value, repairs):
        if isinstance(item, dict):
            label = _first_key(item, _REL_LABEL_KEYS)
            head, tail = _first_key(item, _HEAD_KEYS), _first_key(item, _TAIL_KEYS)
            if head is None and tail is None:
                repairs["relation:wrong_type"] += 1
                continue
            out.append(RawRelation(head=_arg_text(head, mentions, repairs), tail=_arg_text(tail, mentions, repairs),
                                   label=label if isinstance(label, str) else ""))
        elif isinstance(item, (list, tuple)) and len(item) == 3 and all(isinstance(x, str) for x in item):
            repairs["relation:as_triple"] += 1  # subject-predicate-object order
            out.append(RawRelation(head=item[0], tail=item[2], label=item[1]))
        else:
            repairs["relation:wrong_type"] += 1
    return out


def strip_inline(marked: str) -> tuple[str, list[Mention]]:
    """Remove [mention](Label) markup, returning plain text and mentions with exact offsets into it."""
    plain, mentions, pos = [], [], 0
    length = 0
    for m in _INLINE.finditer(marked):
        before = marked[pos : m.start()]
        plain.append(before)
        length += len(before)
        surface = m.group(1)
        mentions.append(Mention(text=surface, label=m.group(2), start=length, end=length + len(surface)))
        plain.append(surface)
        length += len(surface)
        pos = m.end()
    plain.append(marked[pos:])
    return "".join(plain), mentions


def parse_inline_answer(raw: str | None) -> ParseResult:
    """The `inline` format: {"text": "... [mention](Label) ..."}; bare marked-up text is accepted too."""
    obj, error, repairs = load_json_object(raw)
    if obj is None:
        if error not in ("too_large", "too_deep") and raw and _INLINE.search(raw):
            repairs["bare_inline_text"] += 1
            marked = raw.strip()
        else:
            return ParseResult(error=error, repairs=repairs)
    else:
        marked = obj.get("text", obj.get("sentence"))
        if not isinstance(marked, str) or not marked.strip():
            return ParseResult(error="missing_text", repairs=repairs)
    text, mentions = strip_inline(marked.strip())
    # Leading/trailing whitespace after stripping markup would shift offsets; strip_inline works on stripped input.
    return ParseResult(text=text, mentions=mentions, repairs=repairs)


PARSERS = {"json": parse_json_answer, "inline": parse_inline_answer}


def parse_answer(raw: str | None, fmt: str) -> ParseResult:
    """Never raises for any answer: a failure of any kind (size, depth, shape) is `ParseResult.error`,
    so one bad (cached) answer is one counted rejection, not a run that crashes on every replay."""
    try:
        return PARSERS[fmt](raw)
    except RecursionError:
        return ParseResult(error="too_deep")

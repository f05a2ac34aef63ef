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

from medsynth.types import Mention

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_INLINE = re.compile(r"\[([^\[\]\n]{1,160}?)\]\(\s*([A-Za-z][A-Za-z0-9_:\-]{0,39})\s*\)")


@dataclass
class ParseResult:
    text: str | None = None
    mentions: list[Mention] = field(default_factory=list)
    error: str | None = None
    repairs: Counter = field(default_factory=Counter)


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
    if not isinstance(raw, str) or not raw.strip():
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
            except json.JSONDecodeError:
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
    return ParseResult(text=text.strip(), mentions=_as_mentions(ents, repairs), repairs=repairs)


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
        if raw and _INLINE.search(raw):
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
    return PARSERS[fmt](raw)

"""A scripted 'LLM' for pipeline tests: answers generation prompts with plausible annotated sentences.

It reads the plan from the user message (the required mentions), writes a sentence containing them, and
answers in the requested format. Every 7th seed it misbehaves in a realistic way (prose around the JSON, a
mention that is not in the sentence, a wrong label case) and every 11th it answers garbage, so the parse,
align and filter paths all run. Answers depend only on the request, as a seeded LLM's would.
"""

from __future__ import annotations

import json
import re

_MUST = re.compile(r'"([^"]+)" \(([A-Za-z][\w\-]*)\)')


def _targets(request: dict) -> list[tuple[str, str]]:
    user = request["messages"][-1]["content"]
    return _MUST.findall(user)


def answer(request: dict) -> str:
    seed = int(request.get("seed") or 0)
    targets = _targets(request)
    fmt_inline = "[mention](Label)" in request["messages"][0]["content"]
    if seed % 11 == 0:
        return "Sorry, I can't produce that."
    parts = [t for t, _ in targets] or ["routine follow-up"]
    text = f"In case {seed}, the team documented " + " together with ".join(parts) + " during the admission review."
    if fmt_inline:
        marked = text
        for t, lab in targets:
            marked = marked.replace(t, f"[{t}]({lab})", 1)
        return json.dumps({"text": marked})
    ents = [{"text": t, "label": lab} for t, lab in targets]
    if seed % 7 == 0 and ents:
        ents[0]["label"] = ents[0]["label"].lower()
        ents.append({"text": "something never said", "label": ents[0]["label"]})
        return "Here you go: " + json.dumps({"text": text, "entities": ents})
    return json.dumps({"text": text, "entities": ents})

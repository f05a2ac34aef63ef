"""Zero-shot relation classification by prompting the LLM per candidate pair — the RE baseline.

The LLM sees the task's relation definitions and the sentence with the two entities marked `[E1] .. [/E1]`
(head) and `[E2] .. [/E2]` (tail), and answers `{"relation": <one of the task's relation names or "none">}`
under a JSON schema whose enum holds exactly those names (structured output through the same client, cache and
endpoint options as `build` and the NER baseline). Answers that cannot be read or name no allowed label are
counted (`invalid:<reason>`) and predicted as "none", so one bad answer never stops a benchmark.

For GAD the entities arrive already masked (`@GENE$`, `@DISEASE$`); the markers then wrap the masks, and the
prompt says which type each marked argument is.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Sequence

from medsynth.llm.client import LLMClient
from medsynth.llm.journal import AnswerJournal, answer_all
from medsynth.generate.parse import load_json_object
from medsynth.train.rel import mark_pair
from medsynth.spec import TaskSpec
from medsynth.records import NO_RELATION, RelPair

# Greedy and seeded, so a recorded answer can stand in for asking again (the same server build and thread count
# reproduce it; `benchmarks/answer_agreement.py` measures how often answers agree across runs).
REQUEST = {"seed": 0, "temperature": 0.0, "max_tokens": 24}


def relation_choices(task: TaskSpec) -> list[str]:
    return [r.name for r in task.relations] + [NO_RELATION]


def _instructions(task: TaskSpec) -> str:
    rels = "\n".join(f"- {r.name}: {r.definition.strip()} (from a {r.head} [E1] to a {r.tail} [E2])"
                     for r in task.relations)
    choices = ", ".join(f'"{c}"' for c in relation_choices(task))
    # The same annotation guidelines the generator follows: a fair baseline knows the rules it is scored by.
    guidelines = "".join(f"- {g.strip()}\n" for g in task.guidelines[:12])
    return ("You are a biomedical relation extraction system.\n"
            f"Relation types:\n{rels}\n- {NO_RELATION}: the sentence states none of these relations between the two "
            "marked entities.\n"
            + (f"Guidelines:\n{guidelines}" if guidelines else "") +
            "Judge only what this sentence states about the entity marked [E1] ... [/E1] and the entity marked "
            f"[E2] ... [/E2]. Answer with JSON only: {{\"relation\": one of {choices}}}.")


def re_schema(task: TaskSpec) -> dict:
    return {"type": "object", "properties": {"relation": {"type": "string", "enum": relation_choices(task)}},
            "required": ["relation"]}


def re_messages(task: TaskSpec, pair: RelPair) -> list[dict]:
    marked = mark_pair(pair, "tags")
    user = (f"Sentence: {marked}\n[E1] is a {pair.head.label}; [E2] is a {pair.tail.label}.")
    return [{"role": "system", "content": _instructions(task)}, {"role": "user", "content": user}]


def relation_from_answer(raw: str | None, task: TaskSpec) -> tuple[str, str | None]:
    """(label, problem): the answer's relation when it is an allowed label, else ("none", reason)."""
    obj, error, _ = load_json_object(raw)
    if obj is None:
        return NO_RELATION, error or "unreadable"
    value = obj.get("relation")
    if not isinstance(value, str):
        return NO_RELATION, "no_relation_field"
    allowed = {c.lower(): c for c in relation_choices(task)}
    label = allowed.get(value.strip().lower())
    return (label, None) if label else (NO_RELATION, "label_not_allowed")


def predict_zero_shot_re(client: LLMClient, task: TaskSpec, pairs: Sequence[RelPair], progress: bool = True,
                         journal: AnswerJournal | None = None) -> tuple[list[str], dict]:
    """One label per pair, plus counters (invalid answers), the answer records and timing for the bench report.
    With a `journal`, recorded answers to the very same request are reused and new ones appended (resume)."""
    counters: Counter = Counter()

    def decode(_: int, record: dict) -> str:
        label, problem = relation_from_answer(record["answer"], task)
        if problem:
            counters[f"invalid:{problem}"] += 1
        return label

    t0 = time.monotonic()
    labels, records = answer_all(client, journal, [re_messages(task, p) for p in pairs], schema=re_schema(task),
                                 request=REQUEST, decode=decode, default=NO_RELATION, desc="zero-shot RE",
                                 unit="pair", progress=progress)
    return labels, {"counters": dict(counters), "records": records, "seconds": time.monotonic() - t0,
                    "llm": client.stats.as_dict()}

"""Zero-shot baselines, the systems medsynth must beat: the messages and answer decoders of both benchmark kinds.

Both kinds ask through the same client, cache, endpoint options and answer journal (`medsynth.llm.journal.answer_all`:
asking, recording, resuming); they differ only in what is asked and how an answer becomes a prediction.

NER (`predict_zero_shot`): the LLM is asked for the mentions of each label as strings; the strings are placed on
the sentence with the same aligner the builder uses, then turned into word-level IOB2 tags on the benchmark's own
tokens. `--shots k` adds k examples taken from generated data (never from the test set).

Relations (`predict_zero_shot_re`): the LLM sees the task's relation definitions and the sentence with the two
entities marked `[E1] .. [/E1]` (head) and `[E2] .. [/E2]` (tail), and answers `{"relation": <one of the task's
relation names or "none">}` under a JSON schema whose enum holds exactly those names. Answers that cannot be read
or name no allowed label are counted (`invalid:<reason>`) and predicted as "none", so one bad answer never stops a
benchmark. For GAD the entities arrive already masked (`@GENE$`, `@DISEASE$`); the markers then wrap the masks,
and the prompt says which type each marked argument is.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Sequence

from medsynth.generate.align import AlignConfig, align
from medsynth.llm.client import LLMClient
from medsynth.llm.journal import AnswerJournal, answer_all
from medsynth.generate.parse import load_json_object
from medsynth.spec import TaskSpec
from medsynth.train.rel import mark_pair
from medsynth.data.tokens import Token, spans_to_bio
from medsynth.records import NO_RELATION, Example, Mention, RelPair

MAX_PER_LABEL = 12
# Greedy and seeded, so a recorded answer can stand in for asking again (the same server build and thread count
# reproduce it; `benchmarks/answer_agreement.py` measures how often answers agree across runs).
REQUEST = {"seed": 0, "temperature": 0.0, "max_tokens": 200}
RE_REQUEST = {"seed": 0, "temperature": 0.0, "max_tokens": 24}  # one short JSON label per pair


def _instructions(task: TaskSpec, guidelines: bool = False) -> str:
    """The system message. `guidelines` adds the task's annotation guidelines (used by `build --annotate`,
    where labels become training data); off by default so the benchmark baseline's prompt stays as it was."""
    defs = "\n".join(f"- {lab.name}: {lab.definition.strip()}" for lab in task.labels)
    keys = ", ".join(f'"{name}": [...]' for name in task.label_names)
    rules = "".join(f"- {g.strip()}\n" for g in task.guidelines[:10]) if guidelines else ""
    return (
        "You are a biomedical named entity recognition system.\n"
        f"Entity types:\n{defs}\n"
        + (f"Annotation guidelines:\n{rules}" if rules else "") +
        "Copy every mention of these types from the sentence exactly as written (same characters). "
        f"Answer with JSON only: {{{keys}}}; use an empty list when a type has no mention."
    )


def zero_shot_schema(task: TaskSpec) -> dict:
    arr = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 120}, "maxItems": MAX_PER_LABEL}
    return {"type": "object", "properties": {n: arr for n in task.label_names}, "required": task.label_names}


def _answer_for(task: TaskSpec, ex: Example) -> str:
    return json.dumps({n: [e.text for e in ex.entities if e.label == n] for n in task.label_names})


def zero_shot_messages(task: TaskSpec, text: str, shots: list[Example] | None = None,
                       guidelines: bool = False) -> list[dict]:
    msgs = [{"role": "system", "content": _instructions(task, guidelines)}]
    for ex in shots or []:
        msgs += [{"role": "user", "content": f"Sentence: {ex.text}"},
                 {"role": "assistant", "content": _answer_for(task, ex)}]
    msgs.append({"role": "user", "content": f"Sentence: {text}"})
    return msgs


def mentions_from_answer(raw: str | None, task: TaskSpec) -> tuple[list[Mention], str | None]:
    obj, error, _ = load_json_object(raw)
    if obj is None:
        return [], error
    out = []
    for label, values in obj.items():
        for v in values if isinstance(values, list) else [values]:
            if isinstance(v, str) and v.strip():
                out.append(Mention(text=v, label=str(label)))
    return out, None


def tags_for(text: str, tokens: list[Token], mentions: list[Mention], task: TaskSpec,
             counters: Counter) -> list[str]:
    """Place LLM strings with the shared aligner, then tag the benchmark tokens."""
    res = align(text, mentions, AlignConfig(labels=task.label_names))
    counters.update({f"repair:{k}": v for k, v in res.repairs.items()})
    counters.update({f"rejected:{k}": v for k, v in res.rejections.items()})
    return spans_to_bio(tokens, res.entities)


def predict_zero_shot(client: LLMClient, task: TaskSpec, items: list[tuple[str, list[Token]]],
                      shots: list[Example] | None = None, progress: bool = True,
                      journal: AnswerJournal | None = None) -> tuple[list[list[str]], dict]:
    """Tags for each (text, tokens) item, plus counters, timing and the answer records for the bench report.

    With a `journal`, answers recorded there for the very same request are reused and new ones are appended,
    so a run over thousands of sentences resumes where it stopped, on any machine holding the file."""
    counters: Counter = Counter()

    def decode(i: int, record: dict) -> list[str]:
        text, tokens = items[i]
        mentions, err = mentions_from_answer(record["answer"], task)
        if err:
            counters[f"parse:{err}"] += 1
        return tags_for(text, tokens, mentions, task, counters)

    t0 = time.monotonic()
    tags, records = answer_all(client, journal, [zero_shot_messages(task, text, shots) for text, _ in items],
                               schema=zero_shot_schema(task), request=REQUEST, decode=decode, default=[],
                               desc="zero-shot" if not shots else f"{len(shots)}-shot", unit="sent",
                               progress=progress)
    return tags, {"counters": dict(counters), "records": records, "seconds": time.monotonic() - t0,
                  "llm": client.stats.as_dict()}


# ---------------------------------------------------------------------------------------------------------------
# relations


def relation_choices(task: TaskSpec) -> list[str]:
    return [r.name for r in task.relations] + [NO_RELATION]


def _re_instructions(task: TaskSpec) -> str:
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
    return [{"role": "system", "content": _re_instructions(task)}, {"role": "user", "content": user}]


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
                                 request=RE_REQUEST, decode=decode, default=NO_RELATION, desc="zero-shot RE",
                                 unit="pair", progress=progress)
    return labels, {"counters": dict(counters), "records": records, "seconds": time.monotonic() - t0,
                    "llm": client.stats.as_dict()}

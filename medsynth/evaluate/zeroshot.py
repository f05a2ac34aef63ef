"""Zero-shot (and k-shot) NER by prompting the LLM per sentence — the baseline medsynth must beat.

The LLM is asked for the mentions of each label as strings (through the same client, cache and endpoint
options as `build`); the strings are placed on the sentence with the same aligner the builder uses, then
turned into word-level IOB2 tags on the benchmark's own tokens. `--shots k` adds k examples taken from
generated data (never from the test set).
"""

from __future__ import annotations

import json
import time
from collections import Counter

from medsynth.generate.align import AlignConfig, align
from medsynth.llm.client import LLMClient
from medsynth.llm.journal import AnswerJournal, answer_all
from medsynth.generate.parse import load_json_object
from medsynth.spec import TaskSpec
from medsynth.data.tokens import Token, spans_to_bio
from medsynth.records import Example, Mention

MAX_PER_LABEL = 12
# Greedy and seeded, so a recorded answer can stand in for asking again (the same server build and thread count
# reproduce it; `benchmarks/answer_agreement.py` measures how often answers agree across runs).
REQUEST = {"seed": 0, "temperature": 0.0, "max_tokens": 200}


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

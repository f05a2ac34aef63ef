"""Exports of a chat run: data.jsonl, a HF DatasetDict in the common chat `messages` format, a card, stats.

Pure functions of the kept dialogues (plus the run's counters), written atomically, so a re-run that changes
nothing rewrites identical files. The split is by id hash (`medsynth.data.export.split_of`), like the NER exports:
growing a run never moves a dialogue between train and validation.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from collections import Counter
from pathlib import Path

from medsynth.data.jsonl import write_jsonl
from medsynth.chat.build import AI_SYSTEM, HUMAN_SYSTEM
from medsynth.chat.topics import TOPIC_SYSTEM
from medsynth.data.export import SPLITS, _atomic_write, _table, save_quietly, split_of
from medsynth.records import Example


def split(examples: list[Example]) -> dict[str, list[Example]]:
    """train/validation by id hash; a tiny run still gets one validation dialogue."""
    parts: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for ex in examples:
        parts[split_of(ex.id)].append(ex)
    if not parts["validation"] and len(parts["train"]) >= 2:
        parts["validation"].append(parts["train"].pop())
    return parts


def record(ex: Example) -> dict:
    """One data.jsonl line: the messages up front, provenance in meta."""
    meta = {k: v for k, v in ex.meta.items() if k not in ("messages", "topic")}
    return {"id": ex.id, "messages": ex.meta["messages"], "topic": ex.meta["topic"], "meta": meta}


def _columns(examples: list[Example]) -> dict[str, list]:
    return {
        "id": [ex.id for ex in examples],
        "messages": [ex.meta["messages"] for ex in examples],
        "topic": [ex.meta["topic"] for ex in examples],
        "specialty": [ex.meta.get("specialty") or "" for ex in examples],
        "setting": [ex.meta.get("setting") or "" for ex in examples],
        "source": [ex.meta.get("source", "") for ex in examples],
        "turns": [len(ex.meta["messages"]) for ex in examples],
    }


def write_hf(parts: dict[str, list[Example]], out: Path) -> None:
    """DatasetDict with `messages` = [{role, content}] — what chat templates and SFT trainers read."""
    from datasets import Dataset, DatasetDict, Features, Value

    features = Features({
        "id": Value("string"), "messages": [{"role": Value("string"), "content": Value("string")}],
        "topic": Value("string"), "specialty": Value("string"), "setting": Value("string"),
        "source": Value("string"), "turns": Value("int32"),
    })
    dd = DatasetDict({s: Dataset.from_dict(_columns(parts[s]), features=features) for s in SPLITS})
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_quietly(dd, tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def describe(examples: list[Example]) -> dict:
    """Turns, lengths and topic coverage for the card and stats.json."""
    turns = [len(ex.meta["messages"]) for ex in examples] or [0]
    words = [sum(len(m["content"].split()) for m in ex.meta["messages"]) for ex in examples] or [0]
    specialties = Counter(ex.meta.get("specialty") or "(seed question)" for ex in examples)
    settings = Counter(ex.meta.get("setting") or "(seed question)" for ex in examples)
    return {
        "dialogues": len(examples),
        "messages": sum(len(ex.meta["messages"]) for ex in examples),
        "messages_per_dialogue": {"mean": round(statistics.fmean(turns), 2), "min": min(turns), "max": max(turns),
                                  "median": statistics.median(turns)},
        "messages_per_dialogue_histogram": dict(sorted(Counter(turns).items())) if examples else {},
        "words_per_dialogue": {"mean": round(statistics.fmean(words), 1), "min": min(words), "max": max(words)},
        "unique_topics": len({ex.meta["topic"].lower() for ex in examples}),
        "specialties": dict(sorted(specialties.items())),
        "settings": dict(sorted(settings.items())),
        "sources": dict(sorted(Counter(ex.meta.get("source", "?") for ex in examples).items())),
    }


def card(identity: dict, desc: dict, totals: dict, sizes: dict[str, int]) -> str:
    """The dataset card: what was made, how, and what was rejected."""
    m = desc["messages_per_dialogue"]
    return f"""# medsynth dataset: self-chat dialogues (Baize)

Synthetic medical question-and-answer dialogues. **Every message was written by a language model** (model
`{identity.get('model')}`) playing both the user and the assistant (Baize self-chat). No real patient text was
used. Treat it as training data for dialogue style, not as medical information: answers were not checked by a
clinician.

## How it was made
- generator: `{identity.get('model')}`; run seed {identity.get('seed')}; prompt hash `{identity.get('prompt_hash')}`;
  sampling {json.dumps(identity.get('params', {}), sort_keys=True)}; seed questions: {'yes (hash ' + str(identity.get('seeds')) + ')' if identity.get('seeds') else 'no'}
- topics: label first — each dialogue slot is one cell of a fixed specialty × setting grid, walked in a seeded
  order; the LLM proposes one topic per cell and the user's first question about it (JSON schema); topics
  already used are refused, and a question that reads like the assistant's words is dropped (the user's first
  statement is then generated; `no_opening_question`). With seed questions, the seed is the user's first
  message instead.
- dialogue: the transcript (`[|Human|]` / `[|AI|]`) is handed back to the model one statement at a time; the
  user side stops with `[END]` or at `max_turns` questions. An answer cut off by the token cap is ended at its
  last full sentence and the dialogue goes on (`trimmed_cut_answer`; with too little left, the dialogue ends
  there). A user statement in the assistant's voice (an offer of help, the assistant's greeting, a refusal, "feel
  free to ask", or a long statement with no question or request) is asked once more with another seed
  (`retried_user_turn`); if the second one drifts too, the dialogue ends before it (`dropped_from_user_drift`).
  The primed greeting, the closing `[END]` statement, a last statement cut off by the token cap and an
  unanswered last question are dropped.
- splits: {', '.join(f'{k} {v}' for k, v in sizes.items())} (by id hash)

## Contents
{_table({'dialogues': desc['dialogues'], 'messages': desc['messages'], 'unique topics': desc['unique_topics']}, ('', 'count'))}
### Messages (turns) per dialogue
{_table({'mean / median / min / max': '{mean} / {median} / {min} / {max}'.format(**m)}, ('', 'value'))}
{_table(desc['messages_per_dialogue_histogram'], ('messages', 'dialogues'))}
### Topic coverage: specialties
{_table(desc['specialties'], ('specialty', 'dialogues'))}
### Topic coverage: settings
{_table(desc['settings'], ('setting', 'dialogues'))}
## Quality control
Dialogue attempts: {totals['requests']} ({totals['kept']} kept, {totals['rejected']} rejected).

### Rejections by reason
{_table(totals['rejections'], ('reason', 'count'))}
### Repairs by kind
{_table(totals['repairs'], ('repair', 'count'))}
## Tokens used
{_table({'prompt tokens': totals['prompt_tokens'], 'completion tokens': totals['completion_tokens']}, ('', 'count'))}
## Prompts
- topic: {TOPIC_SYSTEM}
- user side: {HUMAN_SYSTEM}
- assistant side: {AI_SYSTEM}

## Files
`data.jsonl` (one dialogue per line: `id`, `messages` [{{role: user|assistant, content}}], `topic`, `meta`),
`hf/` (datasets.DatasetDict, `messages` column), `stats.json`, `store.sqlite` (the run store).
"""


def export_chat(out_dir: Path, examples: list[Example], identity: dict, totals: dict, stats: dict) -> None:
    """Write every export for exactly `examples` (the first n kept, in slot order)."""
    parts = split(examples)
    desc = describe(examples)
    sizes = {s: len(v) for s, v in parts.items()}
    write_jsonl(out_dir / "data.jsonl", (record(ex) for ex in examples))
    write_hf(parts, out_dir / "hf")
    _atomic_write(out_dir / "README.md", card(identity, desc, totals, sizes))
    _atomic_write(out_dir / "stats.json", json.dumps({**stats, "dataset": desc, "splits": sizes}, indent=2) + "\n")

"""Exports derived from the run store: JSONL, a HF DatasetDict, CoNLL BIO, spaCy DocBin, a dataset card, stats.

Everything here is a pure function of the kept examples (plus the run's counters), so exports can be rebuilt
at any time and a re-run that changes nothing writes byte-identical files. Files are written to a temporary
name and renamed, so an interrupted export never leaves a half-written file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
from collections import Counter
from pathlib import Path
from typing import Iterable

from medsynth.spec import TaskSpec
from medsynth.tokenize import Token, spans_to_bio, tokenize
from medsynth.types import Example

SPLITS = ("train", "validation")


def bio_labels(labels: list[str]) -> list[str]:
    """Tag inventory in a fixed order: O, then B-/I- per label in task order (the ClassLabel names)."""
    return ["O"] + [f"{p}-{lab}" for lab in labels for p in ("B", "I")]


def split_of(example_id: str, validation_fraction: float = 0.1) -> str:
    """Deterministic split by id hash: adding examples never moves an old one between splits."""
    h = int(hashlib.sha256(example_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "validation" if h < validation_fraction else "train"


def _split(examples: list[Example]) -> dict[str, list[Example]]:
    parts: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for ex in examples:
        parts[split_of(ex.id)].append(ex)
    if not parts["validation"] and len(parts["train"]) >= 2:  # tiny runs still get a validation example
        parts["validation"].append(parts["train"].pop())
    return parts


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_jsonl(examples: Iterable[Example], path: Path) -> None:
    lines = [json.dumps(ex.model_dump(), ensure_ascii=False, sort_keys=False) for ex in examples]
    _atomic_write(path, "\n".join(lines) + ("\n" if lines else ""))


def _rows(examples: list[Example], tags: list[str]) -> dict[str, list]:
    cols: dict[str, list] = {k: [] for k in ("id", "text", "tokens", "token_starts", "token_ends", "ner_tags", "spans", "weight")}
    index = {t: i for i, t in enumerate(tags)}
    for ex in examples:
        toks = tokenize(ex.text)
        cols["id"].append(ex.id)
        cols["text"].append(ex.text)
        cols["tokens"].append([t.text for t in toks])
        cols["token_starts"].append([t.start for t in toks])
        cols["token_ends"].append([t.end for t in toks])
        cols["ner_tags"].append([index.get(t, 0) for t in spans_to_bio(toks, ex.entities)])
        cols["spans"].append([e.model_dump() for e in ex.entities])
        cols["weight"].append(float(ex.meta.get("weight", 1.0)))
    return cols


def write_hf(parts: dict[str, list[Example]], labels: list[str], out: Path) -> None:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # our own progress bar is the one that matters; keep the terminal quiet

    tags = bio_labels(labels)
    span = {"start": Value("int32"), "end": Value("int32"), "label": Value("string"), "text": Value("string")}
    features = Features({
        "id": Value("string"), "text": Value("string"), "tokens": Sequence(Value("string")),
        "token_starts": Sequence(Value("int32")), "token_ends": Sequence(Value("int32")),
        "ner_tags": Sequence(ClassLabel(names=tags)), "spans": [span], "weight": Value("float32"),
    })
    dd = DatasetDict({s: Dataset.from_dict(_rows(parts[s], tags), features=features) for s in SPLITS})
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dd.save_to_disk(str(tmp))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def conll_lines(example: Example) -> list[str]:
    toks = tokenize(example.text)
    return [f"{t.text}\t{tag}" for t, tag in zip(toks, spans_to_bio(toks, example.entities))]


def write_conll(parts: dict[str, list[Example]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for split, exs in parts.items():
        blocks = ["\n".join(conll_lines(ex)) for ex in exs]
        _atomic_write(out / f"{split}.conll", "\n\n".join(blocks) + ("\n" if blocks else ""))


def _spacy_doc(nlp, ex: Example):
    from spacy.tokens import Doc

    toks: list[Token] = tokenize(ex.text)
    spaces = [toks[i].end < (toks[i + 1].start if i + 1 < len(toks) else len(ex.text)) for i in range(len(toks))]
    doc = Doc(nlp.vocab, words=[t.text for t in toks], spaces=spaces)
    ents = [doc.char_span(e.start, e.end, label=e.label, alignment_mode="expand") for e in ex.entities]
    doc.ents = [s for s in ents if s is not None]
    return doc


def write_spacy(parts: dict[str, list[Example]], out: Path) -> None:
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    out.mkdir(parents=True, exist_ok=True)
    for split, exs in parts.items():
        db = DocBin(docs=[_spacy_doc(nlp, ex) for ex in exs], store_user_data=False)
        tmp = out / f"{split}.spacy.tmp"
        db.to_disk(tmp)
        os.replace(tmp, out / f"{split}.spacy")


def describe(examples: list[Example], labels: list[str]) -> dict:
    """Counts and length statistics that go into the card and stats.json."""
    per_label = Counter(e.label for ex in examples for e in ex.entities)
    words = [len(ex.text.split()) for ex in examples] or [0]
    ments = [len(ex.entities) for ex in examples] or [0]
    unique = {lab: len({e.text.lower() for ex in examples for e in ex.entities if e.label == lab}) for lab in labels}
    styles = Counter(ex.meta.get("plan", {}).get("style", "?") for ex in examples)
    return {
        "examples": len(examples),
        "entities": sum(per_label.values()),
        "entities_per_label": {lab: per_label.get(lab, 0) for lab in labels},
        "unique_mentions_per_label": unique,
        "words_per_example": {"mean": round(statistics.fmean(words), 2), "min": min(words), "max": max(words),
                              "median": statistics.median(words)},
        "entities_per_example": {"mean": round(statistics.fmean(ments), 2), "min": min(ments), "max": max(ments)},
        "examples_without_entities": sum(1 for m in ments if m == 0) if examples else 0,
        "styles": dict(sorted(styles.items())),
    }


def _table(rows: dict, head: tuple[str, str]) -> str:
    if not rows:
        return "_none_\n"
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows.items()]
    return "\n".join(lines) + "\n"


def card(task: TaskSpec, identity: dict, desc: dict, totals: dict, split_sizes: dict[str, int]) -> str:
    """The dataset card: what was made, how (white-box labelling of LLM-written text), and what was rejected."""
    kept_tokens = totals["completion_tokens"] / max(desc["examples"], 1)
    return f"""# medsynth dataset: {task.registry_name}

Synthetic, LLM-written sentences with entity annotations. Task: {task.description.strip()}

**Every sentence here was generated by a language model** (model `{identity.get('model')}`); labels were written by the same model together
with the text (white-box labelling), then checked and repaired by medsynth's aligner and filters. No real
patient text was used. Treat it as training data, not as medical information.

## How it was made
- task: `{task.registry_name}` ({task.kind}); labels: {', '.join(task.label_names)}
- generator: `{identity.get('model')}`; output format `{identity.get('format')}`; run seed {identity.get('seed')};
  prompt hash `{identity.get('prompt_hash')}`; sampling {json.dumps(identity.get('params', {}), sort_keys=True)}
- plan: label-first — each request named its target mentions (from the task's seed lexicon) and a style
- splits: {', '.join(f'{k} {v}' for k, v in split_sizes.items())} (by id hash)

## Contents
{_table({'examples': desc['examples'], 'entities': desc['entities'], 'examples without entities': desc['examples_without_entities']}, ('', 'count'))}
### Entities per label
{_table(desc['entities_per_label'], ('label', 'mentions'))}
### Unique mention strings per label
{_table(desc['unique_mentions_per_label'], ('label', 'unique'))}
### Lengths
{_table({'words per example (mean / median / min / max)': '{mean} / {median} / {min} / {max}'.format(**desc['words_per_example']), 'entities per example (mean / min / max)': '{mean} / {min} / {max}'.format(**desc['entities_per_example'])}, ('', 'value'))}
### Styles
{_table(desc['styles'], ('style', 'examples'))}
## Quality control
LLM requests: {totals['requests']} ({totals['kept']} kept, {totals['rejected']} rejected).

### Repairs by kind
{_table(totals['repairs'], ('repair', 'count'))}
### Rejections by reason
{_table(totals['rejections'], ('reason', 'count'))}
## Tokens used
{_table({'prompt tokens': totals['prompt_tokens'], 'completion tokens': totals['completion_tokens'], 'completion tokens per kept example': round(kept_tokens, 1)}, ('', 'count'))}
## Files
`data.jsonl` (one example per line, character spans), `hf/` (datasets.DatasetDict, BIO `ner_tags`),
`conll/` (token TAB IOB2), `spacy/` (DocBin for `spacy train`), `stats.json`, `store.sqlite` (the run store).
"""


def export_all(out_dir: Path, examples: list[Example], task: TaskSpec, identity: dict, totals: dict,
               stats: dict) -> None:
    """Write every export for exactly `examples` (the first n kept, in slot order)."""
    parts = _split(examples)
    desc = describe(examples, task.label_names)
    write_jsonl(examples, out_dir / "data.jsonl")
    write_hf(parts, task.label_names, out_dir / "hf")
    write_conll(parts, out_dir / "conll")
    write_spacy(parts, out_dir / "spacy")
    sizes = {s: len(v) for s, v in parts.items()}
    _atomic_write(out_dir / "README.md", card(task, identity, desc, totals, sizes))
    _atomic_write(out_dir / "stats.json", json.dumps({**stats, "dataset": desc, "splits": sizes}, indent=2) + "\n")

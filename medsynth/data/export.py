"""Exports derived from the run store: JSONL, a HF DatasetDict, CoNLL BIO, spaCy DocBin, a dataset card, stats.

Everything here is a pure function of the kept examples (plus the run's counters), so exports can be rebuilt
at any time and a re-run that changes nothing writes byte-identical files.

An export is one set (data.jsonl, hf/, conll/, spacy/, brat/, pairs.jsonl, README.md, stats.json, quality.json)
that must agree on its examples. So the whole set is written into a staging folder `OUT/.export-<pid>/`, marked
complete, and only then renamed into place path by path; a reader never sees a half-written file, and a kill
before the swap leaves the old set untouched. A kill during the swap (a few renames) leaves a complete staging
folder that the next export into OUT finishes first (`recover_exports`), so the set is never left mixed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from medsynth.data.jsonl import write_jsonl
from medsynth.hashing import stable_fraction
from medsynth.spec import TaskSpec
from medsynth.data.tokens import Token, spans_to_bio, tokenize
from medsynth.records import DERIVED_FROM, NO_RELATION, Example, RelPair

SPLITS = ("train", "validation")
# Every path an export owns in its folder, in the order they are swapped in.
DERIVED = ("data.jsonl", "hf", "conll", "spacy", "brat", "pairs.jsonl", "quality.json", "stats.json", "README.md")
STAGE_PREFIX = ".export-"
COMPLETE = ".complete"  # written last into a staging folder: its content names the paths of the new set


def bio_labels(labels: list[str]) -> list[str]:
    """Tag inventory in a fixed order: O, then B-/I- per label in task order (the ClassLabel names)."""
    return ["O"] + [f"{p}-{lab}" for lab in labels for p in ("B", "I")]


def split_of(example_id: str, validation_fraction: float = 0.1) -> str:
    """Deterministic split by id hash: adding examples never moves an old one between splits."""
    return "validation" if stable_fraction(example_id) < validation_fraction else "train"


def _split(examples: list[Example]) -> dict[str, list[Example]]:
    parts: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for ex in examples:  # a derived copy goes where its original went, so no sentence is in both splits
        parts[split_of(ex.meta.get(DERIVED_FROM, ex.id))].append(ex)
    if not parts["validation"] and len(parts["train"]) >= 2:  # tiny runs still get a validation example
        parts["validation"].append(parts["train"].pop())
    return parts


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _rows(examples: list[Example], tags: list[str], relations: bool = False) -> dict[str, list]:
    cols: dict[str, list] = {k: [] for k in ("id", "text", "tokens", "token_starts", "token_ends", "ner_tags", "spans", "weight", "score")}
    if relations:
        cols["relations"] = [[r.model_dump() for r in ex.relations] for ex in examples]
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
        score = ex.meta.get("judge_score")
        cols["score"].append(None if score is None else float(score))
    return cols


def save_quietly(dd: Any, path: Path) -> None:
    """`DatasetDict.save_to_disk` without datasets' per-shard bars: a command shows one progress bar of its own
    (none with --no-progress), not "Saving the dataset (1/1 shards)" lines between them."""
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    dd.save_to_disk(str(path))


def write_hf(parts: dict[str, list[Example]], labels: list[str], out: Path, relations: bool = False) -> None:
    """`relations=True` (re tasks) adds a `relations` column: [{head, tail, label}], indices into `spans`."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    tags = bio_labels(labels)
    span = {"start": Value("int32"), "end": Value("int32"), "label": Value("string"), "text": Value("string")}
    features = Features({
        "id": Value("string"), "text": Value("string"), "tokens": Sequence(Value("string")),
        "token_starts": Sequence(Value("int32")), "token_ends": Sequence(Value("int32")),
        "ner_tags": Sequence(ClassLabel(names=tags)), "spans": [span], "weight": Value("float32"),
    })
    if relations:
        features["relations"] = [{"head": Value("int32"), "tail": Value("int32"), "label": Value("string")}]
    rows = {s: _rows(parts[s], tags, relations) for s in SPLITS}
    # A `score` column only when a judge scored something: `train --min-score` on unjudged data must fail
    # loudly ("no score column") rather than silently keep everything.
    if any(v is not None for r in rows.values() for v in r["score"]):
        features["score"] = Value("float32")
    else:
        for r in rows.values():
            del r["score"]
    dd = DatasetDict({s: Dataset.from_dict(rows[s], features=features) for s in SPLITS})
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_quietly(dd, tmp)
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


# ---------------------------------------------------------------------------------------------------------------
# relation exports (re tasks)


def _signatures(task: TaskSpec) -> dict[tuple[str, str], bool]:
    """(head label, tail label) of every relation -> whether the pair is unordered (all its relations
    symmetric). Only pairs with such a signature are candidates: a Disease-Disease pair can hold no relation
    of a Chemical-Disease task and would only add trivially-"none" pairs."""
    sigs: dict[tuple[str, str], bool] = {}
    for r in task.relations:
        sigs[(r.head, r.tail)] = sigs.get((r.head, r.tail), True) and r.symmetric
    return sigs


def relation_pairs(examples: list[Example], task: TaskSpec, splits: dict[str, str]) -> list[RelPair]:
    """One `RelPair` per candidate (head, tail) entity pair of each example, labelled with the relation on
    that pair or "none"; `splits` maps example id -> split (the same split as hf/, conll/, spacy/)."""
    sigs = _signatures(task)
    out: list[RelPair] = []
    for ex in examples:
        on_pair: dict[tuple[int, int], str] = {}
        for r in ex.relations:
            on_pair.setdefault((r.head, r.tail), r.label)
            if sigs.get((ex.entities[r.head].label, ex.entities[r.tail].label)):
                on_pair.setdefault((r.tail, r.head), r.label)
        for h, head in enumerate(ex.entities):
            for t, tail in enumerate(ex.entities):
                sig = (head.label, tail.label)
                if h == t or sig not in sigs or (sigs[sig] and head.label == tail.label and h > t):
                    continue
                out.append(RelPair(id=f"{ex.id}:{h}-{t}", text=ex.text, head=head, tail=tail,
                                   label=on_pair.get((h, t), NO_RELATION), split=splits.get(ex.id, split_of(ex.id)),
                                   meta={"example_id": ex.id}))
    return out


def write_pairs(pairs: list[RelPair], path: Path) -> None:
    write_jsonl(path, (p.model_dump() for p in pairs))


def _brat_fragments(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """BRAT lines cannot hold a newline or tab, so a span crossing one becomes discontinuous fragments."""
    frags, pos = [], start
    for m in re.finditer(r"[\n\r\t]+", text[start:end]):
        if start + m.start() > pos:
            frags.append((pos, start + m.start()))
        pos = start + m.end()
    if end > pos:
        frags.append((pos, end))
    return frags or [(start, end)]


def brat_ann(ex: Example) -> str:
    """BRAT standoff for one example: `T<i>\tLabel start end\ttext` per entity (T1 = entities[0]) and
    `R<j>\tLabel Arg1:T<head+1> Arg2:T<tail+1>` per relation."""
    lines = []
    for i, e in enumerate(ex.entities, 1):
        frags = _brat_fragments(ex.text, e.start, e.end)
        spans = ";".join(f"{a} {b}" for a, b in frags)
        lines.append(f"T{i}\t{e.label} {spans}\t{' '.join(ex.text[a:b] for a, b in frags)}")
    for j, r in enumerate(ex.relations, 1):
        lines.append(f"R{j}\t{r.label} Arg1:T{r.head + 1} Arg2:T{r.tail + 1}")
    return "".join(line + "\n" for line in lines)


def brat_conf(task: TaskSpec) -> str:
    """annotation.conf so the folder opens in the brat annotation tool as is."""
    rels = "\n".join(f"{r.name}\tArg1:{r.head}, Arg2:{r.tail}" for r in task.relations)
    return f"[entities]\n{chr(10).join(task.label_names)}\n[relations]\n{rels}\n[events]\n[attributes]\n"


def write_brat(examples: list[Example], task: TaskSpec, out: Path) -> None:
    """`<id>.txt` + `<id>.ann` per example, written to a fresh folder that replaces the old one whole, so
    a smaller re-export leaves no stale files behind."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for ex in examples:
        stem = re.sub(r"[^\w.\-]", "_", ex.id)
        (tmp / f"{stem}.txt").write_text(ex.text, encoding="utf-8")
        (tmp / f"{stem}.ann").write_text(brat_ann(ex), encoding="utf-8")
    (tmp / "annotation.conf").write_text(brat_conf(task), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def describe_relations(examples: list[Example], task: TaskSpec, pairs: list[RelPair]) -> dict:
    """Relation counts for the card and stats.json: per relation label, candidate pairs per label
    (incl. "none"), and what the plans asked for."""
    names = [r.name for r in task.relations]
    per_label = Counter(r.label for ex in examples for r in ex.relations)
    per_pair = Counter(p.label for p in pairs)
    planned = Counter(ex.meta.get("plan", {}).get("relation", {}).get("label", "?") for ex in examples)
    return {
        "relations": sum(per_label.values()),
        "relations_per_label": {n: per_label.get(n, 0) for n in names},
        "pairs": len(pairs),
        "pairs_per_label": {**{n: per_pair.get(n, 0) for n in names}, NO_RELATION: per_pair.get(NO_RELATION, 0)},
        "examples_per_planned_label": {n: planned.get(n, 0) for n in [*names, NO_RELATION]},
    }


def _relations_md(desc: dict) -> str:
    """The card's relation section; empty for NER datasets so their card is unchanged."""
    rel = desc.get("relations")
    if not rel:
        return ""
    return (f"## Relations\n{_table({'relations': rel['relations'], 'candidate pairs': rel['pairs']}, ('', 'count'))}\n"
            f"### Relations per label\n{_table(rel['relations_per_label'], ('relation', 'count'))}\n"
            f"### Candidate pairs per label (pairs.jsonl)\n{_table(rel['pairs_per_label'], ('label', 'pairs'))}\n"
            f"### Examples per planned relation (label first; `none` = both mentioned, no relation)\n"
            f"{_table(rel['examples_per_planned_label'], ('planned', 'examples'))}\n")


def _relation_files(task: TaskSpec) -> str:
    if task.kind != "re":
        return ""
    return ("`relations` in `data.jsonl` and `hf/` hold {head, tail, label} (indices into the entities); "
            "`pairs.jsonl` holds one candidate entity pair per line (`RelPair`, label a relation or `none`); "
            "`brat/` holds BRAT standoff (`.txt` + `.ann` per example, `annotation.conf`).\n")


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


def _intro(task: TaskSpec, identity: dict) -> str:
    """Where the text and the labels came from: LLM-written (white-box) or, in annotate mode, the user's text
    labelled by the LLM — a reader must know which, since the second carries the user's text and only
    black-box labels."""
    if identity.get("source") == "annotate":
        return f"""The user's own texts with LLM-assigned entity annotations (annotate mode). Task: {task.description.strip()}

**The texts are the user's** (input `{identity.get('annotate_input', 'the annotate input')}`, sha256
`{identity.get('annotate_sha256')}`), copied as given; **the labels came from a language model** (model
`{identity.get('model')}`) prompted per text with the task's definitions and guidelines — black-box labelling of
given text, not white-box generation — then placed on the text and repaired by medsynth's aligner and filters.
Labels are model output: review them before relying on them. If the input holds patient information, so does
this dataset."""
    return f"""Synthetic, LLM-written sentences with entity{' and relation' if task.kind == 're' else ''} annotations. Task: {task.description.strip()}

**Every sentence here was generated by a language model** (model `{identity.get('model')}`); labels were written by the same model together
with the text (white-box labelling), then checked and repaired by medsynth's aligner and filters. No real
patient text was used. Treat it as training data, not as medical information."""


def _plan_lines(identity: dict) -> str:
    """The card's plan line(s): label-first plans, optionally matched to a reference, or annotate mode."""
    if identity.get("source") == "annotate":
        return ("- source: annotate mode — example i is the i-th non-blank text of the input (meta `input`, `line`); "
                "greedy decoding; a text with no entity is kept as a negative example")
    line = "- plan: label-first — each request named its target mentions (from the task's seed lexicon) and a style"
    line += _negatives_line(identity.get("negatives"))
    ref = identity.get("reference")
    if not ref:
        return line
    mix = lambda d: ", ".join(f"{k}: {v}" for k, v in d.items()) if d else "n/a"  # noqa: E731
    return (f"{line}\n- reference matching: planner distributions from `{ref['name']}` ({ref['texts']} texts, "
            f"{'labelled' if ref['labelled'] else 'unlabelled'}; statistics only, no reference text was used): "
            f"words per sentence mean {ref['mean_words']}, median {ref['median_words']} (each request asks for a "
            f"window around a drawn length); mentions per sentence {mix(ref['mentions_per_sentence'])}; "
            f"label mix {mix(ref['label_mix'])}")


def _negatives_line(neg: dict | None) -> str:
    """The card's line on real negatives (vocabulary distractors, re-asked empty plans); "" for runs without."""
    if not neg:
        return ""
    parts = []
    if neg.get("vocabulary_groups"):
        excluded = ", ".join(neg.get("excluded_groups") or []) or "none"
        parts.append(f"hard negatives from medsynth's distractor vocabulary (groups {', '.join(neg['vocabulary_groups'])}; "
                     f"excluded as overlapping the labels: {excluded}) in every mention-free sentence and "
                     f"{round(100 * neg.get('rate', 0))} % of the others, asked to be left unlabelled "
                     "(a labelled one is unlabelled: `distractor:unlabelled`)")
    if neg.get("recheck_empty"):
        parts.append("a mention-free plan answered with a task mention or lexicon term was re-asked once "
                     "(`negative_reasked`), then rejected (`negative_not_empty`)")
    return "\n- negatives: " + "; ".join(parts) if parts else ""


def _conventions_md(conv: dict | None) -> str:
    """The "Span conventions (from reference)" section: per label, the boundary words and span lengths
    derived from the labelled reference (counts only, no reference text), and the rules they became."""
    if not conv:
        return ""
    rows = ["## Span conventions (from reference)",
            "Derived from the labelled reference's gold spans; shown to the LLM as a guideline with invented example "
            "spans, and applied by `export --apply-span-rules`.", "",
            "| label | spans | tokens per span (median / mean) | words inside before | words inside after |",
            "|---|---|---|---|---|"]
    for label, c in conv.items():
        words = lambda ws: ", ".join(f"{w['word']} ({w['inside']}/{w['inside'] + w['outside']})" for w in ws) or "-"  # noqa: E731
        rows.append(f"| {label} | {c['spans']} | {c['median_tokens']} / {c['mean_tokens']} | {words(c['before'])} | "
                    f"{words(c['after'])} |")
    return "\n".join(rows) + "\n\n(word (n/m): the word was inside the span in n of the m times it stood directly " \
        "before / after one)\n\n"


def card(task: TaskSpec, identity: dict, desc: dict, totals: dict, split_sizes: dict[str, int]) -> str:
    """The dataset card: what was made, how (white-box labelling of LLM-written text), and what was rejected."""
    kept_tokens = totals["completion_tokens"] / max(desc["examples"], 1)
    return f"""# medsynth dataset: {task.registry_name}

{_intro(task, identity)}

## How it was made
- task: `{task.registry_name}` ({task.kind}); labels: {', '.join(task.label_names)}
- generator: `{identity.get('model')}`; output format `{identity.get('format')}`; run seed {identity.get('seed')};
  prompt hash `{identity.get('prompt_hash')}`; sampling {json.dumps(identity.get('params', {}), sort_keys=True)}
{_plan_lines(identity)}
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
{_relations_md(desc)}{_conventions_md(identity.get('span_conventions'))}## Quality control
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
{_relation_files(task)}"""


def _served_md(stats: dict) -> str:
    """Which server, slots and engine made this invocation's answers (`stats.this_run.served_by` and `engine`);
    empty for a run re-exported without an LLM."""
    run = stats.get("this_run") or {}
    served = run.get("served_by") or {}
    if not served:
        return ""
    if served.get("server") == "remote":
        what = f"{served.get('endpoints', 1)} OpenAI-compatible endpoint(s)"
    else:
        what = (f"the embedded `{served.get('server')}`, {served.get('slots')} slot(s) of {served.get('context')} "
                f"tokens, {served.get('threads')} threads")
    return (f"\n## Served by (this run)\n- {what}; {served.get('in_flight')} requests in flight; engine "
            f"`{run.get('engine', 'local')}`\n")


def _endpoints_md(stats: dict) -> str:
    """Which endpoints (credential-free URLs) and served models made this invocation's answers, when several
    endpoints were pooled (`stats.this_run.endpoints`, see medsynth.llm.pool); empty otherwise."""
    rows = (stats.get("this_run") or {}).get("endpoints") or []
    lines = [f"- `{e['url']}`: {e.get('requests', 0)} answers, {e.get('failures', 0)} failed"
             + (f"; serves {', '.join(f'`{m}`' for m in e['models'])}" if e.get("models") else "")
             + (f" ({e['server']})" if e.get("server") else "") for e in rows]
    return "\n## Endpoints (this run)\n" + "\n".join(lines) + "\n" if lines else ""


def export_all(out_dir: Path, examples: list[Example], task: TaskSpec, identity: dict, totals: dict,
               stats: dict, quality_dir: Path | None = None, _before_swap=None) -> None:
    """Write every export for exactly `examples` (the first n kept, in slot order), as one set swapped in
    whole (see the module doc). The caller holds OUT's lock (build and export take `DirLock`)."""
    from medsynth.data.store import write_marker

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recover_exports(out_dir)
    stage = out_dir / f"{STAGE_PREFIX}{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    old_quality = out_dir / "quality.json"
    if old_quality.is_file():  # judge / report results and other keys carry over into the new set
        shutil.copyfile(old_quality, stage / "quality.json")
    _write_set(stage, examples, task, identity, totals, stats, quality_dir or out_dir)
    names = [name for name in DERIVED if (stage / name).exists()]
    _atomic_write(stage / COMPLETE, json.dumps(names) + "\n")
    if _before_swap is not None:  # tests: simulate a kill between the staged set and the swap
        _before_swap(stage)
    _swap_in(stage, out_dir)
    write_marker(out_dir)


def _swap_in(stage: Path, out_dir: Path) -> None:
    """Rename a complete staged set into place; idempotent, so recovery after a kill can run it again.
    A path the new set does not have (pairs.jsonl after an NER re-export) is moved out too: a stale file
    would disagree with the rest on the count."""
    names = json.loads((stage / COMPLETE).read_text(encoding="utf-8"))
    trash = stage / ".old"
    trash.mkdir(exist_ok=True)
    for name in DERIVED:
        new, target = stage / name, out_dir / name
        if name in names and not new.exists():
            continue  # swapped in before an interruption
        if new.is_file() and not target.is_dir():
            os.replace(new, target)  # atomic for files: the old one is there until the new one is
            continue
        if target.exists() or target.is_symlink():
            os.replace(target, trash / name)
        if name in names:
            os.replace(new, target)
    shutil.rmtree(stage, ignore_errors=True)


def recover_exports(out_dir: Path) -> None:
    """Finish or discard what an interrupted export left in `out_dir`: a complete staging folder is swapped
    in (it was interrupted mid-swap, so part of the new set is already in place), an incomplete one deleted.
    Only our own dead staging folders are touched: the caller holds the folder lock."""
    for stage in sorted(Path(out_dir).glob(f"{STAGE_PREFIX}*")):
        if not stage.is_dir():
            continue
        if (stage / COMPLETE).is_file():
            _swap_in(stage, Path(out_dir))
        else:
            shutil.rmtree(stage, ignore_errors=True)


def _write_set(out_dir: Path, examples: list[Example], task: TaskSpec, identity: dict, totals: dict,
               stats: dict, quality_dir: Path) -> None:
    """The export set itself, written into `out_dir` (the staging folder)."""
    parts = _split(examples)
    desc = describe(examples, task.label_names)
    relational = task.kind == "re"
    write_jsonl(out_dir / "data.jsonl", (ex.model_dump() for ex in examples))
    write_hf(parts, task.label_names, out_dir / "hf", relations=relational)
    if relational:
        pairs = relation_pairs(examples, task, {ex.id: s for s, exs in parts.items() for ex in exs})
        desc["relations"] = describe_relations(examples, task, pairs)
        write_pairs(pairs, out_dir / "pairs.jsonl")
        write_brat(examples, task, out_dir / "brat")
    write_conll(parts, out_dir / "conll")
    write_spacy(parts, out_dir / "spacy")
    sizes = {s: len(v) for s, v in parts.items()}
    quality = quality_report(examples, task, out_dir, None, stats.get("curation"), read_from=quality_dir)
    _atomic_write(out_dir / "README.md", card(task, identity, desc, totals, sizes) + _served_md(stats)
                  + _endpoints_md(stats) + "\n" + quality["card"])
    rules = task.span_rules()  # travel to the model (train_log.json) so prediction applies them too
    _atomic_write(out_dir / "stats.json", json.dumps({**stats, "dataset": desc, "splits": sizes,
                                                      "quality": quality["summary"],
                                                      **({"span_rules": rules} if rules else {})}, indent=2) + "\n")


def quality_report(examples: list[Example], task: TaskSpec, out_dir: Path, quality_dir: Path | None,
                   curation: dict | None, read_from: Path | None = None) -> dict:
    """The card's data-quality section and quality.json: dedup, diversity, privacy and contamination against
    the benchmark test splits (when ../shared/data or MEDSYNTH_DATA_DIR is there), plus the judge and fidelity
    numbers a run's earlier `judge` / `report` passes left in quality.json."""
    from medsynth.quality import card_section, quality_summary
    from medsynth.quality.contamination import contamination_against_benchmarks, lexicon_overlap_against_benchmarks
    from medsynth.quality.runs import QUALITY_FILE, merge_quality_json

    summary = quality_summary(examples, task)
    found = contamination_against_benchmarks(examples)
    if found is not None:
        summary["contamination"] = found
    overlap = lexicon_overlap_against_benchmarks(examples, task)
    if overlap is not None:
        summary["lexicon_overlap"] = overlap
    if curation:
        summary["curation"] = curation
    extra: dict = {}
    for folder in dict.fromkeys(p for p in (quality_dir, read_from, out_dir) if p is not None):
        path = Path(folder) / QUALITY_FILE
        if path.is_file():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                extra.update({k: v for k, v in loaded.items() if k in ("judge", "fidelity")})
            except (OSError, ValueError):
                pass
    merge_quality_json(out_dir, "summary", summary)
    for key, value in extra.items():
        merge_quality_json(out_dir, key, value)
    section = card_section(summary, extra)
    if found is None:  # say so rather than leave the reader to guess whether it was checked
        section += "\ncontamination: not checked (no benchmark data found)\n"
    if curation and any(curation.get(k) for k in ("dropped", "judge_scored", "added", "relabelled")):
        dropped = ", ".join(f"{k} {v}" for k, v in curation["dropped"].items()) or "none"
        added = ", ".join(f"{k} {v}" for k, v in curation.get("added", {}).items() if v) or "none"
        moved = curation.get("relabelled")
        section += (f"\n### Curation\nExported {curation['output']} examples from {curation['input']} kept ones "
                    f"(dropped: {dropped}; added copies: {added}); judge scores attached to "
                    f"{curation['judge_scored']} (HF columns `score` and `weight` = score/5)."
                    + (f" The task's span rules extended {moved['span_extended']} spans over words its labels put "
                       f"inside and trimmed {moved['span_trimmed']} that started with words they keep out "
                       f"({moved['examples_changed']} examples changed)." if moved else "")
                    + (" A copy with `abbreviation_alone` repeats a generated sentence with its defined abbreviation "
                       "used alone." if curation.get("added", {}).get("abbreviation_alone") else "")
                    + (" A copy with `varied_terms` repeats a generated sentence with its planned look-alikes replaced "
                       "by other terms of their distractor groups." if curation.get("added", {}).get("varied_terms")
                       else "") + "\n")
    return {"summary": summary, "card": section}

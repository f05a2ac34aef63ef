"""`train --data PATH[:weight=W]` (repeatable): medsynth runs and gold corpora combined into one training set.

A source is either a medsynth run (a folder with `hf/` for NER, `pairs.jsonl` for RE, as `build` writes) or any
gold corpus `read_corpus` reads (a preset, a CoNLL / BRAT / JSON Lines / spaCy / datasets file or folder). A gold
corpus gives its train split, or the whole file when the file is a single split. Every example carries its
source's weight:

- NER: the weight multiplies the per-example loss weight (`TrainConfig.use_weights`; a run's own judge weights
  are kept when `--use-weights` is set), so `gold.conll:weight=2` counts each gold sentence twice as much.
- RE: the relation trainer has no per-example loss weight, so a whole-number weight repeats each pair that many
  times; any other RE weight is refused.

Validation comes from the gold sources' devel splits when one has it (a recipe is then selected on real text),
else from the runs' validation splits, else the trainer holds out 10% of train as it always does. `--min-score`
applies to runs (gold has no judge score). The combined set is written under `OUT/sources/` (the trainer's usual
input layout), and every source (path, kind, weight, content hash, examples) goes into `train_log.json` and the
model card.

A single run with weight 1 is trained exactly as before, without a combined copy.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medsynth.errors import MedsynthError
from medsynth.paths import portable

_WEIGHT = re.compile(r"^(?P<path>.+):weight=(?P<w>[^:]*)$")


@dataclass
class Source:
    """One `--data` value: where, how much it counts, and (once read) what it held."""

    path: Path
    weight: float = 1.0
    kind: str = ""  # "run" or "corpus"
    format: str = ""  # run | a read_corpus format | preset
    split: str = ""  # what was trained on: train / the whole file
    content_hash: str = ""
    examples: int = 0
    validation_examples: int = 0
    task: str = ""  # a run's versioned task (`ner.v1`); "" for a gold corpus

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "path": portable(self.path)}


def parse_source(text: str) -> Source:
    """`PATH` or `PATH:weight=W` (W > 0); a bad weight is one error naming the value."""
    m = _WEIGHT.match(text)
    if not m:
        return Source(Path(text))
    try:
        weight = float(m["w"])
    except ValueError:
        weight = -1.0
    if not weight > 0 or weight != weight or weight == float("inf"):
        raise MedsynthError("a source weight is a positive number, as in runs/syn:weight=0.5", field="--data",
                            value=text)
    return Source(Path(m["path"]), weight)


def is_run(path: Path, kind: str) -> bool:
    """A medsynth run folder of this kind (what `build` exports), as opposed to a gold corpus."""
    return path.is_dir() and ((path / "hf").is_dir() if kind == "ner" else (path / "pairs.jsonl").is_file()
                              and not any(p.suffix == ".ann" for p in path.glob("*.ann")))


def needs_combining(sources: list[Source], kind: str) -> bool:
    return not (len(sources) == 1 and sources[0].weight == 1.0 and is_run(sources[0].path, kind))


def _records_hash(records: list) -> str:
    from medsynth.data.corpora.corpus import records_hash

    return records_hash(records)


# --- NER ----------------------------------------------------------------------------------------------------------


def _run_rows(src: Source, config: Any) -> tuple[list[dict], list[dict], str]:
    """(train rows, validation rows, label names) of a run's hf/ export; min_score and judge weights applied."""
    from medsynth.data.corpora.base import IOBSentence
    from medsynth.train.ner import load_splits

    data = load_splits(src.path, config)
    names = data["labels"]

    def rows(items: list[dict]) -> list[dict]:
        return [{"tokens": r["words"], "tags": [names[t] for t in r["tags"]], "weight": r["weight"] * src.weight}
                for r in items]

    train = rows(data["train"])
    val = rows(data["validation"]) if data["val_source"] == "validation split" else []
    if not val:  # the run had no validation split: the held-out rows go back into train
        train += rows(data["validation"])
    src.kind, src.format, src.split, src.task = "run", "hf", "train", _run_task(src.path)
    src.content_hash = _records_hash([IOBSentence(r["tokens"], r["tags"], "") for r in train])
    src.examples, src.validation_examples = len(train), len(val)
    return train, val, names


def _corpus_rows(src: Source, kind: str, label_map: dict[str, str] | None,
                 task_labels: list[str] | None) -> tuple[list, list]:
    """(train records, devel records) of a gold corpus: its train split (or its only split) and its devel."""
    from medsynth.data.corpora import read_corpus

    try:
        corpus = read_corpus(str(src.path), kind, label_map=label_map or None, task_labels=task_labels)
        corpus.split(corpus.splits[0])
    except MedsynthError as err:
        if src.path.is_dir() and "holds no corpus" in str(err):
            what = "hf/" if kind == "ner" else "pairs.jsonl"
            raise MedsynthError(f"neither a medsynth run (no {what}; run `medsynth build` first) nor a "
                                "corpus (no train/devel/test files, BRAT .txt + .ann, saved datasets or data.jsonl)",
                                where=str(src.path)) from None
        raise
    split = "train" if "train" in corpus.splits else corpus.splits[-1]
    train = corpus.split(split)
    devel = corpus.split("devel") if "devel" in corpus.splits and split != "devel" else []
    src.kind, src.format = "corpus", corpus.format
    src.split = split if split == "train" else f"{split} (the whole file)"
    src.content_hash = corpus.describe(split)["content_hash"]
    src.examples, src.validation_examples = len(train), len(devel)
    return train, devel


def combine_ner(sources: list[Source], work: Path, config: Any, label_map: dict[str, str] | None = None) -> Path:
    """Write the combined NER set as `work/hf` (string tags, a `weight` column) and return `work`."""
    from datasets import Dataset, DatasetDict, Features, Sequence, Value
    from medsynth.data.export import save_quietly

    train: list[dict] = []
    run_val: list[dict] = []
    gold_val: list[dict] = []
    run_labels: set[str] = set()
    for src in sources:
        if is_run(src.path, "ner"):
            t, v, names = _run_rows(src, config)
            train += t
            run_val += v
            run_labels |= {n[2:] for n in names if n != "O"}
    for src in sources:
        if not is_run(src.path, "ner"):
            t, v = _corpus_rows(src, "ner", label_map, sorted(run_labels) if run_labels else None)
            train += [{"tokens": s.tokens, "tags": s.tags, "weight": src.weight} for s in t]
            gold_val += [{"tokens": s.tokens, "tags": s.tags, "weight": 1.0} for s in v]
    val = gold_val or run_val
    features = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(Value("string")),
                         "weight": Value("float64")})

    def ds(rows: list[dict]) -> Dataset:
        return Dataset.from_dict({"tokens": [r["tokens"] for r in rows], "ner_tags": [r["tags"] for r in rows],
                                  "weight": [float(r["weight"]) for r in rows]}, features=features)

    parts = {"train": ds(train)}
    if val:
        parts["validation"] = ds(val)
    _fresh(work)
    save_quietly(DatasetDict(parts), work / "hf")
    write_sources(work, sources)
    return work


# --- RE -----------------------------------------------------------------------------------------------------------


def _repeat(src: Source) -> int:
    if src.weight != int(src.weight):
        raise MedsynthError("relation training repeats pairs for a weight, so an RE weight is a whole number",
                            field="--data", value=f"{src.path}:weight={src.weight:g}")
    return int(src.weight)


def combine_re(sources: list[Source], work: Path, label_map: dict[str, str] | None = None) -> Path:
    """Write the combined pairs as `work/pairs.jsonl` (split train / validation) and return `work`."""
    from medsynth.data.corpora.rel import read_pairs, write_pairs

    train: list = []
    run_val: list = []
    gold_val: list = []
    for src in sources:
        times = _repeat(src)
        if is_run(src.path, "re"):
            pairs = read_pairs(src.path / "pairs.jsonl")
            t = [p for p in pairs if p.split == "train"]
            v = [p for p in pairs if p.split != "train"]
            src.kind, src.format, src.split, src.task = "run", "pairs.jsonl", "train", _run_task(src.path)
            src.content_hash, src.examples, src.validation_examples = _records_hash(t), len(t), len(v)
            run_val += v
        else:
            t, v = _corpus_rows(src, "re", label_map, None)
            gold_val += v
        train += [p.model_copy(update={"split": "train", "id": f"{p.id}~{k}" if k else p.id})
                  for p in t for k in range(times)]
    val = [p.model_copy(update={"split": "validation"}) for p in (gold_val or run_val)]
    _fresh(work)
    write_pairs(work / "pairs.jsonl", [*train, *val])
    write_sources(work, sources)
    return work


# --- provenance ---------------------------------------------------------------------------------------------------


SOURCES_FILE = "sources.json"


def _run_task(path: Path) -> str:
    from medsynth.quality.runs import run_task_name

    return run_task_name(path) or ""


def write_sources(work: Path, sources: list[Source]) -> None:
    """`sources.json` beside a combined set, so whatever trains on the folder later (`train_log.json`, every
    predictions `.meta.json`) can still say which runs, task versions and gold corpora went into it."""
    (work / SOURCES_FILE).write_text(json.dumps([s.record() for s in sources], indent=2) + "\n", encoding="utf-8")


def read_sources(folder: Path) -> list[dict]:
    """The records `write_sources` left in a combined folder; [] for a run or an unreadable file."""
    try:
        records = json.loads((Path(folder) / SOURCES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return []
    return records if isinstance(records, list) else []


def _fresh(work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)


def record_sources(out_dir: Path, sources: list[Source], validation: str) -> None:
    """Every source into train_log.json (`sources`) and a section of the model card."""
    records = [s.record() for s in sources]
    log_path = out_dir / "train_log.json"
    log = json.loads(log_path.read_text(encoding="utf-8"))
    log["sources"] = records
    log["validation_from"] = validation
    log_path.write_text(json.dumps(log, indent=2) + "\n", encoding="utf-8")
    lines = ["", "## Training data sources", "", f"Validation: {validation}.", "",
             "| source | kind | format | split | weight | examples | validation | content hash |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| `{s.path}` | {s.kind} | {s.format} | {s.split} | {s.weight:g} | {s.examples} | "
              f"{s.validation_examples} | {s.content_hash} |" for s in sources]
    card = out_dir / "model_card.md"
    card.write_text(card.read_text(encoding="utf-8").rstrip("\n") + "\n" + "\n".join(lines) + "\n", encoding="utf-8")


def validation_from(sources: list[Source]) -> str:
    """Which sources the validation split came from (the rule in the module docstring)."""
    gold = [str(s.path) for s in sources if s.kind == "corpus" and s.validation_examples]
    runs = [str(s.path) for s in sources if s.kind == "run" and s.validation_examples]
    if gold:
        return "devel split of " + ", ".join(gold)
    if runs:
        return "validation split of " + ", ".join(runs)
    return "10% of train held out by the trainer"


def train_from_sources(values: list[str], out_dir: Path, config: Any, kind: str = "ner", progress: bool = True,
                       label_map: dict[str, str] | None = None) -> dict:
    """Train on every `--data` value (see the module docstring) and return the trainer's metrics."""
    sources = [parse_source(v) for v in values]
    for src in sources:
        if not src.path.exists() and not _is_preset(str(src.path), kind):
            raise MedsynthError("training data not found: neither a medsynth run, a corpus file or folder, nor a "
                                "preset", field="--data", value=str(src.path))
    if not needs_combining(sources, kind):
        return _train(kind, sources[0].path, out_dir, config, progress)
    work = Path(out_dir) / "sources"
    if kind == "ner":
        data = combine_ner(sources, work, config, label_map)
        config = config.model_copy(update={"use_weights": True, "min_score": None})
    else:
        data = combine_re(sources, work, label_map)
    metrics = _train(kind, data, out_dir, config, progress)
    record_sources(Path(out_dir), sources, validation_from(sources))
    return {**metrics, "sources": [s.record() for s in sources]}


def _is_preset(name: str, kind: str) -> bool:
    from medsynth.data.corpora import NER_PRESETS, RE_PRESETS

    return name in (NER_PRESETS if kind == "ner" else RE_PRESETS)


def _train(kind: str, data: Path, out_dir: Path, config: Any, progress: bool) -> dict:
    if kind == "ner":
        from medsynth.train.ner import train_ner

        return train_ner(data, out_dir, config, progress=progress)
    from medsynth.train.rel import train_re

    return train_re(data, out_dir, config, progress=progress)

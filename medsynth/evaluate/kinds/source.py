"""The benchmark's corpus: a preset or a user's own path (`read_corpus`), its label map and the split scored.

Both kinds open their corpus here, so `bench ner|re --dataset PATH --label-map ... --split devel` behaves alike:

- `--label-map CORPUS=TASK` renames the corpus's labels to the task's (`data.corpora.labels`). For NER the older
  direction, `TASK=CORPUS` (`Drug=Chemical`: the task's Drug predictions count as the corpus's Chemical), still
  works: an entry whose left side is a task label and not a corpus label, and whose right side is a corpus label,
  is read that way (`split_label_map`).
- Every label the corpus has must end up a task label; the unknown ones are one line listing all of them, raised
  while reading the test split, i.e. before any system runs or anything is written to `--out`.
- `--split devel` scores the devel split so recipes can be chosen there and test scored once per final recipe;
  the supervised system then holds validation out of train instead of selecting epochs on the split it is
  scored on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from medsynth.data.corpora import Corpus, read_corpus
from medsynth.data.corpora.corpus import NER_PRESETS, RE_PRESETS
from medsynth.errors import MedsynthError
from medsynth.hashing import short_hash

if TYPE_CHECKING:
    from medsynth.evaluate.bench import BenchConfig


def is_preset(dataset: str, kind: str) -> bool:
    """A built-in corpus name (a path of the same name on disk wins, as in `read_corpus`)."""
    return dataset in (NER_PRESETS if kind == "ner" else RE_PRESETS) and not Path(dataset).exists()


def dataset_slug(dataset: str, kind: str) -> str:
    """A folder-safe name for the corpus: the preset name itself, else the path's name plus a short hash of the
    resolved path (two folders called `test/` in different places get different work folders)."""
    if is_preset(dataset, kind):
        return dataset
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(dataset).name).strip("-.") or "corpus"
    return f"{name}-{short_hash(str(Path(dataset).expanduser().resolve()), 8)}"


def split_label_map(label_map: dict[str, str] | None, corpus_labels: Sequence[str],
                    task_labels: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """({corpus label: task label}, {task label: corpus label}) from the `--label-map` entries: an entry is read
    TASK=CORPUS only when its left side is a task label but no corpus label and its right side a corpus label."""
    corpus, task = set(corpus_labels), set(task_labels)
    to_task: dict[str, str] = {}
    to_corpus: dict[str, str] = {}
    for left, right in (label_map or {}).items():
        if left in task and left not in corpus and right in corpus:
            to_corpus[left] = right
        else:
            to_task[left] = right
    return to_task, to_corpus


def open_corpus(cfg: BenchConfig, task_labels: Sequence[str], fold: int = 1) -> tuple[Corpus, dict[str, str]]:
    """The benchmark corpus with the label map applied, and the NER-only TASK=CORPUS entries left over."""
    kind = cfg.kind
    probe = read_corpus(cfg.dataset, kind, data_dir=cfg.data_dir, fold=fold)
    to_task, to_corpus = (split_label_map(cfg.label_map, probe.corpus_labels(), task_labels) if cfg.label_map
                          else ({}, {}))
    if kind == "re" and to_corpus:
        raise MedsynthError("bench re takes --label-map CORPUS=TASK (corpus labels renamed to task labels)",
                            field="--label-map", value=",".join(f"{k}={v}" for k, v in to_corpus.items()))
    checked = not is_preset(cfg.dataset, kind) or bool(to_task)
    corpus = read_corpus(cfg.dataset, kind, label_map=to_task or None,
                         task_labels=[*task_labels, *to_corpus.values()] if checked else None,
                         data_dir=cfg.data_dir, fold=fold)
    corpus.mapping()  # unknown labels: one error now, before any system runs
    check_splits(cfg, corpus)
    return corpus, to_corpus


def check_splits(cfg: BenchConfig, corpus: Corpus) -> None:
    """The split to score exists, and the supervised system has a train split to learn from."""
    if cfg.split not in corpus.splits:
        raise MedsynthError(f"the corpus has no {cfg.split} split (it has: {', '.join(corpus.splits)})",
                            where=cfg.dataset, field="--split", value=cfg.split)
    if "supervised" in cfg.systems and "train" not in corpus.splits:
        raise MedsynthError("the supervised system needs the corpus's train split; a single file is a test split "
                            "(give a folder with train/devel/test, or leave supervised out of --systems)",
                            where=cfg.dataset, field="--systems", value="supervised")


def validation_split(cfg: BenchConfig, corpus: Corpus) -> str | None:
    """The split the supervised model selects epochs on: devel, unless devel is the split being scored."""
    return "devel" if "devel" in corpus.splits and cfg.split != "devel" else None

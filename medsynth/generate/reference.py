"""Reference matching (`build --reference FILE`): steer the planner towards a real corpus's distributions.

Why: a synthetic set can pass every label check and still teach the wrong shape of data — 15-word sentences
where the target corpus has 30, one mention per sentence where it has three (see `quality/fidelity.py`, which
measures exactly this after the fact). Here the same reference is read *before* generation and reduced to
three histograms — words per sentence, task mentions per sentence, and the label mix — which become the
planner's `PlanStats`. Only these numbers leave this module: no reference text is copied into a prompt, a
plan or the dataset card.

Unlabelled references (.txt, .jsonl without "entities") give lengths only; labelled ones (a corpus name, an
IOB file, a .jsonl of examples) give all three, and (unless the task sets `span_conventions: false`) the
span boundary conventions of each label (`medsynth.generate.conventions`: counts and boundary words only). A bare corpus name means its train split here, so the test
split is not looked at unless asked for (`ncbi-disease:test`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from medsynth.errors import MedsynthError
from medsynth.generate.plan import PlanStats
from medsynth.spec import TaskSpec

MIN_WORDS, MAX_WORDS = 5, 100  # drawn lengths are clipped to what one generated sentence can sensibly be
DIGITS = 4  # shares are rounded: they go into the run identity and the card


@dataclass
class ReferenceStats:
    """The planner's statistics plus what the card says about where they came from."""

    name: str
    texts: int
    labelled: bool
    stats: PlanStats
    conventions: dict = field(default_factory=dict)  # label -> span conventions (labelled, task.span_conventions)

    def card_summary(self) -> dict:
        """Numbers only (no text): the reference's name and size, and the distributions the planner follows."""
        lengths = self.stats.length_weights or {}
        return {"name": self.name, "texts": self.texts, "labelled": self.labelled,
                "mean_words": _weighted_mean(lengths), "median_words": _weighted_median(lengths),
                "mentions_per_sentence": _str_keys(self.stats.mentions_weights),
                "label_mix": self.stats.label_weights}


def _shares(counts: Counter) -> dict:
    total = sum(counts.values()) or 1
    return {k: round(v / total, DIGITS) for k, v in sorted(counts.items())}


def _str_keys(d: dict | None) -> dict | None:
    return None if d is None else {str(k): v for k, v in d.items()}


def _weighted_mean(weights: dict[int, float]) -> float | None:
    total = sum(weights.values())
    return round(sum(k * w for k, w in weights.items()) / total, 1) if total else None


def _weighted_median(weights: dict[int, float]) -> int | None:
    total, run = sum(weights.values()), 0.0
    for k in sorted(weights):
        run += weights[k]
        if run >= total / 2:
            return k
    return None


def _resolve_spec(spec: str) -> str:
    """A bare corpus name (not an existing path) means its train split: generation should not be tuned on
    the test sentences it will be scored against."""
    from medsynth.data.corpora.ner import list_corpora

    if not Path(spec).exists() and ":" not in spec and spec in list_corpora():
        return f"{spec}:train"
    return spec


def length_weights(texts: list[str]) -> dict[int, float]:
    """Share of texts per word count (whitespace words, as the filter counts them), clipped to 5–100."""
    return _shares(Counter(min(max(len(t.split()), MIN_WORDS), MAX_WORDS) for t in texts))


def _task_label_map(task: TaskSpec, ref_labels: set[str], name: str) -> dict[str, str]:
    """Reference label → task label, case-insensitively. A labelled reference sharing no label with the task
    is refused: its mention counts would describe other entity types."""
    by_lower = {lab.lower(): lab for lab in task.label_names}
    mapping = {r: by_lower[r.lower()] for r in ref_labels if r.lower() in by_lower}
    if ref_labels and not mapping:
        raise MedsynthError(f"the reference's labels ({', '.join(sorted(ref_labels))}) share none with the "
                            f"task's ({', '.join(task.label_names)})", where=name, field="labels")
    return mapping


def plan_stats_from(name: str, texts: list[str], examples: list | None, task: TaskSpec) -> ReferenceStats:
    """PlanStats from reference texts and, when labelled, their entities (only the task's labels count)."""
    if not texts:
        raise MedsynthError("the reference holds no texts", where=name)
    stats = PlanStats(length_weights=length_weights(texts))
    if examples is not None:
        mapping = _task_label_map(task, {e.label for ex in examples for e in ex.entities}, name)
        per_text = [[mapping[e.label] for e in ex.entities if e.label in mapping] for ex in examples]
        stats.mentions_weights = _shares(Counter(len(labels) for labels in per_text))
        label_counts = Counter(lab for labels in per_text for lab in labels)
        stats.label_weights = _shares(label_counts) if label_counts else None
        if task.span_conventions:
            from medsynth.generate.conventions import derive_conventions

            conventions = derive_conventions(examples, mapping, task)
            return ReferenceStats(name, len(texts), True, stats, conventions)
    return ReferenceStats(name, len(texts), examples is not None, stats)


def reference_stats(spec: str, task: TaskSpec, data_dir: str | Path | None = None) -> ReferenceStats:
    """Read a reference (corpus name, IOB .tsv/.conll, .jsonl, .txt or any `read_corpus` spec, whose train split
    is used when it has one; see fidelity.load_reference) and reduce it to the planner's statistics. Bad input
    raises a one-line MedsynthError naming the file."""
    from medsynth.quality.fidelity import load_reference

    ref = load_reference(_resolve_spec(spec), data_dir, default_split="train")
    return plan_stats_from(ref.name, ref.texts, ref.examples, task)


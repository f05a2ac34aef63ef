"""Curate: the step between the run store and the exports, where quality controls act on the dataset.

Store keeps every kept example for good (resume and provenance need them); curation decides what the exported
dataset holds and how much each example counts, without touching the store:

- judge scores (from `medsynth judge RUN`, stored in RUN/judge.sqlite) are attached to each example as
  `meta["judge_score"]` and become the HF `score` column (for `train --min-score`, a hard threshold) and the
  `weight` column score/5 (for `train --use-weights`, soft weights) — flexible control instead of mandatory
  filtering, and the choice is made at training time;
- `dedup` drops exact and near-duplicates (the first of each cluster stays);
- `drop_phi` drops examples the privacy screen flags;
- `span_rules` moves span boundaries over the boundary words the task's labels declare
  (`medsynth.quality.span_rules`);
- `reuse_abbreviations` adds, after the drops, a copy of each sentence that defines an abbreviation with the
  abbreviation used alone (`medsynth.quality.augment`);
- `vary_distractors` adds K copies of each sentence with planned look-alikes, each look-alike replaced by another
  term of its distractor group (`vary_mentions`: each mention by another lexicon term of its label too).

Every drop and every added copy is counted in the returned report, which the dataset card and quality.json show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pydantic import BaseModel, Field

from medsynth.spec import TaskSpec
from medsynth.records import Example


class CurateConfig(BaseModel):
    dedup: bool = False
    dedup_threshold: float = Field(default=0.8, gt=0, le=1)
    drop_phi: bool = False
    reuse_abbreviations: bool = False
    span_rules: bool = False
    vary_distractors: int = Field(default=0, ge=0, le=20)
    vary_mentions: bool = False


def attach_judge_scores(examples: Sequence[Example], run_dir: Path | None) -> tuple[list[Example], int]:
    """Copies of `examples` carrying their judge score (and weight score/5); how many were scored."""
    from medsynth.quality.judge import load_scores

    scores = load_scores(run_dir) if run_dir is not None else {}
    out, scored = [], 0
    for ex in examples:
        score = scores.get(ex.id)
        if score is None:
            out.append(ex)
            continue
        scored += 1
        out.append(ex.model_copy(update={"meta": {**ex.meta, "judge_score": score, "weight": round(score / 5, 4)}}))
    return out, scored


def curate(examples: Sequence[Example], run_dir: Path | None, cfg: CurateConfig | None = None,
           task: TaskSpec | None = None) -> tuple[list[Example], dict]:
    """The exported dataset and a report of what curation did (scores attached, examples dropped and why,
    boundaries moved, copies added). `task` supplies the span rules."""
    from medsynth.quality.dedup import dedup
    from medsynth.quality.privacy import scan

    cfg = cfg or CurateConfig()
    kept, scored = attach_judge_scores(examples, run_dir)
    report: dict = {"input": len(kept), "judge_scored": scored, "dropped": {}}
    if cfg.dedup:
        kept, result = dedup(kept, cfg.dedup_threshold)
        report["dropped"]["duplicate"] = len(result.drop_ids)
    if cfg.drop_phi:
        flagged = scan(kept)
        report["dropped"]["phi"] = sum(1 for ex in kept if flagged.get(ex.id))
        kept = [ex for ex in kept if not flagged.get(ex.id)]
    if cfg.span_rules and task is not None:  # before the copies, so that they inherit repaired spans
        from medsynth.quality.span_rules import apply_span_rules

        kept, report["relabelled"] = apply_span_rules(kept, task)
    added: list[Example] = []
    if cfg.reuse_abbreviations:
        from medsynth.quality.augment import abbreviation_copies

        copies, skipped = abbreviation_copies(kept)
        added += copies
        report.setdefault("added", {})["abbreviation_alone"] = len(copies)
        if skipped:
            report["not_augmented_with_relations"] = skipped
    if cfg.vary_distractors and task is not None:
        from medsynth.quality.augment import varied_copies

        copies, skipped = varied_copies(kept, task, cfg.vary_distractors, cfg.vary_mentions)
        added += copies
        report.setdefault("added", {})["varied_terms"] = len(copies)
        if skipped:
            report["not_augmented_with_relations"] = max(skipped, report.get("not_augmented_with_relations", 0))
    kept = kept + added
    report["output"] = len(kept)
    return kept, report

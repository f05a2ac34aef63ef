"""How much of a system's precision loss comes from sentences with nothing to tag.

    python benchmarks/empty_sentences.py PREDICTIONS.jsonl [...] [--train RUN_DIR ...] [--corpus NAME ...]

About 43 % of NCBI-disease test sentences hold no disease mention; generated training sets hold far fewer such
sentences, so a model trained on them may tag something in every sentence. For each stored predictions file this
counts the false positives that fall in gold mention-free sentences, how many of those sentences get any prediction,
and the F1 the system would have if it predicted nothing in them (its other predictions unchanged). That last
figure bounds what better negatives alone could buy. `--train` (medsynth datasets) and `--corpus` (a real
corpus's train split) add how mention-free the training data were. Writes benchmarks/results/empty-sentences.md
with the date, machine and command, from the stored predictions only.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from gen_speed import _cpu  # benchmarks/ is on sys.path when this script runs
from medsynth.data.corpora import ner as corpora
from medsynth.evaluate.scores import entity_scores, iob2_spans, read_records
from medsynth.data.jsonl import json_lines

RESULTS = Path(__file__).resolve().parent / "results" / "empty-sentences.md"


def empty_sentence_counts(rows: list[dict]) -> dict:
    """False positives inside and outside gold mention-free sentences, and scores with those sentences silenced."""
    fp = fp_empty = empty = touched = 0
    silenced = []
    for r in rows:
        gold, pred = set(iob2_spans(r["gold"])), set(iob2_spans(r["pred"]))
        fp += len(pred - gold)
        if not gold:
            empty += 1
            fp_empty += len(pred)
            touched += bool(pred)
        silenced.append(r["pred"] if gold else ["O"] * len(r["pred"]))
    golds = [r["gold"] for r in rows]
    now = entity_scores(golds, [r["pred"] for r in rows])["overall"]
    bound = entity_scores(golds, silenced)["overall"]
    return {"sentences": len(rows), "empty": empty, "touched": touched, "fp": fp, "fp_empty": fp_empty,
            "p": now["precision"], "r": now["recall"], "f1": now["f1"], "p_silenced": bound["precision"],
            "f1_silenced": bound["f1"]}


def _planned_empty(records: list[dict]) -> str:
    """Two cells, 'planned mention-free | of them with a mention'. The planner asks for mention-free sentences in
    the reference's proportion, but a disease-themed prompt makes the LLM write a mention anyway, and the filter
    keeps what it labels; this shows how often. '–' when no record carries a plan; curated copies (which repeat
    their source's plan) are not counted."""
    planned = [r for r in records if isinstance((r.get("meta") or {}).get("plan"), dict)
               and not r["meta"].get("derived_from")]  # curated copies repeat their source's plan
    if not planned:
        return "– | –"
    empty = [r for r in planned if not r["meta"]["plan"].get("targets")]
    came = sum(bool(r.get("entities")) for r in empty)
    return f"{len(empty)} | {came} ({100 * came / max(len(empty), 1):.0f} %)"


def training_density(runs: list[str], corpus_names: list[str]) -> list[str]:
    """Table rows: share of mention-free examples, mentions per example and plans for mention-free sentences that
    came back with a mention, for medsynth datasets (data.jsonl) and real train splits."""
    rows = []
    for run in runs:
        records = [row for _, row in json_lines(Path(run) / "data.jsonl", "dataset")]
        rows.append((f"`{run}`", [len(r.get("entities") or []) for r in records], _planned_empty(records)))
    for name in corpus_names:
        counts = [len(iob2_spans(s.tags)) for s in corpora.load_corpus(name, "train")]
        rows.append((f"{name} train split", counts, "– | –"))
    return [f"| {what} | {len(c)} | {sum(n == 0 for n in c)} ({100 * sum(n == 0 for n in c) / len(c):.0f} %) | "
            f"{sum(c) / len(c):.2f} | {plans} |" for what, c, plans in rows]


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("predictions", nargs="+")
    ap.add_argument("--train", action="append", default=[], help="a medsynth dataset folder (holds data.jsonl)")
    ap.add_argument("--corpus", action="append", default=[], help="a benchmark corpus whose train split to count")
    args = ap.parse_args(argv)
    lines = ["# False positives in sentences with nothing to tag", "",
             f"Date {datetime.now(timezone.utc).date().isoformat()}; machine {_cpu()} ({os.cpu_count()} cores); "
             f"command `python benchmarks/empty_sentences.py {' '.join(argv)}`. A mention-free sentence has no gold "
             "mention. 'Silenced': the same predictions with every mention-free sentence left untagged, an upper "
             "bound on what perfect negatives alone would give.", "",
             "| predictions | mention-free sentences | of them tagged | false positives | in mention-free sentences | "
             "P | F1 | P silenced | F1 silenced |", "|---|---|---|---|---|---|---|---|---|"]
    for p in args.predictions:
        c = empty_sentence_counts(read_records(p))
        lines.append(f"| `{p}` | {c['empty']} of {c['sentences']} | {c['touched']} | {c['fp']} | {c['fp_empty']} "
                     f"({100 * c['fp_empty'] / max(c['fp'], 1):.0f} %) | {100 * c['p']:.1f} | {100 * c['f1']:.1f} | "
                     f"{100 * c['p_silenced']:.1f} | {100 * c['f1_silenced']:.1f} |")
    if args.train or args.corpus:
        lines += ["", "Training data (a medsynth dataset as stored in its data.jsonl, curated copies included; "
                  "`runs/` folders are exports whose commands the README gives):", "",
                  "| training data | examples | mention-free | mentions per example | planned mention-free | "
                  "of them with a mention |",
                  "|---|---|---|---|---|---|", *training_density(args.train, args.corpus)]
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1:])

"""Choose `DecodeConfig.min_confidence` on devel: strict F1 of saved NER models at several confidence thresholds.

Each model is scored on the sentences of a predictions file that `bench ner --split devel` wrote for it (the
gold tags and the words come from there; the model's plain predictions must reproduce the file's, so the sweep
scores exactly what bench scored). One prediction pass per model: the word confidences (1 - P(O)) are computed
once and every threshold is applied to them. No LLM call.

    python benchmarks/decode_sweep.py \
        --model gene-s13=models/gene-gen500-vary3-s13@benchmarks/results/gene-scratch-chemprot-devel/predictions/gen500-vary3-s13.jsonl \
        --out benchmarks/results/decode-threshold

Writes OUT.json (per model and threshold: P, R, F1) and OUT.md (F1 per threshold, the gain over no threshold and
the mean gain over the settings, a setting's seeds -- names ending -s13, -s14, ... -- averaged first: the default
is the threshold with the largest mean gain).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medsynth.evaluate.scores import entity_scores, read_records  # noqa: E402
from medsynth.train.predict import DecodeConfig, NERPredictor, drop_unsure, tag_sentences  # noqa: E402

THRESHOLDS = (0.5, 0.7, 0.8, 0.85, 0.9, 0.95)


def _model_arg(value: str) -> tuple[str, Path, Path]:
    name, _, rest = value.partition("=")
    folder, _, preds = rest.partition("@")
    if not (name and folder and preds):
        raise argparse.ArgumentTypeError(f"--model takes NAME=DIR@PREDICTIONS.jsonl, got {value!r}")
    return name, Path(folder), Path(preds)


def sweep(model: Path, predictions: Path, thresholds: tuple[float, ...]) -> dict:
    """P/R/F1 of `model` on the sentences of `predictions` with no threshold and at each of `thresholds`."""
    rows = read_records(predictions)
    words, gold = [r["tokens"] for r in rows], [r["gold"] for r in rows]
    tagger = NERPredictor(model, device="cpu", decode=DecodeConfig(min_confidence=None, span_rules=False))
    confidence: list[list[float]] = []
    tags = tag_sentences(tagger.model, tagger.tokenizer, tagger.id2label, words, max_length=tagger.max_length,
                         stride=tagger.stride, confidences=confidence)
    same = sum(t == r["pred"] for t, r in zip(tags, rows))
    out = {"sentences": len(rows), "reproduced": same, "scores": {}}
    for th in (None, *thresholds):
        pred = tags if th is None else [drop_unsure(t, c, th) for t, c in zip(tags, confidence)]
        s = entity_scores(gold, pred)
        out["scores"]["none" if th is None else f"{th:g}"] = {k: round(100 * s["overall"][k], 1)
                                                             for k in ("precision", "recall", "f1")}
    return out


def table(results: dict[str, dict], thresholds: tuple[float, ...]) -> list[str]:
    keys = [f"{t:g}" for t in thresholds]
    lines = ["| model | sentences | none | " + " | ".join(keys) + " |", "|---|---|---|" + "---|" * len(keys)]
    for name, r in results.items():
        base = r["scores"]["none"]["f1"]
        cells = [f"{r['scores'][k]['f1']:.1f} ({r['scores'][k]['f1'] - base:+.1f})" for k in keys]
        lines.append(f"| {name} | {r['sentences']} | {base:.1f} | " + " | ".join(cells) + " |")
    tasks: dict[str, list[dict]] = {}
    for name, r in results.items():  # seeds of one setting count once: "gene-s13", "gene-s14" -> "gene"
        tasks.setdefault(re.sub(r"-s\d+$", "", name), []).append(r)
    gains = [statistics.mean(statistics.mean(r["scores"][k]["f1"] - r["scores"]["none"]["f1"] for r in runs)
                             for runs in tasks.values()) for k in keys]
    lines.append(f"| **mean gain over {len(tasks)} settings** | | | " + " | ".join(f"**{g:+.2f}**" for g in gains)
                 + " |")
    best = keys[max(range(len(keys)), key=gains.__getitem__)]
    return lines + ["", f"Largest mean gain (the seeds of a setting averaged first): min_confidence {best}."]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=_model_arg, action="append", required=True, metavar="NAME=DIR@PREDICTIONS")
    ap.add_argument("--thresholds", default=",".join(f"{t:g}" for t in THRESHOLDS))
    ap.add_argument("--out", required=True, help="output path without extension")
    args = ap.parse_args(argv)
    thresholds = tuple(float(t) for t in args.thresholds.split(","))
    results = {}
    for name, folder, preds in args.model:
        results[name] = {"model": str(folder), "predictions": str(preds), **sweep(folder, preds, thresholds)}
        print(name, results[name]["scores"], flush=True)
    out = Path(args.out)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gen_speed import _cpu  # one definition of "which machine", shared by the benchmarks

    record = {"date": datetime.date.today().isoformat(), "machine": f"{_cpu()}, {os.cpu_count()} cores",
              "command": "python benchmarks/decode_sweep.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "results": results}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    md = ["# Confidence threshold on devel (`DecodeConfig.min_confidence`)", "",
          f"{record['date']}, {record['machine']}, CPU. Command: `{record['command']}`", "",
          "Strict entity F1 on the devel sentences each model was benched on; in brackets the gain over no "
          "threshold. Plain predictions reproduced the committed predictions file for "
          + ", ".join(f"{n}: {r['reproduced']}/{r['sentences']}" for n, r in results.items()) + " sentences.", ""]
    out.with_suffix(".md").write_text("\n".join(md + table(results, thresholds)) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

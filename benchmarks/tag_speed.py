"""How fast a trained small model tags a whole test split, timed on its own, against the zero-shot LLM's recorded
rate on the same split.

    python benchmarks/tag_speed.py MODEL_DIR --dataset bc5cdr-chem [--zero-shot META.json] [--device cpu]

`bench` times the small models too, but often while another job shares the 2 cores, so its sentences/s mixes the
model's speed with the machine's load. This script times only the tagging, after one warm-up batch, with the threads
torch picks (all cores unless OMP_NUM_THREADS says otherwise). Write down what else was running when you use it.
`--zero-shot` reads the LLM's sentences/s from a bench `.meta.json` (its rate over every recorded answer) and
prints the ratio. Appends one row to benchmarks/results/tag-speed.md, with date, machine and command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from gen_speed import _cpu  # benchmarks/ is on sys.path when this script runs
from medsynth.data.corpora import ner as corpora
from medsynth.train.predict import NERPredictor

RESULTS = Path(__file__).resolve().parent / "results" / "tag-speed.md"
HEADER = ["# Small-model tagging speed on whole test splits", "",
          "Each row: one timed pass of `NERPredictor.predict_tokens` over the split after a warm-up batch "
          "(`benchmarks/tag_speed.py`). LLM rate: the zero-shot system's sentences/s from its bench meta.", "",
          "| date | machine | command | model | dataset | sentences | seconds | sentences/s | LLM sentences/s | "
          "ratio |", "|---|---|---|---|---|---|---|---|---|---|"]


def time_tagging(model_dir: Path, dataset: str, data_dir: str | None, device: str) -> dict:
    test = corpora.load_corpus(dataset, "test", data_dir)
    predictor = NERPredictor(model_dir, device=device)
    tokens = [s.tokens for s in test]
    predictor.predict_tokens(tokens[:32])  # warm-up: first-call allocations are not tagging speed
    t0 = time.perf_counter()
    predictor.predict_tokens(tokens)
    seconds = time.perf_counter() - t0
    return {"sentences": len(tokens), "seconds": seconds, "rate": len(tokens) / seconds, "device": predictor.device}


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--zero-shot", type=Path, default=None, help="the zero-shot system's .meta.json on that split")
    args = ap.parse_args(argv)
    res = time_tagging(args.model_dir, args.dataset, args.data_dir, args.device)
    llm = json.loads(args.zero_shot.read_text())["sentences_per_second"] if args.zero_shot else None
    ratio = f"{res['rate'] / llm:.0f}×" if llm else ""
    machine = f"{_cpu()} ({os.cpu_count()} cores, {res['device']})"
    row = (f"| {datetime.now(timezone.utc).date().isoformat()} | {machine} | `python benchmarks/tag_speed.py "
           f"{' '.join(argv)}` | {args.model_dir.name} | {args.dataset} | {res['sentences']} | "
           f"{res['seconds']:.1f} | {res['rate']:.1f} | {llm if llm is not None else ''} | {ratio} |")
    lines = RESULTS.read_text(encoding="utf-8").splitlines() if RESULTS.exists() else HEADER
    RESULTS.write_text("\n".join(lines + [row]) + "\n", encoding="utf-8")
    print(row)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1:])

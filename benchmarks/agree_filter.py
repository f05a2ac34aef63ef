"""Keep the LLM-labelled sentences a trained small model labels the same way (issue 22, item 3: precision).

Two labellers with different error modes: the LLM labelling real text (annotate mode) and a small model trained
on generated data. A sentence on which both return exactly the same spans (or both return none) is kept; the
rest are dropped and counted. No LLM call; one prediction pass over the texts.

    python benchmarks/agree_filter.py --model models/gene-gen500-vary3-s13 \
        --data benchmarks/data/gene-annot-other600-qwen --out runs/gene-annot600-agreed
    medsynth train --data runs/gene-gen500-vary3 --data runs/gene-annot600-agreed --out models/...

The output folder holds `data.jsonl` (a corpus `train --data` reads) and `agreement.json` (the counts).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medsynth.quality.runs import read_examples_jsonl  # noqa: E402
from medsynth.records import span_keys  # noqa: E402
from medsynth.train.predict import NERPredictor  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a medsynth NER model trained on generated data")
    ap.add_argument("--data", required=True, help="an annotate run folder (data.jsonl) or a data.jsonl file")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    src = Path(args.data)
    examples = read_examples_jsonl(src / "data.jsonl" if src.is_dir() else src)
    pred = NERPredictor(Path(args.model)).predict([ex.text for ex in examples])
    kept, both_empty, llm_only, model_only, differ = [], 0, 0, 0, 0
    for ex, ents in zip(examples, pred):
        a, b = span_keys(ex.entities), span_keys(ents)
        if a == b:
            kept.append(ex)
            both_empty += not a
        elif not b:
            llm_only += 1
        elif not a:
            model_only += 1
        else:
            differ += 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "data.jsonl").open("w", encoding="utf-8") as fh:
        for ex in kept:
            fh.write(ex.model_dump_json() + "\n")
    report = {"model": args.model, "data": args.data, "examples": len(examples), "kept": len(kept),
              "kept_without_mentions": both_empty,
              "dropped": {"llm_spans_model_none": llm_only, "model_spans_llm_none": model_only,
                          "spans_differ": differ}}
    (out / "agreement.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

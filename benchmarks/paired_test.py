"""Paired bootstrap test of every system in a bench folder against one baseline on the same sentences.

    python benchmarks/paired_test.py benchmarks/results/<dir> [BASELINE]      (BASELINE defaults to zero-shot)

BASELINE is a system in the same folder, or a predictions file of another folder on the same test sentences (e.g.
benchmarks/results/ner-ncbi-disease/predictions/zero-shot.jsonl), so that a follow-up experiment's folder need not
hold a copy of the baseline.

Overlapping per-system intervals do not settle whether A beats B on the same sentences; resampling the sentences
jointly does (`medsynth.evaluate.scores.paired_bootstrap`, Koehn 2004, 1000 rounds, seed 13). Writes DIR/paired.md
(against zero-shot) or DIR/paired-vs-BASELINE.md, with the date, machine and command, from the stored predictions
only.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from gen_speed import _cpu  # benchmarks/ is on sys.path when this script runs
from medsynth.evaluate.scores import paired_bootstrap, read_records, same_sentences


def main(args: list[str]) -> None:
    if not args:
        raise SystemExit(__doc__.strip().splitlines()[2].strip())
    folder, baseline = Path(args[0]), args[1] if len(args) > 1 else "zero-shot"
    pred = folder / "predictions"
    base_file = Path(baseline) if baseline.endswith(".jsonl") else pred / f"{baseline}.jsonl"
    base = read_records(base_file)
    baseline = base_file.stem
    gold = [r["gold"] for r in base]
    lines = [f"# Paired bootstrap against {baseline}", "",
             f"Date {datetime.now(timezone.utc).date().isoformat()}; machine {_cpu()} ({os.cpu_count()} cores); "
             f"command `python benchmarks/paired_test.py {' '.join(args)}`. One-sided p: share of 1000 joint "
             f"resamples of the {len(base)} sentences in which the system's F1 is not above {baseline}'s.", "",
             "| system | F1 | baseline F1 | difference | p |", "|---|---|---|---|---|"]
    for f in sorted(pred.glob("*.jsonl")):
        if f.resolve() == base_file.resolve():
            continue
        rows = read_records(f)
        if not same_sentences(rows, base):
            raise SystemExit(f"{f}: not the same sentences as {baseline}")
        res = paired_bootstrap(gold, [r["pred"] for r in rows], [r["pred"] for r in base])
        p = f"< {1 / res['n']:.3f}" if res["p_value"] == 0 else f"{res['p_value']:.3f}"
        lines.append(f"| {f.stem} | {100 * res['f1_a']:.1f} | {100 * res['f1_b']:.1f} | "
                     f"{100 * res['delta']:+.1f} | {p} |")
    name = "paired.md" if baseline == "zero-shot" else f"paired-vs-{baseline}.md"
    (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1:])

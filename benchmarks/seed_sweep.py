"""Summarise a seed sweep (`benchmarks/seed_sweep.sh`): each system's F1 over training seeds, its gain over a
baseline seed by seed, and seed-by-seed differences against one chosen system.

    python benchmarks/seed_sweep.py OUTROOT [--baseline PREDICTIONS.jsonl] [--vs SYSTEM]
    python benchmarks/seed_sweep.py OUTROOT --seed-folder SEED=BENCH_DIR [...] [--system NAME ...] [...]

A single training seed can move MiniLM's F1 by a few points, the size of most differences between training sets
here; a difference that holds seed after seed is one a user can rely on. Scores are recomputed from the stored
predictions (OUTROOT/seed*/predictions/*.jsonl, or the bench folders named with --seed-folder, for seeds that were
run one bench at a time; a seed may name several folders); speed and device come from each system's .meta.json.
--system keeps only the named systems. Writes OUTROOT/seed-sweep.md and OUTROOT/seed-sweep.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import datetime, timezone
from math import comb
from pathlib import Path

from medsynth.evaluate.scores import entity_scores, paired_bootstrap, read_records, same_sentences


def sign_test(wins: int, n: int) -> float:
    """Two-sided exact sign test: how often a fair coin gives a split at least this uneven."""
    if n == 0:
        return 1.0
    k = min(wins, n - wins)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


def _prediction_folders(root: Path, folders: list[tuple[int, Path]] | None) -> list[tuple[int, Path]]:
    if folders:
        return [(seed, Path(d) / "predictions") for seed, d in folders]
    return [(int(f.parent.name.removeprefix("seed")), f) for f in sorted(root.glob("seed*/predictions"))]


def read_sweep(root: Path, folders: list[tuple[int, Path]] | None = None,
               systems: list[str] | None = None) -> dict[str, dict[int, dict]]:
    """system → seed → {rows, f1, precision, recall, meta}, from every OUTROOT/seed<S>/predictions/*.jsonl (or the
    (seed, bench folder) pairs given), keeping only `systems` when given."""
    runs: dict[str, dict[int, dict]] = {}
    for seed, folder in _prediction_folders(root, folders):
        for f in sorted(folder.glob("*.jsonl")):
            if systems and f.stem not in systems:
                continue
            if seed in runs.get(f.stem, {}):
                raise SystemExit(f"{f}: seed {seed} of {f.stem} is already read from another folder")
            rows = read_records(f)
            overall = entity_scores([r["gold"] for r in rows], [r["pred"] for r in rows])["overall"]
            meta_file = f.with_suffix(".meta.json")
            meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.exists() else {}
            runs.setdefault(f.stem, {})[seed] = {"rows": rows, **{k: overall[k] for k in ("f1", "precision", "recall")},
                                                 "meta": meta}
    if not runs:
        where = ", ".join(str(d) for _, d in folders) if folders else f"{root}/seed*/predictions"
        raise SystemExit(f"{where}: no predictions{' of ' + ', '.join(systems) if systems else ''} (run "
                         "benchmarks/seed_sweep.sh first)")
    return runs


def _spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def _same_sentences(a: list[dict], b: list[dict], what: str) -> None:
    if not same_sentences(a, b):
        raise SystemExit(f"{what}: not the same test sentences")


def _paired(a: dict[int, dict], b: dict[int, dict], what: str) -> dict:
    """Seed-by-seed F1 difference a − b over the seeds both have, with each seed's paired-bootstrap p."""
    seeds = sorted(set(a) & set(b))
    deltas, ps = [], []
    for s in seeds:
        _same_sentences(a[s]["rows"], b[s]["rows"], f"{what}, seed {s}")
        res = paired_bootstrap([r["gold"] for r in a[s]["rows"]], [r["pred"] for r in a[s]["rows"]],
                               [r["pred"] for r in b[s]["rows"]])
        deltas.append(res["delta"])
        ps.append(res["p_value"])
    wins = sum(d > 0 for d in deltas)
    return {"seeds": seeds, "delta": deltas, "p": ps, **_spread(deltas), "wins": wins,
            "sign_p": sign_test(wins, len(deltas)), "significant": sum(p < 0.05 for p in ps)}


def summarise(root: Path, baseline: Path | None, vs: str | None, folders: list[tuple[int, Path]] | None = None,
              systems: list[str] | None = None) -> dict:
    runs = read_sweep(root, folders, systems)
    out: dict = {"systems": {}, "baseline": None, "vs": None}
    for name, by_seed in runs.items():
        seeds = sorted(by_seed)
        metas = [by_seed[s]["meta"] for s in seeds]
        out["systems"][name] = {
            "seeds": seeds, "f1": [by_seed[s]["f1"] for s in seeds], **_spread([by_seed[s]["f1"] for s in seeds]),
            "precision": statistics.fmean(by_seed[s]["precision"] for s in seeds),
            "recall": statistics.fmean(by_seed[s]["recall"] for s in seeds),
            "train_seconds": statistics.median(m.get("train_seconds", 0.0) for m in metas),
            "sentences_per_second": statistics.median(m.get("sentences_per_second", 0.0) for m in metas),
            "devices": sorted({str(m.get("device", "?")) for m in metas}),
            "sentences": len(by_seed[seeds[0]]["rows"])}
    if baseline is not None:
        base = read_records(baseline)
        f1 = entity_scores([r["gold"] for r in base], [r["pred"] for r in base])["overall"]["f1"]
        fixed = {s: {"rows": base} for s in {s for by in runs.values() for s in by}}
        out["baseline"] = {"name": baseline.stem, "file": str(baseline), "f1": f1,
                           "gains": {n: _paired(by, fixed, f"{n} vs {baseline}") for n, by in runs.items()}}
    if vs is not None:
        if vs not in runs:
            raise SystemExit(f"--vs {vs}: no such system in {root} (have: {', '.join(sorted(runs))})")
        out["vs"] = {"name": vs, "pairs": {n: _paired(by, runs[vs], f"{n} vs {vs}")
                                            for n, by in runs.items() if n != vs}}
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def render(summary: dict, root: Path, command: str) -> str:
    machine = (root / "machine.txt").read_text(encoding="utf-8").strip() if (root / "machine.txt").exists() else \
        "the bench folders in the command (their .meta.json and the README say when and where)"
    sizes = sorted({s["sentences"] for s in summary["systems"].values()})
    lines = [f"# Seed sweep: {root.name}", "",
             f"Summarised {datetime.now(timezone.utc).date().isoformat()} with `{command}`. Runs: {machine}.", "",
             f"Strict entity-level F1 (seqeval, IOB2) on {'/'.join(map(str, sizes))} test sentences, one model per "
             "training seed; P and R "
             "are means over seeds; train seconds and sentences/s are medians (seeds that ran at once share the "
             "machine).", "",
             "| system | seeds | mean F1 | sd | min–max | P | R | train s | sent/s | device |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in sorted(summary["systems"].items()):
        lines.append(f"| {name} | {len(s['seeds'])} | {_pct(s['mean'])} | {_pct(s['sd'])} | {_pct(s['min'])}–"
                     f"{_pct(s['max'])} | {_pct(s['precision'])} | {_pct(s['recall'])} | {s['train_seconds']:.0f} | "
                     f"{s['sentences_per_second']:.0f} | {', '.join(s['devices'])} |")
    lines.append("")
    lines += _pair_table(summary["baseline"], "gain over")
    lines += _pair_table(summary["vs"], "difference to")
    return "\n".join(lines) + "\n"


def _pair_table(block: dict | None, verb: str) -> list[str]:
    if not block:
        return []
    pairs = block.get("gains") or block.get("pairs")
    head = f"## F1 {verb} {block['name']}"
    if "f1" in block:
        head += f" ({_pct(block['f1'])}, `{block['file']}`)"
    lines = [head, "",
             "Per seed: the difference in F1 and a paired bootstrap over the test sentences (1000 joint resamples, "
             "one-sided p < 0.05 counted as significant). Across seeds: how many seeds come out ahead, and the "
             "two-sided exact sign test on that count.", "",
             "| system | mean difference | sd | min–max | seeds ahead | sign-test p | seeds with p < 0.05 |",
             "|---|---|---|---|---|---|---|"]
    for name, p in sorted(pairs.items()):
        lines.append(f"| {name} | {100 * p['mean']:+.1f} | {_pct(p['sd'])} | {100 * p['min']:+.1f} to "
                     f"{100 * p['max']:+.1f} | {p['wins']}/{len(p['seeds'])} | {p['sign_p']:.3f} | "
                     f"{p['significant']}/{len(p['seeds'])} |")
    return lines + [""]


def _seed_folder(text: str) -> tuple[int, Path]:
    seed, sep, folder = text.partition("=")
    if not sep or not seed.strip().isdigit() or not (Path(folder) / "predictions").is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: expected SEED=DIR with DIR/predictions/ (a bench folder)")
    return int(seed), Path(folder)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--baseline", type=Path, default=None, help="a predictions file on the same test sentences")
    ap.add_argument("--vs", default=None, help="a system of the sweep to compare the others with, seed by seed")
    ap.add_argument("--seed-folder", action="append", default=[], type=_seed_folder, metavar="SEED=DIR",
                    help="a bench folder holding one seed's predictions (instead of OUTROOT/seed*/)")
    ap.add_argument("--system", action="append", default=[], help="keep only this system (repeatable)")
    args = ap.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)
    summary = summarise(args.root, args.baseline, args.vs, args.seed_folder or None, args.system or None)
    command = "python benchmarks/seed_sweep.py " + " ".join(argv)
    text = render(summary, args.root, command)
    (args.root / "seed-sweep.md").write_text(text, encoding="utf-8")
    (args.root / "seed-sweep.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])

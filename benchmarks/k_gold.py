"""k gold sentences, with and without synthetic data: how much does a medsynth run add to a little real data?

For a dataset (a preset or your own corpus with train/devel/test) and k in 0, 50, 100, 200 gold train sentences
(a seeded sample per seed), trains

  (a) gold alone (k > 0), and
  (b) gold + the best synthetic run (k = 0: the synthetic run alone),

for seeds 13 14 15, scores every model on devel and then on test, and writes under
`benchmarks/results/k-gold-<dataset>/`:

  data/<point>/            the training set of each point (`medsynth.train.sources`: gold + run, hf/ layout)
  devel/, test/            bench results folders (predictions/*.jsonl + .meta.json, scores.json, table.md)
  summary.md, summary.json F1 mean ± sd over seeds per (k, recipe), devel beside test, over every stored
                           point (not only the --ks / --seeds of this invocation); --report-only rewrites them

Resumable: a point whose devel and test predictions exist is skipped; a model trained for devel is reused for test
(copied, never retrained). Selection protocol (benchmarks/README.md): the synthetic run and every training option
are chosen on devel; test is scored once per final recipe and reported beside devel.

    python benchmarks/k_gold.py --dataset ncbi-disease --synthetic benchmarks/data/ncbi-disease-qwen
    python benchmarks/k_gold.py --dataset my_corpus/ --task-file my.yaml --synthetic runs/mine --ks 0 50 --seeds 13

This trains 3 x 7 models; on a 2-core machine that is hours. `--max-steps 5 --ks 0 10 --seeds 13` is a smoke test.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import sys
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medsynth.data.corpora import read_corpus  # noqa: E402
from medsynth.errors import MedsynthError  # noqa: E402
from medsynth.evaluate.kinds.source import dataset_slug  # noqa: E402

KS = (0, 50, 100, 200)
SEEDS = (13, 14, 15)
SPLITS = ("devel", "test")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="a preset or a corpus folder with train, devel and test")
    p.add_argument("--synthetic", required=True, help="the best medsynth run (chosen on devel)")
    p.add_argument("--task", default=None, help="task name (default: the run's task, else ner)")
    p.add_argument("--task-file", default=None)
    p.add_argument("--ks", type=int, nargs="+", default=list(KS))
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--recipes", nargs="+", choices=RECIPES, default=list(RECIPES),
                   help="which points to train (gold+syn alone: when another folder already has the gold-alone "
                        "points of the same seeds)")
    p.add_argument("--out", default=None, help="default benchmarks/results/k-gold-<dataset>")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--label-map", default=None, help="CORPUS=TASK pairs, as bench takes them")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--limit", type=int, default=None, help="score a seeded sample of N sentences (smoke tests)")
    p.add_argument("--validation-limit", type=int, default=None,
                   help="choose epochs on one seeded sample of N devel sentences (the same for every point) "
                        "instead of all of devel; scoring still uses the whole split")
    p.add_argument("--label", default=None, help="also summarise this label's strict F1 (per_type in scores.json)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: rewrite summary.md / .json from the stored scores (every stored point)")
    return p.parse_args(argv)


def sample_gold(train: list, k: int, seed: int) -> list:
    """k train sentences, seeded, in corpus order (the same k and seed always pick the same sentences)."""
    if k > len(train):
        raise MedsynthError(f"k = {k} but the train split has {len(train)} sentences", field="--ks", value=k)
    keep = sorted(random.Random(f"k-gold|{seed}").sample(range(len(train)), k))
    return [train[i] for i in keep]


def validation_sample(devel: list, limit: int | None) -> list:
    """The sentences that choose the epoch: all of devel, or one seeded sample of `limit` (seed-independent,
    so every point of the curve validates on the same sentences). Why: per-epoch validation on a
    4.6k-sentence devel split costs more than the training itself on 2 cores."""
    if limit is None or limit >= len(devel):
        return devel
    keep = sorted(random.Random("k-gold|validation").sample(range(len(devel)), limit))
    return [devel[i] for i in keep]


def write_conll(path: Path, sentences: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join("\n".join(f"{t}\t{g}" for t, g in zip(s.tokens, s.tags)) for s in sentences) + "\n",
                    encoding="utf-8")
    return path


def point_name(recipe: str, k: int, seed: int) -> str:
    return f"{recipe}-k{k}-s{seed}"


RECIPES = ("gold", "gold+syn")


def points(ks: list[int], seeds: list[int], recipes: Sequence[str] = RECIPES) -> list[tuple[str, int, int]]:
    """(recipe, k, seed) to run: gold alone needs k > 0."""
    return [(r, k, s) for k in ks for s in seeds for r in RECIPES
            if r in recipes and not (r == "gold" and k == 0)]


def training_data(args: argparse.Namespace, out: Path, corpus, recipe: str, k: int, seed: int, config) -> Path:
    """The point's training folder (hf/): k gold sentences (with the corpus's devel as validation), plus the run."""
    from medsynth.train.sources import Source, combine_ner

    folder = out / "data" / point_name(recipe, k, seed)
    if (folder / "hf").is_dir():
        return folder
    sources = [Source(Path(args.synthetic))] if recipe == "gold+syn" else []
    if k:
        gold = out / "gold" / f"k{k}-s{seed}"
        write_conll(gold / "train.conll", sample_gold(corpus.split("train"), k, seed))
        write_conll(gold / "devel.conll", validation_sample(corpus.split("devel"), args.validation_limit))
        sources.insert(0, Source(gold))
    combine_ner(sources, folder, config)
    return folder


def bench(args: argparse.Namespace, task, out: Path, split: str, data: Path, config, seed: int) -> None:
    from medsynth.evaluate.bench import BenchConfig, run_bench

    cfg = BenchConfig(kind="ner", task=task, dataset=args.dataset, split=split, systems=["synthetic"],
                      out=out / split, data_dir=args.data_dir, limit=args.limit, seed=seed, train_data=[data],
                      train=config, name_by_data=True, progress=False, label_map=_label_map(args.label_map))
    run_bench(cfg)


def _label_map(text: str | None) -> dict | None:
    from medsynth.data.corpora import parse_label_map

    return parse_label_map(text) or None


def run_point(args: argparse.Namespace, task, out: Path, corpus, recipe: str, k: int, seed: int, base) -> bool:
    """Train and score one point on devel, then test; False when it was already done."""
    name = point_name(recipe, k, seed)
    system = f"synthetic-{name}"
    if all((out / split / "predictions" / f"{system}.jsonl").is_file() for split in SPLITS):
        return False
    config = base.model_copy(update={"seed": seed})
    data = training_data(args, out, corpus, recipe, k, seed, config)
    bench(args, task, out, "devel", data, config, seed)
    trained = out / "devel" / "models" / system
    reused = out / "test" / "models" / system
    if not reused.exists():
        shutil.copytree(trained, reused)  # the devel model is the test model: test never retrains or reselects
    bench(args, task, out, "test", data, config, seed)
    return True


_POINT = re.compile(r"^synthetic-(?P<recipe>gold|gold\+syn)-k(?P<k>\d+)-s(?P<seed>\d+)$")


def stored_points(scores: dict) -> dict[tuple[str, int], list[dict]]:
    """Every stored point's scores grouped by (recipe, k): the summary covers all of them, whichever --ks and
    --seeds the last invocation named."""
    found: dict[tuple[str, int], list[dict]] = {}
    for name, f in sorted(scores.items()):
        if m := _POINT.match(name):
            found.setdefault((m["recipe"], int(m["k"])), []).append(f)
    return found


def _curve_order(point: tuple[str, int]) -> tuple[int, bool]:
    """k ascending, gold alone before gold+syn."""
    return point[1], point[0] != "gold"


def summarise(out: Path, label: str | None = None) -> dict:
    """F1 mean ± sd over the stored seeds per (k, recipe), devel beside test, from the stored scores alone; with
    `label`, that label's strict F1 too (e.g. Chemical on a two-label corpus)."""
    by_split = {split: stored_points(_scores(out / split)) for split in SPLITS}
    table: dict = {}
    for recipe, k in sorted(set(by_split["devel"]) | set(by_split["test"]), key=_curve_order):
        row = {}
        for split in SPLITS:
            found = by_split[split].get((recipe, k), [])
            row[split] = _mean_sd([f["overall"]["f1"] for f in found])
            if label:
                row[f"{split} {label}"] = _mean_sd([f["per_type"][label]["f1"] for f in found
                                                     if label in f.get("per_type", {})])
        table[f"{recipe} k={k}"] = row
    (out / "summary.json").write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    columns = list(SPLITS) + ([f"{s} {label}" for s in SPLITS] if label else [])
    lines = ["| recipe | " + " | ".join(f"{c} F1" for c in columns) + " | seeds |",
             "|---|" + "---|" * len(columns) + "---|"]
    for key, row in table.items():
        lines.append(f"| {key} | " + " | ".join(_cell(row[c]) for c in columns) + f" | {row['test']['seeds']} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n\nStrict entity F1 (%), mean ± sd over training seeds; "
                                    "every choice was made on devel, test scored once per recipe.\n",
                                    encoding="utf-8")
    return table


def _mean_sd(f1: list[float]) -> dict:
    return {"mean": statistics.mean(f1) if f1 else None, "sd": statistics.stdev(f1) if len(f1) > 1 else None,
            "seeds": len(f1)}


def _scores(folder: Path) -> dict:
    path = folder / "scores.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _cell(v: dict) -> str:
    if v["mean"] is None:
        return "–"
    return f"{100 * v['mean']:.1f}" + (f" ± {100 * v['sd']:.1f}" if v["sd"] is not None else "")


def main(argv: list[str] | None = None) -> int:
    from medsynth.spec import get_task
    from medsynth.train.fit import TrainConfig

    args = parse_args(argv)
    try:
        out = Path(args.out or ROOT / "benchmarks" / "results" / f"k-gold-{dataset_slug(args.dataset, 'ner')}")
        task = get_task(args.task or ("ner" if not args.task_file else None), args.task_file)
        corpus = read_corpus(args.dataset, "ner", data_dir=args.data_dir, label_map=_label_map(args.label_map))
        missing = [s for s in ("train", "devel", "test") if s not in corpus.splits]
        if missing:
            raise MedsynthError(f"the k-gold protocol needs train, devel and test splits; missing {', '.join(missing)}",
                                where=args.dataset)
        base = TrainConfig(**{k: v for k, v in (("max_steps", args.max_steps), ("epochs", args.epochs)) if v})
        for recipe, k, seed in ([] if args.report_only else points(args.ks, args.seeds, args.recipes)):
            done = run_point(args, task, out, corpus, recipe, k, seed, base)
            print(f"{point_name(recipe, k, seed)}: {'trained and scored' if done else 'already done'}", flush=True)
        summarise(out, args.label)
        print((out / "summary.md").read_text(encoding="utf-8"))
    except MedsynthError as err:
        print(f"k_gold: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

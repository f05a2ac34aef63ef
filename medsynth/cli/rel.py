"""The relation-extraction halves of `train` and `bench` (`--task re`, `bench re`), kept out of cli.py so the
NER commands stay as they were: cli.py only dispatches here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, ContextManager

from medsynth.errors import UsageError


def re_config(args: argparse.Namespace):
    """REConfig from the shared small-model options; unset options keep REConfig's relation defaults."""
    from medsynth.train.rel import REConfig

    fields = {"model": args.encoder, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
              "max_length": args.max_length, "patience": args.patience, "seed": args.seed, "device": args.device,
              "max_steps": args.max_steps, "marker": getattr(args, "marker", None)}
    return REConfig(**{k: v for k, v in fields.items() if v is not None})


def _ner_only_weighting(args: argparse.Namespace) -> None:
    if args.min_score is not None or args.use_weights:
        raise UsageError("--min-score and --use-weights apply to NER training only")


def train_command(args: argparse.Namespace) -> int:
    from medsynth.train.rel import train_re

    if args.backend != "transformers":
        raise UsageError("--task re trains with the transformers backend only", field="--backend", value=args.backend)
    _ner_only_weighting(args)
    out = Path(args.out if args.out != "models/ner" else "models/re")
    metrics = train_re(Path(args.data), out, re_config(args), progress=not args.no_progress)
    print(f"saved relation model to {out} (validation F1 {100 * metrics['val_f1']:.1f}, "
          f"macro F1 {100 * metrics['val_macro_f1']:.1f})")
    return 0


def _folds(value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise UsageError("--folds takes comma-separated fold numbers, e.g. 1,2,3", field="--folds",
                         value=value) from None


def bench_command(args: argparse.Namespace, session: Callable[[Path], ContextManager]) -> int:
    from medsynth.evaluate.bench_rel import REBenchConfig, report_re, run_bench_re
    from medsynth.data.corpora.rel import DEFAULT_TASK, list_re_datasets
    from medsynth.spec import get_task

    _ner_only_weighting(args)
    if args.dataset not in list_re_datasets():
        raise UsageError(f"unknown dataset; known datasets: {', '.join(list_re_datasets())}", field="--dataset",
                         value=args.dataset)
    out = Path(args.out or f"benchmarks/results/re-{args.dataset}")
    task_name = args.task_name or (None if args.task_file else DEFAULT_TASK[args.dataset])
    if args.report_only:
        report_re(out, title=f"{task_name or 're'} on {args.dataset}")
    else:
        if args.shots:
            raise UsageError("--shots is not available for bench re (zero-shot only)", field="--shots")
        if args.label_map:
            raise UsageError("--label-map applies to bench ner only", field="--label-map")
        cfg = REBenchConfig(task=get_task(task_name, args.task_file), dataset=args.dataset,
                            systems=[s.strip() for s in args.systems.split(",") if s.strip()], out=out,
                            data_dir=args.data_dir, limit=args.limit, seed=args.seed, folds=_folds(args.folds),
                            train_data=[Path(p) for p in args.train_data], train=re_config(args),
                            retrain=args.retrain, progress=not args.no_progress, name_by_data=args.name_by_data)
        run_bench_re(cfg, lambda: session(out))
    print((out / "table.md").read_text(encoding="utf-8"))
    return 0

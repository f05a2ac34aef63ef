"""`bench ner` / `bench re`: one command for both benchmark kinds. It checks the options that belong to one kind,
builds a `BenchConfig` and calls `medsynth.evaluate.bench` (never handing it the parsed arguments)."""

from __future__ import annotations

import argparse
from pathlib import Path

from medsynth.errors import UsageError


def _check_dataset(kind: str, dataset: str) -> None:
    """--dataset is a preset or an existing path (a user's corpus); anything else is one line listing presets."""
    from medsynth.data.corpora import NER_PRESETS, RE_PRESETS

    known = RE_PRESETS if kind == "re" else NER_PRESETS
    if dataset not in known and not Path(dataset).expanduser().exists():
        raise UsageError(f"unknown dataset: neither a preset nor an existing file or folder; known datasets: "
                         f"{', '.join(known)}", field="--dataset", value=dataset)


def _out_default(kind: str, dataset: str, split: str) -> Path:
    """benchmarks/results/KIND-DATASET (a path dataset by its slug), -devel when devel is scored."""
    from medsynth.evaluate.kinds.source import dataset_slug

    return Path(f"benchmarks/results/{kind}-{dataset_slug(dataset, kind)}" + ("-devel" if split == "devel" else ""))


def _task_name(args: argparse.Namespace) -> str | None:
    """--task, else the kind's default task for the dataset (none when --task-file names the task)."""
    if args.task_name or args.task_file:
        return args.task_name
    if args.kind == "re":
        from medsynth.data.corpora.rel import DEFAULT_TASK

        if args.dataset not in DEFAULT_TASK:
            raise UsageError("a corpus of your own needs --task or --task-file (the task whose labels it holds)",
                             field="--dataset", value=args.dataset)
        return DEFAULT_TASK[args.dataset]
    return args.kind


def _folds(value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise UsageError("--folds takes comma-separated fold numbers, e.g. 1,2,3", field="--folds",
                         value=value) from None


def _label_map(value: str | None) -> dict[str, str] | None:
    """CORPUS=TASK pairs (NER also reads TASK=CORPUS; see `evaluate.kinds.source`); a malformed one is one error."""
    from medsynth.data.corpora import parse_label_map

    return parse_label_map(value) or None


def _train_config(args: argparse.Namespace):
    """The small-model options as the kind's trainer config; unset options keep the recipe the committed
    results were trained with (`fit.BENCH_RECIPE`: min_steps 400, epoch selection on any validation split)."""
    if args.kind == "re":
        from medsynth.cli.rel import re_config

        return re_config(args, min_validation=1)  # REConfig keeps its own step floor
    from medsynth.cli.main import _train_config
    from medsynth.train.fit import BENCH_RECIPE

    recipe = dict(BENCH_RECIPE)
    if args.epochs is not None and args.min_steps is None:
        recipe.pop("min_steps")  # --epochs honoured, as in `train`
    return _train_config(args, **recipe)


def _models(values: list[str]) -> dict[str, Path]:
    """`--model NAME=DIR` values as {NAME: DIR}; a NAME given twice is refused."""
    models: dict[str, Path] = {}
    for value in values:
        name, _, folder = value.partition("=")
        if not name.strip() or not folder.strip():
            raise UsageError("--model takes NAME=DIR, e.g. synthetic=models/ncbi", field="--model", value=value)
        if name.strip() in models:
            raise UsageError("system name given twice", field="--model", value=name.strip())
        models[name.strip()] = Path(folder.strip())
    return models


def _systems(args: argparse.Namespace, models: dict[str, Path]) -> list[str]:
    """--systems, else all three (none when --model names the systems to score)."""
    if args.systems is None:
        return [] if models else ["zero-shot", "synthetic", "supervised"]
    return [s.strip() for s in args.systems.split(",") if s.strip()]


def bench_config(args: argparse.Namespace, out: Path, task):
    """The library's config for a full bench run."""
    from medsynth.cli.main import decode_config
    from medsynth.evaluate.bench import BenchConfig

    models = _models(args.models)
    if args.kind == "re" and (args.min_confidence is not None or args.no_span_rules):
        raise UsageError("--min-confidence and --no-span-rules apply to bench ner only")
    return BenchConfig(kind=args.kind, task=task, dataset=args.dataset, split=args.split,
                       systems=_systems(args, models), models=models, out=out,
                       data_dir=args.data_dir, limit=args.limit, seed=args.seed, shots=args.shots,
                       label_map=_label_map(args.label_map), folds=_folds(args.folds),
                       train_data=[Path(p) for p in args.train_data], train=_train_config(args),
                       retrain=args.retrain, progress=not args.no_progress, name_by_data=args.name_by_data,
                       decode=decode_config(args))


def bench_command(args: argparse.Namespace, session) -> int:
    """`session(out)` opens the LLM session (logging under the results folder); only zero-shot systems use it."""
    from medsynth.evaluate.bench import bench_title, report, run_bench
    from medsynth.spec import get_task

    if args.kind == "re":
        from medsynth.cli.rel import _ner_only_weighting

        _ner_only_weighting(args)
    _check_dataset(args.kind, args.dataset)
    out = Path(args.out) if args.out else _out_default(args.kind, args.dataset, args.split)
    task = get_task(_task_name(args), args.task_file)
    if args.report_only:
        # The task's own name (no version), as a full bench titles it, so --report-only rewrites the same table.
        report(out, title=bench_title(task.name, args.dataset, args.split), kind=args.kind)
    else:
        run_bench(bench_config(args, out, task), lambda: session(out))
    print((out / "table.md").read_text(encoding="utf-8"))
    verdict = out / "verdict.md"
    if verdict.exists():  # the guard: a small model that loses to prompting is said plainly, with its error kinds
        print(verdict.read_text(encoding="utf-8"))
    print(f"results in {out}/ (table.md, verdict.md, scores.json, scores.csv, plot.png, predictions/)")
    return 0

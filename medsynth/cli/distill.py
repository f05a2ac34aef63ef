"""`python -m medsynth distill ner`: options → `DistillConfig` → `chat.distill.run_distill` (the loop lives there)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medsynth.errors import MedsynthError
from medsynth.hashing import DEFAULT_SEED


def cmd_distill(args: argparse.Namespace) -> int:
    from medsynth.chat.distill import DistillConfig, original_data, read_unlabeled, run_distill
    from medsynth.cli.main import _session, _train_config
    from medsynth.spec import get_task

    task = get_task(args.task_name or "ner", args.task_file)
    if task.kind != "ner":
        raise MedsynthError(f"task {task.name!r} is a {task.kind} task; `distill ner` needs an NER task",
                            field="--task", value=task.name)
    model = Path(args.ner_model)
    if not (model / "config.json").is_file():
        raise MedsynthError("not a trained model directory (no config.json); run `medsynth train` first",
                            where=str(model))
    train_data = Path(args.train_data) if args.train_data else original_data(model)
    if not (train_data / "hf").is_dir():
        raise MedsynthError("not a medsynth dataset (no hf/ folder)", where=str(train_data))
    if args.dataset is not None:
        from medsynth.data.corpora.ner import list_corpora

        if args.dataset not in list_corpora():
            raise MedsynthError(f"unknown dataset; known datasets: {', '.join(list_corpora())}", field="--dataset",
                                value=args.dataset)
    out = Path(args.out)
    cfg = DistillConfig(task=task, model=model, train_data=train_data, out=out, rounds=args.rounds,
                        per_round=args.per_round, unlabeled=read_unlabeled(args.unlabeled) if args.unlabeled else None,
                        dataset=args.dataset, data_dir=args.data_dir, limit=args.limit, seed=args.seed,
                        train=_train_config(args), temperature=args.temperature, progress=not args.no_progress)
    summary = run_distill(cfg, lambda: _session(args, log_dir=out))
    print((out / "rounds.md").read_text(encoding="utf-8"))
    print(f"{len(summary['rounds'])} rounds in {out} ({summary['this_run'].get('llm_calls', 0)} LLM calls this run)"
          + (f"; stopped: {summary['stopped']}" if summary["stopped"] else ""))
    return 0


def add_command(sub: Any) -> None:
    """Add `distill ner` to the `python -m medsynth` subparsers. `--model` names the small model here, as in
    predict and bench; the endpoint's model name is the shared `--llm-model`."""
    from medsynth.cli.main import _add_llm_options, _add_train_options, _positive_int

    d = sub.add_parser("distill", help="self-distillation: the LLM coaches a small model's predictions, round by round")
    d.add_argument("kind", choices=["ner"], help="what to distill (NER only)")
    _add_llm_options(d, model_alias=False)
    d.add_argument("--model", dest="ner_model", required=True, help="the small NER model to improve (a `train` output)")
    d.add_argument("--task", dest="task_name", default=None, help="task whose labels and guidelines the coach uses (default: ner)")
    d.add_argument("--task-file", default=None, help="your own task file (YAML/JSON) instead of --task")
    d.add_argument("--train-data", default=None, help="the model's original training data (default: from its card)")
    d.add_argument("--rounds", type=_positive_int, default=3, help="coach-and-retrain rounds")
    d.add_argument("--per-round", type=_positive_int, default=50, help="sentences reviewed per round")
    d.add_argument("--unlabeled", default=None, help="sentences to use, one per line (default: the LLM writes them)")
    d.add_argument("--dataset", default=None, help="score each round's model on this corpus's test split (default: none)")
    d.add_argument("--data-dir", default=None, help="benchmark data folder (default: ../shared/data)")
    d.add_argument("--limit", type=_positive_int, default=None, help="a fixed seeded sample of N test sentences (default: all)")
    d.add_argument("--out", default="runs/distill", help="folder for the rounds' models and report")
    d.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seeds sampling and training")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_train_options(d)
    d.set_defaults(func=cmd_distill)

"""`medsynth recipe ner --task-file T [--gold G] [--text F]`: the route to a small model from what the user has.

Why: the project offers three sources of training data — generated sentences, the LLM's labels on the user's own
unlabelled text (`build --annotate`, with self-consistency votes), and a few gold sentences (`--reference` for
statistics and span conventions, `train --data GOLD` for supervision) — and a new user cannot be expected to know
which commands combine them. This command looks at what was given, checks it (a bad path fails here, before
any LLM call), prints the commands in order and, with `--run`, runs them one after another (each resumes, so an
interrupted recipe is re-run as is).

Routes (the generated data always gets `--vary-distractors 3`: copies with other look-alikes, which cut the
small model's false alarms on a from-scratch task):
- nothing but the task: generate, train.
- unlabelled text: generate, label the text with votes, train on both (the vote agreement weighs each text).
- gold sentences: generate with the gold as `--reference` (its lengths, mention counts and span conventions),
  train on generated + gold; score on the gold's devel split, if it has one, against zero-shot prompting.
Weights and sizes are starting points: choose them on the devel split (`bench --split devel`), never on test.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from medsynth.errors import UsageError

VOTES = 3  # self-consistency votes for the user's own text: a majority needs 2 of 3
VARY = 3  # copies of each generated sentence with other look-alikes (chosen on a devel split; see gene-from-scratch.md)


def _gold_splits(gold: str) -> list[str]:
    from medsynth.data.corpora.corpus import read_corpus

    return read_corpus(gold, "ner").splits


def plan(task_file: str, out: Path, n: int, gold: str | None = None, text: str | None = None,
         llm: list[str] | None = None) -> list[list[str]]:
    """The recipe's commands (argv lists without the program name), in the order they must run; `llm` (endpoint
    options) goes to every command that asks the LLM."""
    task, llm = ["--task-file", task_file], llm or []
    generated, annotated, model = out / "generated", out / "annotated", out / "model"
    build = ["build", "ner", *task, "--n", str(n), "--out", str(generated), "--vary-distractors", str(VARY), *llm]
    steps: list[list[str]] = []
    splits = _gold_splits(gold) if gold else []
    if gold:  # --reference and train --data both take a corpus's train split (a single file: all of it)
        build += ["--reference", gold]
    steps.append(build)
    data = ["--data", str(generated)]
    if text:
        steps.append(["build", "ner", *task, "--annotate", text, "--votes", str(VOTES), "--out", str(annotated),
                      *llm])
        data += ["--data", str(annotated), "--use-weights"]
    if gold:
        data += ["--data", gold]
    steps.append(["train", *data, "--out", str(model)])
    if gold and "devel" in splits:
        steps.append(["bench", "ner", *task, "--dataset", gold, "--split", "devel", "--systems", "zero-shot",
                      "--model", f"recipe={model}", "--out", str(out / "bench-devel"), *llm])
    return steps


def _check(args: argparse.Namespace) -> None:
    """Every input is read before the first command runs (one-line errors, nothing started)."""
    from medsynth.generate.annotate import read_corpus as read_texts
    from medsynth.spec import get_task

    task = get_task(None, args.task_file)
    if task.kind != "ner":
        raise UsageError(f"recipe ner needs an ner task; {args.task_file} is kind {task.kind}")
    if args.text:
        read_texts(args.text)
    if args.gold:
        _gold_splits(args.gold)


def cmd_recipe(args: argparse.Namespace) -> int:
    from medsynth.cli.main import main

    _check(args)
    llm = [*(["--llm", args.llm] if args.llm else []), *(["--base-url", args.base_url] if args.base_url else []),
           *(["--llm-model", args.llm_model] if args.llm_model else [])]
    steps = plan(args.task_file, Path(args.out), args.n, args.gold, args.text, llm)
    print("# what you have: a task" + (", unlabelled text" if args.text else "") + (", gold sentences" if args.gold
                                                                                     else ""))
    for i, argv in enumerate(steps, start=1):
        print(f"{i}. medsynth {shlex.join(argv)}")
    print("# choose sizes and weights on a devel split (bench --split devel); score test once")
    if not args.run:
        return 0
    for i, argv in enumerate(steps, start=1):
        print(f"== step {i}/{len(steps)}: medsynth {argv[0]}", flush=True)
        code = main([*argv, *(["--no-progress"] if args.no_progress else [])])
        if code:
            print(f"step {i} failed (exit {code}); fix it and run the recipe again: finished steps resume")
            return code
    return 0


def add_command(sub: Any) -> None:
    """Add `recipe` to the `medsynth` subparsers."""
    r = sub.add_parser("recipe", help="print (or --run) the commands that train a small model from what you have")
    r.add_argument("kind", choices=["ner"], help="what to train")
    r.add_argument("--task-file", required=True, help="your task file (YAML/JSON)")
    r.add_argument("--gold", default=None, metavar="CORPUS",
                   help="a few gold sentences you have (any corpus `bench --dataset` reads)")
    r.add_argument("--text", default=None, metavar="FILE",
                   help="your unlabelled texts (one per line, or .jsonl with \"text\")")
    r.add_argument("--n", type=int, default=500, help="sentences to generate")
    r.add_argument("--out", default="recipe", help="folder for the generated data, labelled text and model")
    r.add_argument("--run", action="store_true", help="run the commands, one after another")
    r.add_argument("--no-progress", action="store_true", help="no progress bars in the steps")
    r.add_argument("--llm", default=None, help="embedded model for the LLM steps (qwen, tiny, a .gguf path)")
    r.add_argument("--base-url", default=None, help="an OpenAI-compatible endpoint for the LLM steps")
    r.add_argument("--llm-model", default=None, help="model name at --base-url")
    r.set_defaults(func=cmd_recipe)

"""The quality subcommands, `judge` and `report`, registered into medsynth's CLI parser by `add_commands`.

Kept here rather than in cli.py so the quality package owns its command line; cli.py only calls
`add_commands(sub)` and shares its LLM options (`_add_llm_options`, `_session`) so `judge` talks to exactly the
endpoints `build` does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medsynth.errors import MedsynthError


def _run_dir(value: str) -> Path:
    run = Path(value)
    if not run.is_dir():
        raise MedsynthError("run directory not found", where=value)
    return run


def cmd_judge(args: argparse.Namespace) -> int:
    from medsynth.cli.main import _session
    from medsynth.quality.judge import judge_run
    from medsynth.quality.runs import load_run_examples, run_task

    run = _run_dir(args.run_dir)
    task = run_task(run, args.task_name, args.task_file)
    load_run_examples(run)  # fail on a non-run before starting any LLM
    with _session(args, log_dir=run) as session:
        s = judge_run(run, session.client, task, progress=not args.no_progress, limit=args.n)
    hist = " ".join(f"{k}:{v}" for k, v in s["score_histogram"].items())
    mean = f"{s['mean']:.2f}" if s["mean"] is not None else "n/a"
    print(f"judged {s['examples']} examples in {run} with {s['model']} ({s['judged_now']} now, {s['from_store']} "
          f"stored): mean {mean}, scores {hist}, {s['unparsable']} unparsable; {s['llm_calls']} LLM calls, "
          f"{s['tokens']['this_run']['prompt'] + s['tokens']['this_run']['completion']} tokens")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from medsynth.quality.fidelity import write_report

    run = _run_dir(args.run_dir)
    out = Path(args.out) if args.out else run / "report.html"
    m = write_report(run, args.reference, out, data_dir=args.data_dir)
    auc = m["classifier"].get("auc")
    print(f"wrote {out} and {out.with_suffix('.json')}: JS divergence {m['js_divergence']:.3f}, "
          f"real-vs-synthetic AUC {'n/a' if auc is None else f'{auc:.3f}'} ({m['synthetic_texts']} synthetic vs "
          f"{m['reference_texts']} reference texts)")
    return 0


def add_commands(sub) -> None:
    """Add `judge` and `report` to the `python -m medsynth` subparsers."""
    from medsynth.cli.main import _add_llm_options, _positive_int

    j = sub.add_parser("judge", help="score each example's annotation with the LLM as judge (1-5)")
    j.add_argument("run_dir", help="a build output directory")
    j.add_argument("--task", dest="task_name", default=None, help="task to judge against (default: the run's task)")
    j.add_argument("--task-file", default=None, help="your own task file, if the run used --task-file")
    j.add_argument("--n", type=_positive_int, default=None,
                   help="judge only the first N kept examples (what `export --n N` exports; default: all)")
    j.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_llm_options(j)
    j.set_defaults(func=cmd_judge)

    r = sub.add_parser("report", help="compare a run's text with real text: HTML + JSON fidelity report")
    r.add_argument("run_dir", help="a build output directory")
    r.add_argument("--reference", required=True,
                   help="a corpus (e.g. ncbi-disease:test), an IOB .tsv/.conll, a .jsonl or a .txt (one text a line)")
    r.add_argument("--out", default=None, help="HTML file (default RUN_DIR/report.html); numbers go to OUT.json")
    r.add_argument("--data-dir", default=None, help="benchmark data folder for corpus references (default: ../shared/data)")
    r.set_defaults(func=cmd_report)

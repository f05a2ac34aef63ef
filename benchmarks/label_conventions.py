"""Do generated labels follow the task's own span conventions? Counts behind the README's error analysis.

    python benchmarks/label_conventions.py NAME=benchmarks/data/<run> [...] [--test NAME=benchmarks/results/<dir>]

For every Disease mention of each generated run (`data.jsonl`), it counts three things:
- Inheritance and origin modifiers inside vs. directly before (outside) the span, and spans that start with a
  determiner or severity word. The words are the Disease label's `span_include` / `span_exclude` in
  `tasks/ncbi-disease.yaml`, its first two guidelines as lists (`export --apply-span-rules` enforces them).
- Abbreviations defined in parentheses right after a mention, and later lone uses of them in the same text,
  labelled or not. The corpus labels every later use of an abbreviation.
- How many mentions have the shape of an abbreviation (`medsynth.evaluate.diagnose.shape`).

With `--test`, the shape share and the share of mentions starting with an included word are computed over the
gold mentions stored in a bench folder's predictions, and for each system there how many of those modifier-initial
mentions it found exactly or predicted without the modifier (counts only; `--test` may repeat). Writes
benchmarks/results/label-conventions.md / .json with the date, machine and command.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from gen_speed import _cpu  # benchmarks/ is on sys.path when this script runs
from medsynth.evaluate.diagnose import shape
from medsynth.evaluate.scores import iob2_spans, read_records
from medsynth.spec import get_task

RESULTS = Path(__file__).resolve().parent / "results"
_DISEASE = next(lab for lab in get_task("ncbi-disease").labels if lab.name == "Disease")
INSIDE = tuple(w.lower() for w in _DISEASE.span_include)   # written from the guideline, not from any corpus
OUTSIDE = tuple(w.lower() for w in _DISEASE.span_exclude)
_ABBR_AFTER = re.compile(r"\s*\(([A-Za-z0-9][A-Za-z0-9-]{1,7})\)")


def _starts_with(text: str, words: tuple[str, ...]) -> bool:
    low = text.lower()
    return any(low == w or low.startswith(w + " ") for w in words)


def _labelled(pos: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= pos < b for a, b in spans)


def _abbreviations(text: str, end: int, spans: list[tuple[int, int]], c: Counter) -> None:
    """An abbreviation defined right after a mention ending at `end`, and its later lone uses."""
    m = _ABBR_AFTER.match(text, end)
    if not m:
        return
    c["abbreviation_defined"] += 1
    c["abbreviation_definition_unlabelled"] += not _labelled(m.start(1), spans)
    for use in re.finditer(r"\b" + re.escape(m.group(1)) + r"\b", text[m.end():]):
        c["abbreviation_reused_alone"] += 1
        c["abbreviation_reuse_unlabelled"] += not _labelled(m.end() + use.start(), spans)


def audit_run(path: Path, label: str = "Disease") -> dict:
    c: Counter = Counter()
    for line in (path / "data.jsonl").read_text(encoding="utf-8").splitlines():
        ex = json.loads(line)
        text, ents = ex["text"], [e for e in ex["entities"] if e["label"] == label]
        spans = [(e["start"], e["end"]) for e in ex["entities"]]
        c["examples"] += 1
        for e in ents:
            c["mentions"] += 1
            c["modifier_inside"] += _starts_with(e["text"], INSIDE)
            before = text[:e["start"]].lower()
            c["modifier_outside"] += any(re.search(r"\b" + re.escape(w) + r"\s+$", before) for w in INSIDE)
            c["excluded_word_inside"] += _starts_with(e["text"], OUTSIDE)
            c["abbreviation_shaped"] += shape(e["text"].split()) == "abbreviation"
            _abbreviations(text, e["end"], spans, c)
    return dict(c)


def audit_test(folder: Path, label: str = "Disease") -> dict:
    """Shape share of gold mentions in a bench folder's stored predictions (any one system's file holds them)."""
    rows = read_records(sorted((folder / "predictions").glob("*.jsonl"))[0])
    c: Counter = Counter()
    for r in rows:
        for s, e, typ in iob2_spans(r["gold"]):
            if typ == label:
                c["mentions"] += 1
                c["abbreviation_shaped"] += shape(r["tokens"][s:e]) == "abbreviation"
                c["modifier_inside"] += _starts_with(" ".join(r["tokens"][s:e]), INSIDE)
    return dict(c)


def modifier_errors(path: Path, label: str = "Disease") -> dict:
    """For one system's predictions: of the gold mentions that start with an included word, how many it found
    exactly, and how many it predicted with the same end but starting later (the modifier left out)."""
    c: Counter = Counter()
    for r in read_records(path):
        pred = [(s, e) for s, e, typ in iob2_spans(r["pred"]) if typ == label]
        for s, e, typ in iob2_spans(r["gold"]):
            if typ == label and _starts_with(" ".join(r["tokens"][s:e]), INSIDE):
                c["gold_with_modifier"] += 1
                c["found_exactly"] += (s, e) in pred
                c["modifier_left_out"] += any(ps > s and pe == e for ps, pe in pred)
    return dict(c)


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f} %" if b else "–"


def main(args: list[str]) -> None:
    test_args = [a for i, a in enumerate(args) if i and args[i - 1] == "--test"]
    run_args = [a for a in args if a != "--test" and a not in test_args]
    if not run_args or any("=" not in a for a in run_args + test_args):
        raise SystemExit(__doc__.strip().splitlines()[2].strip())
    runs = {n: audit_run(Path(p)) for n, p in (a.split("=", 1) for a in run_args)}
    test_dirs = {n: Path(p) for n, p in (a.split("=", 1) for a in test_args)}
    tests = {n: audit_test(d) for n, d in test_dirs.items()}
    modifiers = {n: {f.stem: modifier_errors(f) for f in sorted((d / "predictions").glob("*.jsonl"))}
                 for n, d in test_dirs.items()}
    meta = {"date": datetime.now(timezone.utc).date().isoformat(), "machine": f"{_cpu()} ({os.cpu_count()} cores)",
            "command": "python benchmarks/label_conventions.py " + " ".join(args)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "label-conventions.json").write_text(
        json.dumps({**meta, "runs": runs, "test": tests, "modifiers": modifiers}, indent=2) + "\n", encoding="utf-8")
    lines = ["# Span conventions in generated Disease labels", "",
             f"Date {meta['date']}; machine {meta['machine']}; command `{meta['command']}`.", "",
             "| run | examples | Disease mentions | modifier inside | modifier just outside | excluded word inside "
             "| abbreviation-shaped | abbreviations defined (unlabelled) | lone reuses (unlabelled) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, c in runs.items():
        g = c.get
        lines.append(f"| {name} | {g('examples', 0)} | {g('mentions', 0)} | {g('modifier_inside', 0)} | "
                     f"{g('modifier_outside', 0)} | {g('excluded_word_inside', 0)} | {g('abbreviation_shaped', 0)} "
                     f"({_pct(g('abbreviation_shaped', 0), g('mentions', 0))}) | {g('abbreviation_defined', 0)} "
                     f"({g('abbreviation_definition_unlabelled', 0)}) | {g('abbreviation_reused_alone', 0)} "
                     f"({g('abbreviation_reuse_unlabelled', 0)}) |")
    seen: list[dict] = []
    for name, c in tests.items():
        if c in seen:  # several --test folders of one test split: its gold row once
            continue
        seen.append(c)
        lines.append(f"| test gold: {name} | | {c.get('mentions', 0)} | {c.get('modifier_inside', 0)} | | | "
                     f"{c.get('abbreviation_shaped', 0)} "
                     f"({_pct(c.get('abbreviation_shaped', 0), c.get('mentions', 0))}) | | |")
    lines += ["", "Gold mentions that start with an included word, per system (counts only):", "",
              "| test folder | system | gold mentions with a modifier | found exactly | modifier left out |",
              "|---|---|---|---|---|"]
    for name, systems in modifiers.items():
        for system, c in systems.items():
            lines.append(f"| {name} | {system} | {c.get('gold_with_modifier', 0)} | {c.get('found_exactly', 0)} | "
                         f"{c.get('modifier_left_out', 0)} |")
    lines += ["", "Modifiers: " + ", ".join(INSIDE) + " (the task's `span_include`: inside the span); "
              "excluded words: " + ", ".join(OUTSIDE) + " (its `span_exclude`: never the first word). Abbreviation-shaped: `medsynth.evaluate.diagnose.shape`."]
    (RESULTS / "label-conventions.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1:])

"""The guard: say plainly when a small model trained on medsynth's labels does not beat prompting the LLM.

Why: the project's promise is that the small model beats zero-shot prompting of the same LLM. A bench table
lists both figures, but a user who skims it (or a script that only keeps the best row) can miss that the
promise failed on *their* task; and a bare loss does not say what to do. The guard compares every small model
with zero-shot on the same sentences and, for NER, names the error kinds (`medsynth.evaluate.diagnose`) that
explain the gap, each with the control that addresses it.
"""

from __future__ import annotations

from pathlib import Path

BASELINE = "zero-shot"
VERDICT_FILE = "verdict.md"


def _is_small_model(name: str) -> bool:
    return name != BASELINE and "shot" not in name and name != "supervised"


def _f1(result: dict) -> float:
    return 100 * result["overall"]["f1"]


def _ci_overlap(a: dict, b: dict) -> bool:
    (alo, ahi), (blo, bhi) = a["ci"]["f1"], b["ci"]["f1"]
    return alo <= bhi and blo <= ahi


def _explain(err: dict, base_err: dict | None) -> list[str]:
    """Error kinds of a losing NER model, largest first, each with what to try."""
    reasons: list[tuple[int, str]] = []
    fp, b, n_pred = err["false_positives"], err["boundary"], err["predicted"] or 1
    spurious = fp["spurious"]
    if spurious:
        reasons.append((spurious, f"{spurious} of {err['predicted']} predictions ({100 * spurious / n_pred:.0f} %) "
                        "overlap no gold mention: the data shows too few look-alikes unlabelled (export with "
                        "`--vary-distractors 3`; keep the task's `vocabulary_distractors` and `recheck_empty` on; "
                        "add `negative_examples`)"))
    if fp["boundary"]:
        overlap = 100 * err["overlap"]["f1"]
        base = f" vs {100 * base_err['overlap']['f1']:.1f} for zero-shot" if base_err else ""
        reasons.append((fp["boundary"], f"{fp['boundary']} boundary errors ({b['shorter']} shorter than gold, "
                        f"{b['longer']} longer, {b['shifted']} shifted); overlap F1 {overlap:.1f}{base}: give a labelled "
                        "`--reference` so span conventions are derived, or write span rules in the task"))
    wrong = fp["wrong_type"] + fp["boundary_and_type"]
    if wrong:
        reasons.append((wrong, f"{wrong} predictions with the wrong type: sharpen the label definitions"))
    missed = err["false_negatives"]["missed"]
    if missed:
        reasons.append((missed, f"{missed} of {err['gold']} gold mentions missed entirely: widen the lexicon or "
                        "generate more examples"))
    return [text for _, text in sorted(reasons, key=lambda r: -r[0])]


def verdicts(results: dict[str, dict], errors: dict[str, dict] | None = None) -> list[str]:
    """One line per small model against zero-shot (none without a zero-shot row), losses first and explained."""
    if BASELINE not in results:
        return []
    base = results[BASELINE]
    lines: list[str] = []
    for name in sorted(n for n in results if _is_small_model(n)):
        r = results[name]
        diff = _f1(r) - _f1(base)
        within = " (within the 95 % CIs)" if _ci_overlap(r, base) else ""
        figures = f"{_f1(r):.1f} vs {_f1(base):.1f} strict F1 ({diff:+.1f}){within}"
        if diff > 0:
            lines.append(f"- {name} beats zero-shot prompting: {figures}.")
            continue
        lines.append(f"- **{name} LOSES to zero-shot prompting: {figures}.** Do not use it in place of "
                     "prompting for this task yet.")
        if errors and name in errors:
            lines += [f"  - {why}" for why in _explain(errors[name], errors.get(BASELINE))]
    return lines


def write_verdict(out: Path, results: dict[str, dict], errors: dict[str, dict] | None, title: str) -> list[str]:
    """verdict.md in OUT (removed when there is nothing to compare); returns the lines for the console."""
    lines = verdicts(results, errors)
    path = Path(out) / VERDICT_FILE
    if not lines:
        path.unlink(missing_ok=True)
        return []
    path.write_text(f"### Small models against zero-shot prompting: {title}\n\n" + "\n".join(lines) + "\n",
                    encoding="utf-8")
    return lines

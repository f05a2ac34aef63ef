"""The guard (issue 22): a small model that loses to zero-shot prompting is said plainly, with its error kinds."""

import shutil
from pathlib import Path

from medsynth.evaluate.bench import report
from medsynth.evaluate.guard import verdicts

COMMITTED = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def _result(f1: float, lo: float, hi: float) -> dict:
    return {"overall": {"f1": f1}, "ci": {"f1": [lo, hi]}}


def _errors(spurious: int, boundary: int, missed: int) -> dict:
    return {"predicted": 100, "gold": 90, "false_positives": {"spurious": spurious, "boundary": boundary,
                                                               "wrong_type": 0, "boundary_and_type": 0},
            "boundary": {"shorter": boundary, "longer": 0, "shifted": 0}, "overlap": {"f1": 0.6},
            "false_negatives": {"missed": missed}}


def test_a_loss_is_said_plainly_and_explained_by_its_largest_error_kind_first():
    results = {"zero-shot": _result(0.37, 0.30, 0.44), "synthetic": _result(0.297, 0.24, 0.35),
               "supervised": _result(0.8, 0.7, 0.9)}
    errors = {"synthetic": _errors(spurious=40, boundary=25, missed=10), "zero-shot": _errors(10, 10, 10)}
    lines = verdicts(results, errors)
    assert lines[0].startswith("- **synthetic LOSES to zero-shot prompting: 29.7 vs 37.0 strict F1 (-7.3)")
    assert "within the 95 % CIs" in lines[0]
    assert "40 of 100 predictions" in lines[1] and "boundary errors" in lines[2] and "missed" in lines[3]
    assert not any("supervised" in ln for ln in lines)  # only small models trained on medsynth data are judged


def test_a_win_is_one_line_and_no_baseline_means_no_verdict():
    assert verdicts({"zero-shot": _result(0.3, 0.25, 0.35), "synthetic": _result(0.5, 0.45, 0.55)}) == [
        "- synthetic beats zero-shot prompting: 50.0 vs 30.0 strict F1 (+20.0)."]
    assert verdicts({"synthetic": _result(0.5, 0.45, 0.55)}) == []


def test_report_writes_the_verdict_from_stored_predictions(tmp_path):
    out = tmp_path / "r"
    shutil.copytree(COMMITTED / "ner-ncbi-disease-sample200" / "predictions", out / "predictions")
    results = report(out, title="t")
    text = (out / "verdict.md").read_text()
    zs = 100 * results["zero-shot"]["overall"]["f1"]
    for name in ("synthetic-ncbi-disease-100", "synthetic-ncbi-disease-reference-500"):
        f1 = 100 * results[name]["overall"]["f1"]
        assert f"{name} {'beats' if f1 > zs else 'LOSES to'} zero-shot prompting: {f1:.1f} vs {zs:.1f}" in text

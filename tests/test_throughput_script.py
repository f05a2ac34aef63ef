"""benchmarks/throughput.py: the arithmetic and rendering behind its tables, its options, and the pipeline-ceiling
measurement end to end against the loopback LLM double (small n)."""

from __future__ import annotations


import pytest

from tests.helpers import benchmark_script

tp = benchmark_script("throughput")

METRICS = """# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 2140
llamacpp:prompt_seconds_total 12.5
llamacpp:tokens_predicted_total 400
llamacpp:tokens_predicted_seconds_total 8
llamacpp:requests_processing{slot="0"} 1
"""


def test_parse_metrics_strips_prefix_labels_and_comments():
    values = tp.parse_metrics(METRICS + "garbage line without value x\n")
    assert values == {"prompt_tokens_total": 2140.0, "prompt_seconds_total": 12.5, "tokens_predicted_total": 400.0,
                      "tokens_predicted_seconds_total": 8.0, "requests_processing": 1.0}


def test_metrics_split_is_per_request_delta():
    before = {"prompt_seconds_total": 2.5, "tokens_predicted_seconds_total": 2.0, "prompt_tokens_total": 140,
              "tokens_predicted_total": 0}
    split = tp.metrics_split(before, tp.parse_metrics(METRICS), requests=2)
    assert split == {"prompt_s_per_request": 5.0, "gen_s_per_request": 3.0, "prompt_tokens_per_request": 1000.0,
                     "completion_tokens_per_request": 200.0}


def test_raw_and_build_summaries():
    replies = [{"completion_tokens": 100, "prompt_ms": 6000, "predicted_ms": 4000, "cache_n": 0},
               {"completion_tokens": 50, "prompt_ms": 1000, "predicted_ms": 2000, "cache_n": 900}]
    raw = tp.raw_summary(replies, wall=10.0, level=2)
    assert raw["completion_tok_per_s"] == 15.0 and raw["requests_per_min"] == 12.0
    assert raw["prompt_s_per_request"] == 3.5 and raw["gen_s_per_request"] == 3.0
    assert raw["cached_prompt_tokens_per_request"] == 450.0
    stats = {"kept": 3, "requests": 4, "this_run": {"llm_calls": 4, "completion_tokens": 800},
             "repairs": {"case": 1, "fuzzy": 1, "lexicon_added": 7, "dropped:not_found": 1}}
    build = tp.build_summary(stats, wall=20.0, level=2)
    assert build["kept_per_min"] == 9.0 and build["completion_tok_per_s"] == 40.0
    assert build["kept_ratio"] == 0.75 and build["completion_tokens_per_kept"] == 266.7
    assert build["align_repairs_per_kept"] == 1.0  # case + fuzzy + not found; lexicon additions are not the aligner's
    assert build["useful_completion_tok_per_s"] == 30.0  # 3 of 4 answers kept
    assert tp.ratio(build["completion_tok_per_s"], raw["completion_tok_per_s"]) == pytest.approx(2.667, abs=1e-3)
    assert tp.ratio(None, 3.0) is None and tp.ratio(1.0, 0.0) is None


def test_flag_nonlinear_compares_seconds_per_example_with_the_smallest():
    rows = tp.flag_nonlinear([{"examples": 10_000, "seconds": 12.0}, {"examples": 1_000, "seconds": 1.0},
                              {"examples": 100_000, "seconds": 200.0}])
    assert [r["examples"] for r in rows] == [1_000, 10_000, 100_000]
    assert [r["linear"] for r in rows] == [True, True, False]
    assert [r["growth_vs_smallest"] for r in rows] == [1.0, 1.2, 2.0]


def test_render_markdown_shows_what_was_measured_and_the_speedup():
    doc = {"date": "2025-01-01", "machine": "test box", "command": "python benchmarks/throughput.py --quick",
           "measurements": {
               "raw/x/in_flight=2": {"in_flight": 2, "completion_tok_per_s": 20.0, "requests_per_min": 6.0,
                                     "prompt_s_per_request": 1.0, "gen_s_per_request": 2.0},
               "build/x/in_flight=2": {"in_flight": 2, "kept_per_min": 4.0, "completion_tok_per_s": 15.0,
                                       "useful_completion_tok_per_s": 10.0},
               "before/x/llama-cpp-python": {"engine": "llama-cpp-python", "in_flight": 1, "kept": 4,
                                             "seconds": 60.0, "kept_per_min": 4.0},
               "before/x/llama-server": {"engine": "llama-server", "in_flight": 4, "kept": 4, "seconds": 24.0,
                                         "kept_per_min": 10.0},
               "ceiling/n=1000": {"examples": 1000, "seconds": 2.0, "examples_per_s": 500.0, "peak_rss_mib": 90.0}}}
    text = tp.render_markdown(doc)
    assert "test box" in text and "--quick" in text
    assert "| 2 | 20.0 | 6.0 | 1.0 | 2.0 | 4.0 | 15.0 | 10.0 | – | – | 0.75 |" in text
    assert "speedup (kept_per_min after ÷ before): 2.5" in text
    assert "| 1000 | 2.0 | – | – | – | 500.0 | 90.0 | 1.0 | yes |" in text


def test_headline_has_the_figures_the_issue_names_and_prefers_the_longest_before_run():
    doc = {"measurements": {
        "raw/x/in_flight=4/warm": {"in_flight": 4, "completion_tok_per_s": 20.0},
        "build/x/in_flight=4": {"in_flight": 4, "completion_tok_per_s": 18.0, "kept_per_min": 9.0},
        "before/x/n=20/llama-cpp-python": {"engine": "llama-cpp-python", "in_flight": 1, "kept": 20, "kept_per_min": 4.0},
        "before/x/n=40/llama-cpp-python": {"engine": "llama-cpp-python", "in_flight": 1, "kept": 40, "kept_per_min": 5.0},
        "before/x/n=40/llama-server": {"engine": "llama-server", "in_flight": 4, "kept": 40, "kept_per_min": 10.0},
        "ceiling/n=1000": {"examples": 1000, "seconds": 10.0, "examples_per_s": 100.0, "peak_rss_mib": 90.0},
        "ceiling/n=10000": {"examples": 10000, "seconds": 150.0, "examples_per_s": 66.7, "peak_rss_mib": 95.0}}}
    h = tp.headline(doc)
    assert h["kept_per_min"] == {"before": 5.0, "after": 10.0} and h["speedup"] == 2.0
    assert h["ratio_vs_raw"] == 0.9 and h["ratio_vs_raw_in_flight"] == 4
    assert h["pipeline_examples_per_s"] == 66.7
    assert [(g["examples"], g["growth_vs_smallest"], g["linear"]) for g in h["growth"]] == [(1000, 1.0, True),
                                                                                              (10000, 1.5, False)]
    assert tp.headline({})["speedup"] is None


def test_plain_part_is_its_own_measurement_and_table():
    args = tp.parse_args(["--parts", "raw,plain", "--levels", "1,4", "--requests", "8"])
    keys = [key for key, _ in tp._plan(args)]
    assert keys == ["raw/qwen/threads=%d/ctx=4096/requests=8/in_flight=1/warm" % args.threads,
                    "raw/qwen/threads=%d/ctx=4096/requests=8/in_flight=4/warm" % args.threads,
                    "raw-plain/qwen/threads=%d/ctx=4096/requests=8/in_flight=1/warm" % args.threads,
                    "raw-plain/qwen/threads=%d/ctx=4096/requests=8/in_flight=4/warm" % args.threads]
    doc = {"measurements": {
        "raw/x/in_flight=1/warm": {"in_flight": 1, "completion_tok_per_s": 15.0, "completion_tokens": 400,
                                   "requests": 4, "gen_s_per_request": 5.0},
        "raw-plain/x/in_flight=1/warm": {"in_flight": 1, "completion_tok_per_s": 16.0, "completion_tokens": 420,
                                         "requests": 4, "gen_s_per_request": 5.0}}}
    assert "| 1 | 15.0 | 20.0 | 16.0 | 21.0 |" in tp.render_markdown(doc)
    assert tp.decode_rate({"completion_tokens": 10}) is None


def test_options_quick_and_bad_part(tmp_path, capsys):
    args = tp.parse_args(["--quick", "--parts", "ceiling", "--out-dir", str(tmp_path)])
    assert args.llm == "tiny" and args.levels == [1, 2] and args.parts == ["ceiling"]
    assert args.ceiling_sizes == [200, 1000] and args.out_dir == tmp_path
    assert [key for key, _ in tp._plan(args)] == ["ceiling/n=200/concurrency=8", "ceiling/n=1000/concurrency=8"]
    with pytest.raises(SystemExit):
        tp.parse_args(["--parts", "raw,warp"])
    assert "unknown part(s): warp" in capsys.readouterr().err


def test_ceiling_runs_against_the_double_and_resumes(tmp_path, capsys):
    argv = ["--parts", "ceiling", "--ceiling-sizes", "12", "--ceiling-concurrency", "4", "--out-dir", str(tmp_path)]
    assert tp.main(argv) == 0
    doc = (tmp_path / "throughput.json").read_text()
    assert '"ceiling/n=12/concurrency=4"' in doc and '"examples": 12' in doc
    assert "| 12 |" in (tmp_path / "throughput.md").read_text()
    assert tp.main(argv) == 0  # second run: the stored measurement is kept, not re-measured
    assert "stored, skipped: ceiling/n=12/concurrency=4" in capsys.readouterr().out


def test_format_part_sits_beside_the_json_build_row_of_the_same_n_and_slots():
    args = tp.parse_args(["--parts", "format", "--n", "40", "--slots", "4"])
    assert [key for key, _ in tp._plan(args)] == [
        "format/qwen/threads=%d/ctx=4096/n=40/in_flight=4/inline" % args.threads]
    row = {"in_flight": 4, "kept": 40, "seconds": 300.0, "kept_per_min": 8.0, "kept_ratio": 0.9, "completion_tokens_per_kept": 110.0,
           "align_repairs_per_kept": 0.2}
    doc = {"measurements": {
        "build/x/n=20/in_flight=4": dict(row, kept=20, kept_per_min=1.0),
        "build/x/n=40/in_flight=4": {"in_flight": 4, "kept": 40, "kept_per_min": 7.0},  # older, without the columns
        "before/x/n=40/llama-server": dict(row, engine="llama-server"),
        "format/x/n=40/in_flight=4/inline": dict(row, format="inline", kept_per_min=12.0,
                                                 completion_tokens_per_kept=60.0, align_repairs_per_kept=0.0)}}
    text = tp.render_markdown(doc)
    assert "| json | 4 | 40 | 8.0 | 0.9 | 110.0 | 0.2 |" in text
    assert "| inline | 4 | 40 | 12.0 | 0.9 | 60.0 | 0.0 |" in text
    assert "Answer formats" not in tp.render_markdown({"measurements": {"build/x/n=40/in_flight=4": row}})

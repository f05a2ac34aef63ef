"""Scripts under benchmarks/ that compute reported figures from stored predictions: seed_sweep.py (per-seed scores,
gains over a baseline, seed-by-seed differences) and empty_sentences.py (false positives in mention-free
sentences)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import benchmark_script

from medsynth.evaluate.scores import same_sentences, write_records

sweep = benchmark_script("seed_sweep")
empty = benchmark_script("empty_sentences")

TOKENS = [["aspirin", "caused", "asthma", "."], ["no", "disease", "here", "."], ["breast", "cancer", "recurred", "."]]
GOLD = [["O", "O", "B-Disease", "O"], ["O", "O", "O", "O"], ["B-Disease", "I-Disease", "O", "O"]]
ALL_RIGHT = GOLD
HALF_RIGHT = [["O", "O", "B-Disease", "O"], ["O", "O", "O", "O"], ["O", "B-Disease", "O", "O"]]
NOTHING = [["O"] * 4 for _ in TOKENS]


def _rows(pred: list[list[str]], source: str = "data/test.tsv") -> list[dict]:
    return [{"system": "x", "source": f"{source}:{i}", "tokens": t, "gold": g, "pred": p}
            for i, (t, g, p) in enumerate(zip(TOKENS, GOLD, pred))]


def _seed(root: Path, seed: int, systems: dict[str, list[list[str]]]) -> None:
    pred = root / f"seed{seed}" / "predictions"
    pred.mkdir(parents=True)
    for name, tags in systems.items():
        write_records(pred / f"{name}.jsonl", _rows(tags))
        (pred / f"{name}.meta.json").write_text(json.dumps({"train_seconds": 10.0 + seed, "device": "cpu",
                                                            "sentences_per_second": 100.0}))


def test_sign_test_is_the_exact_two_sided_binomial():
    assert sweep.sign_test(10, 10) == pytest.approx(2 / 1024)
    assert sweep.sign_test(3, 3) == pytest.approx(0.25)
    assert sweep.sign_test(1, 2) == 1.0
    assert sweep.sign_test(0, 0) == 1.0


def test_summary_scores_each_seed_and_compares_seed_by_seed(tmp_path):
    for seed in (13, 14, 15):
        _seed(tmp_path, seed, {"better": ALL_RIGHT if seed != 15 else HALF_RIGHT, "worse": HALF_RIGHT})
    # The baseline sits in another folder, read from another data path: same sentences, other `source`.
    base = write_records(tmp_path / "zero-shot.jsonl", _rows(NOTHING, source="/elsewhere/test.tsv"))
    summary = sweep.summarise(tmp_path, base, "worse")

    better = summary["systems"]["better"]
    assert better["seeds"] == [13, 14, 15]
    assert better["f1"] == pytest.approx([1.0, 1.0, 0.5])
    assert better["mean"] == pytest.approx(2.5 / 3)
    assert better["train_seconds"] == 24.0 and better["devices"] == ["cpu"] and better["sentences"] == 3

    assert summary["baseline"]["f1"] == 0.0
    gain = summary["baseline"]["gains"]["worse"]
    assert gain["mean"] == pytest.approx(0.5) and gain["wins"] == 3 and gain["sign_p"] == pytest.approx(0.25)

    pair = summary["vs"]["pairs"]["better"]
    assert pair["delta"] == pytest.approx([0.5, 0.5, 0.0])
    assert pair["wins"] == 2  # a tie is not a win
    assert "worse" not in summary["vs"]["pairs"]

    text = sweep.render(summary, tmp_path, "python benchmarks/seed_sweep.py X")
    assert "| better | 3 | 83.3 |" in text and "## F1 gain over zero-shot (0.0," in text


def test_other_sentences_and_unknown_systems_are_refused(tmp_path):
    _seed(tmp_path, 13, {"a": ALL_RIGHT})
    other = [dict(r, tokens=["x"] * 4) for r in _rows(NOTHING)]
    base = write_records(tmp_path / "other.jsonl", other)
    with pytest.raises(SystemExit, match="not the same test sentences"):
        sweep.summarise(tmp_path, base, None)
    with pytest.raises(SystemExit, match="no such system"):
        sweep.summarise(tmp_path, None, "b")
    with pytest.raises(SystemExit, match="no predictions"):
        sweep.summarise(tmp_path / "empty", None, None)


def test_seeds_run_one_bench_at_a_time_are_read_from_their_folders(tmp_path, capsys):
    """CPU seeds live in separate bench folders (one per seed, or several); --system drops the other systems."""
    _seed(tmp_path / "a", 13, {"better": ALL_RIGHT, "zero-shot": NOTHING})
    _seed(tmp_path / "b", 13, {"worse": HALF_RIGHT})
    _seed(tmp_path / "c", 14, {"better": HALF_RIGHT, "worse": HALF_RIGHT})
    folders = [(13, tmp_path / "a" / "seed13"), (13, tmp_path / "b" / "seed13"), (14, tmp_path / "c" / "seed14")]
    summary = sweep.summarise(tmp_path / "out", None, "worse", folders, ["better", "worse"])
    assert sorted(summary["systems"]) == ["better", "worse"]
    assert summary["systems"]["better"]["f1"] == pytest.approx([1.0, 0.5])
    assert summary["vs"]["pairs"]["better"]["delta"] == pytest.approx([0.5, 0.0])
    with pytest.raises(SystemExit, match="already read"):
        sweep.summarise(tmp_path / "out", None, None, [(13, tmp_path / "a" / "seed13")] * 2)
    with pytest.raises(SystemExit):
        sweep.main([str(tmp_path / "out"), "--seed-folder", "13=/no/such/folder"])
    assert "expected SEED=DIR" in capsys.readouterr().err


def test_same_sentences_compares_tokens_and_gold_not_paths():
    assert same_sentences(_rows(ALL_RIGHT), _rows(NOTHING, source="/other/machine/test.tsv"))
    assert not same_sentences(_rows(ALL_RIGHT), _rows(ALL_RIGHT)[:2])
    changed = _rows(ALL_RIGHT)
    changed[1] = dict(changed[1], gold=["B-Disease", "O", "O", "O"], pred=["O"] * 4)
    assert not same_sentences(_rows(ALL_RIGHT), changed)


def test_empty_sentence_counts_and_the_silenced_bound():
    # Sentence 2 has no gold mention; "worse" tags one span there and misplaces one in sentence 3.
    worse = [["O", "O", "B-Disease", "O"], ["O", "B-Disease", "O", "O"], ["O", "B-Disease", "O", "O"]]
    c = empty.empty_sentence_counts(_rows(worse))
    assert (c["sentences"], c["empty"], c["touched"], c["fp"], c["fp_empty"]) == (3, 1, 1, 2, 1)
    assert c["p"] == pytest.approx(1 / 3) and c["r"] == pytest.approx(1 / 2)
    # silencing the mention-free sentence removes its false positive and nothing else
    assert c["p_silenced"] == pytest.approx(1 / 2) and c["f1_silenced"] == pytest.approx(1 / 2)
    assert empty.empty_sentence_counts(_rows(ALL_RIGHT))["fp"] == 0


def test_training_density_counts_mention_free_examples(tmp_path):
    rows = [{"text": "a", "entities": []}, {"text": "b", "entities": [{"start": 0, "end": 1}] * 3},
            {"text": "c"}, {"text": "d", "entities": [{"start": 0, "end": 1}]}]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert empty.training_density([str(tmp_path)], []) == [f"| `{tmp_path}` | 4 | 2 (50 %) | 1.00 | – | – |"]


def test_training_density_counts_plans_the_llm_ignored(tmp_path):
    """A slot planned without targets that came back labelled counts against the plan; unplanned copies do not."""
    def rec(targets, n, plan=True):
        meta = {"plan": {"slot": 0, "targets": [{"text": "x", "label": "Disease"}] * targets}} if plan else {}
        return {"text": "t", "entities": [{"start": 0, "end": 1}] * n, "meta": meta}
    copy = dict(rec(0, 1), meta={**rec(0, 1)["meta"], "derived_from": "x-1"})
    rows = [rec(0, 0), rec(0, 2), rec(0, 1), rec(1, 1), rec(0, 1, plan=False), copy]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert empty.training_density([str(tmp_path)], []) == [f"| `{tmp_path}` | 6 | 1 (17 %) | 1.00 | 3 | 2 (67 %) |"]


def test_k_gold_smoke_run_is_resumable_and_reports_devel_beside_test(tmp_path, monkeypatch, capsys):
    """benchmarks/k_gold.py end to end on a tiny corpus and run (2 training steps a model), then a rerun skips."""
    from medsynth.data.export import export_all
    from medsynth.records import Entity, Example
    from medsynth.spec import get_task

    k_gold = benchmark_script("k_gold")
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    names = ["glorbitis", "vantoma", "tarnick fever"]
    texts = [(f"Cases of {names[i % 3]} rose in year {i} .", names[i % 3]) for i in range(18)]

    def tag(word: str, mention: str) -> str:
        return "B-Disease" if word == mention.split()[0] else "I-Disease" if word in mention.split() else "O"

    def conll(rows):
        return "\n\n".join("\n".join(f"{w}\t{tag(w, d)}" for w in t.split()) for t, d in rows) + "\n"

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split, rows in (("train", texts[:10]), ("devel", texts[10:14]), ("test", texts[14:])):
        (corpus / f"{split}.conll").write_text(conll(rows), encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    exs = [Example(id=f"s{i}", text=t, entities=[Entity(start=t.index(d), end=t.index(d) + len(d), label="Disease",
                                                        text=d)]) for i, (t, d) in enumerate(texts)]
    export_all(run, exs, get_task("ncbi-disease"), {"model": "none"},
               {"requests": 18, "kept": 18, "rejected": 0, "prompt_tokens": 0, "completion_tokens": 0, "repairs": {},
                "rejections": {}}, {"task": "ncbi-disease.v1"})
    out = tmp_path / "kg"
    argv = ["--dataset", str(corpus), "--synthetic", str(run), "--task", "ncbi-disease", "--ks", "0", "4",
            "--seeds", "13", "--max-steps", "2", "--out", str(out), "--validation-limit", "3", "--label", "Disease"]
    assert k_gold.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"gold+syn k=0", "gold k=4", "gold+syn k=4"}
    assert all(row[s]["seeds"] == 1 for row in summary.values() for s in ("devel", "test", "devel Disease"))
    assert "devel Disease F1" in (out / "summary.md").read_text()
    # epochs are chosen on 3 of the 4 devel sentences; devel is still scored whole
    assert len((out / "gold" / "k4-s13" / "devel.conll").read_text().strip().split("\n\n")) == 3
    assert json.loads((out / "devel" / "scores.json").read_text())["synthetic-gold-k4-s13"]["n_sentences"] == 4
    meta = json.loads((out / "test" / "predictions" / "synthetic-gold-k4-s13.meta.json").read_text())
    assert meta["split"] == "test" and meta["test_corpus"]["records"] == 4
    assert meta["task"] == get_task("ncbi-disease").registry_name and meta["training"]["seed"] == 13
    mixed = json.loads((out / "test" / "predictions" / "synthetic-gold+syn-k4-s13.meta.json").read_text())
    assert mixed["training"]["data"]["task"] == "ncbi-disease.v1"  # the run's version, through sources.json
    assert [s["kind"] for s in mixed["training"]["data"]["sources"]] == ["corpus", "run"]
    assert len((out / "gold" / "k4-s13" / "train.conll").read_text().strip().split("\n\n")) == 4
    capsys.readouterr()
    assert k_gold.main(argv) == 0
    assert capsys.readouterr().out.count("already done") == 3
    # A later invocation for fewer points (or --report-only) still summarises every stored point.
    assert k_gold.main([*argv[:argv.index("--ks")], "--ks", "0", *argv[argv.index("--seeds"):], "--report-only"]) == 0
    assert "trained" not in capsys.readouterr().out
    assert set(json.loads((out / "summary.json").read_text())) == {"gold+syn k=0", "gold k=4", "gold+syn k=4"}


def test_k_gold_points_can_leave_out_gold_alone():
    """`--recipes gold+syn` trains only the mixed points (the gold-alone points may live in another folder)."""
    k_gold = benchmark_script("k_gold")
    assert k_gold.points([0, 200], [13]) == [("gold+syn", 0, 13), ("gold", 200, 13), ("gold+syn", 200, 13)]
    assert k_gold.points([0, 200], [13, 14], ["gold+syn"]) == [
        ("gold+syn", 0, 13), ("gold+syn", 0, 14), ("gold+syn", 200, 13), ("gold+syn", 200, 14)]
    assert k_gold.parse_args(["--dataset", "d", "--synthetic", "r", "--recipes", "gold+syn"]).recipes == ["gold+syn"]


def test_agree_filter_keeps_only_identical_labellings(tmp_path, monkeypatch):
    """benchmarks/agree_filter.py: a sentence stays when the model's spans equal the LLM's (none = none), and every
    dropped one is counted by how the two disagreed."""
    from medsynth.records import Entity, Example

    agree = benchmark_script("agree_filter")

    def ent(text: str, word: str) -> Entity:
        return Entity(start=text.index(word), end=text.index(word) + len(word), label="Gene", text=word)

    texts = ["BRCA1 binds p53 .", "No gene here .", "TP53 was mutated .", "Aspirin was given .", "KRAS and EGFR ."]
    llm = [["BRCA1", "p53"], [], ["TP53"], ["Aspirin"], ["KRAS"]]
    model = [["BRCA1", "p53"], [], [], [], ["EGFR"]]
    data = tmp_path / "run"
    data.mkdir()
    (data / "data.jsonl").write_text("".join(
        Example(id=f"e{i}", text=t, entities=[ent(t, w) for w in ws]).model_dump_json() + "\n"
        for i, (t, ws) in enumerate(zip(texts, llm))), encoding="utf-8")

    class Fake:
        def __init__(self, model_dir):
            pass

        def predict(self, batch):
            return [[ent(t, w) for w in model[texts.index(t)]] for t in batch]

    monkeypatch.setattr(agree, "NERPredictor", Fake)
    assert agree.main(["--model", "m", "--data", str(data), "--out", str(tmp_path / "out")]) == 0
    kept = [json.loads(line)["id"] for line in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    assert kept == ["e0", "e1"]
    report = json.loads((tmp_path / "out" / "agreement.json").read_text())
    assert report["kept_without_mentions"] == 1
    assert report["dropped"] == {"llm_spans_model_none": 2, "model_spans_llm_none": 0, "spans_differ": 1}


def test_decode_sweep_scores_each_threshold_from_one_pass(tmp_path, monkeypatch):
    """benchmarks/decode_sweep.py: the plain tags must reproduce the predictions file, and each threshold drops
    exactly the entities whose mean word confidence is below it."""
    sweep = benchmark_script("decode_sweep")
    rows = [{"system": "m", "source": "s", "tokens": ["BRCA1", "binds", "aspirin"], "gold": ["B-Gene", "O", "O"],
             "pred": ["B-Gene", "O", "B-Gene"]},
            {"system": "m", "source": "s", "tokens": ["no", "gene"], "gold": ["O", "O"], "pred": ["O", "O"]}]
    preds = tmp_path / "m.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    class Fake:
        model = tokenizer = None
        id2label = {0: "O", 1: "B-Gene"}
        max_length, stride = 128, 32

        def __init__(self, model_dir, device="cpu", decode=None):
            assert decode.min_confidence is None and not decode.span_rules  # the sweep sees the raw tags

    def fake_tags(model, tok, id2label, words, max_length, stride, confidences):
        confidences[:] = [[0.95, 0.1, 0.7], [0.1, 0.2]]
        return [r["pred"] for r in rows]

    monkeypatch.setattr(sweep, "NERPredictor", Fake)
    monkeypatch.setattr(sweep, "tag_sentences", fake_tags)
    out = tmp_path / "sweep"
    assert sweep.main(["--model", f"m={tmp_path}@{preds}", "--thresholds", "0.5,0.8,0.99", "--out", str(out)]) == 0
    scores = json.loads(out.with_suffix(".json").read_text())["results"]["m"]
    assert scores["reproduced"] == 2
    assert [scores["scores"][k]["f1"] for k in ("none", "0.5", "0.8", "0.99")] == [66.7, 66.7, 100.0, 0.0]
    assert "Largest mean gain (the seeds of a setting averaged first): min_confidence 0.8." in \
        out.with_suffix(".md").read_text()

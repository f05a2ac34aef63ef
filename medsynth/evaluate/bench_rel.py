"""Relation-extraction benchmark: zero-shot LLM vs. small relation classifiers trained on synthetic or real pairs.

Mirrors `bench.py` (NER): each system's per-pair predictions are stored (`predictions/<system>.jsonl` plus a
`.meta.json` with speed and token counts), and every table, CSV and plot is recomputed from those files alone
(`report_re`, `--report-only`).

Test pairs come from `corpora_re` (see its docstring for how each dataset's pairs are formed). GAD follows the
BioBERT 10-fold protocol: every requested fold's test split is scored separately (rows carry their `fold`) and
the report gives the mean ± sd of the per-fold scores next to the pooled score; `--folds` picks a subset because
each fold means another supervised training run. ChemProt and BC5CDR-CID use their official test split; their
supervised model trains on train with devel as validation.

Systems:
- `zero-shot` — the LLM, one structured-output call per pair (`zeroshot_re`);
- `synthetic` — the relation classifier trained on a generated run's `pairs.jsonl` (`--train-data`, repeatable);
  trained once and applied to every fold;
- `supervised` — the same classifier trained on the corpus's real train split (per fold for GAD).
Models are kept under `OUT/models/` and reused unless `retrain`.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Callable, ContextManager

from pydantic import Field

from medsynth.data.corpora import ner as corpora

from medsynth.data.corpora import rel as corpora_re

from medsynth.evaluate import scores_rel as evaluate_re
from medsynth.evaluate.bench import (BenchBase, _write_rows, answers_meta, check_systems, f1_bar_plot, open_journal,
                            train_or_reuse, write_report)
from medsynth.errors import MedsynthError
from medsynth.train.predict import pick_device
from medsynth.spec import TaskSpec
from medsynth.train.rel import REConfig
from medsynth.records import NO_RELATION, RelPair

DATASET_RELATIONS = {"gad": ("Association",), "chemprot": corpora_re.CHEMPROT_GROUPS, "bc5cdr-cid": ("CID",)}


class REBenchConfig(BenchBase):
    """`limit` samples test pairs (per fold for GAD)."""

    folds: list[int] | None = None  # GAD only; None = all 10
    train: REConfig = Field(default_factory=REConfig)


Unit = tuple[int | None, list[RelPair]]  # (fold or None, test pairs)


def system_name(kind: str, cfg: REBenchConfig, train_data: Path | None = None) -> str:
    if kind == "synthetic" and train_data is not None and (len(cfg.train_data) > 1 or cfg.name_by_data):
        return f"synthetic-{train_data.name}"
    return kind


def check_task(task: TaskSpec, dataset: str) -> None:
    """The task must be RE and name every relation the corpus annotates (else recall would be capped for a
    reason unrelated to the data)."""
    corpora_re._check_dataset(dataset)
    if task.kind != "re":
        raise MedsynthError(f"task {task.name!r} is a {task.kind} task; bench re needs a relation task",
                            field="--task", value=task.name)
    names = {r.name for r in task.relations}
    missing = [r for r in DATASET_RELATIONS[dataset] if r not in names]
    if missing:
        raise MedsynthError(f"task {task.name!r} lacks relations the {dataset} corpus annotates: {', '.join(missing)} "
                            f"(task relations: {', '.join(sorted(names)) or 'none'})", field="--task")


def _folds(cfg: REBenchConfig) -> list[int | None]:
    if cfg.dataset != "gad":
        if cfg.folds:
            raise MedsynthError("--folds applies to gad only (10-fold CV)", field="--folds", value=cfg.folds)
        return [None]
    folds = cfg.folds or list(corpora_re.GAD_FOLDS)
    bad = [k for k in folds if k not in corpora_re.GAD_FOLDS]
    if bad:
        raise MedsynthError("GAD folds are 1..10", field="--folds", value=bad[0])
    return sorted(set(folds))


def load_test_units(cfg: REBenchConfig) -> tuple[list[Unit], dict]:
    """Sampled test pairs per fold, and the loaders' stats (pairs, gold relations lost to sentence level)."""
    units, stats = [], {}
    for fold in _folds(cfg):
        corpus = corpora_re.load_re_corpus(cfg.dataset, "test", cfg.data_dir, fold=fold or 1)
        units.append((fold, corpora.sample(corpus.pairs, cfg.limit, cfg.seed)))
        stats[str(fold) if fold else "test"] = corpus.stats
    return units, stats


def _write(pred_dir: Path, name: str, rows: list[dict], meta: dict) -> None:
    _write_rows(pred_dir / f"{name}.jsonl", rows, meta)


def _to_corpus_labels(labels: list[str], dataset: str) -> list[str]:
    """Task relations the corpus never annotates are predicted as 'none' (the corpus's scope, not an error)."""
    allowed = set(DATASET_RELATIONS[dataset])
    return [lab if lab in allowed else NO_RELATION for lab in labels]


def supervised_data(cfg: REBenchConfig, fold: int | None) -> Path:
    """The corpus train split (+ devel as validation; GAD has none, so the trainer holds out 10% of train) as
    pairs.jsonl under OUT/work/."""
    target = cfg.out / "work" / (f"supervised-{cfg.dataset}" + (f"-fold{fold}" if fold else ""))
    if not (target / "pairs.jsonl").exists():
        train = corpora_re.load_re(cfg.dataset, "train", cfg.data_dir, fold=fold or 1)
        pairs = [p.model_copy(update={"split": "train"}) for p in train]
        if cfg.dataset != "gad":
            devel = corpora_re.load_re(cfg.dataset, "devel", cfg.data_dir)
            pairs += [p.model_copy(update={"split": "validation"}) for p in devel]
        corpora_re.write_pairs(target / "pairs.jsonl", pairs)
    return target


def _train_or_reuse(data_dir: Path, model_dir: Path, cfg: REBenchConfig) -> float:
    from medsynth.train.rel import train_re

    return train_or_reuse(train_re, data_dir, model_dir, "label_map.json", "pairs.jsonl", cfg)


def _predict_units(model_dir: Path, units: list[Unit], name: str, dataset: str,
                   device: str) -> tuple[list[dict], float, int]:
    from medsynth.train.predict import REPredictor

    predictor = REPredictor(model_dir, device=device)
    rows, seconds, n = [], 0.0, 0
    for fold, pairs in units:
        t0 = time.monotonic()
        labels, probs = predictor.predict_with_proba(pairs)
        seconds += time.monotonic() - t0
        n += len(pairs)
        rows += evaluate_re.re_predictions_record(pairs, _to_corpus_labels(labels, dataset), name, probs, fold)
    return rows, seconds, n


def _small_meta(name: str, data: str, model_dirs: list[Path], cfg: REBenchConfig, train_s: float, pred_s: float,
                n: int) -> dict:
    return {"system": name, "train_data": data, "model_dir": [str(d) for d in model_dirs], "encoder": cfg.train.model,
            "marker": cfg.train.marker, "train_seconds": round(train_s, 1), "predict_seconds": round(pred_s, 3),
            "pairs_per_second": round(n / max(pred_s, 1e-9), 2), "llm_tokens": 0, "pairs": n,
            "seed": cfg.train.seed, "device": pick_device(cfg.train.device)}


def _synthetic_system(name: str, data: Path, cfg: REBenchConfig, units: list[Unit]) -> tuple[list[dict], dict]:
    model_dir = cfg.out / "models" / name
    train_s = _train_or_reuse(data, model_dir, cfg)
    rows, pred_s, n = _predict_units(model_dir, units, name, cfg.dataset, cfg.train.device)
    return rows, _small_meta(name, str(data), [model_dir], cfg, train_s, pred_s, n)


def _supervised_system(cfg: REBenchConfig, units: list[Unit]) -> tuple[list[dict], dict]:
    rows, train_s, pred_s, n, dirs = [], 0.0, 0.0, 0, []
    for fold, pairs in units:
        data = supervised_data(cfg, fold)
        model_dir = cfg.out / "models" / ("supervised" + (f"-fold{fold}" if fold else ""))
        train_s += _train_or_reuse(data, model_dir, cfg)
        r, s, k = _predict_units(model_dir, [(fold, pairs)], "supervised", cfg.dataset, cfg.train.device)
        rows, pred_s, n = rows + r, pred_s + s, n + k
        dirs.append(model_dir)
    return rows, _small_meta("supervised", f"{cfg.dataset} train split", dirs, cfg, train_s, pred_s, n)


def _zero_shot_system(cfg: REBenchConfig, units: list[Unit],
                      llm_session: Callable[[], ContextManager]) -> tuple[list[dict], dict]:
    from medsynth.evaluate.zeroshot_rel import predict_zero_shot_re

    rows, seconds, n, counters, records, llm = [], 0.0, 0, {}, [], {}
    with llm_session() as session:
        journal = open_journal(cfg.out, "zero-shot", session.client)
        for fold, pairs in units:
            labels, info = predict_zero_shot_re(session.client, cfg.task, pairs, progress=cfg.progress,
                                                journal=journal)
            rows += evaluate_re.re_predictions_record(pairs, _to_corpus_labels(labels, cfg.dataset), "zero-shot",
                                                      fold=fold)
            seconds += info["seconds"]
            n += len(pairs)
            for k, v in info["counters"].items():
                counters[k] = counters.get(k, 0) + v
            records += info["records"]
            llm = info["llm"]  # the client's totals over the session
        model = session.model_name
    meta = {"system": "zero-shot", "model": model, "pairs": n,
            **answers_meta(records, llm, "pairs_per_second"), "session_seconds": round(seconds, 2),
            "invalid_answers": sum(v for k, v in counters.items() if k.startswith("invalid:")), "counters": counters}
    return rows, meta


def run_bench_re(cfg: REBenchConfig, llm_session: Callable[[], ContextManager] | None = None) -> dict:
    """Run the requested systems on the (sampled) test pairs, store predictions, then write the report."""
    check_systems(cfg.systems)
    check_task(cfg.task, cfg.dataset)
    if "synthetic" in cfg.systems:
        if not cfg.train_data:
            raise MedsynthError("the synthetic system needs --train-data DIR (a `build re` output with pairs.jsonl)",
                                field="--train-data")
        for data in cfg.train_data:
            if not (Path(data) / "pairs.jsonl").is_file():
                raise MedsynthError("not a medsynth RE run (no pairs.jsonl); run `python -m medsynth build re` first",
                                    where=str(data))
    if "zero-shot" in cfg.systems and llm_session is None:
        raise MedsynthError("zero-shot needs an LLM endpoint", field="--systems", value="zero-shot")
    units, corpus_stats = load_test_units(cfg)
    pred_dir = cfg.out / "predictions"
    folds = [f for f, _ in units if f is not None]
    extra = {"dataset": cfg.dataset, "task": f"{cfg.task.name}.v{cfg.task.version}", "folds": folds,
             "limit": cfg.limit, "seed": cfg.seed, "corpus": corpus_stats}
    for kind in cfg.systems:
        if kind == "zero-shot":
            rows, meta = _zero_shot_system(cfg, units, llm_session)  # type: ignore[arg-type]
            _write(pred_dir, "zero-shot", rows, {**meta, **extra})
        elif kind == "synthetic":
            for data in cfg.train_data:
                name = system_name(kind, cfg, Path(data))
                rows, meta = _synthetic_system(name, Path(data), cfg, units)
                _write(pred_dir, name, rows, {**meta, **extra})
        else:
            rows, meta = _supervised_system(cfg, units)
            _write(pred_dir, "supervised", rows, {**meta, **extra})
    return report_re(cfg.out, title=f"{cfg.task.name} on {cfg.dataset}")


# -- report: recomputed from stored predictions only ---------------------------------------------------------------


def report_re(out: Path, title: str = "relation benchmark") -> dict:
    """Scores, CIs, fold mean ± sd and speed for every stored system → scores.json, scores.csv, table.md,
    plot.png."""
    return write_report(out, title, lambda f: evaluate_re.scores_from_re_records(evaluate_re.read_re_records(f)),
                        _write_csv, _table, _plot)


def _ordered(results: dict) -> list[str]:
    order = {"zero-shot": 0, "supervised": 9}
    return sorted(results, key=lambda k: (order.get(k, 5), k))


def _fold_cell(f: dict) -> str:
    """Mean ± sd over folds; a single fold has no spread to report, so it says so instead of "± 0.0"."""
    if len(f["per_fold"]) < 2:
        return f"{100 * f['f1']['mean']:.1f} (1 fold, no sd)"
    return f"{100 * f['f1']['mean']:.1f} ± {100 * f['f1']['sd']:.1f}"


def _speed(meta: dict) -> object:
    return meta.get("pairs_per_second") or ""


def _write_csv(path: Path, results: dict) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["system", "label", "precision", "recall", "f1", "f1_lo", "f1_hi", "f1_fold_mean", "f1_fold_sd",
                    "support", "pairs", "pairs_per_second", "llm_tokens"])
        for name in _ordered(results):
            r, m = results[name], results[name]["meta"]
            ci, folds = r["ci"]["f1"], r.get("folds", {}).get("f1", {})
            w.writerow([name, "ALL", *(round(r["overall"][k], 4) for k in ("precision", "recall", "f1")),
                        round(ci[0], 4), round(ci[1], 4), _round(folds.get("mean")), _round(folds.get("sd")),
                        r["overall"]["support"], r["n_pairs"], _speed(m), m.get("llm_tokens")])
            for lab, s in sorted(r["per_label"].items()):
                w.writerow([name, lab, *(round(s[k], 4) for k in ("precision", "recall", "f1")), "", "", "", "",
                            s["support"], r["n_pairs"], "", ""])


def _round(x: float | None) -> object:
    return "" if x is None else round(x, 4)


def _table(results: dict, title: str) -> str:
    any_folds = any("folds" in r for r in results.values())
    head = "| system | P | R | F1 | F1 95% CI |" + (" F1 fold mean ± sd | folds |" if any_folds else "")
    head += " macro F1 | pairs | pairs/s | LLM tokens |"
    cols = head.count("|") - 1
    lines = [f"### {title}", "", head, "|" + "---|" * cols]
    for name in _ordered(results):
        r, m = results[name], results[name]["meta"]
        o = r["overall"]
        row = (f"| {name} | {100 * o['precision']:.1f} | {100 * o['recall']:.1f} | {100 * o['f1']:.1f} | "
               f"{100 * r['ci']['f1'][0]:.1f}–{100 * r['ci']['f1'][1]:.1f} |")
        if any_folds:
            f = r.get("folds")
            row += (f" {_fold_cell(f)} | {','.join(f['per_fold'])} |" if f else " | |")
        row += f" {100 * r['macro_f1']:.1f} | {r['n_pairs']} | {_speed(m)} | {m.get('llm_tokens', '')} |"
        lines.append(row)
    labels = sorted({lab for r in results.values() for lab in r["per_label"]})
    if len(labels) > 1:
        lines += ["", "| system | " + " | ".join(f"{lab} F1" for lab in labels) + " |", "|" + "---|" * (len(labels) + 1)]
        for name in _ordered(results):
            pl = results[name]["per_label"]
            lines.append(f"| {name} | " + " | ".join(f"{100 * pl[lab]['f1']:.1f}" if lab in pl else "–"
                                                     for lab in labels) + " |")
    note = ("\n\nMicro P/R/F1 over the relation labels ('none' excluded: binary F1 of the positive class for one "
            "relation, ChemProt's micro-F1 over CPR:3/4/5/6/9); 95% CI from 1000 pair bootstrap resamples of the "
            "pooled pairs" + ("; fold mean ± sd over the GAD folds listed (BioBERT 10-fold protocol)" if any_folds
                              else "") + ".\n")
    return "\n".join(lines) + note


def _plot(path: Path, results: dict, title: str) -> None:
    names = _ordered(results)
    colors = ["#999" if n == "zero-shot" else "#2a7" if n == "supervised" else "#37c" for n in names]
    f1_bar_plot(path, results, names, colors, "relation F1, positive labels (%)", title)

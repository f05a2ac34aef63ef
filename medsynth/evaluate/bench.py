"""Benchmark harness: zero-shot LLM vs. small models trained on synthetic or real data, on a real test split.

Each system's per-sentence predictions are stored (`predictions/<system>.jsonl` plus a `.meta.json` with speed
and token counts; a zero-shot system also records its raw LLM answers in `answers/<system>.jsonl`, from which a
run of hours resumes on any machine); every table, CSV and plot is recomputed from those files alone
(`report`), so committed results reproduce in seconds without an LLM or a GPU.

Systems:
- `zero-shot` / `k-shot` — the LLM, prompted per sentence through the same client as `build`;
- `synthetic` — the small model trained on a medsynth dataset (`--train-data`, repeatable for learning curves);
- `supervised` — the same small model trained on the corpus's real train split (the upper bound).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager

from pydantic import BaseModel, ConfigDict, Field

from medsynth.data.corpora import ner as corpora

from medsynth.evaluate import diagnose

from medsynth.evaluate import scores as evaluate
from medsynth.errors import MedsynthError
from medsynth.spec import TaskSpec
from medsynth.data.tokens import detokenize, tokenize
from medsynth.train.ner import TrainConfig
from medsynth.records import Example

if TYPE_CHECKING:  # imported lazily below: the LLM layer is not needed to report from stored predictions
    from medsynth.llm.client import LLMClient
    from medsynth.llm.journal import AnswerJournal

SYSTEMS = ("zero-shot", "synthetic", "supervised")


class BenchBase(BaseModel):
    """What every benchmark (NER here, relations in bench_re) is configured with."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    task: TaskSpec
    dataset: str
    systems: list[str] = Field(default_factory=lambda: list(SYSTEMS))
    out: Path
    data_dir: Path | None = None
    limit: int | None = None  # seeded sample of the test split
    seed: int = 13
    train_data: list[Path] = Field(default_factory=list)
    retrain: bool = False
    progress: bool = True
    # Name a synthetic system after its data folder even when it is the only one, so a point added later to a
    # learning curve (`--train-data runs/ner-500`) sits beside the earlier `synthetic-<folder>` systems.
    name_by_data: bool = False


class BenchConfig(BenchBase):
    shots: int = 0
    train: TrainConfig = Field(default_factory=TrainConfig)
    label_map: dict[str, str] | None = None


def weighting_suffix(train: TrainConfig) -> str:
    """How judge scores were used, as a name suffix: `-min4` (hard threshold), `-weighted` (soft weights).
    Part of the system (and model folder) name, so one judged dataset can be benchmarked all three ways."""
    suffix = f"-min{train.min_score:g}" if train.min_score is not None else ""
    return suffix + ("-weighted" if train.use_weights else "")


def system_name(kind: str, cfg: BenchConfig, train_data: Path | None = None) -> str:
    if kind == "zero-shot" and cfg.shots:
        return f"{cfg.shots}-shot"
    if kind == "synthetic":
        suffix = weighting_suffix(cfg.train)  # a weighted model always names its data: which run was judged
        named = train_data is not None and (len(cfg.train_data) > 1 or cfg.name_by_data or suffix)
        return (f"synthetic-{train_data.name}" if named else kind) + suffix
    return kind


def unweighted(cfg: BenchConfig) -> BenchConfig:
    """The config for the supervised upper bound: judge-score options concern generated data only."""
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"min_score": None, "use_weights": False})})


def _write_rows(path: Path, rows: list[dict], meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    evaluate.write_records(path, rows)
    path.with_suffix(".meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _shots_from(train_data: list[Path], k: int, seed: int) -> list[Example]:
    """k-shot demonstrations come from generated data only, never from the benchmark."""
    if not k:
        return []
    if not train_data:
        raise MedsynthError("--shots needs --train-data (a medsynth dataset) to draw examples from", field="--shots", value=k)
    path = train_data[0] / "data.jsonl"
    exs = [Example.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    with_ents = [e for e in exs if e.entities]
    return corpora.sample(with_ents, k, seed)


def _examples_from_iob(sentences: list[corpora.IOBSentence], name: str) -> list[Example]:
    from medsynth.data.tokens import bio_to_spans

    out = []
    for i, s in enumerate(sentences):
        text, toks = detokenize(s.tokens)
        out.append(Example(id=f"{name}-{i:06d}", text=text, entities=bio_to_spans(toks, s.tags, text)))
    return out


def supervised_data(cfg: BenchConfig, work: Path) -> Path:
    """The corpus train (+ devel as validation) split, exported in the same hf/ layout `build` writes."""
    from medsynth.data.export import write_hf

    target = work / f"supervised-data-{cfg.dataset}"
    if not (target / "hf").exists():
        train = corpora.load_corpus(cfg.dataset, "train", cfg.data_dir)
        devel = corpora.load_corpus(cfg.dataset, "devel", cfg.data_dir)
        labels = corpora.corpus_labels(train)
        target.mkdir(parents=True, exist_ok=True)
        write_hf({"train": _examples_from_iob(train, "train"), "validation": _examples_from_iob(devel, "devel")},
                 labels, target / "hf")
    return target


TRAIN_SECONDS_FILE = "bench_train_seconds.json"


def train_or_reuse(train: Callable[..., dict], data_dir: Path, model_dir: Path, saved: str, reads: str,
                   cfg: Any) -> float:
    """Seconds it took to train model_dir on data_dir (`train(data_dir, model_dir, cfg.train, progress=...)`).

    A model already there (its `saved` file exists), trained on this data (`reads`: the file or folder in
    data_dir the trainer reads), is reused unless `cfg.retrain`; its training time is then the one recorded when
    it was trained (`TRAIN_SECONDS_FILE`; 0 for a model trained elsewhere), so re-scoring a system never rewrites
    its stored training time as 0."""
    record = model_dir / TRAIN_SECONDS_FILE
    if (model_dir / saved).exists() and not cfg.retrain:
        _check_reusable(Path(data_dir) / reads, model_dir, saved)
        return float(json.loads(record.read_text())["train_seconds"]) if record.exists() else 0.0
    t0 = time.monotonic()
    train(data_dir, model_dir, cfg.train, progress=cfg.progress)
    seconds = time.monotonic() - t0
    record.write_text(json.dumps({"train_seconds": round(seconds, 1)}) + "\n", encoding="utf-8")
    return seconds


def _check_reusable(input_path: Path, model_dir: Path, saved: str) -> None:
    """Refuse to score a saved model that was trained on other data than the system names: a second bench
    into the same --out with another --train-data (same system name) or a re-exported dataset would otherwise
    be scored silently with the old model. `input_path` is what the trainer read (hf/ or pairs.jsonl)."""
    from medsynth.train.ner import card_data_dir

    data_dir = input_path.parent
    trained_on = card_data_dir(model_dir)
    hint = "pass --retrain or another --out"
    if trained_on is not None and trained_on.resolve() != data_dir.resolve():
        raise MedsynthError(f"the saved model was trained on {trained_on}, not this data; {hint}",
                            where=str(model_dir), field="--train-data", value=str(data_dir))
    files = [f for f in input_path.rglob("*") if f.is_file()] if input_path.is_dir() else [input_path]
    newest = max((f.stat().st_mtime for f in files if f.exists()), default=0.0)
    if newest > (model_dir / saved).stat().st_mtime:
        raise MedsynthError(f"the data changed after the saved model was trained; {hint}",
                            where=str(model_dir), field="--train-data", value=str(data_dir))


def _train_or_reuse(data_dir: Path, model_dir: Path, cfg: BenchConfig) -> float:
    from medsynth.train.ner import train_ner

    return train_or_reuse(train_ner, data_dir, model_dir, "config.json", "hf", cfg)


def model_mapping(model_labels: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """Corpus label for each label a saved model predicts, read from the model's own label map: task labels
    go through the task → corpus mapping, labels that already are corpus labels (a model trained on the
    corpus, or a task whose names match) stay as they are, anything else is dropped."""
    corpus = set(mapping.values())
    return {lab: mapping.get(lab, lab) for lab in model_labels if lab in mapping or lab in corpus}


def _small_model_system(name: str, data_dir: Path, cfg: BenchConfig, test: list[corpora.IOBSentence],
                        mapping: dict[str, str]) -> tuple[list[dict], dict]:
    from medsynth.train.predict import NERPredictor

    model_dir = cfg.out / "models" / name
    train_seconds = _train_or_reuse(data_dir, model_dir, cfg)
    predictor = NERPredictor(model_dir, device=cfg.train.device)
    t0 = time.monotonic()
    tags = predictor.predict_tokens([s.tokens for s in test])
    seconds = time.monotonic() - t0
    model_labels = sorted({t[2:] for t in predictor.id2label.values() if t != "O"})
    mapped = [corpora.map_tags(t, model_mapping(model_labels, mapping)) for t in tags]
    meta = {"system": name, "train_data": str(data_dir), "model_dir": str(model_dir), "encoder": cfg.train.model,
            "min_score": cfg.train.min_score, "use_weights": cfg.train.use_weights,
            "train_seconds": round(train_seconds, 1), "predict_seconds": round(seconds, 3),
            "sentences_per_second": round(len(test) / max(seconds, 1e-9), 2), "llm_tokens": 0,
            "model_labels": model_labels, "seed": cfg.train.seed, "device": predictor.device}
    return evaluate.predictions_record(test, mapped, name), meta


def answers_meta(records: list[dict | None], llm: dict, rate_key: str) -> dict:
    """Speed and cost of a zero-shot system over the whole run, earlier sessions' recorded answers included.

    `predict_seconds` is the LLM's recorded answering time and the rate (`rate_key`) is taken over the answers it
    timed, so a run resumed across sessions reports the LLM's speed, not the speed of reading answers back.
    `llm_calls` and `cache_hits` are this session's; tokens count every distinct answer."""
    from medsynth.llm.journal import answer_totals

    answers = answer_totals(records)
    seconds = answers["llm_seconds"]
    rate = answers["timed_answers"] / seconds if seconds > 0 else None
    return {"predict_seconds": seconds, rate_key: round(rate, 3) if rate is not None else None,
            "llm_calls": llm.get("llm_calls"), "cache_hits": llm.get("cache_hits"),
            "answers_from_journal": answers["from_journal"], "answers_timed": answers["timed_answers"],
            "llm_tokens": answers["prompt_tokens"] + answers["completion_tokens"],
            "prompt_tokens": answers["prompt_tokens"], "completion_tokens": answers["completion_tokens"]}


def answers_path(out: Path, name: str) -> Path:
    """Where a zero-shot system's raw answers are recorded (see `medsynth.llm.journal`); a folder of its own, so
    readers of predictions/*.jsonl never mistake it for a system."""
    return out / "answers" / f"{name}.jsonl"


def open_journal(out: Path, name: str, client: LLMClient) -> AnswerJournal:
    """The system's answer journal. --no-cache (a client without a cache) means ask the LLM again, so the recorded
    answers are started afresh rather than reused."""
    from medsynth.llm.journal import AnswerJournal

    return AnswerJournal(answers_path(out, name), fresh=client.cache is None)


def _zero_shot_system(name: str, cfg: BenchConfig, test: list[corpora.IOBSentence], mapping: dict[str, str],
                      llm_session: Callable[[], ContextManager]) -> tuple[list[dict], dict]:
    from medsynth.evaluate.zeroshot import predict_zero_shot

    items = []
    for s in test:
        text, toks = detokenize(s.tokens)
        items.append((text, toks))
    shots = _shots_from(cfg.train_data, cfg.shots, cfg.seed)
    with llm_session() as session:
        tags, info = predict_zero_shot(session.client, cfg.task, items, shots, progress=cfg.progress,
                                       journal=open_journal(cfg.out, name, session.client))
        model = session.model_name
    mapped = [corpora.map_tags(t, mapping) for t in tags]
    meta = {"system": name, "model": model, "shots": cfg.shots, "n_sentences": len(test),
            **answers_meta(info["records"], info["llm"], "sentences_per_second"),
            "session_seconds": round(info["seconds"], 2), "counters": info["counters"]}
    return evaluate.predictions_record(test, mapped, name), meta


def check_systems(systems: list[str]) -> None:
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise MedsynthError(f"unknown system; choose from {', '.join(SYSTEMS)}", field="--systems", value=unknown[0])


def run_bench(cfg: BenchConfig, llm_session: Callable[[], ContextManager] | None = None) -> dict:
    """Run the requested systems on the (sampled) test split, store predictions, then write the report."""
    check_systems(cfg.systems)
    test_all = corpora.load_corpus(cfg.dataset, "test", cfg.data_dir)
    mapping = corpora.label_mapping(cfg.task.label_names, corpora.corpus_labels(test_all), cfg.label_map)
    test = corpora.sample(test_all, cfg.limit, cfg.seed)
    pred_dir = cfg.out / "predictions"
    for kind in cfg.systems:
        if kind == "zero-shot":
            if llm_session is None:
                raise MedsynthError("zero-shot needs an LLM endpoint", field="--systems", value=kind)
            name = system_name(kind, cfg)
            rows, meta = _zero_shot_system(name, cfg, test, mapping, llm_session)
            _write_rows(pred_dir / f"{name}.jsonl", rows, meta)
        elif kind == "synthetic":
            if not cfg.train_data:
                raise MedsynthError("the synthetic system needs --train-data DIR (a medsynth build output)",
                                    field="--train-data")
            for data in cfg.train_data:
                if not (Path(data) / "hf").exists():
                    raise MedsynthError("not a medsynth dataset (no hf/ folder); run `python -m medsynth build` first",
                                        where=str(data))
                name = system_name(kind, cfg, Path(data))
                rows, meta = _small_model_system(name, Path(data), cfg, test, mapping)
                _write_rows(pred_dir / f"{name}.jsonl", rows, meta)
        else:
            data = supervised_data(cfg, cfg.out / "work")
            rows, meta = _small_model_system("supervised", data, unweighted(cfg), test, mapping)
            _write_rows(pred_dir / "supervised.jsonl", rows, meta)
    return report(cfg.out, title=f"{cfg.task.name} on {cfg.dataset}")


# -- report: recomputed from stored predictions only ---------------------------------------------------------------

def _fmt_ci(ci: tuple[float, float] | list[float]) -> str:
    return f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}"


def report(out: Path, title: str = "benchmark") -> dict:
    """Scores, CIs and speed for every stored system → scores.json, scores.csv, table.md, plot.png, and where
    each system's errors come from → errors.json, errors.md (`medsynth.evaluate.diagnose`)."""
    rows: dict[str, list[dict]] = {}  # each predictions file is read once, for its scores and its errors

    def score(f: Path) -> dict:
        rows[f.stem] = evaluate.read_records(f)
        return evaluate.scores_from_records(rows[f.stem])

    results = write_report(out, title, score, _write_csv, _table, _plot)
    diagnose.write_error_report(out, rows, _ordered(results), title)
    return results


def write_report(out: Path, title: str, score: Callable[[Path], dict], write_csv: Callable[[Path, dict], None],
                 table: Callable[[dict, str], str], plot: Callable[[Path, dict, str], None]) -> dict:
    """Score every stored predictions file (`score(file)`, plus its .meta.json) and write scores.json, the CSV,
    the markdown table and the plot from those results alone; returns {system: scores + meta}."""
    out = Path(out)
    pred_dir = out / "predictions"
    files = sorted(pred_dir.glob("*.jsonl")) if pred_dir.exists() else []
    if not files:
        raise MedsynthError("no stored predictions to report on", where=str(pred_dir))
    results = {}
    for f in files:
        scores = score(f)
        meta_path = f.with_suffix(".meta.json")
        results[f.stem] = {**scores, "meta": _read_meta(meta_path) if meta_path.exists() else {}}
    (out / "scores.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_csv(out / "scores.csv", results)
    (out / "table.md").write_text(table(results, title), encoding="utf-8")
    plot(out / "plot.png", results, title)
    return results


def _read_meta(path: Path) -> dict:
    """A system's .meta.json (speed, tokens); a damaged one is a one-line error naming the file and line."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise MedsynthError(f"not UTF-8 text (byte {err.start})", where=str(path)) from None
    except json.JSONDecodeError as err:
        raise MedsynthError(f"not valid JSON: {err.msg}", where=f"{path}:{err.lineno}") from None
    if not isinstance(meta, dict):
        raise MedsynthError("must hold a JSON object", where=str(path), value=type(meta).__name__)
    return meta


def _ordered(results: dict) -> list[str]:
    order = {"zero-shot": 0, "supervised": 9}
    return sorted(results, key=lambda k: (order.get(k, 1 if "shot" in k else 5), k))


def _write_csv(path: Path, results: dict) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["system", "type", "precision", "recall", "f1", "f1_lo", "f1_hi", "support", "sentences",
                    "sentences_per_second", "llm_tokens"])
        for name in _ordered(results):
            r = results[name]
            m = r["meta"]
            ci = r["ci"]["f1"]
            w.writerow([name, "ALL", *(round(r["overall"][k], 4) for k in ("precision", "recall", "f1")),
                        round(ci[0], 4), round(ci[1], 4), r["overall"]["support"], r["n_sentences"],
                        m.get("sentences_per_second"), m.get("llm_tokens")])
            for typ, s in sorted(r["per_type"].items()):
                w.writerow([name, typ, *(round(s[k], 4) for k in ("precision", "recall", "f1")), "", "",
                            s["support"], r["n_sentences"], "", ""])


def _table(results: dict, title: str) -> str:
    lines = [f"### {title}", "",
             "| system | P | R | F1 | F1 95% CI | sentences | sent/s | LLM tokens |",
             "|---|---|---|---|---|---|---|---|"]
    for name in _ordered(results):
        r = results[name]
        o, m = r["overall"], r["meta"]
        lines.append(f"| {name} | {100 * o['precision']:.1f} | {100 * o['recall']:.1f} | {100 * o['f1']:.1f} | "
                     f"{_fmt_ci(r['ci']['f1'])} | {r['n_sentences']} | {m.get('sentences_per_second') or ''} | "
                     f"{m.get('llm_tokens', '')} |")
    return "\n".join(lines) + "\n\nStrict entity-level scores (seqeval, IOB2); 95% CI from 1000 sentence bootstrap resamples.\n"


def _plot(path: Path, results: dict, title: str) -> None:
    names = _ordered(results)
    colors = ["#999" if "shot" in n else "#2a7" if n == "supervised" else "#37c" for n in names]
    f1_bar_plot(path, results, names, colors, "strict entity F1 (%)", title)


def f1_bar_plot(path: Path, results: dict, names: list[str], colors: list[str], ylabel: str, title: str) -> None:
    """One bar per system: overall F1 (%) with its bootstrap CI as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f1 = [100 * results[n]["overall"]["f1"] for n in names]
    lo = [100 * (results[n]["overall"]["f1"] - results[n]["ci"]["f1"][0]) for n in names]
    hi = [100 * (results[n]["ci"]["f1"][1] - results[n]["overall"]["f1"]) for n in names]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(names)), 3.6))
    ax.bar(names, f1, yerr=[lo, hi], capsize=4, color=colors)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_ylim(0, 100)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

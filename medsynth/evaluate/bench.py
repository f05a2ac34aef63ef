"""Benchmark harness: zero-shot LLM vs. small models trained on synthetic or real data, on a real test split.

One flow serves both benchmark kinds, NER and relation extraction; what differs (reading the test corpus into
units, the zero-shot prompt and decoder, the small model, the metric, the table columns) sits behind a kind object
(`medsynth.evaluate.kinds`: `NERKind`, `REKind`).

Each system's predictions are stored (`predictions/<system>.jsonl`, one row per sentence or pair, plus a
`.meta.json` with speed and token counts; a zero-shot system also records its raw LLM answers in
`answers/<system>.jsonl`, from which a run of hours resumes on any machine); every table, CSV and plot is
recomputed from those files alone (`report`, `--report-only`), so committed results reproduce in seconds without
an LLM or a GPU.

Systems:
- `zero-shot` / `k-shot` — the LLM, prompted per sentence or pair through the same client as `build` (k-shot: NER);
- `synthetic` — the small model trained on a medsynth dataset (`--train-data`, repeatable for learning curves);
- `supervised` — the same small model trained on the corpus's real train split (the upper bound; per fold for GAD).
Models are kept under `OUT/models/` and reused unless `retrain` (`train_or_reuse`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medsynth.errors import MedsynthError
from medsynth.hashing import DEFAULT_SEED
from medsynth.evaluate import scores as evaluate
from medsynth.evaluate.guard import write_verdict
from medsynth.evaluate.kinds import BenchKind, ModelPlan, SmallSystem, TestSet, kind_for
from medsynth.evaluate.kinds.ner import model_mapping, weighting_suffix  # noqa: F401  (chat.distill maps labels alike)
from medsynth.paths import portable
from medsynth.spec import TaskSpec
from medsynth.train.fit import training_record
from medsynth.train.ner import TrainConfig
from medsynth.train.predict import DecodeConfig

if TYPE_CHECKING:  # imported lazily below: the LLM layer is not needed to report from stored predictions
    from medsynth.llm.client import LLMClient
    from medsynth.llm.journal import AnswerJournal

SYSTEMS = ("zero-shot", "synthetic", "supervised")


class BenchConfig(BaseModel):
    """One benchmark run, of either kind. `train` defaults to the kind's trainer config (`TrainConfig` for NER,
    `REConfig`, with relation defaults, for RE); `shots` applies to NER only, `folds` to RE on GAD only (the kind
    refuses them otherwise). `limit` samples test sentences, or test pairs per fold."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kind: Literal["ner", "re"] = "ner"
    task: TaskSpec
    dataset: str  # a preset name or a path to the user's corpus (any `read_corpus` spec)
    split: Literal["test", "devel"] = "test"  # the split scored: choose recipes on devel, score test once
    systems: list[str] = Field(default_factory=lambda: list(SYSTEMS))
    out: Path
    data_dir: Path | None = None
    limit: int | None = None  # seeded sample of the test split
    seed: int = DEFAULT_SEED
    train_data: list[Path] = Field(default_factory=list)
    train: TrainConfig  # default: the kind's trainer config (see _kind_default_train)
    retrain: bool = False
    progress: bool = True
    # Name a synthetic system after its data folder even when it is the only one, so a point added later to a
    # learning curve (`--train-data runs/ner-500`) sits beside the earlier `synthetic-<folder>` systems.
    name_by_data: bool = False
    shots: int = 0  # NER: k-shot demonstrations from --train-data
    # CORPUS=TASK renames (both kinds); NER also reads an entry TASK=CORPUS (see evaluate.kinds.source)
    label_map: dict[str, str] | None = None
    folds: list[int] | None = None  # RE on GAD: the CV folds to run; None = all 10
    # Saved model folders (a `train` output) scored as systems of their own, by name; nothing is trained for
    # them. A name that is also in `systems` (e.g. "synthetic") is served by the folder instead of training.
    models: dict[str, Path] = Field(default_factory=dict)
    decode: DecodeConfig = Field(default_factory=DecodeConfig)  # NER: how tags become entities (predict too)

    @model_validator(mode="before")
    @classmethod
    def _kind_default_train(cls, data: Any) -> Any:
        """No `train` given: the kind's trainer config with its own defaults."""
        if isinstance(data, dict) and data.get("train") is None:
            data = {**data, "train": kind_for(data.get("kind", "ner")).default_train()}
        return data

    @model_validator(mode="after")
    def _kind_train_config(self) -> BenchConfig:
        """A relation benchmark trains with REConfig (its marker scheme and relation defaults)."""
        wanted = type(self.bench_kind.default_train())
        if not isinstance(self.train, wanted):
            raise ValueError(f"bench {self.kind} trains with {wanted.__name__}, not {type(self.train).__name__}")
        return self

    @property
    def bench_kind(self) -> BenchKind:
        return kind_for(self.kind)


def system_name(system: str, cfg: BenchConfig, train_data: Path | None = None) -> str:
    """The name a system's predictions, answers and model folder go by: `k-shot` for a k-shot LLM,
    `synthetic-<folder>` when several data folders are compared (or `name_by_data`), plus the kind's suffix."""
    if system == "zero-shot" and cfg.shots:
        return f"{cfg.shots}-shot"
    if system == "synthetic":
        suffix = cfg.bench_kind.name_suffix(cfg)  # a weighted model always names its data: which run was judged
        named = train_data is not None and (len(cfg.train_data) > 1 or cfg.name_by_data or suffix)
        return (f"synthetic-{train_data.name}" if named else system) + suffix
    return system


def _write_rows(path: Path, rows: list[dict], meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    evaluate.write_records(path, rows)
    path.with_suffix(".meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


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


def _small_model_system(name: str, system: SmallSystem, kind: BenchKind, test: TestSet,
                        train: bool = True) -> tuple[list[dict], dict]:
    """Train (or reuse) each of the system's models and predict its units; one meta over all of them.
    `train=False`: the models are given folders (`BenchConfig.models`), only loaded."""
    cfg = system.cfg
    rows: list[dict] = []
    train_s = pred_s = 0.0
    predicted_meta: dict = {}
    for plan in system.plans:
        if train:
            train_s += train_or_reuse(kind.train, plan.data, plan.model_dir, kind.saved, kind.reads, cfg)
        predicted = kind.predict(plan.model_dir, plan.units, name, cfg, test)
        rows += predicted.rows
        pred_s += predicted.seconds
        predicted_meta = predicted.meta
    n = sum(len(items) for plan in system.plans for _, items in plan.units)
    # What each model was really trained with (its train_log.json): a given --model folder was trained by
    # `train` with its own seed and options, not bench's.
    training = [training_record(p.model_dir) for p in system.plans]
    seed = training[0].get("seed") if training and training[0] else cfg.train.seed
    meta = {"system": name, "train_data": portable(system.train_data), "encoder": cfg.train.model,
            "train_seconds": round(train_s, 1), "predict_seconds": round(pred_s, 3),
            kind.rate_key: round(n / max(pred_s, 1e-9), 2), "llm_tokens": 0, "seed": seed,
            **kind.model_meta(cfg, [p.model_dir for p in system.plans], n), **predicted_meta,
            "training": training[0] if len(training) == 1 else training}
    return rows, meta


def _zero_shot_system(name: str, cfg: BenchConfig, kind: BenchKind, test: TestSet,
                      llm_session: Callable[[], ContextManager]) -> tuple[list[dict], dict]:
    with llm_session() as session:
        rows, info = kind.zero_shot(session.client, cfg, test, name, open_journal(cfg.out, name, session.client))
        model = session.model_name
    meta = {"system": name, "model": model, **info["meta"], **answers_meta(info["records"], info["llm"], kind.rate_key),
            "session_seconds": round(info["seconds"], 2), "counters": info["counters"]}
    return rows, meta


def check_systems(systems: list[str]) -> None:
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise MedsynthError(f"unknown system; choose from {', '.join(SYSTEMS)}", field="--systems", value=unknown[0])


def check_models(models: dict[str, Path], kind: BenchKind) -> None:
    """Each `--model NAME=DIR`: a name usable as a file name, and a folder `train` wrote for this kind."""
    import re

    for name, model_dir in models.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or name in ("zero-shot", "supervised"):
            raise MedsynthError("system name must be letters, digits, '.', '_' or '-' and not zero-shot or "
                                "supervised", field="--model", value=name)
        if not Path(model_dir).is_dir():
            raise MedsynthError("model folder not found", field="--model", value=f"{name}={model_dir}")
        if not (Path(model_dir) / kind.saved).is_file() or not (Path(model_dir) / "label_map.json").is_file():
            raise MedsynthError(f"not a model folder `train` wrote (no {kind.saved} or label_map.json)",
                                field="--model", value=f"{name}={model_dir}")


def _check(cfg: BenchConfig, kind: BenchKind, llm_session: Callable[[], ContextManager] | None) -> None:
    """Every refusal before any work, so a bad option never surfaces after hours of zero-shot answers."""
    check_systems(cfg.systems)
    check_models(cfg.models, kind)
    kind.check(cfg)
    if "synthetic" in cfg.systems and "synthetic" not in cfg.models:
        kind.check_train_data(cfg)
    if "zero-shot" in cfg.systems and llm_session is None:
        raise MedsynthError("zero-shot needs an LLM endpoint", field="--systems", value="zero-shot")


def _systems(cfg: BenchConfig, kind: BenchKind, test: TestSet,
             llm_session: Callable[[], ContextManager] | None) -> Iterator[tuple[str, list[dict], dict]]:
    """(name, prediction rows, meta) of each requested system, in the order asked, then the given model
    folders; each starts with a header line saying what it does (prompting, training or loading)."""
    for system in cfg.systems:
        if system in cfg.models:
            continue  # served by its model folder below
        if system == "zero-shot":
            name = system_name(system, cfg)
            _header(cfg, name, "prompting the LLM")
            yield (name, *_zero_shot_system(name, cfg, kind, test, llm_session))  # type: ignore[arg-type]
        elif system == "synthetic":
            for data in cfg.train_data:
                name = system_name(system, cfg, Path(data))
                plan = ModelPlan(Path(data), cfg.out / "models" / name, test.units)
                _header(cfg, name, _train_verb(plan.model_dir, kind, cfg) + f" on {data}")
                yield (name, *_small_model_system(name, SmallSystem([plan], str(data), cfg), kind, test))
        else:
            _header(cfg, "supervised", "training on the corpus's train split (or reusing a saved model)")
            yield ("supervised", *_small_model_system("supervised", kind.supervised(cfg, test), kind, test))
    for name, model_dir in cfg.models.items():
        _header(cfg, name, f"loading {model_dir}")
        plan = ModelPlan(Path(model_dir), Path(model_dir), test.units)
        yield (name, *_small_model_system(name, SmallSystem([plan], str(model_dir), cfg), kind, test, train=False))


def _train_verb(model_dir: Path, kind: BenchKind, cfg: BenchConfig) -> str:
    return "reusing the saved model trained" if (model_dir / kind.saved).exists() and not cfg.retrain else "training"


def _header(cfg: BenchConfig, name: str, doing: str) -> None:
    """One line per system before its work starts (stderr, so `bench`'s table on stdout stays clean)."""
    if cfg.progress:
        import sys

        print(f"== {name}: {doing}", file=sys.stderr, flush=True)


def run_bench(cfg: BenchConfig, llm_session: Callable[[], ContextManager] | None = None) -> dict:
    """Run the requested systems on the (sampled) test split, store predictions, then write the report."""
    kind = cfg.bench_kind
    _check(cfg, kind, llm_session)
    test = kind.load_test(cfg)
    pred_dir = cfg.out / "predictions"
    for name, rows, meta in _systems(cfg, kind, test, llm_session):
        _write_rows(pred_dir / f"{name}.jsonl", rows, {**meta, **test.meta})
    return report(cfg.out, title=bench_title(cfg.task.name, cfg.dataset, cfg.split), kind=cfg.kind)


def bench_title(task: str, dataset: str, split: str = "test") -> str:
    """The table title: the task on the corpus, naming the split when it is not test (a devel table is never
    mistaken for the final score)."""
    return f"{task} on {dataset}" + (f" ({split})" if split != "test" else "")


# -- report: recomputed from stored predictions only ---------------------------------------------------------------


def report(out: Path, title: str | None = None, kind: str = "ner") -> dict:
    """Scores, CIs and speed for every stored system → scores.json, scores.csv, table.md, plot.png; for NER also
    where each system's errors come from → errors.json, errors.md (`medsynth.evaluate.diagnose`); and whether
    each small model beats zero-shot prompting → verdict.md (`medsynth.evaluate.guard`)."""
    bench_kind = kind_for(kind)
    title = title or bench_kind.default_title
    rows: dict[str, list[dict]] = {}  # each predictions file is read once, for its scores and its errors

    def score(f: Path) -> dict:
        scores, rows[f.stem] = bench_kind.score(f)
        return scores

    results = write_report(out, title, score, bench_kind)
    errors = bench_kind.after_report(Path(out), rows, ordered(results), title)
    write_verdict(Path(out), results, errors, title)
    return results


def write_report(out: Path, title: str, score: Callable[[Path], dict], kind: BenchKind) -> dict:
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
    order = ordered(results)
    kind.write_csv(out / "scores.csv", results, order)
    (out / "table.md").write_text(kind.table(results, order, title), encoding="utf-8")
    colors = ["#999" if "shot" in n else "#2a7" if n == "supervised" else "#37c" for n in order]
    f1_bar_plot(out / "plot.png", results, order, colors, kind.plot_ylabel, title)
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


def ordered(results: dict) -> list[str]:
    """Table order: the LLM baselines first (zero-shot, then k-shot), the small models by name, supervised last."""
    order = {"zero-shot": 0, "supervised": 9}
    return sorted(results, key=lambda k: (order.get(k, 1 if "shot" in k else 5), k))


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

"""Self-distillation with feedback (Baize's coach loop) for a small NER model: `python -m medsynth distill ner`.

Why: a small model trained on synthetic data makes systematic mistakes the LLM can recognise when shown them
(reviewing a labelling is easier than writing one). Each round the small model labels fresh sentences, the LLM
acts as a coach — accepting the prediction or correcting it against the task's label definitions and guidelines,
with a confidence 1–5 — and the model is retrained on its original training data plus every reviewed example so
far, each weighted by the coach's confidence / 5 (`TrainConfig.use_weights`, the `weight` column of the hf/
export). Agreement (predictions accepted unchanged / reviewed) tells how often the coach still disagrees; with
`--dataset`, every round's model (and the starting model) is scored on the real test split, so a round that
makes the model worse shows up as a number, not as a feeling.

Round r writes OUT/round-r/: sentences.jsonl (unlabelled input), predictions.jsonl (the model before the
round), reviews.jsonl (the coach's verdicts), added.jsonl (examples added, medsynth `Example`s with
meta.weight), data/hf (what the round trained on), model/ (the round's model), bench.jsonl (test
predictions, with --dataset) and round.json, written last: a round with round.json is finished and never redone.
OUT/rounds.json and OUT/rounds.md summarise every round. The coach's parser never raises: an answer that is
missing, not JSON, of the wrong shape or with a label the task does not have is counted and its sentence skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager

from pydantic import BaseModel, ConfigDict, Field

from medsynth.hashing import DEFAULT_SEED, short_hash, stable_seed
from medsynth.llm.aio import run_sync
from medsynth.generate.align import AlignConfig, align
from medsynth.errors import LockedError, MedsynthError
from medsynth.data.jsonl import read_jsonl, read_utf8, write_jsonl
from medsynth.llm.client import LLMClient
from medsynth.spec import TaskSpec
from medsynth.data.tokens import spans_to_bio, tokenize
from medsynth.train.ner import TrainConfig, card_data_dir
from medsynth.chat.coach import (COACH_VERSION, SENTENCE_SCHEMA, coach_messages, coach_schema, parse_coach,
                                 parse_sentence, sentence_messages)
from medsynth.records import Entity, Example, span_keys


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _seed(*parts: object) -> int:
    return stable_seed(*parts)


def read_unlabeled(path: str | Path) -> list[str]:
    """Non-blank lines of a UTF-8 file; bad input is one line naming the file and line."""
    text = read_utf8(path, "unlabeled file")
    lines = list(dict.fromkeys(" ".join(x.split()) for x in text.splitlines() if x.strip()))
    if not lines:
        raise MedsynthError("unlabeled file holds no sentences (one per line expected)", where=str(Path(path)))
    return lines


# ---------------------------------------------------------------------------------------------------------------
# configuration and files


class DistillConfig(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    task: TaskSpec
    model: Path
    train_data: Path
    out: Path
    rounds: int = Field(3, ge=1)
    per_round: int = Field(50, ge=1)
    unlabeled: list[str] | None = None
    dataset: str | None = None
    data_dir: Path | None = None
    limit: int | None = None
    seed: int = DEFAULT_SEED
    train: TrainConfig = Field(default_factory=TrainConfig)
    temperature: float = 0.8
    progress: bool = True

    def identity(self) -> dict:
        """What a resumed run must share with the one that started OUT (more --rounds only extends it)."""
        unl = short_hash("\n".join(self.unlabeled)) if self.unlabeled else None
        return {"task": self.task.registry_name, "model": str(self.model), "train_data": str(self.train_data),
                "per_round": self.per_round, "seed": self.seed, "unlabeled": unl, "dataset": self.dataset,
                "limit": self.limit, "coach_version": COACH_VERSION}


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


@contextlib.contextmanager
def _locked(out: Path):
    """One process per output directory, like `build`."""
    out.mkdir(parents=True, exist_ok=True)
    fh = open(out / ".lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise LockedError("another medsynth process is writing this output directory", where=str(out)) from None
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def _bind(cfg: DistillConfig) -> None:
    path = cfg.out / "distill.json"
    ident = cfg.identity()
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        for key, value in ident.items():
            if old.get(key) != value:
                raise MedsynthError(f"this output directory holds a distillation run made with {key}={old.get(key)!r};"
                                    " use the same options to resume, or another --out", where=str(cfg.out),
                                    field=key, value=value)
    _write_json(path, ident)


def original_data(model_dir: Path) -> Path:
    """The data a `train` output was trained on, from its model card (so --train-data is optional)."""
    data = card_data_dir(model_dir)
    if data is not None and (data / "hf").is_dir():
        return data
    raise MedsynthError("cannot tell which data this model was trained on; pass --train-data DIR", where=str(model_dir))


# ---------------------------------------------------------------------------------------------------------------
# one round


@dataclass
class RoundCtx:
    cfg: DistillConfig
    r: int
    dir: Path
    client: Callable[[], LLMClient]  # opens the LLM session on first use
    counters: Counter = field(default_factory=Counter)


def _seen_sentences(cfg: DistillConfig, r: int) -> set[str]:
    seen: set[str] = set()
    for k in range(1, r):
        path = cfg.out / f"round-{k}" / "sentences.jsonl"
        if path.exists():
            seen.update(_norm(row["text"]) for row in read_jsonl(path))
    return seen


def _generate(ctx: RoundCtx) -> list[str]:
    """per_round fresh sentences written by the LLM, one style per request (seeded), deduplicated."""
    cfg = ctx.cfg
    client = ctx.client()
    styles = cfg.task.styles
    picks = [random.Random(_seed("style", cfg.seed, ctx.r, j)).choices(styles, [s.weight for s in styles])[0]
             for j in range(cfg.per_round)]

    async def one(j: int) -> str | None:
        resp = await client.complete(sentence_messages(cfg.task, picks[j]), schema=SENTENCE_SCHEMA,
                                     seed=_seed("sentence", cfg.seed, ctx.r, j), temperature=cfg.temperature,
                                     max_tokens=200)
        text, err = parse_sentence(resp.text) if resp.text is not None else (None, "sentence:no_response")
        if err:
            ctx.counters[err] += 1
        return text

    async def all_() -> list[str | None]:
        return list(await asyncio.gather(*(one(j) for j in range(cfg.per_round))))

    seen = _seen_sentences(cfg, ctx.r)
    out: list[str] = []
    for text in run_sync(all_()):
        if text is None:
            continue
        if _norm(text) in seen:
            ctx.counters["sentence:duplicate"] += 1
            continue
        seen.add(_norm(text))
        out.append(text)
    return out


def _sentences(ctx: RoundCtx) -> list[dict]:
    path = ctx.dir / "sentences.jsonl"
    if path.exists():
        return read_jsonl(path)
    cfg = ctx.cfg
    if cfg.unlabeled is not None:
        texts = cfg.unlabeled[(ctx.r - 1) * cfg.per_round: ctx.r * cfg.per_round]
        source = "unlabeled"
    else:
        texts, source = _generate(ctx), "llm"
    rows = [{"id": f"r{ctx.r}-{j:04d}", "text": t, "source": source} for j, t in enumerate(texts)]
    write_jsonl(path, rows)
    return rows


def _predict(ctx: RoundCtx, model_dir: Path, rows: list[dict]) -> list[list[Entity]]:
    from medsynth.train.predict import NERPredictor

    path = ctx.dir / "predictions.jsonl"
    if path.exists():
        return [[Entity(**e) for e in row["entities"]] for row in read_jsonl(path)]
    ents = NERPredictor(model_dir).predict([r["text"] for r in rows]) if rows else []
    write_jsonl(path, [{"id": r["id"], "text": r["text"], "entities": [e.model_dump() for e in es]}
                        for r, es in zip(rows, ents)])
    return ents


def review(task: TaskSpec, text: str, predicted: list[Entity], raw: str | None, counters: Counter) -> dict:
    """One coach answer → a review row; `entities` is None when the example is skipped."""
    row: dict[str, Any] = {"text": text, "predicted": [e.model_dump() for e in predicted], "verdict": None,
                           "confidence": None, "entities": None, "weight": None, "accepted_unchanged": False,
                           "error": None, "raw": raw}
    verdict, err = parse_coach(raw, task.label_names)
    if verdict is None:
        counters[err or "coach:unparsable"] += 1
        row["error"] = err
        return row
    counters.update({f"coach_repair:{k}": v for k, v in verdict.repairs.items()})
    if verdict.verdict == "accept":
        entities = list(predicted)
    else:
        placed = align(text, verdict.mentions, AlignConfig(labels=task.label_names))
        counters.update({f"align:{k}": v for k, v in placed.repairs.items()})
        counters.update({f"align_rejected:{k}": v for k, v in placed.rejections.items()})
        entities = placed.entities
    row.update(verdict=verdict.verdict, confidence=verdict.confidence, weight=verdict.confidence / 5,
               entities=[e.model_dump() for e in entities],
               accepted_unchanged=verdict.verdict == "accept" or span_keys(entities) == span_keys(predicted))
    return row


def _coach(ctx: RoundCtx, rows: list[dict], predicted: list[list[Entity]]) -> list[dict]:
    path = ctx.dir / "reviews.jsonl"
    if path.exists():
        return read_jsonl(path)
    cfg = ctx.cfg
    client = ctx.client()
    schema = coach_schema(cfg.task)

    async def one(i: int) -> dict:
        resp = await client.complete(coach_messages(cfg.task, rows[i]["text"], predicted[i]), schema=schema,
                                     seed=_seed("coach", cfg.seed, rows[i]["id"]), temperature=0.0, max_tokens=300)
        return {"id": rows[i]["id"], **review(cfg.task, rows[i]["text"], predicted[i], resp.text, ctx.counters)}

    async def all_() -> list[dict]:
        return list(await asyncio.gather(*(one(i) for i in range(len(rows)))))

    reviews = run_sync(all_()) if rows else []
    write_jsonl(path, reviews)
    return reviews


def _added(ctx: RoundCtx, reviews: list[dict]) -> list[Example]:
    exs = []
    for rv in reviews:
        if rv["entities"] is None:
            continue
        ex = Example(id=f"distill-{rv['id']}", text=rv["text"], entities=[Entity(**e) for e in rv["entities"]],
                     meta={"weight": rv["weight"], "round": ctx.r, "verdict": rv["verdict"],
                           "confidence": rv["confidence"]})
        if ex.check_spans():  # cannot happen after align; refuse rather than train on a broken span
            ctx.counters["span_invariant"] += 1
            continue
        exs.append(ex)
    write_jsonl(ctx.dir / "added.jsonl", [ex.model_dump() for ex in exs])
    return exs


def _all_added(cfg: DistillConfig, up_to: int) -> list[Example]:
    out = []
    for k in range(1, up_to + 1):
        path = cfg.out / f"round-{k}" / "added.jsonl"
        if path.exists():
            out += [Example.model_validate(row) for row in read_jsonl(path)]
    return out


def tag_names(data_dir: Path) -> list[str]:
    """IOB2 tag names of a medsynth hf/ dataset (ClassLabel names, or the strings used)."""
    from datasets import load_from_disk

    ds = load_from_disk(str(Path(data_dir) / "hf"))["train"]
    names = getattr(getattr(ds.features["ner_tags"], "feature", None), "names", None)
    if names:
        return list(names)
    seen = sorted({t for tags in ds["ner_tags"] for t in tags if t != "O"})
    return ["O", *seen]


def combined_data(original: Path, added: list[Example], target: Path) -> Path:
    """original train + added examples (train only), original validation: the round's training set.

    Validation stays the original one so every round selects its epoch on the same yardstick."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value, load_from_disk
    from medsynth.data.export import save_quietly

    dd = load_from_disk(str(original / "hf"))
    names = tag_names(original)
    index = {t: i for i, t in enumerate(names)}

    def rows_of(ds: Any) -> dict[str, list]:
        as_names = getattr(getattr(ds.features["ner_tags"], "feature", None), "names", None)
        weights = ds["weight"] if "weight" in ds.column_names else [1.0] * len(ds)
        tags = [[index[as_names[t]] if as_names else index[t] for t in row] for row in ds["ner_tags"]]
        ids = ds["id"] if "id" in ds.column_names else [f"orig-{i}" for i in range(len(ds))]
        return {"id": list(ids), "tokens": [list(t) for t in ds["tokens"]], "ner_tags": tags,
                "weight": [1.0 if w is None else float(w) for w in weights]}

    train = rows_of(dd["train"])
    for ex in added:
        toks = tokenize(ex.text)
        train["id"].append(ex.id)
        train["tokens"].append([t.text for t in toks])
        train["ner_tags"].append([index.get(t, 0) for t in spans_to_bio(toks, ex.entities)])
        train["weight"].append(float(ex.meta.get("weight", 1.0)))
    features = Features({"id": Value("string"), "tokens": Sequence(Value("string")),
                         "ner_tags": Sequence(ClassLabel(names=names)), "weight": Value("float32")})
    splits = {"train": Dataset.from_dict(train, features=features)}
    if "validation" in dd and len(dd["validation"]):
        splits["validation"] = Dataset.from_dict(rows_of(dd["validation"]), features=features)
    import shutil

    shutil.rmtree(target / "hf", ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    save_quietly(DatasetDict(splits), target / "hf")
    return target


def _train(ctx: RoundCtx, added: list[Example]) -> dict:
    from medsynth.train.ner import train_ner

    model_dir = ctx.dir / "model"
    log = model_dir / "train_log.json"
    if log.exists():  # trained before an interruption: the model is complete once its log is written
        return json.loads(log.read_text(encoding="utf-8"))["metrics"]
    data = combined_data(ctx.cfg.train_data, added, ctx.dir / "data")
    config = ctx.cfg.train.model_copy(update={"use_weights": True})
    return train_ner(data, model_dir, config, progress=ctx.cfg.progress)


# ---------------------------------------------------------------------------------------------------------------
# benchmark


@dataclass
class Bench:
    """The real test split (sampled) and the task → corpus label mapping, loaded once per run."""

    sentences: list
    mapping: dict[str, str]


def load_bench(cfg: DistillConfig) -> Bench | None:
    from medsynth.data.corpora import ner as corpora

    if cfg.dataset is None:
        return None
    test_all = corpora.load_corpus(cfg.dataset, "test", cfg.data_dir)
    mapping = corpora.label_mapping(cfg.task.label_names, corpora.corpus_labels(test_all), None)
    return Bench(corpora.sample(test_all, cfg.limit, cfg.seed), mapping)


def score_model(model_dir: Path, bench: Bench, path: Path, name: str) -> dict:
    """Strict entity F1 (with a bootstrap CI) of a saved model on the benchmark sentences; predictions are
    stored in `path` (the bench's record format) so the score can be recomputed without the model."""
    from medsynth.data.corpora import ner as corpora
    from medsynth.evaluate import scores as evaluate
    from medsynth.evaluate.bench import model_mapping
    from medsynth.train.predict import NERPredictor

    predictor = NERPredictor(model_dir)
    tags = predictor.predict_tokens([s.tokens for s in bench.sentences])
    model_labels = sorted({t[2:] for t in predictor.id2label.values() if t != "O"})
    mapped = [corpora.map_tags(t, model_mapping(model_labels, bench.mapping)) for t in tags]
    rows = evaluate.predictions_record(bench.sentences, mapped, name)
    evaluate.write_records(path, rows)
    s = evaluate.scores_from_records(rows)
    o = s["overall"]
    return {"f1": o["f1"], "precision": o["precision"], "recall": o["recall"], "f1_ci": list(s["ci"]["f1"]),
            "sentences": s["n_sentences"], "predictions": str(path)}


# ---------------------------------------------------------------------------------------------------------------
# the loop


def run_round(ctx: RoundCtx, model_in: Path, bench: Bench | None) -> dict:
    t0 = time.monotonic()
    rows = _sentences(ctx)
    predicted = _predict(ctx, model_in, rows)
    reviews = _coach(ctx, rows, predicted)
    added = _added(ctx, reviews)
    metrics = _train(ctx, _all_added(ctx.cfg, ctx.r - 1) + added)
    reviewed = [rv for rv in reviews if rv["verdict"] is not None]
    accepted = sum(1 for rv in reviewed if rv["accepted_unchanged"])
    record = {
        "round": ctx.r, "model_in": str(model_in), "model_out": str(ctx.dir / "model"),
        "sentences": len(rows), "reviewed": len(reviewed), "skipped": len(reviews) - len(reviewed),
        "accepted_unchanged": accepted, "corrected": len(reviewed) - accepted,
        "agreement": round(accepted / len(reviewed), 4) if reviewed else None,
        "added": len(added), "added_total": len(_all_added(ctx.cfg, ctx.r)),
        "mean_weight": round(sum(ex.meta["weight"] for ex in added) / len(added), 4) if added else None,
        "counters": dict(sorted(ctx.counters.items())),
        "train": {k: metrics.get(k) for k in ("val_f1", "steps", "train_examples", "stopped")},
        "bench": score_model(ctx.dir / "model", bench, ctx.dir / "bench.jsonl", f"round-{ctx.r}") if bench else None,
        "seconds": round(time.monotonic() - t0, 1),
    }
    _write_json(ctx.dir / "round.json", record)
    return record


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def table(baseline: dict | None, rounds: list[dict]) -> str:
    """rounds.md: one row per round (row 0 = the starting model, scored when --dataset is given)."""
    lines = ["| round | sentences | reviewed | coach agreement | added (total) | mean weight | val F1 | test F1 | F1 95% CI |",
             "|---|---|---|---|---|---|---|---|---|"]
    if baseline is not None:
        lines.append(f"| 0 (start) | | | | | | | {_fmt(baseline['f1'])} | "
                     f"{_fmt(baseline['f1_ci'][0])}–{_fmt(baseline['f1_ci'][1])} |")
    for r in rounds:
        b = r.get("bench") or {}
        ci = f"{_fmt(b['f1_ci'][0])}–{_fmt(b['f1_ci'][1])}" if b else ""
        lines.append(f"| {r['round']} | {r['sentences']} | {r['reviewed']} | {_fmt(r['agreement'])} | "
                     f"{r['added']} ({r['added_total']}) | {r['mean_weight'] if r['mean_weight'] is not None else ''} "
                     f"| {_fmt(r['train'].get('val_f1'))} | {_fmt(b.get('f1'))} | {ci} |")
    return "\n".join(lines) + ("\n\nCoach agreement = predictions accepted unchanged / reviewed. Test F1: strict "
                               "entity level (seqeval IOB2) on the real test split; CI from 1000 sentence bootstrap "
                               "resamples.\n")


def run_distill(cfg: DistillConfig, session: Callable[[], ContextManager]) -> dict:
    """Run (or resume) rounds 1..cfg.rounds; the LLM session is only opened when a round needs it."""
    with _locked(cfg.out), contextlib.ExitStack() as stack:
        _bind(cfg)
        names = tag_names(cfg.train_data)
        missing = [lab for lab in cfg.task.label_names if f"B-{lab}" not in names]
        if missing:  # corrected entities of these labels would silently become O in the training data
            raise MedsynthError(f"the training data has no tags for task label(s) {', '.join(missing)}",
                                where=str(cfg.train_data), field="ner_tags", value=names)
        bench = load_bench(cfg)  # fail on a bad dataset or label mapping before any LLM or training
        holder: dict[str, Any] = {}

        def client() -> LLMClient:
            if "s" not in holder:
                holder["s"] = stack.enter_context(session())
            return holder["s"].client

        baseline = None
        if bench is not None:
            path = cfg.out / "baseline.json"
            if not path.exists():
                _write_json(path, score_model(cfg.model, bench, cfg.out / "baseline.jsonl", "round-0"))
            baseline = json.loads(path.read_text(encoding="utf-8"))
        rounds, stopped = [], None
        for r in range(1, cfg.rounds + 1):
            rdir = cfg.out / f"round-{r}"
            if (rdir / "round.json").exists():
                rounds.append(json.loads((rdir / "round.json").read_text(encoding="utf-8")))
                continue
            if cfg.unlabeled is not None and (r - 1) * cfg.per_round >= len(cfg.unlabeled):
                stopped = f"--unlabeled holds {len(cfg.unlabeled)} sentences: used up after round {r - 1}"
                break
            rdir.mkdir(parents=True, exist_ok=True)
            model_in = cfg.model if r == 1 else cfg.out / f"round-{r - 1}" / "model"
            rounds.append(run_round(RoundCtx(cfg, r, rdir, client), model_in, bench))
        llm = holder["s"].client.stats.as_dict() if "s" in holder else {"llm_calls": 0, "cache_hits": 0}
        model = holder["s"].model_name if "s" in holder else None
        summary = {"config": {**cfg.identity(), "rounds": cfg.rounds}, "coach_model": model, "baseline": baseline,
                   "rounds": rounds, "stopped": stopped, "this_run": llm}
        _write_json(cfg.out / "rounds.json", summary)
        (cfg.out / "rounds.md").write_text(
            f"# Self-distillation: {cfg.task.registry_name}\n\n" + table(baseline, rounds), encoding="utf-8")
        return summary

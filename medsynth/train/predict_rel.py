"""Classify candidate entity pairs with a medsynth relation model, and the input layout shared with training.

A pair becomes one sequence: the sentence with its two entities marked. Two schemes (`marker`):

- `mask` (default): each entity span is replaced by `@{LABEL.upper()}$` (`@GENE$`, `@DISEASE$`), the BioBERT /
  BLUE convention and the only form GAD ships in. The model cannot memorise entity names, which is what makes
  a model trained on synthetic sentences transfer to other names.
- `tags`: the text is kept and the spans are wrapped as `[E1] head [/E1]` ... `[E2] tail [/E2]` (four tokens
  added to the vocabulary); useful when names carry signal.

Sentences longer than the encoder window are cropped around the two entities (token offsets pick the largest
window that keeps both markers, centred on them) instead of being truncated at the end, which would silently
cut away a marker that sits late in a long ChemProt sentence.

Training (`train_re.py`) imports `mark_pair` and `encode_pairs` from here, so a model never sees a layout at
prediction time that it did not see in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

from medsynth.errors import MedsynthError
from medsynth.train.predict import pick_device, quiet_transformers
from medsynth.records import RelPair

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
    if h.start < t.end and t.start < h.end:
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


def read_re_label_map(model_dir: Path) -> dict[str, Any]:
    """label_map.json of a relation model; missing or not an RE map is a one-line error."""
    import json

    path = Path(model_dir) / "label_map.json"
    if not path.is_file():
        raise MedsynthError("no label_map.json; is this a medsynth relation model (`train --task re`)?",
                            where=str(model_dir))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        labels = [str(x) for x in data["labels"]]
    except (ValueError, KeyError, TypeError) as err:
        raise MedsynthError(f"unreadable label map ({err})", where=str(path)) from None
    if data.get("kind") != "re":
        raise MedsynthError("label map is not a relation model's (kind != 're'); an NER model?", where=str(path))
    return {**data, "labels": labels}


def classify(model: Any, ids: list[list[int]], pad_id: int, batch_size: int, device: str) -> list[list[float]]:
    """Softmax probabilities per sequence; batches sorted by length so short pairs do not pay for long ones."""
    import torch

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[list[float] | None] = [None] * len(ids)
    model.eval()
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            chunk = order[b : b + batch_size]
            width = max(len(ids[i]) for i in chunk)
            x = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, i in enumerate(chunk):
                x[r, : len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                mask[r, : len(ids[i])] = 1
            probs = model(input_ids=x.to(device), attention_mask=mask.to(device)).logits.softmax(-1).cpu().tolist()
            for r, i in enumerate(chunk):
                out[i] = probs[r]
    return [p or [] for p in out]


class REPredictor:
    """A saved relation model: `predict(pairs)` → one label per pair; `predict_proba(pairs)` → {label: prob}."""

    def __init__(self, model_dir: Path | str, device: str = "auto", batch_size: int = 32):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model_dir = Path(model_dir)
        lm = read_re_label_map(self.model_dir)
        self.labels: list[str] = lm["labels"]
        self.marker: Marker = lm.get("marker", "mask")
        self.max_length = int(lm.get("max_length", DEFAULT_MAX_LENGTH))
        self.device = pick_device(device)
        self.batch_size = batch_size
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
                self.model = AutoModelForSequenceClassification.from_pretrained(str(self.model_dir),
                                                                                local_files_only=True,
                                                                                use_safetensors=True)
        except (OSError, ValueError) as err:
            raise MedsynthError(f"cannot load model ({' '.join(str(err).split())[:200]})",
                                where=str(self.model_dir)) from None
        if self.model.config.num_labels != len(self.labels):
            raise MedsynthError(f"model has {self.model.config.num_labels} outputs but the label map lists "
                                f"{len(self.labels)} labels", where=str(self.model_dir))
        self.model.to(self.device)

    def predict_proba(self, pairs: Sequence[RelPair]) -> list[dict[str, float]]:
        ids, _ = encode_pairs(self.tokenizer, pairs, self.marker, self.max_length)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        probs = classify(self.model, ids, pad, self.batch_size, self.device)
        return [dict(zip(self.labels, p)) for p in probs]

    def predict(self, pairs: Sequence[RelPair]) -> list[str]:
        return [max(p, key=p.get) for p in self.predict_proba(pairs)]

    def predict_with_proba(self, pairs: Sequence[RelPair]) -> tuple[list[str], list[dict[str, float]]]:
        probs = self.predict_proba(pairs)
        return [max(p, key=p.get) for p in probs], probs

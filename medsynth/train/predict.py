"""Tag text with a medsynth NER model: word-level BIO tags and character spans.

The model works on subwords but medsynth (and the benchmarks) work on words from `medsynth.data.tokens`, so every
word is tagged by its first subword. Sentences longer than the encoder's window are cut into overlapping windows
at word boundaries; each word takes its tag from the window where it sits farthest from an edge, because that
is where the encoder saw the most context on both sides. The same windowing is used in training (`train.py`
imports it from here), so a model never sees a layout at prediction time that it did not see in training.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator, Sequence

from medsynth.errors import MedsynthError
from medsynth.data.tokens import bio_to_spans, tokenize
from medsynth.records import Entity

DEFAULT_MAX_LENGTH = 128
DEFAULT_STRIDE = 32


# ----------------------------------------------------------------------------------------------------------
# Windows (pure Python; shared with training)


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


def repair_bio(tags: list[str]) -> list[str]:
    """Make tags valid IOB2: an I-X that follows O or another type becomes B-X (the model sometimes opens an
    entity with I-, and seqeval's strict mode would otherwise drop the whole mention)."""
    out: list[str] = []
    prev = "O"
    for tag in tags:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


# ----------------------------------------------------------------------------------------------------------
# Loading


def pick_device(device: str) -> str:
    """"auto" → cuda when available, else cpu. Asking for cuda without one is a user error, not a crash."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MedsynthError("CUDA requested but torch sees no GPU; use --device cpu or auto", field="device", value=device)
    return device


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


def read_label_map(model_dir: Path) -> dict[str, Any]:
    """Labels of a saved model: label_map.json first, else a non-default id2label in config.json.

    HF configs always carry id2label ({0: "LABEL_0", ...} when nobody set one), so default names count as
    missing: a model without our labels would tag everything with meaningless names."""
    lm_path = model_dir / "label_map.json"
    if lm_path.is_file():
        try:
            data = json.loads(lm_path.read_text(encoding="utf-8"))
            id2label = {int(k): str(v) for k, v in data["id2label"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise MedsynthError(f"unreadable label map ({err})", where=str(lm_path)) from None
        return {**data, "id2label": id2label}
    cfg_path = model_dir / "config.json"
    if cfg_path.is_file():
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise MedsynthError(f"unreadable config ({err})", where=str(cfg_path)) from None
        raw = cfg.get("id2label") or {}
        id2label = {int(k): str(v) for k, v in raw.items()}
        if id2label and not all(v == f"LABEL_{k}" for k, v in id2label.items()):
            return {"id2label": id2label}
    raise MedsynthError(
        f"{model_dir}: no label map (config.json id2label / label_map.json); is this a medsynth model?"
    )


# ----------------------------------------------------------------------------------------------------------
# Tagging


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
) -> list[list[str]]:
    """Word-level IOB2 tags for pre-tokenized sentences (one tag per word, repaired to valid IOB2).

    Windows from all sentences are sorted by length and batched with padding to the longest in the batch, so
    short sentences do not pay for long ones. Words the tokenizer drops entirely (zero subwords) get "O"."""
    import torch

    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    counts = subword_counts(tokenizer, sentences)
    jobs: list[tuple[int, int, int]] = []  # (sentence, start, end)
    for si, c in enumerate(counts):
        jobs.extend((si, s, e) for s, e in make_windows(c, budget, stride))
    best: list[list[tuple[int, str] | None]] = [[None] * len(s) for s in sentences]  # (centrality, tag)
    if jobs:
        enc = tokenizer(
            [list(sentences[si][s:e]) for si, s, e in jobs],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
        )
        order = sorted(range(len(jobs)), key=lambda j: len(enc["input_ids"][j]))
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            for b in range(0, len(order), batch_size):
                idx = order[b : b + batch_size]
                width = max(len(enc["input_ids"][j]) for j in idx)
                ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for r, j in enumerate(idx):
                    row = enc["input_ids"][j]
                    ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
                    mask[r, : len(row)] = 1
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                pred = logits.argmax(-1).cpu().tolist()
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
                            best[si][word] = (score, id2label[pred[r][pos]])
        if was_training:
            model.train()
    return [repair_bio([b[1] if b is not None else "O" for b in row]) for row in best]


class NERPredictor:
    """A saved medsynth NER model, loaded once, tagging many texts."""

    def __init__(self, model_dir: Path, device: str = "auto", batch_size: int = 32):
        import torch  # noqa: F401  (fail here, not mid-prediction, when torch is missing)
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise MedsynthError("model directory not found", where=str(model_dir))
        label_map = read_label_map(model_dir)
        self.model_dir = model_dir
        self.id2label: dict[int, str] = label_map["id2label"]
        self.max_length = int(label_map.get("max_length", DEFAULT_MAX_LENGTH))
        self.stride = int(label_map.get("stride", DEFAULT_STRIDE))
        self.batch_size = batch_size
        self.device = pick_device(device)
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
                self.model = AutoModelForTokenClassification.from_pretrained(str(model_dir), local_files_only=True,
                                                                             use_safetensors=True)
        except (OSError, ValueError) as err:
            raise MedsynthError(f"cannot load model ({' '.join(str(err).split())[:200]})", where=str(model_dir)) from None
        if not getattr(self.tokenizer, "is_fast", False):
            raise MedsynthError("needs a fast tokenizer (tokenizer.json) to map subwords to words", where=str(model_dir))
        self.model.to(self.device)
        self.model.eval()

    def predict_tokens(self, sentences: list[list[str]]) -> list[list[str]]:
        """Word-level IOB2 tags per pre-tokenized sentence (what the benchmarks compare against)."""
        return tag_sentences(
            self.model,
            self.tokenizer,
            self.id2label,
            sentences,
            max_length=self.max_length,
            stride=self.stride,
            batch_size=self.batch_size,
            device=self.device,
        )

    def predict(self, texts: list[str]) -> list[list[Entity]]:
        """Character-span entities for raw texts (text[e.start:e.end] == e.text always holds)."""
        toks = [tokenize(t) for t in texts]
        tags = self.predict_tokens([[t.text for t in ts] for ts in toks])
        return [bio_to_spans(ts, tg, text) for ts, tg, text in zip(toks, tags, texts)]


def predict_texts(model_dir: Path | str, texts: list[str], device: str = "auto") -> list[list[dict]]:
    """Entities as plain dicts ({start, end, label, text}) for the CLI and notebooks."""
    predictor = NERPredictor(Path(model_dir), device=device)
    return [[e.model_dump() for e in ents] for ents in predictor.predict(texts)]


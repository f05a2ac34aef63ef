"""Apply a saved medsynth model: `load_predictor(dir)` returns the NER tagger or the relation classifier it holds.

NER models tag text (word-level BIO tags and character spans, words from `medsynth.data.tokens`); relation
models label candidate entity pairs. The input layouts (NER word windows, RE entity markers) come from the
kind modules `train/ner.py` and `train/rel.py`, the same code training used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence, Union

from pydantic import BaseModel, Field

from medsynth.data.tokens import bio_to_spans, detokenize, iob2_spans, spans_to_bio, tokenize
from medsynth.errors import MedsynthError
from medsynth.records import Entity, Example, RelPair
from medsynth.train.fit import pick_device, pad_id, quiet_transformers, training_record
from medsynth.train.ner import (DEFAULT_MAX_LENGTH, DEFAULT_STRIDE, make_windows, repair_bio, subword_counts,
                                tag_sentences, window_centrality)
from medsynth.train.rel import DEFAULT_MAX_LENGTH as RE_MAX_LENGTH
from medsynth.train.rel import Marker, classify, crop_to_markers, encode_pairs, mark_pair

__all__ = ["DecodeConfig", "NERPredictor", "REPredictor", "load_predictor", "predict_texts", "read_label_map",
           "read_re_label_map", "pick_device", "quiet_transformers", "make_windows", "repair_bio", "subword_counts",
           "tag_sentences", "window_centrality", "mark_pair", "crop_to_markers"]


# ----------------------------------------------------------------------------------------------------------
# Label maps


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


def read_re_label_map(model_dir: Path) -> dict[str, Any]:
    """label_map.json of a relation model; missing or not an RE map is a one-line error."""
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



# ----------------------------------------------------------------------------------------------------------
# Predictors


# Chosen on devel (benchmarks/results/decode-threshold.md): the largest mean gain over five development settings
# (ChemProt genes from scratch, NCBI-disease synthetic, BC5CDR synthetic and 200 gold + synthetic, NCBI supervised).
DEFAULT_MIN_CONFIDENCE = 0.9


class DecodeConfig(BaseModel):
    """How a trained NER model's word tags become entities, after the argmax.

    - `min_confidence`: drop a predicted entity whose words' mean probability of being inside an entity
      (1 - P(O)) is below this. A word whose argmax is a label already has more than 0.5, so 0.5 or less keeps
      every entity (as does None). Models trained on generated sentences tag many real-text words they never saw
      unlabelled (drugs, residues, person names) with lower confidence than real mentions: at 0.9 devel F1 rose
      by 0.7 to 4.1 in every development setting, supervised models included (`DEFAULT_MIN_CONFIDENCE`).
    - `span_rules`: apply the span rules of the task the model was trained on (`TaskSpec.span_rules`, carried
      in train_log.json) to the predicted spans, as export does to generated ones."""

    min_confidence: float | None = Field(default=DEFAULT_MIN_CONFIDENCE, ge=0.0, le=1.0)
    span_rules: bool = True


def drop_unsure(tags: list[str], confidence: Sequence[float], threshold: float) -> list[str]:
    """`tags` without the entities whose mean word confidence is below `threshold`."""
    out = list(tags)
    for start, end, _ in iob2_spans(tags):
        if sum(confidence[start:end]) / (end - start) < threshold:
            out[start:end] = ["O"] * (end - start)
    return out


def apply_word_rules(sentences: Sequence[Sequence[str]], tags: list[list[str]], rules: dict) -> list[list[str]]:
    """`tags` of each sentence with entity boundaries moved by span `rules` (`quality.span_rules.apply_rules`,
    one pass over all sentences, on the words joined by spaces, which is how its whole-word patterns see them)."""
    from medsynth.quality.span_rules import apply_rules

    layouts = [detokenize(list(words)) for words in sentences]
    examples = [Example(id=str(i), text=text, entities=bio_to_spans(toks, t, text))
                for i, ((text, toks), t) in enumerate(zip(layouts, tags))]
    moved, _ = apply_rules(examples, rules)
    return [t if m is ex else spans_to_bio(toks, m.entities)
            for t, m, ex, (_, toks) in zip(tags, moved, examples, layouts)]


class NERPredictor:
    """A saved medsynth NER model, loaded once, tagging many texts."""

    def __init__(self, model_dir: Path, device: str = "auto", batch_size: int = 32,
                 decode: DecodeConfig | None = None):
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
        self.decode = decode or DecodeConfig()
        data = training_record(model_dir).get("data") or {}
        self.span_rules: dict = (data.get("span_rules") or {}) if self.decode.span_rules else {}

    def decode_record(self) -> dict[str, Any]:
        """What turned tags into entities, for every predictions file's metadata."""
        return {"min_confidence": self.decode.min_confidence, "span_rules": self.span_rules or None}

    def predict_tokens(self, sentences: list[list[str]]) -> list[list[str]]:
        """Word-level IOB2 tags per pre-tokenized sentence (what the benchmarks compare against), after the
        decode steps (`DecodeConfig`)."""
        threshold = self.decode.min_confidence
        confidence: list[list[float]] | None = [] if threshold is not None else None  # softmax only when read
        tags = tag_sentences(
            self.model,
            self.tokenizer,
            self.id2label,
            sentences,
            max_length=self.max_length,
            stride=self.stride,
            batch_size=self.batch_size,
            device=self.device,
            confidences=confidence,
        )
        if confidence is not None:
            tags = [drop_unsure(t, c, threshold) for t, c in zip(tags, confidence)]
        return apply_word_rules(sentences, tags, self.span_rules) if self.span_rules else tags

    def predict(self, texts: list[str]) -> list[list[Entity]]:
        """Character-span entities for raw texts (text[e.start:e.end] == e.text always holds)."""
        toks = [tokenize(t) for t in texts]
        tags = self.predict_tokens([[t.text for t in ts] for ts in toks])
        return [bio_to_spans(ts, tg, text) for ts, tg, text in zip(toks, tags, texts)]


class REPredictor:
    """A saved relation model: `predict(pairs)` → one label per pair; `predict_proba(pairs)` → {label: prob}."""

    def __init__(self, model_dir: Path | str, device: str = "auto", batch_size: int = 32):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model_dir = Path(model_dir)
        lm = read_re_label_map(self.model_dir)
        self.labels: list[str] = lm["labels"]
        self.marker: Marker = lm.get("marker", "mask")
        self.max_length = int(lm.get("max_length", RE_MAX_LENGTH))
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
        probs = classify(self.model, ids, pad_id(self.tokenizer), self.batch_size, self.device)
        return [dict(zip(self.labels, p)) for p in probs]

    def predict(self, pairs: Sequence[RelPair]) -> list[str]:
        return [max(p, key=p.get) for p in self.predict_proba(pairs)]

    def predict_with_proba(self, pairs: Sequence[RelPair]) -> tuple[list[str], list[dict[str, float]]]:
        probs = self.predict_proba(pairs)
        return [max(p, key=p.get) for p in probs], probs


Predictor = Union[NERPredictor, REPredictor]


def is_relation_model(model_dir: Path | str) -> bool:
    """True when `model_dir`'s label_map.json says it is a relation model (kind "re")."""
    path = Path(model_dir) / "label_map.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("kind") == "re"
    except (OSError, ValueError, AttributeError):
        return False  # no or unreadable map: the NER loader gives the one-line error


def load_predictor(model_dir: Path | str, device: str = "auto", batch_size: int = 32) -> Predictor:
    """The predictor for a saved model, by the kind its label map records: `REPredictor` for relation models,
    `NERPredictor` for everything else (NER maps carry no kind; older models neither)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise MedsynthError("model directory not found", where=str(model_dir))
    cls = REPredictor if is_relation_model(model_dir) else NERPredictor
    return cls(model_dir, device=device, batch_size=batch_size)


def predict_texts(model_dir: Path | str, texts: list[str], device: str = "auto") -> list[list[dict]]:
    """Entities as plain dicts ({start, end, label, text}) for the CLI and notebooks."""
    predictor = NERPredictor(Path(model_dir), device=device)
    return [[e.model_dump() for e in ents] for ents in predictor.predict(texts)]

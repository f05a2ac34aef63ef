"""`train --backend spacy`: a spaCy NER pipeline (tok2vec + ner, CPU-efficient config) trained from the
DocBins that `build` writes, for users whose stack is spaCy rather than transformers.

The pipeline's tokens come from the DocBins, which use medsynth's tokenizer, so spans line up with the other
exports. Output: `OUT/model-best` and `OUT/model-last` (spaCy's own layout), loadable with `spacy.load`.
"""

from __future__ import annotations

import json
from pathlib import Path

from medsynth.hashing import DEFAULT_SEED
from medsynth.errors import MedsynthError


def train_spacy(data_dir: Path, out_dir: Path, *, max_steps: int | None = None, seed: int = DEFAULT_SEED,
                patience: int = 1600) -> dict:
    from spacy.cli.init_config import init_config
    from spacy.cli.train import train

    train_path, dev_path = data_dir / "spacy" / "train.spacy", data_dir / "spacy" / "validation.spacy"
    if not train_path.exists():
        raise MedsynthError("no spacy/train.spacy; run `medsynth build` first", where=str(data_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    config = init_config(lang="en", pipeline=["ner"], optimize="efficiency")
    config_path = out_dir / "config.cfg"
    config.to_disk(config_path)
    overrides = {"paths.train": str(train_path), "paths.dev": str(dev_path), "system.seed": seed,
                 "training.patience": patience}
    if max_steps:
        overrides["training.max_steps"] = max_steps
        overrides["training.eval_frequency"] = max(1, min(200, max_steps // 2))
    train(config_path, out_dir, overrides=overrides)
    meta_path = out_dir / "model-best" / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return {"backend": "spacy", "model_dir": str(out_dir / "model-best"),
            "val_f1": meta.get("performance", {}).get("ents_f"), "labels": meta.get("labels", {}).get("ner", [])}


def is_spacy_model(model_dir: Path) -> bool:
    return (model_dir / "meta.json").exists() and (model_dir / "config.cfg").exists()


class SpacyPredictor:
    """Same `predict(texts)` contract as NERPredictor: character-span entities per text."""

    def __init__(self, model_dir: Path):
        import spacy

        self.nlp = spacy.load(model_dir)

    def predict(self, texts: list[str]):
        from medsynth.records import Entity

        return [[Entity(start=e.start_char, end=e.end_char, label=e.label_, text=e.text) for e in doc.ents]
                for doc in self.nlp.pipe(texts)]

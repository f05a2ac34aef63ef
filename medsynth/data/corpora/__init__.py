"""Readers of annotated corpora: built-in presets (`ner`, `rel`) and a user's own files in any common format.

Entry point: `read_corpus(spec, kind)` (`corpus.py`) -> `Corpus` with `.splits` and `.split(name)`; option
strings for `--label-map` go through `parse_label_map` (`labels.py`).
"""

from medsynth.data.corpora.corpus import NER_PRESETS, RE_PRESETS, Corpus, read_corpus
from medsynth.data.corpora.labels import parse_label_map

__all__ = ["Corpus", "NER_PRESETS", "RE_PRESETS", "parse_label_map", "read_corpus"]

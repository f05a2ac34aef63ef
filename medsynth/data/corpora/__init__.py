"""Readers of real annotated corpora: NER (`ner`) and relation (`rel`) benchmarks as medsynth records."""

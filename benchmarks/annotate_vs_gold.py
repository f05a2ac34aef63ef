"""How good are the LLM's labels in annotate mode? Score an annotate run of corpus train sentences against the
corpus's own gold labels (exact character spans, the corpus's labels via the task mapping).

The annotate run must have been made from `benchmarks/train_texts.py CORPUS N FILE` with the same seed, so slot i
is the i-th sampled sentence. This measures label noise only: nothing here feeds generation or training.

    python benchmarks/annotate_vs_gold.py ncbi-disease 100 runs/quality/ncbi-disease/annotate
    python benchmarks/annotate_vs_gold.py chemprot-gene 100 runs/votes3 --task-file benchmarks/tasks/gene-scratch.yaml
"""

from __future__ import annotations

import json
import sys

from medsynth.data.corpora import ner as corpora
from medsynth.data.jsonl import read_jsonl
from medsynth.spec import get_task
from medsynth.data.tokens import bio_to_spans, detokenize
from train_texts import sampled_train  # the sibling script that wrote the annotate input


def main(corpus: str, n: int, run: str, seed: int = 13, task_file: str | None = None) -> dict:
    sentences = sampled_train(corpus, n, seed)
    rows = list(read_jsonl(f"{run}/data.jsonl"))
    task = get_task(None, task_file) if task_file else get_task(
        json.load(open(f"{run}/stats.json", encoding="utf-8"))["task"])
    mapping = corpora.label_mapping(task.label_names, corpora.corpus_labels(sentences))
    by_slot = {int(r["meta"]["plan"]["slot"]): r for r in rows}
    tp = fp = fn = 0
    for i, s in enumerate(sentences):
        text, toks = detokenize(s.tokens)
        gold = {(e.start, e.end, e.label) for e in bio_to_spans(toks, s.tags, text)}
        row = by_slot.get(i)
        if row is None:
            fn += len(gold)
            continue
        assert row["text"] == text, f"slot {i}: the run's text is not the sampled sentence"
        pred = {(e["start"], e["end"], mapping[e["label"]]) for e in row["entities"] if e["label"] in mapping}
        tp, fp, fn = tp + len(gold & pred), fp + len(pred - gold), fn + len(gold - pred)
    p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    out = {"corpus": corpus, "sentences": len(sentences), "annotated": len(by_slot), "gold": tp + fn,
           "predicted": tp + fp, "precision": round(100 * p, 1), "recall": round(100 * r, 1),
           "f1": round(100 * 2 * p * r / max(p + r, 1e-9), 1)}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    extra = sys.argv[4:]
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3],
         task_file=extra[extra.index("--task-file") + 1] if "--task-file" in extra else None)

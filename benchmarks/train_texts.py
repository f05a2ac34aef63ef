"""Write a seeded sample of a corpus's *train* sentences as plain text, one per line, labels discarded.

Input for the annotate-mode row of the quality ablation (`build ner --annotate FILE`): the unlabelled in-domain
setting. The file goes under runs/ (not committed): it is the benchmark's own text.

    python benchmarks/train_texts.py ncbi-disease 100 runs/quality/ncbi-disease-train-100.txt
"""

from __future__ import annotations

import sys
from pathlib import Path

from medsynth.data.corpora import ner as corpora
from medsynth.data.corpora import read_corpus
from medsynth.data.tokens import detokenize


def sampled_train(corpus: str, n: int, seed: int = 13) -> list[corpora.IOBSentence]:
    """The seeded train sample of any corpus `read_corpus` reads (a preset such as chemprot-gene, or a path);
    `annotate_vs_gold.py` scores against the same one, so slot i is sentence i."""
    return corpora.sample(read_corpus(corpus, "ner").split("train"), n, seed)


def main(corpus: str, n: int, out: str, seed: int = 13) -> None:
    sentences = sampled_train(corpus, n, seed)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("".join(detokenize(s.tokens)[0] + "\n" for s in sentences), encoding="utf-8")
    print(f"wrote {len(sentences)} {corpus} train sentences (seed {seed}) to {out}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])

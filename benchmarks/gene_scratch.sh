#!/usr/bin/env bash
# Issue 22 development run: a gene task written from scratch (benchmarks/tasks/gene-scratch.yaml), scored on
# ChemProt's gene mentions, devel split only (250 seeded sentences; test is not scored until a recipe is chosen).
# Steps, each resumable (the committed runs under benchmarks/data/ replay with 0 LLM calls):
#   1. zero-shot prompting of the same Qwen;
#   2. 150 generated examples with the defaults (distractor vocabulary, mention-free recheck, span conventions
#      from the labelled --reference);
#   3. the LLM's labels on 600 sentences of OTHER corpora (NCBI-disease and BC5CDR train text, labels discarded;
#      the 13-gram scan against ChemProt devel and test finds no overlap), greedy;
#   4. MiniLM trained on 2, on 3, on 2 + 3, and on 2 + the first 200 texts labelled with 3 votes (weights from
#      the vote agreement), three seeds each, scored with `bench --model`. (The committed table has annot600 for
#      seed 13 only.)
# Label quality of annotate mode (greedy vs 3 votes) on 100 ChemProt train sentences: benchmarks/annotate_vs_gold.py.
set -euo pipefail
cd "$(dirname "$0")/.."
M=".venv/bin/medsynth"
T=benchmarks/tasks/gene-scratch.yaml
OUT=benchmarks/results/gene-scratch-chemprot-devel
TEXTS=runs/gene-other-texts-600.txt
TEXTS300=runs/gene-other-texts-300.txt  # its first 300 lines (the voted run labels the first 200)
mkdir -p runs
.venv/bin/python - "$TEXTS" "$TEXTS300" <<'PY'
import random, sys
from medsynth.data.corpora import read_corpus
from medsynth.data.tokens import detokenize
pool = [detokenize(s.tokens)[0] for c in ("ncbi-disease", "bc5cdr") for s in read_corpus(c, "ner").split("train")]
first = random.Random(13).sample(pool, 300)
taken = set(first)
more = random.Random(14).sample([p for p in pool if p not in taken], 300)
open(sys.argv[1], "w", encoding="utf-8").write("\n".join(first + more) + "\n")
open(sys.argv[2], "w", encoding="utf-8").write("\n".join(first) + "\n")
PY
$M bench ner --dataset chemprot-gene --split devel --limit 250 --task-file $T --systems zero-shot --out $OUT
$M build ner --task-file $T --reference chemprot-gene --n 150 --out benchmarks/data/gene-scratch-qwen
$M build ner --task-file $T --annotate $TEXTS --out benchmarks/data/gene-annot-other600-qwen
$M build ner --task-file $T --annotate $TEXTS300 --n 200 --votes 3 --out benchmarks/data/gene-annot-other200-votes3-qwen
MODELS=()
for s in 13 14 15; do
  $M train --data benchmarks/data/gene-scratch-qwen --out models/gene-gen150-s$s --seed $s
  $M train --data benchmarks/data/gene-annot-other600-qwen --out models/gene-annot600-s$s --seed $s
  $M train --data benchmarks/data/gene-scratch-qwen --data benchmarks/data/gene-annot-other600-qwen \
    --out models/gene-mix600-s$s --seed $s
  $M train --data benchmarks/data/gene-scratch-qwen --data benchmarks/data/gene-annot-other200-votes3-qwen \
    --use-weights --out models/gene-mix-s$s --seed $s
  MODELS+=(--model gen150-s$s=models/gene-gen150-s$s --model annot600-s$s=models/gene-annot600-s$s
           --model mix600-s$s=models/gene-mix600-s$s --model mix-s$s=models/gene-mix-s$s)
done
$M bench ner --dataset chemprot-gene --split devel --limit 250 --task-file $T "${MODELS[@]}" --out $OUT

# 5. (session 14) varied look-alikes, no LLM: the 150 generated examples plus 3 copies of each sentence with planned
#    look-alikes, each replaced by another term of its distractor group (`export --vary-distractors 3`), seeds
#    13-15; the same with mentions varied too (`--vary-mentions`, seed 13); and the varied set mixed with the 200
#    voted LLM-labelled sentences (weights, seeds 13-15; seed 15 in session 15).
$M export --run benchmarks/data/gene-scratch-qwen --n 150 --task-file $T --vary-distractors 3 --out runs/gene-gen150-vary3
$M export --run benchmarks/data/gene-scratch-qwen --n 150 --task-file $T --vary-distractors 3 --vary-mentions \
  --out runs/gene-gen150-varym3
MODELS=()
for s in 13 14 15; do
  $M train --data runs/gene-gen150-vary3 --out models/gene-gen150-vary3-s$s --seed $s
  MODELS+=(--model gen150-vary3-s$s=models/gene-gen150-vary3-s$s)
done
$M train --data runs/gene-gen150-varym3 --out models/gene-gen150-varym3-s13 --seed 13
for s in 13 14 15; do
  $M train --data runs/gene-gen150-vary3 --data benchmarks/data/gene-annot-other200-votes3-qwen --use-weights \
    --out models/gene-mix-vary3-s$s --seed $s
  MODELS+=(--model mix-vary3-s$s=models/gene-mix-vary3-s$s)
done
MODELS+=(--model gen150-varym3-s13=models/gene-gen150-varym3-s13)
$M bench ner --dataset chemprot-gene --split devel --limit 250 --task-file $T "${MODELS[@]}" --out $OUT

# 6. (session 15) K = 6 against K = 3, both retrained with the committed code (seed 13); K stays 3.
$M export --run benchmarks/data/gene-scratch-qwen --n 150 --task-file $T --vary-distractors 6 --out runs/gene-gen150-vary6
for K in 6 3; do
  $M train --data runs/gene-gen150-vary$K --out models/gene-gen150-vary$K-s13c --seed 13
done
$M bench ner --dataset chemprot-gene --split devel --limit 250 --task-file $T \
  --model gen150-vary6-s13c=models/gene-gen150-vary6-s13c --model gen150-vary3-s13c=models/gene-gen150-vary3-s13c --out $OUT

# 7. (session 15, not adopted) span conventions without name pieces: a second 150-example run, built with the code
#    of commit b36a2f4 (later reverted; the run keeps its conventions in its identity, so it replays and exports).
$M build ner --task-file $T --reference chemprot-gene --n 150 --out benchmarks/data/gene-scratch-conv2-qwen
$M export --run benchmarks/data/gene-scratch-conv2-qwen --n 150 --task-file $T --vary-distractors 3 --out runs/gene-conv2-vary3
MODELS=()
for s in 13 14 15; do
  $M train --data runs/gene-conv2-vary3 --out models/gene-conv2-vary3-s$s --seed $s
  MODELS+=(--model conv2-vary3-s$s=models/gene-conv2-vary3-s$s)
done
$M bench ner --dataset chemprot-gene --split devel --limit 250 --task-file $T "${MODELS[@]}" --out $OUT

# 8. (session 18) 500 generated examples: the committed run resumed from 150 to 500 (same task, same derived
#    conventions; the first 150 are unchanged, so every row above replays), exported with the recipe's
#    `--vary-distractors 3`, seeds 13-15. Then (seed 13, not adopted) the 600 LLM-labelled other-corpus sentences
#    kept only where the 500-example model returns the same spans (benchmarks/agree_filter.py), mixed in.
$M build ner --task-file $T --reference chemprot-gene --n 500 --out benchmarks/data/gene-scratch-qwen
$M export --run benchmarks/data/gene-scratch-qwen --n 500 --task-file $T --vary-distractors 3 --out runs/gene-gen500-vary3
MODELS=()
for s in 13 14 15; do
  $M train --data runs/gene-gen500-vary3 --out models/gene-gen500-vary3-s$s --seed $s
  MODELS+=(--model gen500-vary3-s$s=models/gene-gen500-vary3-s$s)
done
.venv/bin/python benchmarks/agree_filter.py --model models/gene-gen500-vary3-s13 \
  --data benchmarks/data/gene-annot-other600-qwen --out runs/gene-annot600-agreed
$M train --data runs/gene-gen500-vary3 --data runs/gene-annot600-agreed --out models/gene-gen500-agree-s13 --seed 13
MODELS+=(--model gen500-agree-s13=models/gene-gen500-agree-s13)
$M bench ner --dataset chemprot-gene --split devel --limit 250 --task-file $T "${MODELS[@]}" --out $OUT

# 9. (session 18) the test split, scored once for the best devel recipe (500 generated + varied copies), beside
#    zero-shot prompting on the same 250 seeded test sentences.
$M bench ner --dataset chemprot-gene --split test --limit 250 --task-file $T --systems zero-shot \
  --model gen500-vary3-s13=models/gene-gen500-vary3-s13 --model gen500-vary3-s14=models/gene-gen500-vary3-s14 \
  --model gen500-vary3-s15=models/gene-gen500-vary3-s15 --out benchmarks/results/gene-scratch-chemprot-test

# 10. (session 18, not adopted) the NCBI recipe's repairs on the 500-example export: span rules from the derived
#     conventions and lone-abbreviation copies (seed 13).
$M export --run benchmarks/data/gene-scratch-qwen --n 500 --task-file $T --vary-distractors 3 --reuse-abbreviations \
  --apply-span-rules --out runs/gene-gen500-vary3-spans-abbr
$M train --data runs/gene-gen500-vary3-spans-abbr --out models/gene-gen500-vary3-spans-abbr-s13 --seed 13
$M bench ner --dataset chemprot-gene --split devel --limit 250 --task-file $T \
  --model gen500-vary3-spans-abbr-s13=models/gene-gen500-vary3-spans-abbr-s13 --out $OUT

# 11. (session 19) decode steps at prediction (`DecodeConfig`): the same 500-example export, re-exported so its
#     stats.json carries the task's span rules (derived conventions included; same data hash), trained again
#     (seeds 13-15) so the models apply them; scored on devel with the rules only (--min-confidence 0) and with
#     the defaults (rules + confidence threshold 0.9, chosen on devel by benchmarks/decode_sweep.py), then the
#     defaults once on test.
$M export --run benchmarks/data/gene-scratch-qwen --n 500 --task-file $T --vary-distractors 3 --out runs/gene-gen500-vary3
RULES=(); DECODE=()
for s in 13 14 15; do
  $M train --data runs/gene-gen500-vary3 --out models/gene-gen500-rules-s$s --seed $s
  RULES+=(--model gen500-rules-s$s=models/gene-gen500-rules-s$s)
  DECODE+=(--model gen500-decode-s$s=models/gene-gen500-rules-s$s)
done
$M bench ner --dataset chemprot-gene --split devel --limit 250 --task-file $T "${RULES[@]}" --min-confidence 0 --out $OUT
$M bench ner --dataset chemprot-gene --split devel --limit 250 --task-file $T "${DECODE[@]}" --out $OUT
$M bench ner --dataset chemprot-gene --split test --limit 250 --task-file $T "${DECODE[@]}" \
  --out benchmarks/results/gene-scratch-chemprot-test

#!/usr/bin/env bash
# Learning-curve points under several training seeds on a lent GPU machine, run from the repository root with
# .devcarry from `benchmarks/device/bundle.sh ncbi-disease/MTL-Bioinformatics-2016/NCBI-disease-IOB
# bc5cdr/MTL-Bioinformatics-2016/BC5CDR-chem-IOB` and these runs/ folders carried:
#   BC5CDR-chemical: runs/ner-{50,100,200,500}  (python -m medsynth export --run benchmarks/data/ner-qwen --n K
#                    --out runs/ner-K), seeds 13-17 → benchmarks/results/bc5cdr-chem-seed-sweep-gpu
#   NCBI-disease:    runs/ncbi-disease-reference-250 and -250-spans-abbr (export --n 250 of
#                    benchmarks/data/ncbi-disease-reference-qwen, the second with --apply-span-rules
#                    --reuse-abbreviations), seeds 13-22, set beside the 500-example models of ncbi-seed-sweep.sh
# The encoder caveat of ncbi-seed-sweep.sh holds here too.
set -uo pipefail
source benchmarks/device/setup.sh
JOBS=5 SEEDS="${SEEDS:-13 14 15 16 17}" benchmarks/seed_sweep.sh bc5cdr-chem $OUT/bc5cdr \
  runs/ner-50 runs/ner-100 runs/ner-200 runs/ner-500 &
JOBS=5 SEEDS="${NCBI_SEEDS:-13 14 15 16 17 18 19 20 21 22}" benchmarks/seed_sweep.sh ncbi-disease $OUT/ncbi \
  runs/ncbi-disease-reference-250 runs/ncbi-disease-reference-250-spans-abbr
wait
cd $OUT && tar czf sweep.tgz --exclude=models --exclude=work bc5cdr ncbi && ls -la sweep.tgz

#!/usr/bin/env bash
# BC5CDR-chemical learning curve under five training seeds on a lent GPU machine, run from the repository root with
# .devcarry from `benchmarks/device/bundle.sh bc5cdr/MTL-Bioinformatics-2016/BC5CDR-chem-IOB` and runs/ner-{50,100,
# 200,500} (`python -m medsynth export --run benchmarks/data/ner-qwen --n K --out runs/ner-K`) carried;
# results → benchmarks/results/bc5cdr-chem-seed-sweep-gpu. The encoder caveat of ncbi-seed-sweep.sh holds here too.
set -uo pipefail
source benchmarks/device/setup.sh
JOBS=5 SEEDS="${SEEDS:-13 14 15 16 17}" benchmarks/seed_sweep.sh bc5cdr-chem $OUT/synthetic \
  runs/ner-50 runs/ner-100 runs/ner-200 runs/ner-500
cd $OUT && tar czf sweep.tgz --exclude=models --exclude=work synthetic && ls -la sweep.tgz

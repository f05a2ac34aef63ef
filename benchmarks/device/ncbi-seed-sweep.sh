#!/usr/bin/env bash
# NCBI-disease seed sweep on a lent GPU machine (one H200, 16 cores, no network), run from the repository root
# with .devcarry from `benchmarks/device/bundle.sh ncbi-disease/MTL-Bioinformatics-2016/NCBI-disease-IOB` and the
# two runs/ folders below carried; results → benchmarks/results/ncbi-seed-sweep-gpu. Because the encoder travelled
# as fp16, these models start from MiniLM's weights rounded to fp16: one reason, besides GPU arithmetic, that a seed
# here is not the same model as that seed on the CPU.
set -uo pipefail
source benchmarks/device/setup.sh
A=runs/ncbi-disease-reference-500
B=runs/ncbi-disease-reference-500-spans-abbr
# 1. One model alone on the GPU, timed, then `predict` from the saved folder.
start=$SECONDS
$PY -m medsynth train --data $B --out /tmp/solo --encoder $ENCODER --device $DEVICE --seed 13 --no-progress \
  $SMALL_ARGS 2>&1 | tail -4
echo "solo train: $((SECONDS - start)) s wall, process start and model load included"
$PY -m medsynth predict --model /tmp/solo \
  "A germline mutation of the APC gene causes familial adenomatous polyposis and colorectal cancer."
# 2. Ten training seeds of both 500-example sets, and three of the supervised upper bound, several at once.
JOBS=3 SEEDS="13 14 15" benchmarks/seed_sweep.sh ncbi-disease $OUT/supervised supervised &
JOBS=5 SEEDS="${SEEDS:-13 14 15 16 17 18 19 20 21 22}" benchmarks/seed_sweep.sh ncbi-disease $OUT/synthetic $A $B
wait
cd $OUT && tar czf sweep.tgz --exclude=models --exclude=work synthetic supervised && ls -la sweep.tgz

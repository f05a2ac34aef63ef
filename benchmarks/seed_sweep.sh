#!/usr/bin/env bash
# Train and score the same small-model systems under several training seeds, so that a difference between two
# training sets (or against zero-shot) can be told apart from seed noise. One results folder per seed
# (OUTROOT/seed<S>), each a normal `bench` folder; `benchmarks/seed_sweep.py OUTROOT` summarises them.
#
#   SEEDS="13 14 15" benchmarks/seed_sweep.sh ncbi-disease OUTROOT runs/A runs/B [supervised]
#   JOBS=4 DEVICE=cuda SEEDS="$(seq -s' ' 13 22)" benchmarks/seed_sweep.sh ncbi-disease OUTROOT runs/A
#
# Each argument after OUTROOT is a medsynth dataset folder (a `synthetic-<folder>` system) or the word
# `supervised` (the real train split). Environment: SEEDS, JOBS (seeds run at once; 1 on a CPU, several on a GPU),
# DEVICE (auto, cpu, cuda), ENCODER (minilm or any HF path or id), TASK (default: the dataset's), DATA_DIR, LIMIT
# (a sample drawn with each seed, so seeds see different sentences: `seed_sweep.py --baseline` needs the full split),
# BENCH_ARGS (more `bench` options, e.g. "--epochs 5"). OUTROOT/machine.txt records where the runs happened.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${1:?usage: $0 DATASET OUTROOT DATA... [supervised]}
OUTROOT=${2:?usage: $0 DATASET OUTROOT DATA... [supervised]}
shift 2
[ $# -gt 0 ] || { echo "$0: name at least one dataset folder or 'supervised'" >&2; exit 2; }
PY=${PY:-.venv/bin/python}
case "$DATASET" in
  ncbi-disease) TASK=${TASK:-ncbi-disease.v1} ;;
  bc5cdr-chem|bc5cdr-disease|bc5cdr) TASK=${TASK:-ner} ;;
  *) echo "$0: unknown dataset $DATASET (ncbi-disease, bc5cdr-chem, bc5cdr-disease, bc5cdr)" >&2; exit 2 ;;
esac
SYSTEMS=()
TRAIN_ARGS=()
for item in "$@"; do
  if [ "$item" = supervised ]; then
    SYSTEMS+=(supervised)
  elif [ -d "$item" ]; then
    TRAIN_ARGS+=(--train-data "$item")
  else
    echo "$0: $item is neither a dataset folder nor 'supervised'" >&2; exit 2
  fi
done
[ ${#TRAIN_ARGS[@]} -eq 0 ] || SYSTEMS=(synthetic "${SYSTEMS[@]}")
SYSTEMS_CSV=$(IFS=,; echo "${SYSTEMS[*]}")
mkdir -p "$OUTROOT"
{
  printf '%s; %s cores (%s)' "$(date -u +%F)" "$(getconf _NPROCESSORS_ONLN)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  command -v nvidia-smi >/dev/null && printf '; GPU %s' "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
  printf '; torch %s; JOBS=%s\n' "$($PY -c 'import torch; print(torch.__version__)')" "${JOBS:-1}"
} > "$OUTROOT/machine.txt"

run_seed() {
  local seed=$1
  $PY -m medsynth bench ner --task "$TASK" --dataset "$DATASET" --systems "$SYSTEMS_CSV" "${TRAIN_ARGS[@]}" \
    --name-by-data --seed "$seed" --out "$OUTROOT/seed$seed" --no-progress \
    ${DEVICE:+--device $DEVICE} ${ENCODER:+--encoder $ENCODER} ${DATA_DIR:+--data-dir $DATA_DIR} \
    ${LIMIT:+--limit $LIMIT} ${BENCH_ARGS:-} > "$OUTROOT/seed$seed.log" 2>&1 \
    && echo "seed $seed done" || { echo "seed $seed FAILED (see $OUTROOT/seed$seed.log)"; return 1; }
}

status=0
running=0
for seed in ${SEEDS:-13 14 15}; do
  run_seed "$seed" &
  running=$((running + 1))
  if [ "$running" -ge "${JOBS:-1}" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
exit $status

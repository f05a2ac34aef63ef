#!/usr/bin/env bash
# Reproduce a relation-extraction comparison: zero-shot Qwen vs. a MiniLM relation classifier trained on N
# synthetic examples (a few sizes) vs. the same classifier trained on the real train split.
#
#   benchmarks/re_bench.sh gad               # generate (resumes), train, score; hours on 2 cores
#   REPORT_ONLY=1 benchmarks/re_bench.sh gad # tables from the committed predictions (seconds)
#
# DATASET: gad (task gad; BioBERT 10-fold, FOLDS picks folds), chemprot (task chemprot), bc5cdr-cid (task cdr).
# Environment: SIZES ("30 60"), N (examples to generate, >= largest size), LIMIT (test pairs per fold; unset =
# all), FOLDS (gad only, e.g. "1"), SYSTEMS, THREADS (LLM threads), MAX_STEPS (cap per training run).
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${1:?usage: $0 gad|chemprot|bc5cdr-cid}
PY=${PY:-.venv/bin/python}
case "$DATASET" in
  gad) TASK=gad ;;
  chemprot) TASK=chemprot ;;
  bc5cdr-cid) TASK=cdr ;;
  *) echo "unknown dataset $DATASET (gad, chemprot, bc5cdr-cid)" >&2; exit 2 ;;
esac
RUN=benchmarks/data/$TASK-qwen
OUT=benchmarks/results/re-$DATASET
SIZES=${SIZES:-"30 60"}
LARGEST=$(echo $SIZES | tr ' ' '\n' | sort -n | tail -1)
N=${N:-$LARGEST}
COMMON=(--task "$TASK" --dataset "$DATASET" --out "$OUT" ${FOLDS:+--folds $FOLDS})

if [ "${REPORT_ONLY:-0}" = 1 ]; then
  exec $PY -m medsynth bench re "${COMMON[@]}" --report-only
fi

# 1. Generate (resumable: re-running continues where it stopped; cached requests cost nothing).
$PY -m medsynth build re --task $TASK --n "$N" --out "$RUN" ${THREADS:+--threads $THREADS}
# 2. Learning-curve subsets: the first k examples of the same run (no LLM calls).
TRAIN_ARGS=()
for k in $SIZES; do
  $PY -m medsynth export --run "$RUN" --n "$k" --out "runs/$TASK-$k"
  TRAIN_ARGS+=(--train-data "runs/$TASK-$k")
done
# 3. Score every system; predictions are stored under $OUT/predictions.
$PY -m medsynth bench re "${COMMON[@]}" --systems "${SYSTEMS:-zero-shot,synthetic,supervised}" "${TRAIN_ARGS[@]}" \
  ${LIMIT:+--limit $LIMIT} ${MAX_STEPS:+--max-steps $MAX_STEPS} ${THREADS:+--threads $THREADS}

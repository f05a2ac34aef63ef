#!/usr/bin/env bash
# Reproduce an NER learning curve: zero-shot Qwen vs. MiniLM trained on N synthetic examples vs. supervised.
#
#   benchmarks/ner_learning_curve.sh ncbi-disease            # full run (hours on 2 cores; resumes)
#   REPORT_ONLY=1 benchmarks/ner_learning_curve.sh ncbi-disease   # tables from committed predictions (seconds)
#
# DATASET: ncbi-disease (task ncbi-disease.v1) or bc5cdr-chem (task ner, Chemical scored, Disease dropped).
# Environment: TASK and RUN (another task version and its run folder, e.g. TASK=ncbi-disease.v2
# RUN=benchmarks/data/ncbi-disease-v2-qwen), REFERENCE (a corpus whose statistics the plan matches, e.g.
# REFERENCE=ncbi-disease RUN=benchmarks/data/ncbi-disease-reference-qwen), SIZES ("250 500 1000"), N (examples to
# generate, >= largest size), LIMIT (test sentences; unset = the full test split), SYSTEMS, THREADS (LLM threads),
# EPOCHS, MAX_TOKENS (must equal the committed run's: 200, or 256 for ner-qwen).
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${1:?usage: $0 ncbi-disease|bc5cdr-chem}
PY=${PY:-.venv/bin/python}
case "$DATASET" in
  ncbi-disease) TASK=${TASK:-ncbi-disease.v1}; RUN=${RUN:-benchmarks/data/ncbi-disease-qwen}; MAX_TOKENS=${MAX_TOKENS:-200} ;;
  bc5cdr-chem) TASK=${TASK:-ner}; RUN=${RUN:-benchmarks/data/ner-qwen}; MAX_TOKENS=${MAX_TOKENS:-256} ;;
  *) echo "unknown dataset $DATASET (ncbi-disease, bc5cdr-chem)" >&2; exit 2 ;;
esac
NAME=$(basename "$RUN" -qwen)
OUT=benchmarks/results/ner-$DATASET
SIZES=${SIZES:-"250 500 1000"}
LARGEST=$(echo $SIZES | tr ' ' '\n' | sort -n | tail -1)
N=${N:-$LARGEST}

if [ "${REPORT_ONLY:-0}" = 1 ]; then
  exec $PY -m medsynth bench ner --task $TASK --dataset "$DATASET" --out "$OUT" --report-only
fi

# 1. Generate (resumable: re-running continues where it stopped; cached requests cost nothing).
$PY -m medsynth build ner --task $TASK --n "$N" --max-tokens "$MAX_TOKENS" --out "$RUN" ${THREADS:+--threads $THREADS} \
  ${REFERENCE:+--reference $REFERENCE}
# 2. Cut the learning-curve subsets: the first k examples of the same run (no LLM calls).
TRAIN_ARGS=()
for k in $SIZES; do
  $PY -m medsynth export --run "$RUN" --n "$k" --out "runs/$NAME-$k"
  TRAIN_ARGS+=(--train-data "runs/$NAME-$k")
done
# 3. Score every system on the real test split; predictions are stored under $OUT/predictions.
$PY -m medsynth bench ner --task $TASK --dataset "$DATASET" --systems "${SYSTEMS:-zero-shot,synthetic,supervised}" \
  "${TRAIN_ARGS[@]}" --name-by-data --out "$OUT" ${LIMIT:+--limit $LIMIT} ${EPOCHS:+--epochs $EPOCHS} ${THREADS:+--threads $THREADS}

#!/usr/bin/env bash
# Quality-control ablation at one generation budget: which controls move test F1?
#
#   benchmarks/quality_ablation.sh ncbi-disease      # LLM steps resume; models are reused when saved
#   REPORT_ONLY=1 benchmarks/quality_ablation.sh ncbi-disease    # tables from committed predictions (seconds)
#
# Variants, each a MiniLM trained with the same settings on N examples and scored on the full test split:
#   baseline    the first N examples of the committed learning-curve run
#   dedup       the same, near-duplicates dropped (MinHash, Jaccard >= DEDUP_THRESHOLD)
#   judged-minK the same, examples the LLM judge scored below K dropped (train --min-score K)
#   judged-weighted  the same, every example weighted by judge score / 5 (train --use-weights)
#   reference   N new examples planned to match the corpus train split's length / mention / label statistics
#   annotate    N sentences of the corpus *train* split, labels discarded, labelled by the LLM (annotate mode)
# DATASET: ncbi-disease (task ncbi-disease.v1, N=100) or bc5cdr-chem (task ner, N=50; Chemical scored).
# Environment: N, MIN_SCORE (default 5: keep only examples the judge found flawless), DEDUP_THRESHOLD (0.8), THREADS (LLM threads).
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${1:?usage: $0 ncbi-disease|bc5cdr-chem}
PY=${PY:-.venv/bin/python}
case "$DATASET" in
  ncbi-disease) TASK=ncbi-disease.v1; RUN=benchmarks/data/ncbi-disease-qwen; N=${N:-100}; CORPUS=ncbi-disease ;;
  bc5cdr-chem) TASK=ner; RUN=benchmarks/data/ner-qwen; N=${N:-50}; CORPUS=bc5cdr ;;
  *) echo "unknown dataset $DATASET (ncbi-disease, bc5cdr-chem)" >&2; exit 2 ;;
esac
REF_RUN=benchmarks/data/$(basename "$RUN" -qwen)-reference-qwen
OUT=benchmarks/results/quality-$DATASET
W=runs/quality/$DATASET
MIN_SCORE=${MIN_SCORE:-5}
BENCH=(bench ner --task "$TASK" --dataset "$DATASET" --systems synthetic --out "$OUT")

if [ "${REPORT_ONLY:-0}" = 1 ]; then
  exec $PY -m medsynth "${BENCH[@]}" --report-only
fi
LLM=(--max-tokens 200 ${THREADS:+--threads $THREADS})

# 1. LLM steps (each resumes; cached requests cost nothing).
$PY -m medsynth judge "$RUN" --n "$N" ${THREADS:+--threads $THREADS}
$PY -m medsynth build ner --task "$TASK" --reference "$CORPUS" --n "$N" --out "$REF_RUN" "${LLM[@]}"
$PY benchmarks/train_texts.py "$CORPUS" "$N" "$W/train-texts.txt"
$PY -m medsynth build ner --task "$TASK" --annotate "$W/train-texts.txt" --n "$N" --out "$W/annotate" \
  ${THREADS:+--threads $THREADS}

# 2. The variants' datasets (no LLM calls).
$PY -m medsynth export --run "$RUN" --n "$N" --out "$W/baseline"
$PY -m medsynth export --run "$RUN" --n "$N" --out "$W/dedup" --dedup --dedup-threshold "${DEDUP_THRESHOLD:-0.8}"
$PY -m medsynth export --run "$REF_RUN" --n "$N" --out "$W/reference"

# 3. Train and score. Judge options go with the judged baseline only (names get -minK / -weighted).
DEDUP=(--train-data "$W/dedup")
if cmp -s "$W/baseline/data.jsonl" "$W/dedup/data.jsonl"; then
  echo "dedup dropped nothing: the dedup variant is the baseline's data (not trained twice)"; DEDUP=()
fi
$PY -m medsynth "${BENCH[@]}" --train-data "$W/baseline" "${DEDUP[@]}" --train-data "$W/reference" \
  --train-data "$W/annotate"
$PY -m medsynth "${BENCH[@]}" --train-data "$W/baseline" --min-score "$MIN_SCORE"
$PY -m medsynth "${BENCH[@]}" --train-data "$W/baseline" --use-weights

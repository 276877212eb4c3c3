#!/usr/bin/env bash
# The GPU check of issue 13 (benchmarks/gpu_check.py): SantaCoder 1.1B training tokens/s, MFU and
# peak memory (bf16 and fp16 mixed, flash SDPA, activation checkpointing, fused AdamW, eager and
# torch.compile) and generation tokens/s against HF at batch 16 and 64. Sized for <= 8 minutes on
# one H100 (estimate: ~4 min of steps and generation + up to ~2 min of compilation).
#
#   bash benchmarks/gpu_check.sh                       # on the GPU machine, from anywhere
#   bash benchmarks/gpu_check.sh --tiny --device cpu --compile off   # CPU smoke test (seconds)
#
# Extra arguments go to gpu_check.py; PYTHON picks the interpreter (default python3, which on the
# device machine is the one with CUDA PyTorch and transformers). santa's plugins are found through
# entry points, so santa is installed there (editable, no dependencies, offline) when it is not.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "from importlib.metadata import entry_points as e; import sys; sys.exit(not any(p.name == 'mqa' for p in e(group='santa.attention')))" 2>/dev/null; then
  echo "gpu_check: installing santa (editable, --no-deps) for its entry points" >&2
  "$PY" -m pip install -q --no-deps --no-build-isolation -e . >&2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
start=$(date +%s)
"$PY" benchmarks/gpu_check.py "$@"
echo "gpu_check: $(( $(date +%s) - start )) s"

#!/usr/bin/env bash
# The GPU smoke test (scripts/gpu_smoke.py): one line per check of the GPU path, in under 8 minutes on one GPU
# machine. Run it whenever a GPU machine is available, from the repository root of an environment with the `gpu`
# extra installed (CUDA torch, vLLM, DeepSpeed):   bash scripts/gpu_smoke.sh        (or: make gpu-smoke)
# Without a GPU it runs the same checks with CPU stand-ins and says which parts it skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
fi
exec timeout "${SMOKE_TIMEOUT_S:-480}" "$PY" scripts/gpu_smoke.py "$@"

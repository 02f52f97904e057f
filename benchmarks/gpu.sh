#!/usr/bin/env bash
# GPU benchmark in one call (at most 8 minutes): tokens/s and MFU of `scaling train` against a
# hand-written loop (gpt2-small, seq 1024, bf16, compiled), small runs one at a time and packed
# on one GPU, and a 1-GPU DDP run; one table. `benchmarks/gpu.sh --dry` runs it on the CPU at
# tiny sizes (what a machine without a GPU can check). Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 480 "$PYTHON" benchmarks/gpu.py "$@"

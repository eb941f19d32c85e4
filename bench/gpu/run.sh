#!/usr/bin/env bash
# The fast training path on one GPU, unattended, inside 8 minutes on an H100 (bench/gpu/bench.py says
# what each arm measures). Figures go to $OUT/results.md and $OUT/results.json, written after every arm,
# so a run cut short still leaves what it measured.
#
#   OUT=/some/folder bench/gpu/run.sh          # on the GPU machine, from the repository root
#   OUT=/tmp/x bench/gpu/run.sh --tiny         # the same arms on a tiny shape on the CPU (the test suite's run)
#
# Installs nothing but the repository itself, and only where its engine is not importable yet
# (`pip install -e '.[engine,gpu]'`: the gpu extra is Liger's kernels; without them the fused arms
# measure the unfused path and say so in their plan).
set -euo pipefail

cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/gpu-results}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 )}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

if ! "$PYTHON" -c "import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ('engine', 'torch', 'transformers', 'peft')))"; then
    "$PYTHON" -m pip install --quiet -e '.[engine,gpu]'
fi
# 460 s for the arms (each at most 150 s), the rest of the 8 minutes for the start and the base model.
timeout 460 "$PYTHON" bench/gpu/bench.py --out "$OUT" "$@" 2> >(tee "$OUT/bench.log" >&2)

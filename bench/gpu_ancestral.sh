#!/usr/bin/env bash
# The shipped model's card needs FID at n = 10,000 with the paper's 1000-step ancestral sampler: 10 million network
# passes, about 14 hours of one CPU thread (tools/sample_chunks.py does it in resumable chunks), a few minutes on a GPU.
# This is that job in one device call: device run, command "bash bench/gpu_ancestral.sh", carry [".whl"] (the wheels
# bench/gpu_round.sh names), timeout_s 600. It writes $OUT/ancestral_n10000.npz (uint8 [10000, 28, 28, 1]), a grid of
# the first 64 and the log. Score the samples back on the CPU machine (the GPU samples in bf16, as the card says):
#   ddpm-lit evaluate pretrained:fashion_mnist --samples FILES_AT/ancestral_n10000.npz --bpd-n 0 \
#       --json results/reference/eval_ddpm1000_n10000_gpu.json
# Rehearsal on the CPU, one sample: OUT=/tmp/ga N=1 BATCH=1 DEVICE=cpu bash bench/gpu_ancestral.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_ancestral_out}; N=${N:-10000}; BATCH=${BATCH:-2500}; DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
PY=python3; [ -x .venv/bin/python ] && [ "$DEVICE" = cpu ] && PY=.venv/bin/python     # the rehearsal uses the venv
if [ -d .whl ] && [ "$DEVICE" != cpu ]; then       # what the GPU image lacks (fastcore), installed beside it
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>&1 | tail -2
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "$DEVICE"; } | tee "$OUT/device.txt"
$PY -m ddpm_lit sample pretrained:fashion_mnist --sampler ddpm --n "$N" --batch-size "$BATCH" --seed 0 --device "$DEVICE" \
    --npz "$OUT/ancestral_n$N.npz" --out "$OUT/grid.png" --grid-n 64 --no-progress 2>&1 | tee "$OUT/log.txt"
exit "${PIPESTATUS[0]}"

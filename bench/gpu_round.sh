#!/usr/bin/env bash
# The GPU round in one device call (issue: the GPU round). Prepare on the CPU machine first:
#   mkdir -p data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz data/fashion-mnist/
#   .venv/bin/python -m pip download --no-deps -d .whl fastcore diffusers denoising-diffusion-pytorch ema-pytorch pytorch-fid
#   .venv/bin/python -m pytest -q tests/test_gpu_round.py        # the rehearsal at tiny sizes on the CPU
# then: device run, command "bash bench/gpu_round.sh", carry ["data", ".whl"], timeout_s 600.
# On the GPU machine python3 is the image's (torch, safetensors, scipy, accelerate, einops there); the wheels add
# what it lacks, installed beside it (--target) so that nothing of the image is replaced.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_round_out}
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1 DDPM_LIT_DATA=${DDPM_LIT_DATA:-$PWD/data/fashion-mnist}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>&1 | tail -2
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$OUT/device.txt"
python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__)" | tee -a "$OUT/device.txt"
python3 bench/gpu_round.py --out "$OUT" "$@"

#!/usr/bin/env bash
# Fixed-seed outputs of `ddpm-lit train`, `sample` and `evaluate`, hashed, to check that a refactoring changes nothing:
#   bash tools/fixed_seed_outputs.sh OUT_BEFORE        (on the old commit)
#   bash tools/fixed_seed_outputs.sh OUT_AFTER OUT_BEFORE   (on the new one: also compares, exit 1 on a difference)
# Four tiny runs (eps/fixed_large, x0/fixed_small, mu/learned with the hybrid loss, class-conditional), six steps each on
# Fashion-MNIST; every sampler on the first three, guidance on the fourth, DDIM on the shipped model; evaluate (FID,
# precision/recall, bits/dim) on two. Hashes: the EMA and raw weights of each run, the uint8 images of each .npz.
# About 3 minutes on one thread.
set -e
cd "$(dirname "$0")/.."
O=$1; BEFORE=$2; rm -rf "$O"; mkdir -p "$O"
export OMP_NUM_THREADS=1
L=.venv/bin/ddpm-lit
for kw in "eps fixed_large simple" "x0 fixed_small simple" "mu learned hybrid"; do set -- $kw
  $L train --out $O/run_$1 --model tiny --image-size 28 --T 50 --batch-size 8 --steps 6 --ckpt-every 6 --warmup 2 \
     --parameterization $1 --var-type $2 --loss $3 --device cpu --no-progress > $O/train_$1.log 2>&1
  for s in ddpm ddim dpm++2m dpm++3m dpm++2m-sde; do
    $L sample $O/run_$1 --sampler $s --steps 5 -n 4 --npz $O/s_$1_$s.npz --out $O/s_$1_$s.png --device cpu --no-progress > /dev/null 2>&1
  done
done
$L sample $O/run_eps --sampler ddim --steps 5 --eta 1 -n 4 --npz $O/s_eps_ddim_eta1.npz --device cpu --no-progress > /dev/null
$L train --out $O/run_cond --model tiny --image-size 28 --T 50 --batch-size 8 --steps 6 --ckpt-every 6 --warmup 2 --class-cond \
   --device cpu --no-progress > $O/train_cond.log 2>&1
$L sample $O/run_cond --sampler dpm++2m --steps 5 -n 4 --class Sandal --guidance 2 --npz $O/s_cond.npz --device cpu --no-progress > /dev/null
$L sample pretrained:fashion_mnist --sampler ddim --steps 10 -n 8 --npz $O/s_pre_ddim.npz --device cpu --no-progress > /dev/null
$L evaluate $O/run_x0 --n 64 --sampler ddim --steps 5 --bpd-n 4 --json $O/eval_x0.json --device cpu --no-progress > $O/eval_x0.log 2>&1
$L evaluate $O/run_mu --n 64 --sampler ddpm --bpd-n 4 --json $O/eval_mu.json --device cpu --no-progress > $O/eval_mu.log 2>&1
.venv/bin/python - "$O" "$BEFORE" <<'PY'
import sys, hashlib, glob, os, json
import numpy as np, torch
O, before = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ''
out = {}
for f in sorted(glob.glob(f'{O}/*.npz')): out[os.path.basename(f)] = hashlib.sha256(np.load(f)['arr_0'].tobytes()).hexdigest()[:16]
for d in sorted(glob.glob(f'{O}/run_*')):
    sd = torch.load(sorted(glob.glob(f'{d}/checkpoints/*'))[-1], map_location='cpu', weights_only=True)
    h = hashlib.sha256()
    for k in ('model', 'ema'):
        for n, v in sorted(sd[k].items()): h.update(n.encode()); h.update(v.cpu().numpy().tobytes())
    out[os.path.basename(d)] = h.hexdigest()[:16]
for f in sorted(glob.glob(f'{O}/eval_*.json')):
    j = json.load(open(f)); out[os.path.basename(f)] = {k: v for k, v in j.items() if not k.endswith('time_s') and k not in ('checkpoint', 'samples_npz', 'config')}   # config: the settings record (new in 1fe5f62)
json.dump(out, open(f'{O}/hashes.json', 'w'), indent=1)
if before:
    b = json.load(open(f'{before}/hashes.json'))
    diff = [k for k in b if b[k] != out.get(k)]
    print(f"{len(b) - len(diff)} of {len(b)} outputs identical" + (f"; different: {diff}" if diff else ''))
    sys.exit(1 if diff else 0)
print(f"wrote {O}/hashes.json ({len(out)} outputs)")
PY

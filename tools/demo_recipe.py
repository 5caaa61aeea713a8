"""Quality of a short CPU run of the `demo` preset with overrides: train it (one thread), then FID on our classifier of N
samples (DDIM-50, eta 0 and eta 1, seed 0) from its EMA weights. One JSON line on stdout. Overrides apply to the `demo`
preset as it was before this search (BASE: lr 2e-3, no Min-SNR weighting); results/demo_speed/recipes.json has the runs
that chose today's preset (lr 5e-3, min_snr_gamma 2, 2800 steps).

Usage: OMP_NUM_THREADS=1 .venv/bin/python tools/demo_recipe.py NAME STEPS [lr=5e-3 min_snr_gamma=2 batch_size=32 ...] [--n=500]
Runs go to runs/recipe/NAME (git-ignored).
"""
import json, subprocess, sys, time
from pathlib import Path
import torch
from ddpm_lit.train import preset, Trainer
from ddpm_lit.sample import generate, to_uint8, save_npz

BASE = dict(lr=2e-3, min_snr_gamma=0.0)    # the demo preset's values before the search
CONV = {'lr': float, 'warmup': int, 'ema_decay': float, 'batch_size': int, 'lr_schedule': str, 'schedule': str,
        'parameterization': str, 'model': str, 'min_snr_gamma': float}

def main():
    torch.set_num_threads(1)
    name, steps, *rest = sys.argv[1:]
    n = int(next((r.split('=', 1)[1] for r in rest if r.startswith('--n=')), 500))
    kw = {k: CONV[k](v) for k, v in (r.split('=', 1) for r in rest if not r.startswith('--'))}
    cfg = preset('demo', steps=int(steps), device='cpu', ckpt_every=10**7, log_every=100, **{**BASE, **kw})
    out = Path('runs/recipe') / name
    t0 = time.time(); tr = Trainer(cfg, out); tr.fit(progress=False); train_s = time.time() - t0
    res = dict(name=name, steps=int(steps), overrides=kw, train_s_1thread=round(train_s), n=n, sampler='DDIM-50, seed 0')
    for eta in (0.0, 1.0):
        x = generate(tr.ema, tr.sched, n, tr.data.shape, 'ddim', 50, eta=eta, parameterization=cfg.parameterization, seed=0, progress=False)
        p = out / f'samples_eta{eta:g}.npz'; save_npz(to_uint8(x), p)
        js = out / f'fid_eta{eta:g}.json'
        subprocess.run([sys.executable, '-m', 'ddpm_lit', 'evaluate', str(out), '--samples', str(p), '--n', str(n), '--bpd-n', '0',
                        '--no-progress', '--json', str(js)], check=True, capture_output=True)
        ev = json.loads(js.read_text())
        res[f'fid_eta{eta:g}'], res['floor'] = round(ev['fid'], 2), round(ev['fid_floor'], 2)
    print(json.dumps(res), flush=True)

if __name__ == '__main__': main()

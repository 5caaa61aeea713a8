"""EMA against raw weights of one run: FID (n, DDIM-50, seed 0) and a 64-image grid of each, written to results/ema_vs_raw/.

Usage: .venv/bin/python tools/ema_vs_raw.py RUN [--n 1000] [--out results/ema_vs_raw]
"""
import argparse, json, time
from pathlib import Path
import numpy as np
from ddpm_lit.metrics import evaluate
from ddpm_lit.sample import generate, to_uint8
from ddpm_lit.train import load_run

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('run'); p.add_argument('--n', type=int, default=1000); p.add_argument('--out', default='results/ema_vs_raw')
    a = p.parse_args()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    res = {}
    for name, ema in (('ema', True), ('raw', False)):
        t0 = time.time()
        r = evaluate(a.run, n=a.n, sampler='ddim', steps=50, seed=0, device='cpu', bpd_n=0, ema=ema, floor=(name == 'ema'),
                     progress=False)
        res[name] = {k: r[k] for k in ('fid', 'fid_n', 'classifier_score', 'step', 'fid_floor', 'fid_floor_n') if k in r}
        run = load_run(a.run, ema=ema)
        grid = generate(run.model, run.diffusion, 64, run.shape, 'ddim', 50, seed=1, progress=False)
        np.savez_compressed(out / f'{name}_grid.npz', arr_0=to_uint8(grid).numpy())
        print(name, res[name], f'{time.time() - t0:.0f}s', flush=True)
    cfg = load_run(a.run).cfg
    res['run'] = dict(model=cfg.model, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, ema_decay=cfg.ema_decay,
                      ema_warmup=cfg.ema_warmup, dataset=cfg.dataset)
    res['command'] = f"tools/ema_vs_raw.py {a.run} --n {a.n}"
    (out / 'results.json').write_text(json.dumps(res, indent=1))

if __name__ == '__main__': main()

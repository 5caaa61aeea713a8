"""Classifier-free guidance on Fashion-MNIST: train a class-conditional demo run, then for each w the classifier's
accuracy on the samples, FID (classes balanced) and per-class FID, a one-row-per-class grid, and the same network's
unconditional (null-class) FID; written to results/guidance/.

Usage: .venv/bin/python tools/guidance.py [--run runs/guidance] [--steps 1500] [--n 1000] [--ddim-steps 50] [--out results/guidance]
"""
import argparse, json, subprocess, sys, time
from pathlib import Path
import numpy as np
import torch
from ddpm_lit.metrics import evaluate, fid, load_classifier, classifier_score
from ddpm_lit.sample import generate, to_uint8
from ddpm_lit.train import load_run, load_data, checkpoints

WS = (0.0, 0.5, 1.0, 2.0, 4.0)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--run', default='runs/guidance'); p.add_argument('--steps', type=int, default=1500)
    p.add_argument('--n', type=int, default=1000); p.add_argument('--out', default='results/guidance')
    p.add_argument('--ddim-steps', type=int, default=50)
    a = p.parse_args()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    train = [sys.executable, '-m', 'ddpm_lit', 'train', '--preset', 'demo_mini', '--class-cond', '--out', a.run,
             '--steps', str(a.steps), '--no-progress'] + (['--resume'] if checkpoints(a.run) else [])
    t0 = time.time(); subprocess.run(train, check=True); train_s = time.time() - t0
    S = a.ddim_steps
    res = dict(command=f"tools/guidance.py --run {a.run} --steps {a.steps} --n {a.n} --ddim-steps {S}", n=a.n, sampler='ddim', steps=S,
               seed=0, rows=[])
    for w in WS:
        t0 = time.time()
        r = evaluate(a.run, n=a.n, sampler='ddim', steps=S, seed=0, device='cpu', bpd_n=0, floor=(w == 0), guidance=w,
                     progress=False)
        row = {k: r[k] for k in ('guidance', 'fid', 'fid_n', 'accuracy', 'classifier_score', 'fid_per_class_mean',
                                 'fid_per_class', 'fid_floor', 'fid_floor_n', 'step') if k in r}
        res['rows'].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != 'fid_per_class'}), f'{time.time() - t0:.0f}s', flush=True)
        (out / 'results.json').write_text(json.dumps(res, indent=1))
    run = load_run(a.run)
    K = len(run.classes)
    for w in WS:   # the grids: 10 rows (classes) of 8, same noise for every w
        y = torch.arange(K).repeat_interleave(8)
        x = generate(run.model, run.diffusion, len(y), run.shape, 'ddim', S, seed=1, progress=False, y=y, w=w)
        np.savez_compressed(out / f'grid_w{w:g}.npz', arr_0=to_uint8(x).numpy())
    # the same network without labels (the null class): unconditional samples
    x = generate(run.model, run.diffusion, a.n, run.shape, 'ddim', S, seed=0, progress=False)
    test = load_data(run.cfg, train=False); ref = test.to_float(test.images_at(torch.arange(len(test))))
    clf = load_classifier()
    f = fid(x, ref, model=clf)
    res['unconditional'] = dict(fid=f.fid, fid_n=f.n_a, classifier_score=classifier_score(x, clf),
                                note=f'the same network with the null class (no label), DDIM-{S}, seed 0')
    res['run'] = dict(preset='demo_mini', class_cond=True, p_uncond=run.cfg.p_uncond, steps=run.step, train_s=round(train_s),
                      classes=run.classes)
    (out / 'results.json').write_text(json.dumps(res, indent=1))
    print('unconditional', res['unconditional'])

if __name__ == '__main__': main()

"""Classifier-free guidance on Fashion-MNIST, measured on a class-conditional run (by default the shipped
`pretrained:fashion_mnist_cond`): for each guidance strength w, `ddpm-lit evaluate`'s FID (classes balanced) and
per-class FID, the classifier's accuracy on the samples and its score, on two sampling seeds; a one-row-per-class grid
per w; and the same network's unconditional (null-class) FID. Written to results/guidance/results_seeds<SEEDS>.json
with every setting as resolved (run one process per seed side by side; the grids come with seed 0).

Usage: .venv/bin/python tools/guidance.py [--run pretrained:fashion_mnist_cond] [--n 1000] [--sampler ddim] [--steps 25]
                                           [--ws 0,0.5,1,2,4] [--seeds 0,1] [--out results/guidance]
"""
import argparse, json, time
from dataclasses import asdict
from pathlib import Path
import numpy as np
import torch
from ddpm_lit.metrics import EvalConfig, evaluate, fid, load_classifier, classifier_score
from ddpm_lit.sample import SampleConfig, generate, to_uint8
from ddpm_lit.run import load_run, load_data

KEEP = ('guidance', 'fid', 'fid_n', 'accuracy', 'classifier_score', 'fid_per_class_mean', 'fid_per_class', 'fid_floor',
        'fid_floor_n', 'step', 'config')


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--run', default='pretrained:fashion_mnist_cond')
    p.add_argument('--n', type=int, default=1000); p.add_argument('--out', default='results/guidance')
    p.add_argument('--sampler', default='ddim'); p.add_argument('--steps', type=int, default=25)
    p.add_argument('--ws', default='0,0.5,1,2,4'); p.add_argument('--seeds', default='0,1')
    p.add_argument('--add', action='store_true', help="add these w to the existing results file (its other rows and the "
                                                      "unconditional row are kept; the same run and sampler)")
    a = p.parse_args()
    ws, seeds = [float(w) for w in a.ws.split(',')], [int(s) for s in a.seeds.split(',')]
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    name = f"results_seeds{'_'.join(map(str, seeds))}.json"
    run = load_run(a.run)
    res = dict(command=f"tools/guidance.py --run {a.run} --n {a.n} --sampler {a.sampler} --steps {a.steps} --ws {a.ws} --seeds {a.seeds}",
               run=dict(name=a.run, checkpoint=str(run.path), step=run.step, recipe=asdict(run.cfg), classes=run.classes),
               n=a.n, sampler=a.sampler, steps=a.steps, seeds=seeds, rows=[])
    if a.add:
        old = json.loads((out / name).read_text())
        if any(old[k] != res[k] for k in ('n', 'sampler', 'steps', 'seeds')) or old['run']['checkpoint'] != res['run']['checkpoint']:
            p.error(f"--add: {out / name} was made with other settings or another run")
        res['rows'] = [r for r in old['rows'] if r['guidance'] not in ws]
        res['command'] = old['command'] + ' ; ' + res['command'] + ' --add'
        res['unconditional'] = old['unconditional']
    for w in ws:
        for s in seeds:
            t0 = time.time()
            cfg = EvalConfig(n=a.n, sampler=a.sampler, steps=a.steps, guidance=w, seed=s, device='cpu', bpd_n=0,
                             floor=(w == 0 and s == seeds[0]))
            r = evaluate(a.run, cfg, progress=False, log=lambda m: None)
            row = {k: r[k] for k in KEEP if k in r} | dict(seed=s)
            res['rows'] = sorted(res['rows'] + [row], key=lambda r: r['guidance'])
            print(json.dumps({k: v for k, v in row.items() if k not in ('fid_per_class', 'config')}), f'{time.time() - t0:.0f}s', flush=True)
            (out / name).write_text(json.dumps(res, indent=1))
    K = len(run.classes)
    for w in (ws if 0 in seeds else []):   # the grids: one row of 8 per class, the same noise for every w
        y = torch.arange(K).repeat_interleave(8)
        sc = SampleConfig(n=len(y), sampler=a.sampler, steps=a.steps, guidance=w, seed=1)
        x = generate(run.model, sc.diffusion(run.diffusion), sc.n, run.shape, **sc.kwargs(), progress=False, y=y)
        np.savez_compressed(out / f'grid_w{w:g}.npz', arr_0=to_uint8(x).numpy())
    if a.add:
        (out / name).write_text(json.dumps(res, indent=1)); return
    # the same network without labels (the null class): unconditional samples
    test = load_data(run.cfg, train=False); ref = test.to_float(test.images_at(torch.arange(len(test))))
    clf = load_classifier()
    res['unconditional'] = []
    for s in seeds:
        sc = SampleConfig(n=a.n, sampler=a.sampler, steps=a.steps, seed=s)
        x = generate(run.model, sc.diffusion(run.diffusion), sc.n, run.shape, **sc.kwargs(), progress=False)
        f = fid(x, ref, model=clf)
        res['unconditional'].append(dict(fid=f.fid, fid_n=f.n_a, classifier_score=classifier_score(x, clf), seed=s,
                                         config=sc.record(run.diffusion), note='the same network with the null class (no label)'))
        print('unconditional', res['unconditional'][-1]['fid'], flush=True)
    (out / name).write_text(json.dumps(res, indent=1))


if __name__ == '__main__': main()

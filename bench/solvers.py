#!/usr/bin/env python
"""FID against network calls (NFE): ddpm_lit's ODE solvers and diffusers' schedulers driving the same network from the
same initial noise, side by side in one run (chapter 06's fast samplers; a benchmark, not a test).

    OMP_NUM_THREADS=1 .venv/bin/python bench/solvers.py pretrained:fashion_mnist --n 1000 --nfe 5,10,20,50 --seeds 0,1 \
        --limits --json results/solvers/fid_nfe.json

Samplers: ddpm_lit's DDIM (eta 0), DPM-Solver++(2M) and (3M) (each on the 'logsnr' and on the 'uniform' grid), its
stochastic DPM-Solver++(2M) SDE ('dpm++2m-sde'), and diffusers' DDIMScheduler, DPMSolverMultistepScheduler (2M, its
defaults; 'diffusers-dpm++2m-sde': algorithm_type='sde-dpmsolver++') and UniPCMultistepScheduler (its defaults),
each with the run's prediction type; with --limits also 1000-step DDIM (the probability-flow ODE's limit) and 1000-step
ancestral sampling (Algorithm 2, the run's variance). Every sampler of one seed starts from the same x_T (drawn once
per seed, in batches), and every image set is scored by FID on the shipped Fashion-MNIST classifier's features against
the test split (the protocol of `ddpm-lit evaluate`, images rounded to uint8 first), with the seconds per image.
"""
import argparse, json, platform, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / 'ddpm_lit').is_dir() and str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))

import torch
from ddpm_lit.metrics import features, fid_from_features, load_classifier
from ddpm_lit.sample import ddim_sample, ddpm_sample, dpmpp_sample, from_uint8, to_uint8
from ddpm_lit.train import load_data, load_run

DIFFUSERS = ('diffusers-ddim', 'diffusers-dpm++2m', 'diffusers-unipc', 'diffusers-dpm++2m-sde')


def diffusers_sampler(kind:str, r, steps:int):
    "A function x_T -> x_0 driving the run's network with one of diffusers' schedulers (its defaults, the run's schedule)"
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler
    cls = dict(zip(DIFFUSERS, (DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler, DPMSolverMultistepScheduler)))[kind]
    pred = {'eps': 'epsilon', 'x0': 'sample'}[r.cfg.parameterization]
    kw = dict(num_train_timesteps=r.cfg.T, beta_schedule='linear' if r.cfg.schedule == 'linear' else 'squaredcos_cap_v2',
              prediction_type=pred)
    if kind.endswith('-sde'): kw['algorithm_type'] = 'sde-dpmsolver++'
    def run(x):
        s = cls(**kw); s.set_timesteps(steps)
        g = torch.Generator().manual_seed(1)                      # the step noise of the SDE solver
        with torch.inference_mode():
            for t in s.timesteps:
                out = r.model(x, t.repeat(len(x)).to(x.device))[:, :x.shape[1]]
                x = (s.step(out, t, x, generator=g) if kind.endswith('-sde') else s.step(out, t, x)).prev_sample
        return x
    return run


def ours(kind:str, r, steps:int):
    "A function x_T -> x_0 with one of ddpm_lit's samplers: 'ddim', 'ddpm', 'dpm++Km' with an optional '-uniform'/'-karras' grid or '-sde', and '-noclip'"
    kw, d = {}, r.diffusion
    shape = lambda x: tuple(x.shape)
    if kind == 'ddim': return lambda x: ddim_sample(r.model, d, shape(x), steps, x_T=x)
    if kind == 'ddpm': return lambda x: ddpm_sample(r.model, d, shape(x), x_T=x, generator=torch.Generator().manual_seed(1))
    order, rest = int(kind[5]), [w for w in kind.split('-')[1:] if w != 'noclip']
    sde, spacing = rest == ['sde'], rest[0] if rest and rest != ['sde'] else 'logsnr'
    if sde: kw['generator'] = torch.Generator().manual_seed(1)
    if kind.endswith('-noclip'): kw['clip_x0'] = False                 # x̂0 not clipped (diffusers' default)
    return lambda x: dpmpp_sample(r.model, d, shape(x), steps, order=order, spacing=spacing, sde=sde, x_T=x, **kw)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('run', help='a run directory or pretrained:NAME')
    p.add_argument('--n', type=int, default=1000)
    p.add_argument('--nfe', default='5,10,20,50')
    p.add_argument('--seeds', default='0,1')
    p.add_argument('--batch-size', type=int, default=250)
    p.add_argument('--samplers', default='ddim,dpm++2m,dpm++3m,dpm++2m-uniform,dpm++3m-uniform,dpm++2m-sde,' + ','.join(DIFFUSERS))
    p.add_argument('--limits', action='store_true', help='also 1000-step DDIM and 1000-step ancestral (slow)')
    p.add_argument('--json', default=None)
    a = p.parse_args(argv)
    torch.set_grad_enabled(False)
    r = load_run(a.run)
    clf = load_classifier()
    test = load_data(r.cfg, train=False)
    ref = features(test.to_float(test.images_at(torch.arange(len(test)))), model=clf)
    jobs = [(s, int(k)) for s in a.samplers.split(',') for k in a.nfe.split(',')]
    if a.limits: jobs += [('ddim', r.cfg.T), ('ddpm', r.cfg.T)]
    rows = []
    for seed in map(int, a.seeds.split(',')):
        g = torch.Generator().manual_seed(seed)
        x_T = torch.randn((a.n, *r.shape), generator=g)
        for kind, steps in jobs:
            f = diffusers_sampler(kind, r, steps) if kind in DIFFUSERS else ours(kind, r, steps)
            t0 = time.perf_counter()
            x = torch.cat([f(x_T[i:i + a.batch_size]) for i in range(0, a.n, a.batch_size)])
            secs = time.perf_counter() - t0
            u = to_uint8(x)                                   # the images as they would be saved
            res = fid_from_features(features(from_uint8(u), model=clf), ref)
            rows.append(dict(sampler=kind, nfe=steps, seed=seed, n=a.n, fid=round(res.fid, 3), s_per_image=secs / a.n))
            print(f"seed {seed} {kind:18s} NFE {steps:4d}: FID {res.fid:7.2f}  {secs / a.n * 1e3:7.1f} ms/image", flush=True)
    out = dict(command=' '.join(['bench/solvers.py'] + (argv or sys.argv[1:])), run=a.run, step=r.step,
               config=r.cfg.__dict__, fid_reference=f'test split, {len(test)} images', device=platform.processor() or 'cpu',
               threads=torch.get_num_threads(), date=time.strftime('%Y-%m-%d'), rows=rows)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=1, default=str))
        print('wrote', a.json)


if __name__ == '__main__':
    main()

"""Chapter 13's figure: three test images, three masks (left half, centre box, random half of the pixels), RePaint
without (r=1) and with resampling (j=10, r=3), from a trained run; writes results/inpaint/figure.npz and .json.

Usage: .venv/bin/python tools/inpaint_figure.py RUN [--out results/inpaint]
"""
import argparse, json, time
from pathlib import Path
import numpy as np, torch
from ddpm_lit.inpaint import repaint_sample
from ddpm_lit.sample import to_uint8
from ddpm_lit.train import load_run, load_data

def masks(S:int, g:torch.Generator)->torch.Tensor:
    half = torch.ones(S, S); half[:, S // 2:] = 0
    box = torch.ones(S, S); box[S // 4:3 * S // 4, S // 4:3 * S // 4] = 0
    rnd = (torch.rand(S, S, generator=g) < 0.5).float()
    return torch.stack([half, box, rnd])[:, None]                      # [3, 1, S, S]

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0]); p.add_argument('run'); p.add_argument('--out', default='results/inpaint')
    a = p.parse_args()
    r = load_run(a.run); test = load_data(r.cfg, train=False)
    g = torch.Generator().manual_seed(0)
    x = test.to_float(test.images_at(torch.tensor([0, 1, 2])))        # three test images
    m = masks(r.shape[1], g)
    x0 = x.repeat_interleave(3, 0); mm = m.repeat(3, 1, 1, 1)           # every image with every mask: 9
    out = dict(input=to_uint8(x0 * mm + (mm - 1)).numpy(), mask=mm.numpy().astype(np.uint8))
    info = dict(run=str(a.run), step=r.step, model=r.cfg.model, T=r.sched.T)
    for name, (j, rr) in dict(no_resampling=(1, 1), resampling=(10, 3)).items():
        t0 = time.time()
        y = repaint_sample(r.model, r.diffusion, x0, mm, j, rr, generator=torch.Generator().manual_seed(1))
        assert torch.equal(y * mm, x0 * mm)
        out[name] = to_uint8(y).numpy(); info[name] = dict(jump_length=j, resample=rr, seconds=round(time.time() - t0, 1))
        print(name, info[name], flush=True)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    np.savez_compressed(Path(a.out) / 'figure.npz', **out)
    info['command'] = f"tools/inpaint_figure.py {a.run}"
    (Path(a.out) / 'figure.json').write_text(json.dumps(info, indent=1))

if __name__ == '__main__': main()

#!/usr/bin/env python
"""Quality per CPU-minute: FID after equal wall-clock training, ddpm_lit's recipe against the recipes a user would pick
instead (a benchmark, not a test).

    # one recipe, one budget (run the three recipes of a budget side by side, one thread each, on an idle machine):
    OMP_NUM_THREADS=1 .venv/bin/python bench/frontier.py --recipe ddpm_lit --minutes 20 --out bench/results/frontier
    OMP_NUM_THREADS=1 .venv/bin/python bench/frontier.py --recipe lucidrains --minutes 20 --out bench/results/frontier
    OMP_NUM_THREADS=1 .venv/bin/python bench/frontier.py --recipe diffusers --minutes 20 --out bench/results/frontier
    .venv/bin/python bench/frontier.py --table bench/results/frontier --plot bench/results/frontier/frontier.png   # table and plot

Recipes (each trained on the same Fashion-MNIST training images for the same wall-clock minutes, then sampled with its
own library's DDIM with 50 steps, eta 0, n images from seed 0, and scored by `ddpm-lit evaluate --samples` at that n):
* ddpm_lit: the `reference` preset (chapter 07b; the shipped model's recipe) at 28x28.
* lucidrains: denoising-diffusion-pytorch's README recipe: `Unet(dim=64, dim_mults=(1, 2, 4, 8), flash_attn=True)`
  with channels=1, `GaussianDiffusion(image_size=32, timesteps=1000, sampling_timesteps=250)` (its defaults: v
  prediction, sigmoid schedule), its `Trainer`'s defaults (Adam 8e-5 betas (0.9, 0.99), batch 32, EMA 0.995 every
  10 steps, gradient clipping 1); images padded to 32x32 (its U-Net halves the size three times); sampled here with
  its DDIM at 50 steps.
* diffusers: the `train_unconditional.py` example's defaults (UNet2DModel with layers_per_block=2 and its block
  types, AdamW lr 1e-4 betas (0.95, 0.999) weight decay 1e-6, cosine schedule after 500 warm-up steps, EMA with
  inv_gamma 1, power 3/4, max decay 0.9999, DDPMScheduler with 1000 linear steps, epsilon prediction, batch 16), the
  network's widths scaled from (128, 128, 256, 256, 512, 512) at 64 px to (32, 64, 64, 128) at 32 px; sampled with
  DDIMScheduler at 50 steps.
Each run writes <out>/<recipe>_<minutes>min.json (settings, images seen, steps, FID, its command) and .npz (samples).
"""
import argparse, json, math, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / 'ddpm_lit').is_dir() and str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))

import numpy as np
import torch
import torch.nn.functional as F

from ddpm_lit.data import load_image_data
from ddpm_lit.sample import ddim_sample, save_npz, to_uint8

EXE = Path(sys.executable).parent / 'ddpm-lit'


def batches(data, batch:int, seed:int=0):
    "An endless stream of training batches in [-1, 1], 28x28, shuffled per epoch"
    g, n = torch.Generator().manual_seed(seed), len(data)
    while True:
        for idx in torch.randperm(n, generator=g).split(batch):
            if len(idx) == batch: yield data.to_float(data.images_at(idx))


def ddpm_lit_recipe(data, deadline, n, tiny):
    from ddpm_lit.train import Trainer, preset
    cfg = preset('reference', device='cpu', **(dict(model='tiny', batch_size=8) if tiny else {}))
    tr = Trainer(cfg, '/tmp/frontier_ddpm_lit_unused', data)
    while time.time() < deadline: tr.train_step(tr.batch(), None)
    x = ddim_sample(tr.ema, tr.diffusion, (n, 1, 28, 28), 50, generator=torch.Generator().manual_seed(0))
    return x, tr.step, cfg.batch_size, dict(preset='reference', config=cfg.__dict__)


def lucidrains_recipe(data, deadline, n, tiny):
    from denoising_diffusion_pytorch import Unet, GaussianDiffusion
    from ema_pytorch import EMA
    net = Unet(dim=8 if tiny else 64, dim_mults=(1, 2, 4, 8), channels=1, flash_attn=True)
    diff = GaussianDiffusion(net, image_size=32, timesteps=1000, sampling_timesteps=50)   # sampled with DDIM-50 here
    opt = torch.optim.Adam(diff.parameters(), lr=8e-5, betas=(0.9, 0.99))
    ema = EMA(diff, beta=0.995, update_every=10)
    step, bs, it = 0, 8 if tiny else 32, batches(data, 8 if tiny else 32)
    while time.time() < deadline:
        x = F.pad(next(it), (2, 2, 2, 2), value=-1) * 0.5 + 0.5          # 32x32 in [0, 1] (it normalises itself)
        loss = diff(x); opt.zero_grad(); loss.backward()
        torch.nn.utils.clip_grad_norm_(diff.parameters(), 1.0); opt.step(); ema.update(); step += 1
    ema.ema_model.eval()
    with torch.inference_mode():
        torch.manual_seed(0)
        x = torch.cat([ema.ema_model.sample(batch_size=min(250, n - i)) for i in range(0, n, 250)])
    return x[:, :, 2:30, 2:30] * 2 - 1, step, bs, dict(unet=dict(dim=64, dim_mults=(1, 2, 4, 8)), objective='pred_v',
                                                       beta_schedule='sigmoid', lr=8e-5, ema=0.995, batch=bs)


def diffusers_recipe(data, deadline, n, tiny):
    from diffusers import UNet2DModel, DDPMScheduler, DDIMScheduler
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel
    widths = (8, 8, 16, 16) if tiny else (32, 64, 64, 128)
    net = UNet2DModel(sample_size=32, in_channels=1, out_channels=1, layers_per_block=2, block_out_channels=widths,
                      down_block_types=('DownBlock2D', 'DownBlock2D', 'AttnDownBlock2D', 'DownBlock2D'),
                      up_block_types=('UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D', 'UpBlock2D'), norm_num_groups=8)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule='linear')
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8)
    lr = get_cosine_schedule_with_warmup(opt, num_warmup_steps=500, num_training_steps=10**6)  # its length: the budget's steps
    ema = EMAModel(net.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
    step, bs, it = 0, 16, batches(data, 16)
    while time.time() < deadline:
        x0 = F.pad(next(it), (2, 2, 2, 2), value=-1)
        noise, t = torch.randn_like(x0), torch.randint(0, 1000, (bs,))
        loss = F.mse_loss(net(sched.add_noise(x0, noise, t), t).sample, noise)
        opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0); opt.step(); lr.step()
        ema.step(net.parameters()); step += 1
    ema.copy_to(net.parameters()); net.eval()
    ddim = DDIMScheduler(num_train_timesteps=1000, beta_schedule='linear'); ddim.set_timesteps(50)
    g, out = torch.Generator().manual_seed(0), []
    with torch.inference_mode():
        for i in range(0, n, 250):
            x = torch.randn((min(250, n - i), 1, 32, 32), generator=g)
            for t in ddim.timesteps: x = ddim.step(net(x, t).sample, t, x).prev_sample
            out.append(x)
    return torch.cat(out)[:, :, 2:30, 2:30], step, bs, dict(widths=widths, layers_per_block=2, lr=1e-4, batch=bs,
                                                           scheduler='DDPMScheduler linear 1000, epsilon')


RECIPES = dict(ddpm_lit=ddpm_lit_recipe, lucidrains=lucidrains_recipe, diffusers=diffusers_recipe)


def table(folder:Path, plot:str=None):
    "Print every result in `folder` as a table; with `plot`, also draw FID against the training minutes (PNG)"
    rows = sorted((json.loads(p.read_text()) for p in folder.glob('*.json')), key=lambda r: (r['minutes'], r['recipe']))
    print(f"{'recipe':12s} {'minutes':>7s} {'images':>9s} {'FID':>7s}  (n, floor)")
    for r in rows: print(f"{r['recipe']:12s} {r['minutes']:7g} {r['images_seen']:9d} {r['fid']:7.2f}  ({r['n']}, {r['floor']:.2f})")
    if plot:
        import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt, matplotlib.ticker
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for name in RECIPES:
            rr = [r for r in rows if r['recipe'] == name]
            ax.plot([r['minutes'] for r in rr], [r['fid'] for r in rr], 'o-', label=name)
            for r in rr: ax.annotate(f"n={r['n']}", (r['minutes'], r['fid']), fontsize=6, textcoords='offset points', xytext=(4, 2))
        floors = {r['minutes']: r['floor'] for r in rows}
        ax.plot(sorted(floors), [floors[m] for m in sorted(floors)], 'k--', lw=1, label='real images (floor at that n)')
        ax.set(xscale='log', yscale='log', xlabel='training minutes (wall clock, one thread each, side by side on 2 cores)',
               ylabel='FID (classifier features)', title='quality per CPU-minute on Fashion-MNIST')
        ax.set_xticks(sorted(floors)); ax.set_xticklabels([f'{m:g}' for m in sorted(floors)])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=7); fig.tight_layout(); fig.savefig(plot, dpi=120)
        print(f"plot: {plot}")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--recipe', choices=list(RECIPES))
    p.add_argument('--minutes', type=float, default=5)
    p.add_argument('--n', type=int, default=1000)
    p.add_argument('--out', default='bench/results/frontier')
    p.add_argument('--tiny', action='store_true', help='tiny networks: a rehearsal of the code paths')
    p.add_argument('--table', default=None, metavar='FOLDER', help='print the table of every result in FOLDER (nothing is run)')
    p.add_argument('--plot', default=None, metavar='PNG', help='with --table: also plot FID against minutes into PNG')
    a = p.parse_args(argv)
    if a.table: return table(Path(a.table), a.plot)
    torch.manual_seed(0)
    data = load_image_data('fashion_mnist', image_size=28)
    t0 = time.time()
    x, steps, bs, settings = RECIPES[a.recipe](data, t0 + a.minutes * 60, a.n, a.tiny)
    train_and_sample_s = time.time() - t0   # training stops at the deadline; sampling follows
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{a.recipe}_{a.minutes:g}min{'_tiny' if a.tiny else ''}"
    save_npz(to_uint8(x.float().clamp(-1, 1)), stem.with_suffix('.npz'))
    ev = stem.with_name(stem.name + '_eval.json')
    # `evaluate --samples` scores the given images; its RUN argument only names the dataset whose test set is the
    # reference (the shipped Fashion-MNIST model is not sampled)
    subprocess.run([str(EXE), 'evaluate', 'pretrained:fashion_mnist', '--samples', str(stem.with_suffix('.npz')),
                    '--bpd-n', '0', '--json', str(ev), '--no-progress'], check=True, capture_output=True)
    e = json.loads(ev.read_text()); ev.unlink()
    res = dict(recipe=a.recipe, minutes=a.minutes, steps=steps, images_seen=steps * bs, train_s=round(a.minutes * 60),
               train_and_sample_s=round(train_and_sample_s), total_s=round(time.time() - t0), fid=e['fid'], n=e['fid_n'], floor=e.get('fid_floor', float('nan')), settings=settings,
               threads=torch.get_num_threads(), command=' '.join(['bench/frontier.py'] + (argv or sys.argv[1:])),
               date=time.strftime('%Y-%m-%d %H:%M'))
    stem.with_suffix('.json').write_text(json.dumps(res, indent=1, default=str))
    print(json.dumps({k: res[k] for k in ('recipe', 'minutes', 'images_seen', 'fid', 'n', 'floor')}))


if __name__ == '__main__':
    main()

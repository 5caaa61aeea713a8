"""Chapter 13a's results: rate and distortion at every step (Ho et al. Fig. 5, Table 4), x̂0 along reverse chains (Fig. 6),
samples sharing x_t (Fig. 7), interpolation through q and through DDIM inversion (Fig. 8), DDIM reconstruction error vs steps.
Writes small .npz/.json files into --out (default results/progressive), one pair per part.

Usage: .venv/bin/python tools/progressive.py [RUN] [--out results/progressive] [--parts rd,baseline,progressive,latents,interp,ddim]
RUN is anything `load_run` opens (default: the shipped reference model, pretrained:fashion_mnist); a run directory
without a checkpoint is trained first with the command in TRAIN below (a small model, for a quick look).
"""
import argparse, json, math, subprocess, sys, time
from pathlib import Path
import numpy as np, torch
from ddpm_lit.progressive import rate_distortion, rd_summary, reverse_from, interpolate, ddim_invert, ddim_interpolate, PAPER_TABLE4
from ddpm_lit.sample import ddpm_sample, ddim_sample, Recorder, to_uint8
from ddpm_lit.run import load_run, load_data, checkpoints

TRAIN = "ddpm-lit train --preset demo_mini --steps 800 --lr 2e-3 --warmup 50 --ckpt-every 200 --keep-ckpts 100 --out {run}"
PARTS = ('rd', 'baseline', 'progressive', 'latents', 'interp', 'ddim')
u8 = lambda x: to_uint8(x).numpy()[..., 0] if x.shape[-3] == 1 else to_uint8(x).numpy()   # [..., H, W] for one channel

def rd_part(r, test, a, out):
    "Rate and distortion for every t on the first n test images, one evaluation of the bound"
    x0 = test.to_float(test.images_at(torch.arange(a.n_rd)))
    t0 = time.time()
    rd = rate_distortion(r.model, r.diffusion, x0, batch_size=a.batch,
                         generator=torch.Generator().manual_seed(0), progress=True)
    sec = time.time() - t0
    n = x0.shape[0]; se = lambda v: (v.std(0) / math.sqrt(n)).numpy()
    np.savez_compressed(out / 'rd.npz', rate_mean=rd['rate_bpd'].mean(0).numpy(), rate_se=se(rd['rate_bpd']),
                        rmse_mean=rd['distortion_rmse'].mean(0).numpy(), rmse_se=se(rd['distortion_rmse']),
                        rmse_clipped_mean=rd['distortion_rmse_clipped'].mean(0).numpy(),
                        terms_mean=rd['terms_bpd'].mean(0).numpy(), total_bpd=rd['total_bpd'].numpy(),
                        prior_bpd=rd['prior_bpd'].numpy(), decoder_bpd=rd['decoder_bpd'].numpy(),
                        rmse_t0=rd['distortion_rmse'][:, 0].numpy(), rate_t0=rd['rate_bpd'][:, 0].numpy())
    rows = rd_summary(rd)
    for row in rows: row['paper_rate_bpd'], row['paper_rmse'] = PAPER_TABLE4[row['reverse_time']]
    return dict(n=n, test_indices=f"0..{n - 1}", seconds=round(sec, 1), total_bpd=rd['total_bpd'].mean().item(),
                total_se=(rd['total_bpd'].std() / math.sqrt(n)).item(), decoder_bpd=rd['decoder_bpd'].mean().item(),
                rate_bpd=rd['rate_bpd'][:, 0].mean().item(), rows=rows)

def baseline_part(r, test, a, out):
    "The distortion of the best constant guess: RMSE on [0, 255] of the training-set mean image to the rd part's test images"
    t0 = time.time(); train = load_data(r.cfg, train=True); n = len(train); s = 0
    for i in range(0, n, 5000): s = s + train.to_float(train.images_at(torch.arange(i, min(i + 5000, n)))).double().sum(0)
    mean = s / n
    x0 = test.to_float(test.images_at(torch.arange(a.n_rd))).double()
    e = 127.5 * ((x0 - mean) ** 2).mean((1, 2, 3)).sqrt()
    return dict(n=a.n_rd, test_indices=f"0..{a.n_rd - 1}", train_images=n, mean_image_rmse=e.mean().item(),
                mean_image_rmse_se=(e.std() / math.sqrt(len(e))).item(), seconds=round(time.time() - t0, 1))

REC_T = [999, 899, 799, 699, 599, 499, 399, 299, 199, 99, 0]

def progressive_part(r, test, a, out):
    "Fig. 6: x̂0 predicted along n ancestral chains, and its RMSE to the chain's final sample at every step"
    rec = Recorder(); t0 = time.time()
    x = ddpm_sample(r.model, r.diffusion, (a.n_prog, *r.shape), generator=torch.Generator().manual_seed(1), hook=rec, progress=True)
    T = r.sched.T
    rmse = torch.stack([127.5 * ((rec.x0[s] - x) ** 2).mean((1, 2, 3)).sqrt() for s in range(T)], 1)   # [n, T], column = 0-based t
    np.savez_compressed(out / 'progressive.npz', t=np.array(REC_T), x0_pred=np.stack([u8(rec.x0[s]) for s in REC_T], 1),
                        x_t=np.stack([u8(rec.x_t[s]) for s in REC_T], 1), final=u8(x), rmse=rmse.numpy().astype(np.float32))
    return dict(n=a.n_prog, seed=1, sampler=f"ddpm_sample, T = {T}, var_type {r.cfg.var_type}", seconds=round(time.time() - t0, 1))

LAT_T = [999, 749, 499, 249]

def latents_part(r, test, a, out):
    "Fig. 7: chains frozen at x_t for t in LAT_T, four x0 drawn from each x_t"
    rec = Recorder(); t0 = time.time(); n, k = a.n_chains, 4
    ddpm_sample(r.model, r.diffusion, (n, *r.shape), generator=torch.Generator().manual_seed(2), hook=rec, record=LAT_T)
    g = torch.Generator().manual_seed(3); samples, spread = [], []
    for s in LAT_T:
        xs = reverse_from(r.model, r.diffusion, rec.x_t[s].repeat_interleave(k, 0), s, generator=g,
                          progress=True).view(n, k, *r.shape)
        samples.append(u8(xs.flatten(0, 1)).reshape(n, k, *r.shape[1:]))
        d = 127.5 * ((xs[:, :, None] - xs[:, None]) ** 2).mean((3, 4, 5)).sqrt()       # [n, k, k] pairwise RMSE
        spread.append((d.sum((1, 2)) / (k * (k - 1))).tolist())                           # mean over the k(k-1) ordered pairs
    np.savez_compressed(out / 'latents.npz', t=np.array(LAT_T), x_t=np.stack([u8(rec.x_t[s]) for s in LAT_T], 1),
                        x0_pred=np.stack([u8(rec.x0[s]) for s in LAT_T], 1), samples=np.stack(samples, 1))
    return dict(n_chains=n, per_latent=k, seeds=[2, 3], pairwise_rmse=dict(zip(map(str, LAT_T), spread)),
                seconds=round(time.time() - t0, 1))

PAIRS = [(0, 2), (1, 5)]
LAMS = [i / 8 for i in range(9)]
INT_T = [249, 499, 749, 999]

def interp_part(r, test, a, out):
    "Fig. 8: interpolation at t in INT_T through q (shared ε, fixed reverse noise across λ)"
    xa = test.to_float(test.images_at(torch.tensor([p[0] for p in PAIRS])))
    xb = test.to_float(test.images_at(torch.tensor([p[1] for p in PAIRS])))
    t0 = time.time(); res = []
    for s in INT_T:
        y = interpolate(r.model, r.diffusion, xa, xb, s, LAMS, generator=torch.Generator().manual_seed(4), progress=True)
        res.append(u8(y.flatten(0, 1)).reshape(len(LAMS), len(PAIRS), *r.shape[1:]))
    np.savez_compressed(out / 'interp.npz', t=np.array(INT_T), lams=np.array(LAMS), a=u8(xa), b=u8(xb), images=np.stack(res))
    return dict(pairs=PAIRS, seed=4, seconds=round(time.time() - t0, 1))

DDIM_S = [10, 25, 50, 100, 250, 500]

def ddim_part(r, test, a, out):
    "DDIM inversion: reconstruction error against steps on n test images, and slerp interpolation of the PAIRS"
    x0 = test.to_float(test.images_at(torch.arange(100, 100 + a.n_ddim)))
    d = r.diffusion; t0 = time.time(); err, recs = {}, {}
    for S in DDIM_S:
        zT = ddim_invert(r.model, d, x0, S)
        xr = ddim_sample(r.model, d, tuple(x0.shape), S, clip_x0=False, x_T=zT)
        e = 127.5 * ((xr - x0) ** 2).mean((1, 2, 3)).sqrt()
        err[S] = dict(rmse=e.mean().item(), rmse_se=(e.std() / math.sqrt(len(e))).item(), zT_std=zT.std().item()); recs[S] = u8(xr[:8])
        print('ddim', S, err[S], flush=True)
    xa = test.to_float(test.images_at(torch.tensor([q[0] for q in PAIRS])))
    xb = test.to_float(test.images_at(torch.tensor([q[1] for q in PAIRS])))
    y = ddim_interpolate(r.model, d, xa, xb, LAMS, 50)
    np.savez_compressed(out / 'ddim.npz', steps=np.array(DDIM_S), x0=u8(x0[:8]), recon=np.stack([recs[S] for S in DDIM_S]),
                        interp=u8(y.flatten(0, 1)).reshape(len(LAMS), len(PAIRS), *r.shape[1:]), lams=np.array(LAMS))
    return dict(n=a.n_ddim, test_indices=f"100..{99 + a.n_ddim}", recon=err, interp_steps=50, seconds=round(time.time() - t0, 1))

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('run', nargs='?', default='pretrained:fashion_mnist',
                   help='a run, checkpoint or pretrained:NAME (a run directory without a checkpoint is trained with TRAIN first)')
    p.add_argument('--out', default='results/progressive'); p.add_argument('--parts', default=','.join(PARTS))
    p.add_argument('--n-rd', type=int, default=128); p.add_argument('--batch', type=int, default=64)
    p.add_argument('--n-prog', type=int, default=8); p.add_argument('--n-chains', type=int, default=2)
    p.add_argument('--n-ddim', type=int, default=16); p.add_argument('--threads', type=int, default=1)
    a = p.parse_args()
    parts = a.parts.split(',')
    bad = [q for q in parts if q not in PARTS]
    if bad: p.error(f"--parts: unknown {bad}; choose from {PARTS}")
    torch.set_num_threads(a.threads)
    if not a.run.startswith('pretrained:') and not Path(a.run).is_file() and not (Path(a.run).is_dir() and checkpoints(Path(a.run))):
        cmd = TRAIN.format(run=a.run); print('training:', cmd, flush=True)
        subprocess.run([str(Path(sys.executable).parent / 'ddpm-lit'), *cmd.split()[1:]], check=True)
    r = load_run(a.run); test = load_data(r.cfg, train=False)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    for part in parts:
        info = globals()[f'{part}_part'](r, test, a, out)
        info.update(run=str(a.run), checkpoint=str(r.path), step=r.step, model=r.cfg.model, dataset=r.cfg.dataset, T=r.sched.T,
                    var_type=r.cfg.var_type, parameterization=r.cfg.parameterization, threads=a.threads, command=' '.join(['tools/progressive.py', *sys.argv[1:]]))
        (out / f'{part}.json').write_text(json.dumps(info, indent=1))
        print(part, 'done in', info['seconds'], 's', flush=True)

if __name__ == '__main__': main()

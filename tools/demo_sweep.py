"""Quality per training step of CPU demo recipes: train one `demo_mini`-preset run (with overrides and a network) keeping a checkpoint
every 200 steps, then FID of each checkpoint at n = 500 with DDIM-25 (seed 0) on our classifier. One JSON line per
checkpoint on stdout. Used to look for a shorter demo (issue: a five-minute `make demo`); results/demo_speed/ has the runs.

Usage: OMP_NUM_THREADS=1 .venv/bin/python tools/demo_sweep.py NAME STEPS [lr=2e-3 warmup=50 batch_size=32 ckpt_every=400 ...]
       [--arch=mini|mini122|noattn|patch] [--evals=LAST]  (evaluate only the last LAST checkpoints)
"""
import glob, json, subprocess, sys, time
from ddpm_lit.train import preset, Trainer
from ddpm_lit.unet import UNet

ARCHS = {'mini': dict(ch=16, ch_mult=(1, 2, 4), attn_resolutions=(7,)),          # the first demo's network (demo_mini)
         'mini122': dict(ch=16, ch_mult=(1, 2, 2), attn_resolutions=(7,)),
         'noattn': dict(ch=16, ch_mult=(1, 2, 4), attn_resolutions=(), mid_attn=False),
         'patch': dict(ch=32, ch_mult=(1, 2), attn_resolutions=(7,), patch_size=2)}   # the demo's network since 2026-11-30
CONV = {'lr': float, 'warmup': int, 'ema_decay': float, 'batch_size': int, 'ckpt_every': int, 'lr_schedule': str, 'schedule': str}

def main():
    name, steps, *rest = sys.argv[1:]
    arch = next((r.split('=', 1)[1] for r in rest if r.startswith('--arch=')), 'mini')
    evals = int(next((r.split('=', 1)[1] for r in rest if r.startswith('--evals=')), 100))
    kw = {k: CONV[k](v) for k, v in (r.split('=', 1) for r in rest if not r.startswith('--'))}
    cfg = preset('demo_mini', steps=int(steps), device='cpu', keep_ckpts=100, **{'ckpt_every': 200, **kw})
    model = UNet(in_ch=1, image_size=28, dropout=0.0, num_res_blocks=1, num_groups=8, **ARCHS[arch])
    out = f'runs/tune/{name}'
    t0 = time.time(); Trainer(cfg, out, model=model).fit(progress=False); train_s = time.time() - t0
    for ck in sorted(glob.glob(out + '/checkpoints/step_*.pt'))[-evals:]:
        st = int(ck.split('step_')[1].split('.')[0]); js = f'{out}/eval500_{st:08d}.json'
        subprocess.run([sys.executable, '-m', 'ddpm_lit', 'evaluate', ck, '--n', '500', '--sampler', 'ddim', '--steps', '25',
                        '--bpd-n', '0', '--no-progress', '--json', js], check=True, capture_output=True)
        ev = json.load(open(js))
        print(json.dumps(dict(name=name, step=st, arch=arch, overrides=kw, train_s=round(train_s), fid_n500_ddim25=ev['fid'],
                              floor_n500=ev['fid_floor'])), flush=True)

if __name__ == '__main__': main()

#!/usr/bin/env python
"""Speed benchmark: ddpm_lit against diffusers' UNet2DModel and lucidrains' denoising_diffusion_pytorch.Unet.

One run, one machine, one table. Every network is trained by ddpm_lit's own `Trainer.train_step` (given the network
as `Trainer(..., model=net)`: L_simple on the linear schedule, bf16 autocast on CUDA, Adam, gradient clipping to norm 1,
the EMA update) and sampled by the same samplers (ddpm_lit's ancestral `ddpm_sample` and `ddim_sample`), so only the
network and its options differ. Reported: images/s (median of several timed repetitions, warm-up excluded, the device
synchronised around every timed region), the ratio to the best peer, FLOPs per image (one forward pass counted by
`torch.utils.flop_counter.FlopCounterMode`; training = 3 x forward), MFU against a matmul peak measured in the same
run, and peak memory. Whether the fast paths (torch.compile, channels_last, bf16 autocast) change the results is
tested in tests/test_fastpaths.py, not here.

    .venv/bin/python bench/bench.py --device cpu --config small --threads 1 --json bench/results/cpu-small.json
    .venv/bin/python bench/bench.py --device cuda --config paper --compile --json bench/results/h100-paper.json
    .venv/bin/python bench/bench.py --table a.json b.json [--json merged.json]   # merge partial runs, print

The script installs nothing: peers are imported if importable, and a missing one is reported and skipped.
"""
import argparse, copy, datetime, gc, json, math, os, platform, resource, statistics, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / 'ddpm_lit').is_dir() and str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))  # a checkout, uninstalled

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ddpm_lit.schedule import NoiseSchedule
from ddpm_lit.sample import ddpm_sample, ddim_sample, precision
from ddpm_lit.train import Trainer, TrainConfig
from ddpm_lit.unet import UNet
from ddpm_lit.data import ImageData

PEERS = ('diffusers', 'lucidrains')
TASKS = ('train', 'ddpm', 'ddim')
T_FULL, DDIM_STEPS = 1000, 50   # what the sampling rows report: 1000-step ancestral sampling, DDIM with 50 steps

# ---------------------------------------------------------------------------------------------------------------
# The networks
# ---------------------------------------------------------------------------------------------------------------
# `paper`: the paper's CIFAR-10 network (35.7 M parameters, 32x32x3) in all three libraries. diffusers' arguments
# are those of google/ddpm-cifar10-32's config.json (built from config: nothing is downloaded), which gives the same
# parameter count and FLOPs as ddpm_lit. lucidrains' Unet is taken at the same width, Unet(dim=128,
# dim_mults=(1,2,2,2)), with its own defaults (linear attention at every level, full attention at the lowest
# resolution, dropout 0); it is a different architecture of comparable width (28.5 M parameters).
# `small`: ddpm_lit's small U-Net (preset 'small' of ddpm_lit.unet.MODEL_PRESETS: ch 32, ch_mult (1,2,2), 1 res block,
# attention at 8x8) on 1-channel 32x32 images, diffusers' UNet2DModel with the same layout (same parameter count),
# and lucidrains' Unet(dim=32, dim_mults=(1,2,2), channels=1).
DIFFUSERS_COMMON = dict(attention_head_dim=None, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1,
                        norm_eps=1e-6, norm_num_groups=32, act_fn='silu', dropout=0.1, sample_size=32)
CONFIGS = {
    'paper': dict(in_ch=3, image_size=32, preset='paper', batch=128, sample_batch=dict(cuda=256, cpu=4),
                  diffusers=dict(block_out_channels=(128, 256, 256, 256), layers_per_block=2,
                                 down_block_types=('DownBlock2D', 'AttnDownBlock2D', 'DownBlock2D', 'DownBlock2D'),
                                 up_block_types=('UpBlock2D', 'UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D')),
                  lucidrains=dict(dim=128, dim_mults=(1, 2, 2, 2))),
    'small': dict(in_ch=1, image_size=32, preset='small', batch=32, sample_batch=dict(cuda=256, cpu=32),
                  diffusers=dict(block_out_channels=(32, 64, 64), layers_per_block=1,
                                 down_block_types=('DownBlock2D', 'DownBlock2D', 'AttnDownBlock2D'),
                                 up_block_types=('AttnUpBlock2D', 'UpBlock2D', 'UpBlock2D')),
                  lucidrains=dict(dim=32, dim_mults=(1, 2, 2))),
}


class EpsModel(nn.Module):
    "A peer network behind ddpm_lit's calling convention: model(x_t [B,C,H,W], t [B]) -> ε [B,C,H,W]"
    def __init__(self, net:nn.Module, kind:str):
        super().__init__(); self.net, self.kind = net, kind
    def forward(self, x, t):
        if self.kind == 'diffusers': return self.net(x, t, return_dict=False)[0]
        return self.net(x, t)


def import_peers(names):
    "{peer: (constructor module, version)} for the importable peers, and {peer: why it was skipped}"
    found, missing = {}, {}
    for name in names:
        try:
            if name == 'diffusers':
                import diffusers
                from diffusers import UNet2DModel
                found[name] = (UNet2DModel, diffusers.__version__)
            elif name == 'lucidrains':
                import denoising_diffusion_pytorch as ddp
                from denoising_diffusion_pytorch import Unet
                from importlib.metadata import version
                try: v = version('denoising_diffusion_pytorch')
                except Exception: v = getattr(ddp, '__version__', '?')
                found[name] = (Unet, v)
            else: raise ValueError(f"unknown peer {name!r}: expected some of {', '.join(PEERS)}")
        except ValueError: raise
        except Exception as e:   # ImportError, or a peer that fails on import (e.g. with this torch)
            pkg = 'diffusers' if name == 'diffusers' else 'denoising-diffusion-pytorch'
            missing[name] = (f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. Skipped; install it "
                             f"with `pip install {pkg}` (or its wheel)")
    return found, missing


def build_net(name:str, cfg:dict, peers:dict, seed:int=0)->nn.Module:
    "A freshly initialised network `name` of configuration `cfg`, as a model(x_t, t) -> ε module"
    torch.manual_seed(seed)
    if name == 'ddpm_lit':
        return UNet.from_preset(cfg['preset'], in_ch=cfg['in_ch'], image_size=cfg['image_size'], dropout=0.1)
    if name == 'diffusers':
        return EpsModel(peers[name][0](in_channels=cfg['in_ch'], out_channels=cfg['in_ch'],
                                       **{**DIFFUSERS_COMMON, **cfg['diffusers']}), 'diffusers')
    if name == 'lucidrains':
        return EpsModel(peers[name][0](channels=cfg['in_ch'], **cfg['lucidrains']), 'lucidrains')
    raise ValueError(f"unknown network {name!r}")


def count_params(m:nn.Module)->int: return sum(p.numel() for p in m.parameters())


def forward_flops(m:nn.Module, cfg:dict, device)->float:
    "FLOPs of one forward pass per image (FlopCounterMode, batch 2, eval mode, no grad)"
    was = m.training; m.eval()
    x = torch.randn(2, cfg['in_ch'], cfg['image_size'], cfg['image_size'], device=device)
    t = torch.tensor([10, 500], device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as fc: m(x, t)
    m.train(was)
    return fc.get_total_flops() / 2


# ---------------------------------------------------------------------------------------------------------------
# Timing and memory
# ---------------------------------------------------------------------------------------------------------------
def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def _vm_hwm():
    "Peak resident set size of this process in bytes (VmHWM), or None"
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmHWM:'): return int(line.split()[1]) * 1024
    except OSError: return None


def reset_peak_memory(device)->str:
    "Reset the peak-memory counter; returns how peak memory will be measured"
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(device); return 'cuda max_memory_allocated'
    try:  # Linux: writing 5 to clear_refs resets VmHWM, the peak RSS, to the current RSS
        Path('/proc/self/clear_refs').write_text('5')
        if _vm_hwm() is not None: return 'peak RSS of the process (VmHWM, reset per row)'
    except OSError: pass
    return 'peak RSS of the process so far (ru_maxrss, not resettable)'


def peak_memory(device)->int:
    if device.type == 'cuda': return torch.cuda.max_memory_allocated(device)
    h = _vm_hwm()
    return h if h is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed(fn, device, reps:int)->list:
    "Wall-clock seconds of `reps` calls of fn(), each synchronised before and after"
    out = []
    for _ in range(reps):
        sync(device); t0 = time.perf_counter(); fn(); sync(device); out.append(time.perf_counter() - t0)
    return out


def matmul_peak(device, dtype, n:int=None, iters:int=None, reps:int=None)->dict:
    "The FLOP/s of a large square torch.matmul in `dtype`, best of `reps` timed runs: the reference for MFU"
    n = n or (8192 if device.type == 'cuda' else 2048)
    iters = iters or (20 if device.type == 'cuda' else 3)
    reps = reps or (5 if device.type == 'cuda' else 7)
    a = torch.randn(n, n, device=device, dtype=dtype); b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3 if device.type == 'cuda' else 1): a @ b
    def run():
        for _ in range(iters): a @ b
    ts = timed(run, device, reps)
    # the best repetition, not the median: a peak is an upper bound, and on a shared CPU the slow repetitions are
    # the ones other processes interrupted
    return dict(flops_per_s=2 * n ** 3 * iters / min(ts), median_flops_per_s=2 * n ** 3 * iters / statistics.median(ts),
                n=n, dtype=str(dtype).replace('torch.', ''), iters=iters, reps=reps)


def _vm_rss():
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmRSS:'): return int(line.split()[1]) * 1024
    except OSError: return None


def n_graphs()->int:
    "How many graphs torch.compile has produced so far in this process (to catch recompiles inside timed regions)"
    try:
        from torch._dynamo.utils import counters
        return int(counters['stats']['unique_graphs'])
    except Exception: return 0


def cleanup(device):
    gc.collect()
    try: torch._dynamo.reset()
    except Exception: pass
    if device.type == 'cuda': torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------------------------
# The training step: ddpm_lit's own, for every network
# ---------------------------------------------------------------------------------------------------------------
def trainer_for(net:nn.Module, cfg:dict, device, amp:bool, batch:int, compile:bool, channels_last:bool,
                tmp:str)->Trainer:
    "ddpm_lit's Trainer around `net` (any model(x_t, t) -> ε), on random in-memory data; its train_step is what is timed"
    data = ImageData(torch.randint(0, 256, (batch, cfg['in_ch'], cfg['image_size'], cfg['image_size']),
                                   dtype=torch.uint8), name='random')
    tc = TrainConfig(image_size=cfg['image_size'], model=cfg['preset'], batch_size=batch, device=device.type,
                     bf16=amp, compile=compile, channels_last=channels_last, seed=0)
    return Trainer(tc, tmp, data, model=net)


# ---------------------------------------------------------------------------------------------------------------
# The measurements
# ---------------------------------------------------------------------------------------------------------------
def variants_for(name:str, variants:list, task:str)->list:
    "(path, variant label, compile, channels_last) rows for network `name`"
    rows = []
    for v in variants:
        c = v == 'compile'
        path = 'Trainer.train_step' if task == 'train' else 'sampler'
        rows.append((path, v, c, False))
        if c and name == 'ddpm_lit': rows.append((path, 'compile+channels_last', True, True))
    return rows


def bench_train(name, cfg, peers, device, amp, a, flops_fwd, log)->list:
    rows = []
    x0_base = torch.rand(a.batch, cfg['in_ch'], cfg['image_size'], cfg['image_size'], device=device) * 2 - 1
    for path, variant, comp, cl in variants_for(name, a.variants, 'train'):
        label = f"{name} {path} {variant}"
        mem_how = reset_peak_memory(device)
        x0 = x0_base.contiguous(memory_format=torch.channels_last) if cl else x0_base
        with tempfile.TemporaryDirectory() as tmp:
            try:
                tr = trainer_for(build_net(name, cfg, peers), cfg, device, amp, a.batch, comp, cl, tmp)
                if comp and a.compile_mode: tr.fwd = torch.compile(tr.model, mode=a.compile_mode)
                n_params = count_params(tr.model)
                log(f"  {label}: warm-up ({a.warmup} steps{', compiling' if comp else ''}) ...")
                t0 = time.perf_counter()
                loss = None
                for _ in range(a.warmup): loss = tr.train_step(x0)
                sync(device); warm_s = time.perf_counter() - t0
                if loss is not None: loss = loss[0]                 # Trainer.train_step returns (loss, grad norm)
                if loss is not None and not math.isfinite(float(loss)): raise FloatingPointError(f"loss is {float(loss)}")
                def run():
                    for _ in range(a.steps): tr.train_step(x0)
                g0 = n_graphs(); ts = timed(run, device, a.reps); recompiled = n_graphs() - g0
                sec_per_step = statistics.median(ts) / a.steps
                rows.append(dict(task='train', network=name, path=path, variant=variant, params=n_params,
                                 batch=a.batch, images_per_s=a.batch / sec_per_step, sec_per_step=sec_per_step,
                                 rep_seconds=ts, steps_per_rep=a.steps, reps=a.reps, warmup_steps=a.warmup,
                                 warmup_s=warm_s, flops_per_image=3 * flops_fwd, peak_mem=peak_memory(device),
                                 mem_how=mem_how, extrapolated=False, recompiled_in_timing=recompiled,
                                 timing=f"median of {a.reps} x {a.steps} steps"
                                        + (f"; WARNING: {recompiled} graph(s) compiled while timed" if recompiled else "")))
                log(f"  {label}: {rows[-1]['images_per_s']:.1f} img/s ({sec_per_step * 1e3:.1f} ms/step, "
                    f"warm-up {warm_s:.1f} s)")
            except Exception as e:
                rows.append(dict(task='train', network=name, path=path, variant=variant, error=f"{type(e).__name__}: {e}"))
                log(f"  {label}: FAILED {type(e).__name__}: {str(e)[:300]}")
            finally:
                tr = None; cleanup(device)
    return rows


def bench_sample(name, cfg, peers, device, amp, a, flops_fwd, log)->list:
    rows = []
    B, C, S = a.sample_batch, cfg['in_ch'], cfg['image_size']
    sched = NoiseSchedule.linear(T_FULL).to(device)
    for path, variant, comp, cl in variants_for(name, a.variants, 'sample'):
        label = f"{name} {path} {variant}"
        mem_how = reset_peak_memory(device)
        try:
            m = build_net(name, cfg, peers).to(device).eval()
            if cl: m = m.to(memory_format=torch.channels_last)
            fwd = torch.compile(m, mode=a.compile_mode) if comp else m
            # warm-up: both samplers as they are timed, only shorter, and over >= 2 steps, so that torch.compile has
            # seen every call pattern (e.g. the timestep tensors of later steps, views at a non-zero offset)
            k = max(2, a.sample_warmup)
            log(f"  {label}: warm-up ({'compiling, ' if comp else ''}{k}-step ancestral and DDIM runs, twice) ...")
            t0 = time.perf_counter()
            for _ in range(2):
                with precision(device, amp):
                    ddim_sample(fwd, sched, (B, C, S, S), k, generator=torch.Generator(device).manual_seed(0))
                    ddpm_sample(fwd, NoiseSchedule.linear(k).to(device), (B, C, S, S),
                                generator=torch.Generator(device).manual_seed(0))
            sync(device); warm_s = time.perf_counter() - t0
            for task in [t for t in ('ddpm', 'ddim') if t in a.tasks]:
                full = T_FULL if task == 'ddpm' else DDIM_STEPS
                run_steps = min(full, a.sample_steps or full)
                if task == 'ddpm':   # ancestral sampling over `run_steps` steps: the whole schedule when run_steps = T
                    s = sched if run_steps == T_FULL else NoiseSchedule.linear(run_steps).to(device)
                    call = lambda: ddpm_sample(fwd, s, (B, C, S, S), generator=torch.Generator(device).manual_seed(0))
                else:
                    call = lambda: ddim_sample(fwd, sched, (B, C, S, S), run_steps, generator=torch.Generator(device).manual_seed(0))
                def run():
                    with precision(device, amp): call()
                reps = a.sample_reps if task == 'ddpm' else a.reps
                g0 = n_graphs(); ts = timed(run, device, reps); recompiled = n_graphs() - g0
                per_step = statistics.median(ts) / run_steps
                ips = B / (per_step * full)
                extra = run_steps < full
                timing = (f"extrapolated: {per_step * 1e3:.1f} ms/step x {full} steps, median of {reps} x {run_steps} "
                          f"measured steps" if extra else f"median of {reps} x {full}-step runs")
                if recompiled: timing += f"; WARNING: {recompiled} graph(s) compiled while timed"
                rows.append(dict(task=task, network=name, path=path, variant=variant, params=count_params(m), batch=B,
                                 images_per_s=ips, sec_per_step=per_step, rep_seconds=ts, steps_per_rep=run_steps,
                                 full_steps=full, reps=reps, warmup_s=warm_s, flops_per_image=full * flops_fwd,
                                 peak_mem=peak_memory(device), mem_how=mem_how, extrapolated=extra,
                                 recompiled_in_timing=recompiled, timing=timing))
                log(f"  {label} {task}: {ips:.3g} img/s ({per_step * 1e3:.1f} ms/step{', extrapolated' if extra else ''})")
        except Exception as e:
            for task in [t for t in ('ddpm', 'ddim') if t in a.tasks]:
                rows.append(dict(task=task, network=name, path=path, variant=variant, error=f"{type(e).__name__}: {e}"))
            log(f"  {label}: FAILED {type(e).__name__}: {str(e)[:300]}")
        finally:
            m = fwd = None; cleanup(device)
    return rows


# ---------------------------------------------------------------------------------------------------------------
# The environment and the tables
# ---------------------------------------------------------------------------------------------------------------
def cpu_model()->str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()


def environment(device, peers:dict, missing:dict)->dict:
    env = dict(date=datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
               host_cpu=cpu_model(), cpu_count=os.cpu_count(),
               affinity=len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None,
               torch_threads=torch.get_num_threads(), torch=torch.__version__, python=platform.python_version(),
               platform=platform.platform(), device=str(device),
               peers={k: v[1] for k, v in peers.items()}, missing_peers=missing,
               loadavg_start=list(os.getloadavg()) if hasattr(os, 'getloadavg') else None,
               env_vars={k: os.environ[k] for k in ('OMP_NUM_THREADS', 'OMP_WAIT_POLICY', 'MKL_NUM_THREADS',
                                                    'CUDA_VISIBLE_DEVICES', 'TORCHINDUCTOR_CACHE_DIR') if k in os.environ})
    if device.type == 'cuda':
        p = torch.cuda.get_device_properties(device)
        env.update(gpu=p.name, gpu_mem_gib=round(p.total_memory / 2 ** 30, 1), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
    try:
        import ddpm_lit; env['ddpm_lit'] = getattr(ddpm_lit, '__version__', '?')
    except Exception: pass
    return env


def fmt_mem(b):
    if b is None: return 'n/a'
    return f"{b / 2 ** 30:.2f} GiB" if b >= 2 ** 30 else f"{b / 2 ** 20:.0f} MiB"


def fmt_ips(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def speed_table(res:dict)->str:
    "The speed rows as a markdown table, grouped by task, with the ratio to the best peer and MFU"
    peak = res['peak']['flops_per_s']
    out = ["| task | network | path | variant | params | batch | img/s | × best peer | GFLOP/img | MFU | peak memory | timing |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    titles = dict(train='training', ddpm=f'sampling {T_FULL} steps', ddim=f'DDIM {DDIM_STEPS} steps')
    for task in ('train', 'ddpm', 'ddim'):
        rows = [r for r in res['rows'] if r['task'] == task]
        ok = [r for r in rows if 'error' not in r]
        best = max((r['images_per_s'] for r in ok if r['network'] != 'ddpm_lit'), default=None)
        for r in rows:
            if 'error' in r:
                out.append(f"| {titles[task]} | {r['network']} | {r['path']} | {r['variant']} | | | failed | | | | | "
                           f"{r['error'][:80].replace('|', '/')} |"); continue
            ratio = f"{r['images_per_s'] / best:.2f}" if best else 'n/a'
            mfu = r['images_per_s'] * r['flops_per_image'] / peak
            out.append(f"| {titles[task]} | {r['network']} | {r['path']} | {r['variant']} | {r['params'] / 1e6:.2f} M "
                       f"| {r['batch']} | {fmt_ips(r['images_per_s'])}{'*' if r['extrapolated'] else ''} | {ratio} "
                       f"| {r['flops_per_image'] / 1e9:,.1f} | {100 * mfu:.1f} % | {fmt_mem(r['peak_mem'])} | {r['timing']} |")
    return '\n'.join(out)


def _la(v): return 'n/a' if not v else '/'.join(f"{x:.1f}" for x in v)


def header(res:dict)->str:
    e, p, s = res['env'], res['peak'], res['settings']
    dev = e.get('gpu') or f"CPU {e['host_cpu']}"
    lines = [f"device: {dev} ({e['device']}); {e['cpu_count']} CPUs visible, torch threads {e['torch_threads']}"
             + (f" ({', '.join(f'{k}={v}' for k, v in e['env_vars'].items())})" if e.get('env_vars') else '') + "; "
             f"torch {e['torch']}, python {e['python']}; peers: "
             + (', '.join(f"{k} {v}" for k, v in e['peers'].items()) or 'none'),
             f"date: {e['date']}; load average (1, 5, 15 min) at start {_la(e.get('loadavg_start'))}, at end "
             f"{_la(e.get('loadavg_end'))}" + (f"; the run took {e['wall_s']:.0f} s" if e.get('wall_s') else ''),
             f"config: {s['config']}; precision: {s['precision']}; training batch {s['batch']}, sampling batch "
             f"{s['sample_batch']}; variants: {', '.join(s['variants'])}",
             f"matmul peak (MFU reference): {p['flops_per_s'] / 1e12:.3f} TFLOP/s, {p['dtype']} {p['n']}x{p['n']} "
             f"torch.matmul, best of {p['reps']} repetitions, measured at the start and the end of the run"]
    if e.get('rss_before_rows'):
        lines.append(f"peak memory: {next((r['mem_how'] for r in res['rows'] if 'mem_how' in r), 'peak RSS')}; the process held "
                     f"{fmt_mem(e['rss_before_rows'])} (torch and the imported libraries) before the first row")
    for k, v in e.get('missing_peers', {}).items(): lines.append(f"MISSING PEER {k}: {v}")
    if any(r.get('extrapolated') for r in res['rows']):
        lines.append("* extrapolated: per-step time measured over fewer steps, multiplied by the full step count")
    return '\n'.join(lines)


def render(res:dict)->str:
    parts = [header(res)]
    if res['rows']: parts.append(speed_table(res))
    return '\n\n'.join(parts)


def merge(files:list)->dict:
    "Several JSON results (partial runs on one machine) as one"
    rs = [json.loads(Path(f).read_text()) for f in files]
    out = copy.deepcopy(rs[0])
    for r in rs[1:]:
        out['rows'] += r['rows']
        out['settings']['variants'] = sorted(set(out['settings']['variants']) | set(r['settings']['variants']))
        out['env']['loadavg_end'] = r['env'].get('loadavg_end')
        if r['peak']['flops_per_s'] > out['peak']['flops_per_s']: out['peak'] = r['peak']   # the highest peak counts
        out['networks'].update(r.get('networks', {}))
        out['env']['wall_s'] = out['env'].get('wall_s', 0) + r['env'].get('wall_s', 0)
    out['merged_from'] = [str(f) for f in files]
    order = {t: i for i, t in enumerate(TASKS)}
    out['rows'].sort(key=lambda r: order.get(r['task'], 9))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', choices=['cpu', 'cuda'], default=None, help="default: cuda when available, else cpu")
    p.add_argument('--config', choices=list(CONFIGS), default=None, help="default: paper on cuda, small on cpu")
    p.add_argument('--batch', type=int, default=None, help="training batch (default: 128 paper, 32 small)")
    p.add_argument('--sample-batch', type=int, default=None, help="sampling batch (default: 256 on cuda; 32 small / 4 paper on cpu)")
    p.add_argument('--steps', type=int, default=None, help="timed training steps per repetition (default: 20 cuda, 1 cpu)")
    p.add_argument('--reps', type=int, default=None, help="timed repetitions, the median is reported (default: 5 cuda, 3 cpu)")
    p.add_argument('--warmup', type=int, default=None, help="untimed warm-up training steps (default: 5 cuda, 1 cpu)")
    p.add_argument('--sample-steps', type=int, default=None,
                   help="sampler steps actually run per repetition; fewer than 1000 (ancestral) or 50 (DDIM) means "
                        "the per-step time is extrapolated (default: all on cuda, 2 on cpu)")
    p.add_argument('--sample-reps', type=int, default=None, help="repetitions of ancestral sampling (default: 3)")
    p.add_argument('--sample-warmup', type=int, default=None, help="steps of the untimed warm-up runs of each sampler, at least 2 (default: 5 cuda, 2 cpu)")
    p.add_argument('--peers', default=','.join(PEERS), help="comma-separated peers: diffusers,lucidrains; '' or none for none")
    p.add_argument('--no-ddpm-lit', action='store_true', help="time only the peers")
    p.add_argument('--compile', action='store_true', help="also time torch.compile'd variants (same as --variants eager,compile)")
    p.add_argument('--variants', default=None, help="comma-separated: eager, compile (default: eager, plus compile with --compile)")
    p.add_argument('--compile-mode', default=None, help="torch.compile mode (default: torch's default)")
    p.add_argument('--precision', choices=['bf16', 'fp32'], default=None,
                   help="bf16: autocast on cuda, as the Trainer does (default); fp32 (the only choice on cpu, where ddpm_lit trains in float32)")
    p.add_argument('--tasks', default=','.join(TASKS), help=f"comma-separated, some of {','.join(TASKS)}")
    p.add_argument('--threads', type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument('--json', default=None, help="write all results, settings and the environment to this JSON file")
    p.add_argument('--table', nargs='+', default=None, metavar='JSON',
                   help="do not measure: merge these result files and print their tables (and --json the merge)")
    a = p.parse_args(argv)
    if a.table: return a
    if a.device is None: a.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if a.device == 'cuda' and not torch.cuda.is_available(): p.error("--device cuda: CUDA is not available here")
    cuda = a.device == 'cuda'
    a.config = a.config or ('paper' if cuda else 'small')
    cfg = CONFIGS[a.config]
    a.batch = a.batch or cfg['batch']
    a.sample_batch = a.sample_batch or cfg['sample_batch'][a.device]
    a.steps = a.steps or (20 if cuda else 1)
    a.reps = a.reps or (5 if cuda else 3)
    a.warmup = a.warmup if a.warmup is not None else (5 if cuda else 1)
    a.sample_steps = a.sample_steps or (None if cuda else 2)
    a.sample_reps = a.sample_reps or 3
    a.sample_warmup = a.sample_warmup or (5 if cuda else 2)
    a.precision = a.precision or ('bf16' if cuda else 'fp32')
    if a.precision == 'bf16' and not cuda: p.error("--precision bf16: ddpm_lit trains and samples in float32 on the CPU")
    a.variants = [v for v in (a.variants or ('eager,compile' if a.compile else 'eager')).split(',') if v]
    bad = [v for v in a.variants if v not in ('eager', 'compile')]
    if bad: p.error(f"--variants: unknown {bad}; expected eager and/or compile")
    a.tasks = [t for t in a.tasks.split(',') if t]
    bad = [t for t in a.tasks if t not in TASKS]
    if bad: p.error(f"--tasks: unknown {bad}; expected some of {','.join(TASKS)}")
    a.peers = [] if a.peers.strip().lower() in ('', 'none') else [s.strip() for s in a.peers.split(',') if s.strip()]
    bad = [s for s in a.peers if s not in PEERS]
    if bad: p.error(f"--peers: unknown {bad}; expected some of {','.join(PEERS)}")
    for k in ('batch', 'sample_batch', 'steps', 'reps', 'sample_reps', 'sample_warmup'):
        if getattr(a, k) < 1: p.error(f"--{k.replace('_', '-')} must be >= 1, got {getattr(a, k)}")
    if a.warmup < 0: p.error("--warmup must be >= 0")
    if a.sample_steps is not None and a.sample_steps < 1: p.error("--sample-steps must be >= 1")
    return a


def main(argv=None):
    a = parse_args(argv)
    if a.table:
        res = merge(a.table)
        print(render(res))
        if a.json: Path(a.json).parent.mkdir(parents=True, exist_ok=True); Path(a.json).write_text(json.dumps(res, indent=1))
        return res
    def log(msg): print(msg, file=sys.stderr, flush=True)
    if a.threads: torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if device.type == 'cuda': torch.backends.cudnn.benchmark = True
    cfg, amp = CONFIGS[a.config], a.precision == 'bf16'
    peers, missing = import_peers(a.peers)
    for k, v in missing.items(): log(f"MISSING PEER {k}: {v}")
    env = environment(device, peers, missing)
    log(f"{env.get('gpu') or env['host_cpu']}, torch {env['torch']}, threads {env['torch_threads']}, "
        f"load average {env['loadavg_start']}; config {a.config}, {a.precision}, variants {a.variants}")
    t_start = time.perf_counter()
    peak = matmul_peak(device, torch.bfloat16 if amp else torch.float32)
    log(f"matmul peak: {peak['flops_per_s'] / 1e12:.3f} TFLOP/s ({peak['dtype']}, best of {peak['reps']})")
    nets = ([] if a.no_ddpm_lit else ['ddpm_lit']) + list(peers)
    info = {}
    for name in nets:
        m = build_net(name, cfg, peers).to(device)
        info[name] = dict(params=count_params(m), flops_fwd=forward_flops(m, cfg, device))
        log(f"{name}: {info[name]['params'] / 1e6:.2f} M parameters, {info[name]['flops_fwd'] / 1e9:.3f} GFLOP per image forward")
        del m
    env['rss_before_rows'] = _vm_rss() if device.type == 'cpu' else None
    rows = []
    for name in nets:
        if 'train' in a.tasks:
            log(f"training, {name}:")
            rows += bench_train(name, cfg, peers, device, amp, a, info[name]['flops_fwd'], log)
        if 'ddpm' in a.tasks or 'ddim' in a.tasks:
            log(f"sampling, {name}:")
            rows += bench_sample(name, cfg, peers, device, amp, a, info[name]['flops_fwd'], log)
    order = {t: i for i, t in enumerate(TASKS)}
    rows.sort(key=lambda r: order[r['task']])
    peak2 = matmul_peak(device, torch.bfloat16 if amp else torch.float32)   # again at the end: the higher one counts
    log(f"matmul peak at the end: {peak2['flops_per_s'] / 1e12:.3f} TFLOP/s")
    peak['start_flops_per_s'], peak['end_flops_per_s'] = peak['flops_per_s'], peak2['flops_per_s']
    peak['flops_per_s'] = max(peak['flops_per_s'], peak2['flops_per_s'])
    env['loadavg_end'] = list(os.getloadavg()) if hasattr(os, 'getloadavg') else None
    env['wall_s'] = time.perf_counter() - t_start
    settings = {k: v for k, v in vars(a).items() if k not in ('table',)}
    res = dict(command=' '.join([Path(sys.executable).name, *sys.argv]) if argv is None else ' '.join(argv),
               env=env, settings=settings, peak=peak, networks=info, rows=rows)
    print(render(res))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1))
        log(f"wrote {a.json}")
    return res


if __name__ == '__main__':
    main()

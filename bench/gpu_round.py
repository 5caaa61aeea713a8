#!/usr/bin/env python
"""The GPU round: one call on a GPU machine trains chapter 11's seven Table 2 rows and a bigger reference model side by
side, evaluates each, then times ddpm_lit against its peers alone on the GPU; everything comes back packed in at most
eight files under --out.

    # on the GPU machine (bench/gpu_round.sh wraps this with the data and the logs):
    python3 bench/gpu_round.py --out $OUT --train-minutes 4
    # the CPU rehearsal (tests/test_gpu_round.py): every path at tiny sizes, in about a minute
    python bench/gpu_round.py --out /tmp/r --tiny --device cpu

Phase 1 (train): one `python -m ddpm_lit train` process per run, all at once on the one GPU (the networks are small;
the GPU has room). The seven rows take the CPU table's network and recipe (the `demo` preset's patch U-Net and
settings, written out flag by flag so that no preset turns into its GPU variant) with only --parameterization,
--loss, --var-type and --schedule differing, as in tools/ablation.py; the reference run takes the `reference`
preset (the shipped model's recipe) at a larger batch (--ref-batch) and, with --ref-model, another network. Each
process trains until the deadline, when it is sent SIGTERM and saves a checkpoint (chapter 07b).
Phase 2 (evaluate): per run `ddpm-lit evaluate` with n DDIM-50 samples and the bound on --bpd-n test images (the
reference also with 1000-step ancestral sampling), the samples kept as uint8.
Phase 3 (speed): bench/bench.py on the paper's network, ddpm_lit against diffusers and lucidrains, eager and
compiled, alone on the GPU.
Out: evals.json (every evaluation and every training log), rows_ema.safetensors (the rows' EMA weights, bf16, keys
'<row>.<name>', with each row's config in the metadata), reference_ema.safetensors (the same for the reference run,
in the layout `ddpm_lit.train.save_pretrained` writes, float32), samples.npz (uint8 samples per run and sampler),
bench.json (phase 3), bench_log.txt (its log, streamed: a bench cut short still shows what it measured), device.txt and
log.txt (what ran, with exit codes and times).
"""
import argparse, json, os, signal, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))   # the checkout, not installed, on the GPU machine
sys.path.insert(0, str(ROOT / 'tools'))

import numpy as np
import torch

from ablation import ROWS                                     # the seven rows: parameterization, loss, var_type, schedule
from ddpm_lit.train import PRESETS, load_run, save_pretrained

PY = [sys.executable, '-m', 'ddpm_lit']


def flags(settings:dict)->list:
    "TrainConfig settings as `ddpm-lit train` flags"
    out = []
    for k, v in settings.items():
        if isinstance(v, bool): raise ValueError(f"flags: boolean setting {k} has no plain flag")
        out += [f"--{k.replace('_', '-')}", str(v)]
    return out


def runs_to_train(a)->dict:
    "name -> the train command's flags (without --out)"
    base = {k: v for k, v in PRESETS['demo'].items() if k not in ('steps', 'parameterization', 'min_snr_gamma')}
    base.update(lr=2e-3, steps=10_000_000, device=a.device, log_every=50, ckpt_every=1_000_000)   # chapter 11's lr; SIGTERM ends it
    if a.row_batch: base.update(batch_size=a.row_batch, lr=a.row_lr or base['lr'])   # the CPU recipe's batch 16 is launch-bound on a GPU
    if a.tiny: base.update(model='tiny', batch_size=8, log_every=5)
    runs = {}
    for row, r in ROWS.items():
        runs[row] = flags({**base, **{k: r[k] for k in ('parameterization', 'loss', 'var_type', 'schedule')}})
    ref = {k: v for k, v in PRESETS['reference'].items()}
    ref.update(model='tiny' if a.tiny else a.ref_model, batch_size=8 if a.tiny else a.ref_batch, steps=10_000_000,
               device=a.device, log_every=5 if a.tiny else 100, ckpt_every=1_000_000)
    if a.ref_init: ref['init'] = a.ref_init   # continue the shipped model (same network) rather than start again
    runs['reference'] = flags(ref)
    return runs


def log(a, msg:str):
    line = f"[{time.time() - a.t0:7.1f}s] {msg}"
    print(line, flush=True)
    with open(Path(a.out) / 'log.txt', 'a') as f: f.write(line + '\n')


def train_all(a, runs:dict)->dict:
    "Start every run at once; SIGTERM them all at the deadline; wait for their checkpoints"
    procs = {}
    for name, fl in runs.items():
        cmd = PY + ['train', '--out', str(a.runs / name), '--no-progress', '--preset', 'paper'] + fl
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        log(a, f"started {name}: {' '.join(cmd[2:])}")
    deadline = time.time() + a.train_minutes * 60
    while time.time() < deadline and any(p.poll() is None for p in procs.values()): time.sleep(1)
    for name, p in procs.items():   # a run that has not logged a step yet gets up to 2 more minutes (it saves on SIGTERM only once training)
        late = time.time() + 120
        while p.poll() is None and time.time() < late and not (a.runs / name / 'metrics.jsonl').exists(): time.sleep(0.5)
        if p.poll() is None: p.send_signal(signal.SIGTERM)
    status = {}
    for name, p in procs.items():
        try: out, _ = p.communicate(timeout=max(10, a.deadline - (time.time() - a.t0) - 60))
        except subprocess.TimeoutExpired: p.kill(); out, _ = p.communicate()
        status[name] = dict(returncode=p.returncode, output=out[-2000:])
        log(a, f"{name}: exit {p.returncode}; {out.strip().splitlines()[-1] if out.strip() else ''}")
    return status


def evaluate_all(a, names:list)->dict:
    "`ddpm-lit evaluate` of every run (concurrently), each keeping its samples"
    jobs = {}
    for name in names:
        samplers = [('ddim50', ['--sampler', 'ddim', '--steps', '50'])]
        if name == 'reference': samplers.append(('ddpm', ['--sampler', 'ddpm']))
        for tag, sf in samplers:
            cmd = PY + ['evaluate', str(a.runs / name), '-n', str(a.n), *sf, '--bpd-n', str(a.bpd_n if tag == 'ddim50' else 0),
                        *(['--no-floor'] if tag == 'ddpm' or a.tiny else []),
                        '--device', a.device, '--no-progress', '--json', str(a.runs / f'{name}.{tag}.json'),
                        '--npz', str(a.runs / f'{name}.{tag}.npz')]
            jobs[(name, tag)] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    res = {}
    for (name, tag), p in jobs.items():
        try: out, _ = p.communicate(timeout=max(5, min(a.eval_timeout, a.deadline - (time.time() - a.t0) - a.reserve)))
        except subprocess.TimeoutExpired: p.kill(); out, _ = p.communicate(); out += '\ntimed out (the round\'s deadline)'
        js = a.runs / f'{name}.{tag}.json'
        res.setdefault(name, {})[tag] = json.loads(js.read_text()) if p.returncode == 0 and js.exists() else \
                                        dict(error=out.strip().splitlines()[-1:] or ['no output'], returncode=p.returncode)
        log(a, f"evaluated {name} ({tag}): exit {p.returncode}")
    return res


def pack(a, names:list, status:dict, evals:dict):
    "The eight-file budget: evals.json, rows_ema.safetensors, reference_ema.safetensors, samples.npz (+ bench.json, log.txt)"
    from safetensors.torch import save_file
    out, rows, meta, samples = Path(a.out), {}, {}, {}
    logs = {}
    for name in names:
        if not list((a.runs / name / 'checkpoints').glob('step_*.pt')): continue
        r = load_run(a.runs / name)
        logs[name] = [json.loads(l) for l in open(a.runs / name / 'metrics.jsonl')] if (a.runs / name / 'metrics.jsonl').exists() else []
        if name == 'reference':
            save_pretrained(r, out / 'reference_ema.safetensors', card=dict(gpu_round=True, training=logs[name][-1:]))
        else:
            rows.update({f'{name}.{k}': v.detach().to(torch.bfloat16).cpu().contiguous() for k, v in r.model.state_dict().items()})
            meta[name] = json.dumps(dict(step=r.step, config=json.loads((a.runs / name / 'config.json').read_text()),
                                         model_args=r.model.config))
        for tag in ('ddim50', 'ddpm'):
            f = a.runs / f'{name}.{tag}.npz'
            if f.exists(): samples[f'{name}.{tag}'] = np.load(f)['arr_0']
    if rows: save_file(rows, str(out / 'rows_ema.safetensors'), metadata=meta)
    if samples: np.savez_compressed(out / 'samples.npz', **samples)
    (out / 'evals.json').write_text(json.dumps(dict(status=status, evals=evals, logs=logs, settings=vars(a) | dict(
        runs=str(a.runs), t0=None), device=torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'), indent=1, default=str))


def bench(a):
    "Phase 3: speed alone on the device (the paper's network on CUDA; the small one, a few steps, in the rehearsal)"
    cmd = [sys.executable, str(ROOT / 'bench' / 'bench.py'), '--device', a.device, '--json', str(Path(a.out) / 'bench.json')]
    cmd += (['--config', 'small', '--threads', '1', '--steps', '1', '--reps', '1', '--warmup', '1', '--sample-steps', '3',
             '--sample-reps', '1', '--sample-warmup', '2', '--peers', 'none'] if a.tiny else ['--config', 'paper', '--compile'])
    cmd += ['--sample-steps', str(a.bench_sample_steps)] if not a.tiny else []
    cmd += ['--tasks', a.bench_tasks] if a.bench_tasks else []
    cmd += ['--peers', a.bench_peers] if a.bench_peers else []
    left = min(a.bench_timeout, a.deadline - (time.time() - a.t0) - 5)
    if left < 30: log(a, f"bench: skipped, {left:.0f} s left before the deadline"); return 1
    with open(Path(a.out) / 'bench_log.txt', 'w') as f:   # the log streams to a file: a bench cut short still says what it measured
        try: rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True, timeout=left).returncode
        except subprocess.TimeoutExpired: rc = 124
    log(a, f"bench: exit {rc}; {Path(a.out, 'bench_log.txt').read_text().strip().splitlines()[-1:]}")
    return rc


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', required=True, help='where the packed results go ($OUT on the GPU machine)')
    p.add_argument('--runs', default=None, help='where the runs train (default: a folder runs/gpu_round in the checkout)')
    p.add_argument('--device', default='cuda')
    p.add_argument('--train-minutes', type=float, default=3.5, help='wall clock for phase 1 (all runs at once)')
    p.add_argument('--n', type=int, default=1000, help='samples per evaluation (FID)')
    p.add_argument('--bpd-n', type=int, default=1000, help='test images for the bound')
    p.add_argument('--ref-model', default='patch64', help='the reference run\'s U-Net layout (ddpm_lit.unet.MODEL_PRESETS)')
    p.add_argument('--ref-batch', type=int, default=128)
    p.add_argument('--row-batch', type=int, default=None, help="the Table 2 rows' batch (default: the CPU table's, 16)")
    p.add_argument('--row-lr', type=float, default=None, help="the rows' learning rate with --row-batch (default: the CPU table's)")
    p.add_argument('--ref-init', default='pretrained:fashion_mnist', help="the reference run's --init ('' for none)")
    p.add_argument('--eval-timeout', type=int, default=900)
    p.add_argument('--bench-timeout', type=int, default=600)
    p.add_argument('--bench-sample-steps', type=int, default=100, help="bench's --sample-steps (the 1000-step time is extrapolated)")
    p.add_argument('--deadline', type=float, default=560, help='seconds from the start by which everything must have ended')
    p.add_argument('--reserve', type=float, default=150, help='seconds kept after the evaluations for packing and the bench')
    p.add_argument('--skip-bench', action='store_true')
    p.add_argument('--bench-tasks', default=None, help="bench's --tasks (default: all)")
    p.add_argument('--bench-peers', default=None, help="bench's --peers (default: bench's)")
    p.add_argument('--tiny', action='store_true', help='the CPU rehearsal: tiny networks, seconds of training, a few samples')
    a = p.parse_args(argv)
    a.t0 = time.time()
    if a.tiny:   # eight torch processes on two CPU cores start slowly: a longer deadline
        a.n, a.bpd_n, a.train_minutes, a.ref_init = min(a.n, 8), min(a.bpd_n, 2), min(a.train_minutes, 0.25), ''
        a.deadline = max(a.deadline, 1500)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    a.runs = Path(a.runs or ROOT / 'runs' / 'gpu_round')
    log(a, f"gpu round: device {a.device}, {a.train_minutes} min of training, n {a.n}, bpd-n {a.bpd_n}, tiny {a.tiny}")
    runs = runs_to_train(a)
    status = train_all(a, runs)
    # the rehearsal evaluates three runs (a learned variance, the hybrid on the cosine schedule, the reference): the same code
    evals = evaluate_all(a, ['mu_vlb_learned', 'eps_hybrid_learned_range_cosine', 'reference'] if a.tiny else list(runs))
    pack(a, list(runs), status, evals)
    rc = 0 if a.skip_bench else bench(a)
    log(a, f"done; files: {sorted(f.name for f in Path(a.out).iterdir())}")
    return 0 if all(s['returncode'] == 0 for s in status.values()) and rc == 0 else 1


if __name__ == '__main__':
    sys.exit(main())

"""The paper's Table 2 on Fashion-MNIST: what the network predicts (μ̃ or ε) against the objective and the reverse variance.

    OMP_NUM_THREADS=2 .venv/bin/python tools/ablation.py --steps 500        # every row, then its evaluation
    .venv/bin/python tools/ablation.py --rows eps_simple_fixed --steps 500  # one row (or a few, comma separated)
    # the main budget of chapter 11: the demo preset's patch U-Net, 3000 steps of batch 16, two sampling seeds
    OMP_NUM_THREADS=1 .venv/bin/python tools/ablation.py --preset demo --lr 2e-3 --steps 3000 --batch-size 16 --threads 1 \
        --runs runs/ablation_3000 --results results/ablation_3000 --bpd-n 25 --fid-seeds 2

Seven rows (Ho et al. 2020, Table 2, plus Nichol & Dhariwal 2021's hybrid objective with a learned-range variance on the
cosine schedule), each trained with `ddpm-lit train --preset P` (default demo_mini: the 'mini' U-Net at 28x28, Adam 1e-3
after 100 warmup steps, EMA 0.999, T = 1000; 'demo': the patch U-Net with the demo's recipe, its Min-SNR weighting off)
for the same steps, batch and seed; only --parameterization, --loss, --var-type and --schedule differ. Checkpoints go to runs/ablation/<row>/ (git-ignored); this script writes only
summaries into results/ablation/ (or --results):

* results.json: per row the exact command, how training ended (wall time, images/s, the loss curve, or the steps
  between which the loss became NaN/inf: the paper's "unstable"), and its evaluation: FID and classifier score of
  n DDIM-50 samples (seed 0; with --fid-seeds K also seeds 1..K-1, and their mean and standard deviation) on the
  shipped Fashion-MNIST classifier, with the real-data floor at that n (`ddpm_lit.metrics.evaluate`), and the
  variational bound in bits/dim on held-out test and on training images (`bits_per_dim` with the row's
  parameterisation and variance; mean, standard error, n); with --paired A,B (after training) the two rows' bounds
  per test image and their paired difference;
* arrays.npz: per row the bound's terms L_t in bits/dim over t (test and train images), and for learned-variance
  rows the mean over pixels and images of the learned σ² (and of log σ²) on held-out x_t, beside β_t and β̃_t;
* grids/<row>.png and grids/<row>.npz: the first 64 of the n evaluation samples (uint8 [64, 28, 28, 1]).

One row trains at a time (a `ddpm-lit train` process in the background) while the row before it is evaluated in
this process. A row whose results.json entry already has the requested settings is skipped, so the script can be
re-run after an interruption; a row whose run stopped part way is resumed with --resume (its commands are all kept).
"""
import argparse, json, math, os, platform, re, shlex, subprocess, sys, time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ddpm_lit.forward import q_sample                                 # noqa: E402
from ddpm_lit.posterior import LEARNED_VAR_TYPES     # noqa: E402
from ddpm_lit.sample import generate, save_grid, to_uint8                                # noqa: E402
from ddpm_lit.train import checkpoints, load_data, load_run, preset   # noqa: E402
from ddpm_lit.metrics import bits_per_dim, evaluate                   # noqa: E402
from ddpm_lit.loss import vlb_terms                                   # noqa: E402

RUNS = ROOT / 'runs' / 'ablation'
OUT = ROOT / 'results' / 'ablation'
EXE = Path(sys.executable).parent / 'ddpm-lit'

# name -> (what the network predicts, objective, reverse variance, schedule) and the paper's CIFAR-10 numbers
ROWS = {
    'mu_vlb_learned':   dict(parameterization='mu',  loss='vlb',    var_type='learned',     schedule='linear',
                             paper=dict(predicts='μ̃', objective='L, learned diagonal Σ', IS='7.28±0.10', FID='23.69', NLL='')),
    'mu_vlb_fixed':     dict(parameterization='mu',  loss='vlb',    var_type='fixed_large', schedule='linear',
                             paper=dict(predicts='μ̃', objective='L, fixed isotropic Σ', IS='8.06±0.09', FID='13.22', NLL='')),
    'mu_simple_fixed':  dict(parameterization='mu',  loss='simple', var_type='fixed_large', schedule='linear',
                             paper=dict(predicts='μ̃', objective='‖μ̃ − μ̃_θ‖²', IS='–', FID='– (unstable)', NLL='')),
    'eps_vlb_learned':  dict(parameterization='eps', loss='vlb',    var_type='learned',     schedule='linear',
                             paper=dict(predicts='ε', objective='L, learned diagonal Σ', IS='–', FID='– (unstable)', NLL='')),
    'eps_vlb_fixed':    dict(parameterization='eps', loss='vlb',    var_type='fixed_large', schedule='linear',
                             paper=dict(predicts='ε', objective='L, fixed isotropic Σ', IS='7.67±0.13', FID='13.51',
                                        NLL='≤ 3.70 (3.69)')),
    'eps_simple_fixed': dict(parameterization='eps', loss='simple', var_type='fixed_large', schedule='linear',
                             paper=dict(predicts='ε', objective='‖ε − ε_θ‖² (L_simple)', IS='9.46±0.11', FID='3.17',
                                        NLL='≤ 3.75 (3.72)')),
    'eps_hybrid_learned_range_cosine': dict(parameterization='eps', loss='hybrid', var_type='learned_range', schedule='cosine',
                             paper=dict(predicts='ε', objective='L_hybrid, learned-range Σ, cosine (Nichol & Dhariwal)',
                                        IS='', FID='', NLL='')),
}
# the reference row first: it measures the throughput on which the budget is set
ORDER = ['eps_simple_fixed', 'eps_vlb_fixed', 'mu_vlb_fixed', 'mu_simple_fixed', 'eps_vlb_learned', 'mu_vlb_learned',
         'eps_hybrid_learned_range_cosine']
assert sorted(ORDER) == sorted(ROWS)


def train_cmd(row:str, a, resume:bool)->list:
    "The `ddpm-lit train` command line of one row"
    r = ROWS[row]
    cmd = [os.path.relpath(EXE, ROOT), 'train', '--preset', a.preset, '--out', os.path.relpath(RUNS / row, ROOT), '--device', 'cpu',
           '--steps', str(a.steps), '--no-progress']
    if resume: return cmd[:2] + ['--resume'] + cmd[2:]
    cmd += ['--batch-size', str(a.batch_size), '--seed', str(a.seed), '--ckpt-every', str(a.ckpt_every),
            '--parameterization', r['parameterization'], '--loss', r['loss'], '--var-type', r['var_type'],
            '--schedule', r['schedule']]
    if a.lr is not None: cmd += ['--lr', str(a.lr)]
    # every row trains on the paper's unweighted objectives: a preset's Min-SNR weighting (the demo's) is switched off
    if preset(a.preset, device='cpu').min_snr_gamma: cmd += ['--min-snr-gamma', '0']
    return cmd


def read_log(run:Path)->list:
    "The run's metrics.jsonl records (a diverged run's last one is marked `diverged`)"
    f = run / 'metrics.jsonl'
    return [json.loads(l) for l in f.read_text().splitlines() if l.strip()] if f.exists() else []


def read_metrics(run:Path)->list:
    "The run's metrics.jsonl as (step, loss, grad_norm, images_per_s) lists, the diverged record left out"
    return [[r['step'], r['loss'], r['grad_norm'], r['images_per_s']] for r in read_log(run) if not r.get('diverged')]


def _step_of(ck:Path)->int: return int(re.search(r'step_(\d+)', ck.name).group(1))


def start_training(row:str, a, log, commands:list)->tuple:
    "Start (or resume) one row's `ddpm-lit train` in the background; None if its checkpoint is already at a.steps"
    cks = checkpoints(RUNS / row)
    if cks and _step_of(cks[-1]) >= a.steps: return None
    cmd = train_cmd(row, a, resume=bool(cks))
    commands.append('OMP_NUM_THREADS=%d ' % a.threads + shlex.join(cmd))
    log(f"[{row}] {commands[-1]}")
    env = {**os.environ, 'OMP_NUM_THREADS': str(a.threads), 'MKL_NUM_THREADS': str(a.threads)}
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env), time.time()


def finish_training(row:str, handle, log, commands:list)->dict:
    "Wait for a row's training; a NaN/inf loss is recorded with the steps between which it appeared"
    rec = dict(commands=commands, status='trained')
    if handle is None: rec['note'] = 'checkpoint already at the requested steps; not retrained'
    else:
        p, t0 = handle
        stdout, stderr = p.communicate()
        rec['wall_s'] = round(time.time() - t0, 1)     # from start to collection (may include waiting on an evaluation)
        recs = read_log(RUNS / row)
        if recs: rec['train_s'] = round(recs[-1]['time'] - t0)   # from the command's start to its last log record
        err = stderr.strip().splitlines()
        if p.returncode == 0: pass
        elif p.returncode == 3:                         # `ddpm-lit train`'s status for a loss that became NaN/inf
            bad = recs[-1] if recs and recs[-1].get('diverged') else {}
            good = [r['step'] for r in recs if not r.get('diverged')]
            rec.update(status='diverged', diverged_value=str(bad.get('loss')),
                       diverged_between=[good[-1] if good else 0, bad.get('step')], message=err[-1] if err else '')
        else: rec.update(status='failed', returncode=p.returncode, message='\n'.join(err[-5:]))
        log(f"[{row}] {rec['status']} in {rec['wall_s']} s" + (f": {rec.get('message')}" if rec['status'] != 'trained' else ''))
    if (RUNS / row / 'config.json').exists():   # the run's TrainConfig as resolved (a preset's name can change meaning later)
        rec['config'] = json.loads((RUNS / row / 'config.json').read_text())
    curve = read_metrics(RUNS / row)
    rec['metrics'] = curve
    if curve:
        rec['images_per_s_median'] = float(np.median([c[3] for c in curve]))
        rec['last_step_logged'], rec['last_loss'] = curve[-1][0], curve[-1][1]
    cks = checkpoints(RUNS / row)
    rec['checkpoint_step'] = _step_of(cks[-1]) if cks else None
    return rec


@torch.no_grad()
def learned_variance(r, images:torch.Tensor, ts:torch.Tensor, seed:int=0)->dict:
    "The mean over pixels and images of a learned-variance model's σ² (and log σ²) on held-out x_t, at each t of ts"
    g = torch.Generator().manual_seed(seed)
    var_mean, logvar_mean = [], []
    for t in ts.tolist():
        tb = torch.full((len(images),), t, dtype=torch.long)
        x_t = q_sample(r.sched, images, tb, torch.randn(images.shape, generator=g))
        _, var, logvar, _ = r.diffusion.p_mean_variance(r.model(x_t, tb), x_t, tb)
        var_mean.append(var.double().mean().item()); logvar_mean.append(logvar.double().mean().item())
    s = r.sched
    return dict(t=ts.numpy(), sigma2_mean=np.array(var_mean), log_sigma2_mean=np.array(logvar_mean),
                beta=s.betas[ts].numpy(), beta_tilde=s.posterior_variance[ts].numpy(),
                log_beta_tilde_clipped=s.posterior_log_variance_clipped[ts].numpy())


def evaluate_row(row:str, a, log)->tuple:
    "FID, classifier score, floor, bits/dim (test and train), the 64-sample grid and the learned σ² of one trained row"
    run = RUNS / row
    res, arrays = {}, {}
    t0 = time.time()
    npz = run / f'samples_ddim{a.ddim_steps}_n{a.n}.npz'
    ev = evaluate(str(run), n=a.n, sampler='ddim', steps=a.ddim_steps, seed=0, device='cpu', bpd_n=a.bpd_n,
                  npz=str(npz), progress=False, log=lambda s: log(f"[{row}] {s}"))
    res['evaluate'] = {k: v for k, v in ev.items() if k != 'bpd_terms'}
    res['evaluate_call'] = (f"evaluate('{os.path.relpath(run, ROOT)}', n={a.n}, sampler='ddim', steps={a.ddim_steps}, seed=0, "
                            f"device='cpu', bpd_n={a.bpd_n})")
    # the spread over sampling seeds: the same model and n, other seeds (FID and classifier score only)
    if a.fid_seeds > 1:
        per = [dict(seed=0, fid=ev.get('fid'), classifier_score=ev.get('classifier_score'))]
        for s in range(1, a.fid_seeds):
            e = evaluate(str(run), n=a.n, sampler='ddim', steps=a.ddim_steps, seed=s, device='cpu', bpd_n=0, floor=False,
                         progress=False, log=lambda m: log(f"[{row}] seed {s}: {m}"))
            per.append(dict(seed=s, fid=e.get('fid'), classifier_score=e.get('classifier_score')))
        res['seeds'] = per
        for k in ('fid', 'classifier_score'):
            v = np.array([q[k] for q in per], dtype=float)
            res[f'{k}_mean'], res[f'{k}_sd'] = float(v.mean()), float(v.std(ddof=1))
        log(f"[{row}] FID over {a.fid_seeds} sampling seeds: {res['fid_mean']:.2f} ± {res['fid_sd']:.2f} (sd)")
    if 'bpd_terms' in ev: arrays[f'{row}/terms_test'] = np.array(ev['bpd_terms'])
    # the same bound on as many training images (the paper's "NLL test (train)")
    r = load_run(str(run), device='cpu')
    if a.bpd_n:
        tr = load_data(r.cfg, train=True)
        idx = torch.randperm(len(tr), generator=torch.Generator().manual_seed(0))[:a.bpd_n]
        t1 = time.time()
        b = bits_per_dim(r.model, r.diffusion, tr.to_float(tr.images_at(idx)), batch_size=a.bpd_n, seed=0)
        res['bpd_train'] = dict(bpd=b['total_bpd'], bpd_se=b['total_bpd_se'], n=b['n'], prior_bpd=b['prior_bpd'],
                                decoder_bpd=b['decoder_bpd'], time_s=round(time.time() - t1, 1),
                                images='training images randperm(60000, seed 0)[:n]')
        arrays[f'{row}/terms_train'] = b['terms_bpd']
        log(f"[{row}] train bits/dim {b['total_bpd']:.4f} ± {b['total_bpd_se']:.4f} (n = {b['n']})")
    # the first 64 evaluation samples as a grid
    x = np.load(npz)['arr_0'][:64]
    (OUT / 'grids').mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / 'grids' / f'{row}.npz', arr_0=x)
    save_grid(torch.from_numpy(x).movedim(-1, 1).float() / 127.5 - 1, OUT / 'grids' / f'{row}.png', nrow=8)
    res['grid'] = os.path.relpath(OUT / 'grids' / f'{row}.png', ROOT)
    # the learned variance against β_t and β̃_t, on held-out x_t
    if r.cfg.var_type in LEARNED_VAR_TYPES:
        te = load_data(r.cfg, train=False)
        idx = torch.randperm(len(te), generator=torch.Generator().manual_seed(1))[:a.var_n]
        T = r.sched.T
        ts = torch.unique(torch.cat([torch.arange(0, 20), torch.arange(20, T, 10), torch.tensor([T - 1])]))
        lv = learned_variance(r, te.to_float(te.images_at(idx)), ts)
        for k, v in lv.items(): arrays[f'{row}/var_{k}'] = v
        res['learned_variance'] = dict(n_images=a.var_n, n_t=len(ts), images='test images randperm(10000, seed 1)[:n]')
    res['eval_wall_s'] = round(time.time() - t0, 1)
    return res, arrays


def ancestral_row(row:str, a, log)->dict:
    "A small grid of ancestral samples (Algorithm 2, T steps, the row's own variance): the sampler that uses Σ"
    r = load_run(str(RUNS / row), device='cpu')
    t0 = time.time()
    x = generate(r.model, r.diffusion, a.ancestral, r.shape, 'ddpm', batch_size=a.ancestral, seed=0, progress=False)
    (OUT / 'grids').mkdir(parents=True, exist_ok=True)
    npz = OUT / 'grids' / f'{row}_ancestral.npz'
    np.savez_compressed(npz, arr_0=to_uint8(x).numpy())
    save_grid(x, OUT / 'grids' / f'{row}_ancestral.png', nrow=int(math.sqrt(a.ancestral)) or 1)
    rec = dict(n=a.ancestral, sampler='ddpm', steps=r.sched.T, var_type=r.cfg.var_type, seed=0, step=r.step,
               time_s=round(time.time() - t0, 1), grid=os.path.relpath(OUT / 'grids' / f'{row}_ancestral.png', ROOT))
    log(f"[{row}] {a.ancestral} ancestral samples in {rec['time_s']} s")
    if a.ancestral_fid:   # FID and classifier score of these samples, and the real-data floor at this n
        ev = evaluate(str(RUNS / row), samples=str(npz), bpd_n=0, device='cpu', progress=False, log=lambda m: log(f"[{row}] {m}"))
        rec.update(fid=ev['fid'], classifier_score=ev['classifier_score'], fid_floor=ev['fid_floor'])
    return rec


@torch.no_grad()
def paired_bound(rows:list, a, log)->dict:
    "Per-image bounds of rows on the same test images and x_t draws as `evaluate`'s bits/dim: the paired difference"
    per = {}
    for row in rows:
        r = load_run(str(RUNS / row), device='cpu')
        te = load_data(r.cfg, train=False)
        idx = torch.randperm(len(te), generator=torch.Generator().manual_seed(0))[:a.bpd_n]     # evaluate's images (seed 0)
        t0 = time.time()
        v = vlb_terms(r.model, r.diffusion, te.to_float(te.images_at(idx)), generator=torch.Generator().manual_seed(0))
        per[row] = v['total_bpd'].double().numpy()
        log(f"[{row}] per-image bound on {a.bpd_n} test images in {time.time() - t0:.0f} s: mean {per[row].mean():.4f}")
    d = per[rows[0]] - per[rows[1]]
    return dict(rows=rows, n=len(d), per_image_bpd={k: v.tolist() for k, v in per.items()}, diff_mean=float(d.mean()),
                diff_se=float(d.std(ddof=1) / math.sqrt(len(d))), images='test images randperm(10000, seed 0)[:n], x_t seed 0')


def save_arrays(new:dict):
    "Merge per-row arrays into results/ablation/arrays.npz"
    f = OUT / 'arrays.npz'
    old = dict(np.load(f)) if f.exists() else {}
    np.savez_compressed(f, **{**old, **new})


def configs_at(commit:str)->tuple:
    "TrainConfig's defaults and the presets as they were at `commit` (read from its source, nothing of it imported)"
    import ast
    body = []   # TrainConfig lived in train.py until the run layer (run.py) took it
    for f in ('ddpm_lit/train.py', 'ddpm_lit/run.py'):
        r = subprocess.run(['git', 'show', f'{commit}:{f}'], cwd=ROOT, capture_output=True, text=True)
        if r.returncode == 0: body += ast.parse(r.stdout).body
    tree = ast.Module(body=body, type_ignores=[])
    cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == 'TrainConfig')
    defaults = {n.target.id: ast.literal_eval(n.value) for n in cls.body if isinstance(n, ast.AnnAssign) and n.value is not None}
    node = next(n for n in body if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', None) == 'PRESETS')
    presets = eval(compile(ast.Expression(node.value), 'PRESETS', 'eval'), {'__builtins__': {}, 'dict': dict})
    return defaults, presets


def record_configs(rfile:Path, commit:str, log)->None:
    """Add each row's resolved TrainConfig (`train.config`) to results made before rows recorded theirs: the code of `commit`'s
    defaults and preset, with the row's recorded `ddpm-lit train` flags on top"""
    defaults, presets = configs_at(commit)
    results = json.loads(rfile.read_text())
    for row, entry in results['rows'].items():
        tr = entry['train']
        starts = [shlex.split(c) for c in tr['commands'] if '--resume' not in c]   # the command that started the run
        if starts: cmd, note = starts[0], ''
        else:   # only its resumption was recorded: the start's flags are the row's (as train_cmd writes them)
            cmd = [c for c in shlex.split(tr['commands'][0]) if c != '--resume'] + [
                '--batch-size', str(entry['settings']['batch_size']), '--seed', str(entry['settings']['seed']),
                '--parameterization', entry['parameterization'], '--loss', entry['loss'], '--var-type', entry['var_type'],
                '--schedule', entry['schedule']]
            note = ' (only the resumption was recorded: the starting flags are the row\'s settings)'
        cmd = cmd[cmd.index('train') + 1:]
        flags = dict(zip(cmd[::2], cmd[1:] + [None]))
        cfg = {**defaults, **presets[flags.get('--preset', 'paper')]}
        i = 0
        while i < len(cmd):
            k = cmd[i][2:].replace('-', '_')
            if k in ('no_progress',): i += 1; continue
            if k in ('preset', 'out'): i += 2; continue
            if k not in cfg: raise ValueError(f"{row}: flag --{k} is not a TrainConfig field at {commit}")
            cfg[k] = type(cfg[k])(cmd[i + 1]) if cfg[k] is not None and not isinstance(cfg[k], bool) else cmd[i + 1]
            i += 2
        tr['config'] = cfg
        tr['config_source'] = (f"resolved on {time.strftime('%Y-%m-%d')} from the command above with TrainConfig's defaults and "
                               f"the preset as they were at commit {commit} (tools/ablation.py --record-configs {commit}){note}")
        log(f"[{row}] config: model {cfg['model']}, batch {cfg['batch_size']}, lr {cfg['lr']}, steps {cfg['steps']}")
    rfile.write_text(json.dumps(results, indent=1, ensure_ascii=False))


def main(argv=None):
    global RUNS, OUT
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--rows', default=','.join(ORDER), help=f'comma-separated rows (default: all, in this order: {ORDER})')
    p.add_argument('--preset', default='demo_mini', help="the `ddpm-lit train` preset every row starts from ('demo_mini': "
                   "the 'mini' U-Net; 'demo': the patch U-Net of make demo, with its Min-SNR weighting switched off)")
    p.add_argument('--lr', type=float, default=None, help="Adam's learning rate (default: the preset's)")
    p.add_argument('--steps', type=int, default=500, help='training steps of every row')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--fid-seeds', type=int, default=1, help='sampling seeds 0..K-1 for FID and the classifier score (their spread)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--ckpt-every', type=int, default=100, help='checkpoint interval (the last good one survives a NaN)')
    p.add_argument('--n', type=int, default=1000, help='DDIM samples for FID and the classifier score')
    p.add_argument('--ddim-steps', type=int, default=50)
    p.add_argument('--bpd-n', type=int, default=50, help='test images, and as many training images, for bits/dim')
    p.add_argument('--var-n', type=int, default=16, help='test images for the learned variance at each t')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--runs', default=str(RUNS.relative_to(ROOT)), help='where the runs go (git-ignored)')
    p.add_argument('--results', default=str(OUT.relative_to(ROOT)), help='where the summaries go')
    p.add_argument('--train-only', action='store_true', help='train the rows, evaluate nothing')
    p.add_argument('--ancestral', type=int, default=0,
                   help='only this: N ancestral samples (T steps, the row\'s variance) of each trained row, as a grid; '
                        'written to ancestral.json (no training, no results.json)')
    p.add_argument('--ancestral-fid', action='store_true', help='with --ancestral: also the FID and classifier score of '
                   'those samples (and the real-data floor at that n)')
    p.add_argument('--record-configs', default='', metavar='COMMIT', help='only this: add each row\'s resolved TrainConfig to '
                   'results.json, for results made before rows recorded theirs, from the code of COMMIT (the one that made them)')
    p.add_argument('--paired', default='', help='only this: two trained rows A,B; their bounds per test image (the bits/dim '
                   'images and x_t draws), and the mean difference A - B with its paired standard error, into results.json')
    a = p.parse_args(argv)
    RUNS, OUT = ROOT / a.runs, ROOT / a.results
    torch.set_num_threads(a.threads)
    rows = [r.strip() for r in a.rows.split(',') if r.strip()]
    bad = [r for r in rows if r not in ROWS]
    if bad: p.error(f"unknown rows {bad}; expected some of {ORDER}")
    if a.fid_seeds < 1: p.error(f"--fid-seeds must be at least 1, got {a.fid_seeds}")
    OUT.mkdir(parents=True, exist_ok=True)
    logf = open(OUT / 'log.txt', 'a')
    def log(s):
        line = f"{time.strftime('%H:%M:%S')} {s}"
        print(line, flush=True); logf.write(line + '\n'); logf.flush()
    if a.ancestral:
        afile = OUT / 'ancestral.json'
        done = json.loads(afile.read_text()) if afile.exists() else {}
        for row in rows:
            if not checkpoints(RUNS / row) or _step_of(checkpoints(RUNS / row)[-1]) < a.steps:
                log(f"[{row}] not trained to {a.steps} steps: no ancestral samples"); continue
            if done.get(row, {}).get('n') == a.ancestral and done[row].get('step') == a.steps: continue
            done[row] = ancestral_row(row, a, log)
            done[row]['command'] = f"OMP_NUM_THREADS={a.threads} .venv/bin/python tools/ablation.py " + \
                                   shlex.join(argv if argv is not None else sys.argv[1:])
            cur = json.loads(afile.read_text()) if afile.exists() else {}    # (re-read: another process may have added rows)
            cur[row] = done[row]
            afile.write_text(json.dumps(cur, indent=1))
        return
    rfile = OUT / 'results.json'
    if a.record_configs: return record_configs(rfile, a.record_configs, log)
    if a.paired:
        pr = [r.strip() for r in a.paired.split(',')]
        if len(pr) != 2 or not set(pr) <= set(ROWS): p.error(f"--paired needs two rows A,B of {ORDER}, got {a.paired!r}")
        res = paired_bound(pr, a, log)
        res['command'] = f"OMP_NUM_THREADS={a.threads} .venv/bin/python tools/ablation.py " + \
                         shlex.join(argv if argv is not None else sys.argv[1:])
        log(f"paired: {pr[0]} - {pr[1]} = {res['diff_mean']:.4f} ± {res['diff_se']:.4f} bits/dim (n = {res['n']})")
        results = json.loads(rfile.read_text()) if rfile.exists() else {}     # (read after the work: a run may have written)
        results.setdefault('paired', {})['-'.join(pr)] = res
        rfile.write_text(json.dumps(results, indent=1, ensure_ascii=False))
        return
    results = json.loads(rfile.read_text()) if rfile.exists() else {}
    settings = dict(steps=a.steps, batch_size=a.batch_size, seed=a.seed, n=a.n, ddim_steps=a.ddim_steps, bpd_n=a.bpd_n,
                    var_n=a.var_n, threads=a.threads)
    # (settings of the first, default-preset run keep their original keys, so its results.json still matches)
    if a.preset != 'demo_mini' or a.lr is not None or a.fid_seeds > 1: settings.update(preset=a.preset, lr=a.lr, fid_seeds=a.fid_seeds)
    demo = {k: v for k, v in vars(preset(a.preset, device='cpu')).items() if k in
            ('model', 'image_size', 'dropout', 'T', 'lr', 'warmup', 'lr_schedule', 'grad_clip', 'ema_decay', 'hybrid_lambda')}
    if a.lr is not None: demo['lr'] = a.lr
    results['setup'] = dict(settings=settings, demo_preset=demo, script=f"OMP_NUM_THREADS={a.threads} .venv/bin/python "
                            f"tools/ablation.py {shlex.join(argv if argv is not None else sys.argv[1:])}".strip(),
                            machine=dict(cpu=platform.processor() or platform.machine(), torch=torch.__version__,
                                         os_cpu_count=os.cpu_count()))
    results.setdefault('rows', {})
    log(f"ablation: rows {rows}; settings {settings}")
    # one training at a time, in the background: row k is evaluated here (one more core) while row k+1 trains
    todo = []
    for row in rows:
        prev = results['rows'].get(row, {})
        if prev.get('settings') == settings and (a.train_only or 'eval' in prev or prev.get('train', {}).get('status') == 'diverged'):
            log(f"[{row}] already done with these settings; skipped")
        else: todo.append((row, prev.get('train', {}).get('commands', []) if prev.get('settings') == settings else []))
    def save(): rfile.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    def start(i):
        row, commands = todo[i]
        h = start_training(row, a, log, commands)
        results['rows'][row] = dict(settings=settings, train=dict(status='training', commands=commands)); save()
        return h
    handle = start(0) if todo else None
    for i, (row, commands) in enumerate(todo):
        tr = finish_training(row, handle, log, commands)
        handle = start(i + 1) if i + 1 < len(todo) else None
        entry = dict(settings=settings, **{k: v for k, v in ROWS[row].items() if k != 'paper'}, paper=ROWS[row]['paper'], train=tr)
        results['rows'][row] = entry; save()
        if a.train_only: continue
        if tr['status'] == 'diverged':
            log(f"[{row}] diverged: not evaluated (the paper's 'unstable'); last checkpoint step {tr['checkpoint_step']}")
        elif tr['status'] == 'trained':
            ev, arrays = evaluate_row(row, a, log)
            entry['eval'] = ev
            save_arrays(arrays)
            log(f"[{row}] evaluated in {ev['eval_wall_s']} s")
        results['rows'][row] = entry; save()
    log("ablation: done")


if __name__ == '__main__':
    main()

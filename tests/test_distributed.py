"""Distributed training and sampling under torchrun, on the CPU with gloo (chapter 14): two processes compute the
gradients of one; a two-process run (40 steps, a checkpoint every 10) whose worker is killed is restarted by torchrun and continues from its checkpoint
by itself, logs each step once, resumes on one process, and samples exactly n images on two.

This file is also the worker of the gradient test: `torchrun ... tests/test_distributed.py OUT` runs `worker(OUT)`."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow   # `make test-fast` leaves it out; `make test` runs it
import torch

from conftest import EXE, cli

TORCHRUN = str(Path(sys.executable).with_name('torchrun'))
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}   # two processes on two cores
for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'TORCHELASTIC_RESTART_COUNT'): ENV.pop(k, None)
B, T = 8, 20


def toy_trainer(run_dir):
    "The tiny network on 32 8x8 images; noise-free (dropout 0) so one forward is a function of (x, t, noise)"
    from ddpm_lit.data import ImageData
    from ddpm_lit.train import TrainConfig, Trainer
    u8 = torch.randint(0, 256, (32, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    cfg = TrainConfig(model='tiny', image_size=8, T=T, batch_size=B, lr=1e-3, warmup=0, ema_decay=0.9, dropout=0.0,
                      device='cpu', log_every=1, ckpt_every=100)
    return Trainer(cfg, run_dir, data=ImageData(u8, name='toy'))


def fixed_draws(tr):
    "A batch of B images with fixed timesteps and noise, independent of the number of processes"
    g = torch.Generator().manual_seed(1)
    x = tr.data.batch(0, B, 0)
    return x, torch.randint(0, T, (B,), generator=g), torch.randn(x.shape, generator=g)


def grads_of(tr, x, t, noise):
    from ddpm_lit.loss import training_losses
    tr.opt.zero_grad(set_to_none=True)
    training_losses(tr.fwd, tr.sched, x, t, noise)['loss'].mean().backward()
    return {k: p.grad.clone() for k, p in tr.model.named_parameters()}


def flat(sd): return torch.cat([v.flatten().float() for v in sd.values()])


def worker(out):
    "One rank of the gradient test (run by torchrun with 2 processes)"
    import torch.distributed as dist
    from ddpm_lit.distributed import derive_seed, shard
    tr = toy_trainer(Path(out) / 'run')
    r, w = tr.env.rank, tr.env.world_size
    x, t, noise = fixed_draws(tr)
    s = shard(B, r, w)
    g = grads_of(tr, x[s], t[s], noise[s])                      # DDP averages the two halves' gradients
    tr.opt.zero_grad(set_to_none=True)
    steps = [tr.train_step(tr.batch(), tr.labels())]             # each rank draws its own t and noise
    step0 = {k: p.grad.clone() for k, p in tr.model.named_parameters()}   # averaged over the ranks and clipped
    steps.append(tr.train_step(tr.batch(), tr.labels()))
    both = [None] * w
    dist.all_gather_object(both, dict(model=flat(tr.model.state_dict()), ema=flat(tr.ema.state_dict()),
                                      t=torch.randint(0, T, (4,), generator=torch.Generator().manual_seed(derive_seed(0, r, 0)))))
    if r == 0:
        torch.save(dict(grads=g, step0=step0, ranks=both, world=w,
                        losses=[l.item() for l, _ in steps]), Path(out) / 'rank0.pt')
    dist.destroy_process_group()


def torchrun(*args, nproc=2, timeout=300, **kw):
    return subprocess.run([TORCHRUN, '--standalone', f'--nproc_per_node={nproc}', *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=ENV, **kw)


def test_gradients_match_one_process(tmp_path):
    r = torchrun(__file__, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    got = torch.load(tmp_path / 'rank0.pt', weights_only=True)
    assert got['world'] == 2
    from ddpm_lit.distributed import derive_seed
    one = toy_trainer(tmp_path / 'one')                           # one process, the same initial weights
    x, t, noise = fixed_draws(one)
    want = grads_of(one, x, t, noise)                            # 1 rank x B images
    for k, g in want.items():                                    # = 2 ranks x B/2 images, to float32 rounding
        torch.testing.assert_close(got['grads'][k], g, rtol=1e-5, atol=1e-6, msg=k)
    ranks = got['ranks']
    assert torch.equal(ranks[0]['model'], ranks[1]['model']), "the ranks' weights differ"
    assert torch.equal(ranks[0]['ema'], ranks[1]['ema']), "the ranks' EMAs differ"
    assert not torch.equal(ranks[0]['t'], ranks[1]['t']), "the ranks drew the same timesteps"
    # train_step's own draws: one process replaying both ranks' (t, then noise, as training_losses draws them) on the
    # global batch of step 0 gets the gradient the two processes used (Adam's steps would magnify float32 rounding
    # in near-zero gradients, so the gradients are compared, not the weights after the step)
    from torch import nn
    draws = []
    for rank in range(2):
        torch.manual_seed(derive_seed(0, rank, 0))
        tt = torch.randint(0, T, (B // 2,)); draws.append((tt, torch.randn(B // 2, 1, 8, 8)))
    want = grads_of(one, one.batch(), torch.cat([d[0] for d in draws]), torch.cat([d[1] for d in draws]))
    nn.utils.clip_grad_norm_(list(one.model.parameters()), 1.0)
    for k, p in one.model.named_parameters():
        torch.testing.assert_close(got['step0'][k], p.grad, rtol=1e-5, atol=1e-6, msg=k)


STEPS, EVERY = 40, 10


def train_args(data, out, *more):
    return ['-m', 'ddpm_lit', 'train', '--dataset', 'folder', '--data-dir', data, '--image-size', 8, '--model', 'tiny',
            '--T', T, '--batch-size', B, '--steps', STEPS, '--ckpt-every', EVERY, '--log-every', 1, '--warmup', 5,
            '--device', 'cpu', '--no-progress', '--out', out, *more]


def logged_steps(run): return [json.loads(l)['step'] for l in open(run / 'metrics.jsonl')]


def worker_pids(parent:int)->dict:
    "{rank: pid} of torchrun's worker processes (its children with a RANK variable)"
    out = {}
    for d in Path('/proc').iterdir():
        try:
            if not d.name.isdigit() or f'\nPPid:\t{parent}\n' not in (d / 'status').read_text(): continue
            env = dict(kv.split('=', 1) for kv in (d / 'environ').read_bytes().decode(errors='replace').split('\0') if '=' in kv)
        except OSError: continue
        if 'RANK' in env: out[int(env['RANK'])] = int(d.name)
    return out


@pytest.fixture(scope='module')
def killed_run(tmp_path_factory):
    "A 2-process run under --max-restarts=2 (one spare: see chapter 14 on a hung reconnection) whose rank-1 worker is SIGKILLed after its first checkpoint"
    from PIL import Image
    import numpy as np
    root = tmp_path_factory.mktemp('dist'); d = root / 'imgs'; d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(32):
        a = np.zeros((8, 8), np.uint8); a[rng.integers(0, 4):, rng.integers(0, 4):] = 255
        Image.fromarray(a).save(d / f'{i:02d}.png')
    run = root / 'run'
    out, err = open(root / 'out.txt', 'w+'), open(root / 'err.txt', 'w+')   # files, not pipes: a full pipe would block the workers
    p = subprocess.Popen([TORCHRUN, '--standalone', '--nproc_per_node=2', '--max-restarts=2', '--monitor-interval=0.1',
                          *map(str, train_args(d, run))], stdout=out, stderr=err, env=ENV)
    t0, killed, log = time.time(), None, run / 'metrics.jsonl'
    while p.poll() is None and time.time() - t0 < 420:
        if killed is None and log.exists() and len(log.read_text().splitlines()) >= EVERY + 3:
            ranks = worker_pids(p.pid)
            killed = (len(log.read_text().splitlines()), ranks)
            os.kill(ranks[1], signal.SIGKILL)
        time.sleep(0.02)
    if p.poll() is None: p.kill()
    p.wait()
    return dict(data=d, run=run, rc=p.returncode, killed=killed, out=(root / 'out.txt').read_text(),
                err=(root / 'err.txt').read_text(), time=time.time() - t0)


def test_survives_a_killed_worker(killed_run):
    k = killed_run
    assert k['killed'] is not None, f"the run ended before a worker could be killed\n{k['err'][-2000:]}"
    assert k['rc'] == 0, k['err'][-3000:]
    assert 'torchrun restart 1: resuming' in k['err'], k['err'][-2000:]
    resumed_from = int(k['err'].split('torchrun restart 1: resuming')[1].split('step_')[1][:8])
    assert resumed_from >= EVERY and k['killed'][0] - resumed_from <= EVERY + 2   # lost at most the steps since it
    from ddpm_lit.train import load_checkpoint
    assert load_checkpoint(k['run'])['step'] == STEPS


def test_metrics_logged_once_per_step(killed_run):
    assert logged_steps(killed_run['run']) == list(range(1, STEPS + 1))


def test_resume_on_one_process(killed_run):
    run = killed_run['run']
    r = cli('train', '--out', run, '--resume', '--steps', STEPS + 4, '--no-progress', check=True, env=ENV)
    assert f'done: step {STEPS + 4}' in r.stdout
    assert logged_steps(run) == list(range(1, STEPS + 5))


def test_sample_on_two_processes(killed_run, tmp_path):
    npz = tmp_path / 's.npz'
    r = torchrun('-m', 'ddpm_lit', 'sample', killed_run['run'], '-n', 10, '--batch-size', 4, '--sampler', 'ddim',
                 '--steps', 3, '--npz', npz, '--device', 'cpu', '--no-progress')
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('wrote') == 1 and '10 samples' in r.stdout     # rank 0 alone writes and reports
    import numpy as np
    got = np.load(npz)['arr_0']
    assert got.shape == (10, 8, 8, 1) and got.dtype == np.uint8
    from ddpm_lit.scale import generate_sharded
    from ddpm_lit.train import load_run
    run = load_run(killed_run['run'])                              # one process: the same images as two
    want = generate_sharded(run.model, run.diffusion, 10, run.shape, 'ddim', 3, batch_size=4)
    assert (got == want.numpy()).all()
    # the one seed rule: plain `ddpm-lit sample` with the same seed writes the same file as torchrun on two processes
    single = tmp_path / 'single.npz'
    r = cli('sample', killed_run['run'], '-n', 10, '--batch-size', 4, '--sampler', 'ddim', '--steps', 3, '--npz', single,
            '--device', 'cpu', '--no-progress')
    assert r.returncode == 0, r.stderr
    assert (np.load(single)['arr_0'] == got).all(), 'ddpm-lit sample and torchrun ... sample gave different images'


if __name__ == '__main__': worker(sys.argv[1])


def test_init_distributed_bare_cuda(monkeypatch):
    """`--device cuda` outside torchrun is the current GPU: torch.cuda.set_device refuses a device without an index (torch
    2.11 raised 'Expected a torch.device with a specified index' in the first GPU round), so it is called only with one"""
    from ddpm_lit import distributed as D
    calls = []
    def strict_set_device(d):
        if isinstance(d, torch.device) and d.index is None:
            raise ValueError("Expected a torch.device with a specified index or an integer, but got:cuda")
        calls.append(d)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'set_device', strict_set_device)
    assert D.init_distributed('cuda', D.DistEnv()) == torch.device('cuda') and calls == []
    assert D.init_distributed('cuda:1', D.DistEnv()) == torch.device('cuda', 1) and calls == [torch.device('cuda', 1)]

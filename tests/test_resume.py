"""A training run killed with SIGKILL and resumed with --resume ends with exactly the parameters of the run that was
never interrupted (CPU, so bit-for-bit determinism can be asserted)."""
import os, signal, subprocess, time

import pytest
import torch

from conftest import EXE, cli

STEPS, EVERY = 400, 50


def train_args(data, out):
    return ['train', '--dataset', 'folder', '--data-dir', data, '--image-size', '8', '--model', 'tiny', '--T', '20',
            '--batch-size', '8', '--steps', STEPS, '--ckpt-every', EVERY, '--log-every', 10, '--warmup', 5,
            '--dropout', '0.1', '--device', 'cpu', '--no-progress', '--out', out]


def params(run):
    from ddpm_lit.train import load_checkpoint
    ck = load_checkpoint(run)
    return ck['step'], ck['model'], ck['ema']


@pytest.mark.slow   # processes for tens of seconds: make test runs it, make test-fast does not
def test_sigkill_then_resume_matches_uninterrupted(image_folder, tmp_path):
    straight, killed = tmp_path / 'straight', tmp_path / 'killed'
    cli(*train_args(image_folder, straight), check=True)

    p = subprocess.Popen([EXE, *map(str, train_args(image_folder, killed))], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ck_dir = killed / 'checkpoints'
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None and not any(ck_dir.glob('step_*.pt')):
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL, f"the run ended before it could be killed (status {p.returncode})"
    kept = sorted(ck_dir.glob('step_*.pt'))
    assert kept, "no checkpoint was written before the kill"
    step_at_kill = int(kept[-1].stem.split('_')[1])
    assert 0 < step_at_kill < STEPS

    r = cli('train', '--out', killed, '--resume', '--no-progress', check=True)
    assert f'step {step_at_kill} -> {STEPS}' in r.stderr, r.stderr

    # each step is logged once: lines written after the checkpoint by the killed process are dropped on resume
    import json
    logged = lambda run: [json.loads(l)['step'] for l in open(run / 'metrics.jsonl')]
    assert logged(killed) == logged(straight) == list(range(10, STEPS + 1, 10))

    s1, m1, e1 = params(straight)
    s2, m2, e2 = params(killed)
    assert s1 == s2 == STEPS
    for k in m1:
        assert torch.equal(m1[k], m2[k]), f"model parameter {k} differs after resuming"
        assert torch.equal(e1[k], e2[k]), f"EMA parameter {k} differs after resuming"


def test_resume_needs_a_checkpoint_and_fresh_run_refuses_to_overwrite(image_folder, tmp_path):
    r = cli('train', '--out', tmp_path / 'nothing', '--resume')
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and 'no checkpoints' in r.stderr
    run = tmp_path / 'run'
    args = train_args(image_folder, run)
    args[args.index('--steps') + 1] = 10
    cli(*args, check=True)
    r = cli(*args)
    assert r.returncode == 1 and '--resume' in r.stderr and len(r.stderr.strip().splitlines()) == 1

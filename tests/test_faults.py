"""Faults a user meets, tried for real: two trainers on one run directory, a trainer killed while it holds the lock,
and every numeric option of every sub-command at 0, -1, NaN, infinity and a huge value (one line, never a traceback).
The in-process faults (a truncated newest checkpoint, ENOSPC while writing one, --steps 0) are in chapter 07b."""
import contextlib, io, json, os, signal, subprocess, time
from pathlib import Path

import pytest
import torch

from conftest import EXE, cli
from test_resume import train_args, params


def _start(args):
    return subprocess.Popen([EXE, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(pred, p, what, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and p.poll() is None and not pred(): time.sleep(0.01)
    assert pred(), f"{what} never happened (trainer status {p.poll()})"


@pytest.mark.slow   # processes for tens of seconds: make test runs it, make test-fast does not
def test_second_trainer_is_refused_and_the_first_is_untouched(image_folder, tmp_path):
    alone, shared = tmp_path / 'alone', tmp_path / 'shared'
    cli(*train_args(image_folder, alone), check=True)                     # the same run with no second writer
    first = _start(train_args(image_folder, shared))
    _wait_for(lambda: (shared / 'metrics.jsonl').exists(), first, 'the first trainer logging')
    for args in (train_args(image_folder, shared), ['train', '--out', shared, '--resume', '--no-progress']):
        r = cli(*args)
        assert r.returncode == 1, (r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and f'is being trained by pid {first.pid} on ' in lines[0], r.stderr
    assert first.poll() is None, 'the first trainer ended before the second was tried: the test proved nothing'
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    # the first run's files are those of the undisturbed run: the same checkpoints, tensor for tensor, the same log steps
    assert [p.name for p in (shared / 'checkpoints').iterdir()] == [p.name for p in (alone / 'checkpoints').iterdir()]
    for a, b in zip(params(alone), params(shared)):
        if isinstance(a, dict): assert all(torch.equal(a[k], b[k]) for k in a)
        else: assert a == b
    steps = lambda run: [(r['step'], r['loss']) for r in map(json.loads, open(run / 'metrics.jsonl'))]
    assert steps(shared) == steps(alone)
    assert (shared / 'config.json').read_text() == (alone / 'config.json').read_text()


def test_a_killed_trainer_leaves_no_stale_lock(image_folder, tmp_path):
    run = tmp_path / 'run'
    p = _start(train_args(image_folder, run))
    _wait_for(lambda: any((run / 'checkpoints').glob('step_*.pt')), p, 'a first checkpoint')
    assert 'pid' in (run / '.lock').read_text()
    p.send_signal(signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL
    r = cli('train', '--out', run, '--resume', '--no-progress', '--steps', 60)
    assert r.returncode == 0, r.stderr
    assert 'done: step 60' in r.stdout, r.stdout


# ---- every numeric option at bad and edge values: exit status 0, 1 or 2, at most one line on stderr, no traceback ----
SWEEP_VALUES = ['0', '-1', 'nan', 'inf', '1e30', '999999999999']


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    from ddpm_lit.train import TrainConfig, Trainer
    from ddpm_lit.data import ImageData
    d = tmp_path_factory.mktemp('sweep')
    toy = ImageData((torch.rand(16, 1, 8, 8) > .5).to(torch.uint8) * 255)
    Trainer(TrainConfig(model='tiny', image_size=8, T=10, batch_size=8, steps=2, ckpt_every=2, warmup=1, device='cpu'),
            d / 'run', toy).fit(progress=False)
    from PIL import Image
    import numpy as np
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(d / 'im.png'); Image.fromarray(np.full((8, 8), 255, np.uint8)).save(d / 'mk.png')
    return d


def _numeric_options(command):
    "The sub-command's options whose argparse type is a number"
    from ddpm_lit.cli import _parser
    sub = next(a for a in _parser()._actions if a.dest == 'command').choices[command]
    return [a.option_strings[-1] for a in sub._actions if getattr(a.type, '__name__', '') in ('int', 'float')]


def _run_main(*argv):
    from ddpm_lit.cli import main
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try: main([str(a) for a in argv]); code = 0
        except SystemExit as ex: code = ex.code
    return code, e.getvalue()


def test_numeric_options_sweep(tiny_run, tmp_path):
    d = tiny_run
    base = {
        'sample': ['sample', d / 'run', '-n', '2', '--sampler', 'ddim', '--steps', '2', '--device', 'cpu', '--no-progress',
                   '--npz', tmp_path / 's.npz'],
        'evaluate': ['evaluate', d / 'run', '-n', '0', '--bpd-n', '0', '--device', 'cpu', '--no-progress', '--no-floor',
                     '--json', tmp_path / 'e.json'],
        'inpaint': ['inpaint', d / 'run', '--image', d / 'im.png', '--mask', d / 'mk.png', '--npz', tmp_path / 'i.npz',
                    '--n', '1', '--resample', '1', '--jump-length', '1', '--device', 'cpu', '--no-progress'],
    }
    # options whose huge value is a legitimate request for a long job (more images, more steps): only the bad values
    long_jobs = {'-n', '--n', '--steps', '--particles', '--bpd-n', '--resample', '--jump-length'}
    tried = 0
    for command, args in base.items():
        opts = _numeric_options(command)
        assert opts, command
        for opt in opts:
            for v in SWEEP_VALUES:
                if opt in long_jobs and v in ('1e30', '999999999999'): continue
                code, err = _run_main(*args, opt, v)
                tried += 1
                assert code in (0, 1, 2), (command, opt, v, code, err)
                assert 'Traceback' not in err and len(err.strip().splitlines()) <= 1, (command, opt, v, err)
                if v in ('nan', 'inf') or (v == '-1' and opt not in ('--seed',)):
                    assert code in (1, 2) and (opt in err or 'error' in err), (command, opt, v, code, err)
    assert tried > 60, tried


def test_train_numeric_options_sweep(image_folder, tmp_path):
    "train: each numeric flag at the bad values is refused as a usage error naming the flag, before any training"
    opts = _numeric_options('train')
    for opt in opts:
        for v in ('nan', 'inf', '-1'):
            if opt == '--seed' and v == '-1': continue
            code, err = _run_main('train', '--out', tmp_path / 'never', opt, v)
            assert code == 2 and opt in err and len(err.strip().splitlines()) == 1, (opt, v, code, err)
    assert not (tmp_path / 'never').exists()
    code, err = _run_main(*train_args(image_folder, tmp_path / 'zero')[:-1], tmp_path / 'zero', '--steps', '0')
    assert code == 0 and [p.name for p in (tmp_path / 'zero' / 'checkpoints').iterdir()] == ['step_00000000.pt'], err

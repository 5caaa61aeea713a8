"""The `ddpm-lit` command as a user runs it: help for each sub-command, one-line errors, an end-to-end
train -> sample on a folder of images."""
import json

import numpy as np
import pytest

from conftest import EXE, cli


@pytest.mark.parametrize('sub', ['train', 'sample', 'evaluate'])
def test_help(sub):
    r = cli(sub, '--help')
    assert r.returncode == 0, r.stderr
    assert f'usage: ddpm-lit {sub}' in r.stdout


def test_top_level_help_lists_subcommands():
    r = cli('--help')
    assert r.returncode == 0
    for sub in ('train', 'sample', 'evaluate'): assert sub in r.stdout


@pytest.mark.parametrize('args, needle', [
    (['train', '--out', 'x', '--lr', '-1'], '--lr'),
    (['train', '--out', 'x', '--dataset', 'imagenet'], '--dataset'),
    (['train'], '--out'),
    (['sample', 'x', '--n', '0'], '--n'),
    (['sample', 'x', '--sampler', 'euler'], '--sampler'),
    (['frobnicate'], 'frobnicate'),
])
def test_bad_arguments_are_one_line(args, needle):
    r = cli(*args)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert needle in r.stderr and 'Traceback' not in r.stderr


@pytest.mark.parametrize('what', ['missing', 'not_a_checkpoint', 'empty_dir'])
def test_sample_bad_input_is_one_line(tmp_path, what):
    target = {'missing': tmp_path / 'nope.pt', 'empty_dir': tmp_path}[what] if what != 'not_a_checkpoint' else tmp_path / 'x.pt'
    if what == 'not_a_checkpoint': target.write_text('not a checkpoint')
    r = cli('sample', target, '--n', '2')
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr, r.stderr


def test_train_then_sample_end_to_end(image_folder, tmp_path):
    run = tmp_path / 'run'
    r = cli('train', '--dataset', 'folder', '--data-dir', image_folder, '--image-size', '8', '--model', 'tiny',
            '--T', '20', '--batch-size', '8', '--steps', '20', '--ckpt-every', '10', '--warmup', '2', '--device', 'cpu',
            '--no-progress', '--out', run, check=True)
    assert (run / 'metrics.jsonl').read_text().count('\n') >= 1
    assert sorted(p.name for p in (run / 'checkpoints').iterdir()) == ['step_00000010.pt', 'step_00000020.pt']
    r = cli('sample', run, '--n', '6', '--out', tmp_path / 'g.png', '--npz', tmp_path / 's.npz', '--device', 'cpu', check=True)
    arr = np.load(tmp_path / 's.npz')['arr_0']
    assert arr.shape == (6, 8, 8, 1) and arr.dtype == np.uint8      # a folder of grey PNGs trains as 1 channel
    assert (tmp_path / 'g.png').stat().st_size > 0


def test_keep_ckpts_and_resume_to_more_steps(image_folder, tmp_path):
    "--keep-ckpts keeps that many checkpoints; --resume with a larger --steps extends the run and keeps its setting"
    run = tmp_path / 'run'
    common = ('--device', 'cpu', '--no-progress', '--out', run)
    cli('train', '--dataset', 'folder', '--data-dir', image_folder, '--image-size', '8', '--model', 'tiny', '--T', '20',
        '--batch-size', '4', '--steps', '6', '--ckpt-every', '2', '--keep-ckpts', '5', '--warmup', '1', *common, check=True)
    assert sorted(p.name for p in (run / 'checkpoints').iterdir()) == [f'step_{s:08d}.pt' for s in (2, 4, 6)]
    cli('train', '--resume', '--steps', '10', '--data-dir', image_folder, *common, check=True)
    assert sorted(p.name for p in (run / 'checkpoints').iterdir()) == [f'step_{s:08d}.pt' for s in (2, 4, 6, 8, 10)]
    cfg = json.loads((run / 'config.json').read_text())
    assert (cfg['steps'], cfg['keep_ckpts'], cfg['batch_size']) == (10, 5, 4)   # config.json follows the resumed run
    cli('train', '--resume', '--steps', '12', '--keep-ckpts', '1', '--data-dir', image_folder, *common, check=True)
    assert sorted(p.name for p in (run / 'checkpoints').iterdir()) == ['step_00000012.pt']


def test_python_dash_m_is_the_command():
    "`python -m ddpm_lit ARGS` is `ddpm-lit ARGS` (what torchrun -m needs)"
    import subprocess, sys
    r = subprocess.run([sys.executable, '-m', 'ddpm_lit', 'train', '--help'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and 'usage: ddpm-lit train' in r.stdout, r.stderr
    r = subprocess.run([sys.executable, '-m', 'ddpm_lit', 'frobnicate'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_sampling_shows_progress_on_a_terminal_only(image_folder, tmp_path):
    "On a terminal `ddpm-lit sample` shows a bar counting images (with img/s and time left); piped, or with --no-progress, none"
    import fcntl, os, pty, struct, subprocess, termios
    run = tmp_path / 'run'
    cli('train', '--dataset', 'folder', '--data-dir', image_folder, '--image-size', '8', '--model', 'tiny', '--T', '20',
        '--batch-size', '4', '--steps', '2', '--warmup', '1', '--device', 'cpu', '--no-progress', '--out', run, check=True)
    def on_tty(*extra):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 100, 0, 0))   # a terminal has a width
        p = subprocess.Popen([EXE, 'sample', str(run), '--n', '4', '--out', str(tmp_path / 'g.png'), '--device', 'cpu', *extra],
                             stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave); out = b''
        while True:
            try: chunk = os.read(master, 4096)
            except OSError: break
            if not chunk: break
            out += chunk
        p.wait(); os.close(master)
        return p.returncode, out.decode(errors='replace')
    code, out = on_tty()
    assert code == 0 and 'images' in out and 'img/s' in out, out
    code, out = on_tty('--no-progress')
    assert code == 0 and 'img/s]' not in out, out
    r = cli('sample', run, '--n', '4', '--out', tmp_path / 'g2.png', '--device', 'cpu', check=True)   # piped: no bar
    assert 'img/s]' not in r.stderr, r.stderr

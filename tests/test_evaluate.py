"""`ddpm-lit evaluate` as a user runs it: help, one-line errors for bad input, and (when Fashion-MNIST is on disk)
an end-to-end run on a tiny checkpoint trained here, with its JSON."""
import json

import numpy as np
import pytest

from conftest import cli


def _have_fashion_mnist():
    from ddpm_lit.data import find_data
    try: find_data('fashion_mnist', download=False); return True
    except FileNotFoundError: return False


def _one_line_error(r, code=1):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in r.stderr, r.stderr
    return lines[0]


def test_help():
    r = cli('evaluate', '--help')
    assert r.returncode == 0, r.stderr
    assert 'usage: ddpm-lit evaluate' in r.stdout
    for opt in ('--n', '--sampler', '--steps', '--seed', '--batch-size', '--device', '--bpd-n', '--json', '--inception'):
        assert opt in r.stdout, opt


def test_missing_checkpoint(tmp_path):
    line = _one_line_error(cli('evaluate', tmp_path / 'nope.pt'))
    assert 'nope.pt' in line and 'not found' in line, line


def test_text_file_is_not_a_checkpoint(tmp_path):
    f = tmp_path / 'notes.txt'; f.write_text('not a checkpoint\n' * 3)
    line = _one_line_error(cli('evaluate', f))
    assert 'notes.txt' in line and 'checkpoint' in line, line


def test_directory_without_checkpoints(tmp_path):
    line = _one_line_error(cli('evaluate', tmp_path))
    assert 'no checkpoints' in line, line


@pytest.mark.parametrize('args, needle', [(['--n', '-1'], '--n'), (['--sampler', 'euler'], '--sampler'),
                                          (['--bpd-n', 'many'], '--bpd-n'), (['--steps', '0'], '--steps')])
def test_bad_arguments_are_one_line(tmp_path, args, needle):
    line = _one_line_error(cli('evaluate', tmp_path, *args), code=2)
    assert needle in line, line


@pytest.mark.skipif(not _have_fashion_mnist(), reason='Fashion-MNIST is not on disk (apt-get install dataset-fashion-mnist)')
@pytest.mark.slow   # processes for tens of seconds: make test runs it, make test-fast does not
def test_evaluate_tiny_checkpoint(tmp_path):
    "A 5-step tiny run (T = 10): FID on a few DDIM samples and bits/dim on two test images, through the real command"
    run = tmp_path / 'run'
    cli('train', '--dataset', 'fashion_mnist', '--model', 'tiny', '--T', '10', '--steps', '5', '--batch-size', '8',
        '--warmup', '1', '--device', 'cpu', '--image-size', '32', '--no-progress', '--out', run, check=True)
    out = tmp_path / 'e.json'
    r = cli('evaluate', run, '--n', '8', '--sampler', 'ddim', '--steps', '2', '--bpd-n', '2', '--batch-size', '8',
            '--device', 'cpu', '--no-progress', '--json', out, '--npz', tmp_path / 's.npz', check=True)
    assert 'FID' in r.stdout and 'n = 8 samples vs 10000 test images' in r.stdout, r.stdout
    assert 'bits/dim' in r.stdout and 'n = 2 test images' in r.stdout, r.stdout
    res = json.loads(out.read_text())
    assert (res['step'], res['n'], res['fid_n'], res['fid_ref_n'], res['sampler'], res['steps'], res['seed']) == \
           (5, 8, 8, 10000, 'ddim', 2, 0), res
    assert res['fid'] > 0 and res['bpd'] > 0 and res['bpd_n'] == 2 and len(res['bpd_terms']) == 10
    assert res['checkpoint'].endswith('step_00000005.pt')
    # the settings as resolved: every EvalConfig field, the flags given and the defaults of the rest
    assert res['config'] == dict(n=8, sampler='ddim', steps=2, eta=0.0, var_type=None, guidance=0.0, batch_size=8, seed=0,
                                 ema=True, device='cpu', bpd_n=2, bpd_batch_size=None, bpd_passes=None, inception=False, reference='train',
                                 floor=True, data_dir=None), res['config']
    assert np.load(tmp_path / 's.npz')['arr_0'].shape == (8, 32, 32, 1)
    # samples made elsewhere (e.g. by torchrun ... sample --npz): the same images give the same FID
    out2 = tmp_path / 'e2.json'
    r = cli('evaluate', run, '--samples', tmp_path / 's.npz', '--bpd-n', '0', '--device', 'cpu', '--no-progress',
            '--json', out2, check=True)
    assert 'samples from' in r.stdout, r.stdout
    res2 = json.loads(out2.read_text())
    assert res2['n'] == 8 and res2['samples_from'].endswith('s.npz') and abs(res2['fid'] - res['fid']) < 1e-9, (res2, res)
    # the .npz that evaluate --npz wrote says how its images were drawn, and the protocol names it
    assert (res2['sampler'], res2['steps'], res2['samples_settings']['seed']) == ('ddim', 2, 0), res2
    assert '8 samples (DDIM 2 steps, eta 0, seed 0; samples from' in res2['fid_protocol'], res2['fid_protocol']
    line = _one_line_error(cli('evaluate', run, '--samples', tmp_path / 'nope.npz', '--bpd-n', '0'))
    assert '--samples' in line and 'not found' in line, line
    np.savez(tmp_path / 'bad.npz', arr_0=np.zeros((4, 28, 28, 1), np.uint8))
    line = _one_line_error(cli('evaluate', run, '--samples', tmp_path / 'bad.npz', '--bpd-n', '0'))
    assert 'expected at least 2 uint8 images [N, 32, 32, 1]' in line, line
    # a checkpoint file, ancestral sampling (T steps recorded), the JSON by default next to the run
    cli('evaluate', run / 'checkpoints' / 'step_00000005.pt', '--n', '4', '--bpd-n', '0', '--device', 'cpu',
        '--no-progress', check=True)
    res = json.loads((run / 'eval.json').read_text())
    assert (res['sampler'], res['steps'], res['fid_n']) == ('ddpm', 10, 4) and 'bpd' not in res, res

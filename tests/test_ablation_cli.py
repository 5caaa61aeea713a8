"""The Table 2 settings through the `ddpm-lit` command (chapter 11, tools/ablation.py): an x0 or μ̃ network with a
learned (or learned-range) variance, trained on the bound or the hybrid objective, resumed, sampled with both
samplers and evaluated (bits/dim); and the one combination that cannot train, refused as a usage error.
Tiny: the 'tiny' U-Net on 8x8 grey images, T = 10, 4 steps. The chain of commands runs `ddpm_lit.cli.main` in this
process (what the `ddpm-lit` script calls), so that it pays for importing torch once; the usage error goes through
the installed command, as a user sees it."""
import json, math

import numpy as np
import pytest

from conftest import cli


def ddpm_lit(*args):
    "`ddpm-lit ARGS` in this process; a non-zero exit status fails the test"
    from ddpm_lit.cli import main
    try: main([str(a) for a in args])
    except SystemExit as e:
        if e.code: raise AssertionError(f"ddpm-lit {' '.join(map(str, args))} exited {e.code}") from None

TINY = ('--model', 'tiny', '--image-size', '8', '--T', '10', '--batch-size', '8', '--warmup', '1', '--ckpt-every', '2',
        '--device', 'cpu', '--no-progress')


@pytest.mark.parametrize('par, var_type, loss', [('x0', 'learned', 'vlb'), ('mu', 'learned_range', 'hybrid')])
def test_train_resume_sample_evaluate(image_folder, tmp_path, par, var_type, loss):
    run = tmp_path / 'run'
    ddpm_lit('train', '--dataset', 'folder', '--data-dir', image_folder, *TINY, '--steps', '4', '--parameterization', par,
        '--var-type', var_type, '--loss', loss, '--out', run)
    cfg = json.loads((run / 'config.json').read_text())
    assert (cfg['parameterization'], cfg['var_type'], cfg['loss'], cfg['steps']) == (par, var_type, loss, 4)
    recs = [json.loads(l) for l in (run / 'metrics.jsonl').read_text().splitlines()]
    assert recs and all(math.isfinite(r['loss']) for r in recs)
    # resume to more steps: the run keeps its parameterisation, variance and objective
    ddpm_lit('train', '--resume', '--steps', '6', '--data-dir', image_folder, '--device', 'cpu', '--no-progress', '--out', run)
    assert sorted(p.name for p in (run / 'checkpoints').iterdir())[-1] == 'step_00000006.pt'
    cfg = json.loads((run / 'config.json').read_text())
    assert (cfg['parameterization'], cfg['var_type'], cfg['loss'], cfg['steps']) == (par, var_type, loss, 6)
    # both samplers read the 2C-channel output (ancestral: its variance half; DDIM: only its mean half)
    for sampler in ('ddpm', 'ddim'):
        npz = tmp_path / f'{sampler}.npz'
        ddpm_lit('sample', run, '--n', '3', '--sampler', sampler, '--steps', '5', '--npz', npz, '--device', 'cpu', '--no-progress')
        arr = np.load(npz)['arr_0']
        assert arr.shape == (3, 8, 8, 1) and arr.dtype == np.uint8
    # the bound in bits/dim, with the run's parameterisation and variance (no FID: the data is not Fashion-MNIST)
    out = tmp_path / 'eval.json'
    ddpm_lit('evaluate', run, '--n', '0', '--bpd-n', '2', '--data-dir', image_folder, '--json', out, '--device', 'cpu',
             '--no-progress')
    res = json.loads(out.read_text())
    assert res['step'] == 6 and res['bpd_n'] == 2 and res['bpd_var_type'] == var_type and res['T'] == 10
    assert math.isfinite(res['bpd']) and res['bpd'] > 0 and len(res['bpd_terms']) == 10
    assert 'fid' not in res


def test_simple_loss_with_learned_variance_is_a_usage_error(image_folder, tmp_path):
    "L_simple gives a learned variance no gradient: exit status 2 and one line naming the combination, before any work"
    r = cli('train', '--dataset', 'folder', '--data-dir', image_folder, *TINY, '--steps', '4', '--loss', 'simple',
            '--var-type', 'learned', '--out', tmp_path / 'run')
    assert r.returncode == 2, (r.returncode, r.stderr)
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    assert "'learned'" in err and "'simple'" in err, err
    assert not (tmp_path / 'run' / 'checkpoints').exists()

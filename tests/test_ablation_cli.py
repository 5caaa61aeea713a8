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


def _ablation_tool():
    import importlib.util, sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location('ablation_tool', root / 'tools' / 'ablation.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def test_tool_reads_the_exit_status_and_the_log_not_the_text(tmp_path, monkeypatch):
    "A row whose `ddpm-lit train` exits with status 3 is 'diverged', with the steps and value read from metrics.jsonl"
    abl = _ablation_tool()
    monkeypatch.setattr(abl, 'RUNS', tmp_path)
    run = tmp_path / 'row'; run.mkdir()
    recs = [dict(step=50, loss=0.5, grad_norm=1.0, images_per_s=10.0, time=1000.0),
            dict(step=100, loss=float('nan'), diverged=True, last_good_step=0, time=1010.0)]
    (run / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in recs))
    (run / 'config.json').write_text(json.dumps(dict(model='tiny', lr=1e-3)))
    class Done:                                      # a finished `ddpm-lit train` whose output says nothing useful
        returncode = 3
        def communicate(self): return '', 'some text a tool must not parse\n'
    rec = abl.finish_training('row', (Done(), 1000.0), lambda s: None, [])
    assert (rec['status'], rec['diverged_between'], rec['diverged_value']) == ('diverged', [50, 100], 'nan')
    assert rec['config'] == dict(model='tiny', lr=1e-3) and rec['train_s'] == 10
    assert [m[0] for m in rec['metrics']] == [50]   # the diverged record is not a point of the loss curve
    Done.returncode = 1
    rec = abl.finish_training('row', (Done(), 1000.0), lambda s: None, [])
    assert (rec['status'], rec['returncode']) == ('failed', 1)


def test_configs_at_a_commit_are_the_code_of_that_commit():
    "--record-configs reads TrainConfig's defaults and the presets from a commit's source: at HEAD, today's"
    import subprocess
    from dataclasses import asdict
    from pathlib import Path
    if subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=Path(__file__).resolve().parents[1], capture_output=True).returncode:
        pytest.skip('not a git checkout')
    from ddpm_lit.run import TrainConfig
    from ddpm_lit.train import PRESETS
    defaults, presets = _ablation_tool().configs_at('HEAD')
    assert defaults == asdict(TrainConfig()) and presets == PRESETS

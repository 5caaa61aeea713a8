"""The GPU round's CPU rehearsal: bench/gpu_round.py at tiny sizes runs every phase (eight concurrent trainings stopped by
SIGTERM, evaluations with samples and the bound, packing, the speed benchmark) and returns what the device call may
bring back: at most 8 files of at most 16 MiB."""
import json, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow   # `make test-fast` leaves it out; `make test` runs it

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_round_rehearsal(tmp_path):
    out, runs = tmp_path / 'out', tmp_path / 'runs'
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'gpu_round.py'), '--out', out, '--runs', runs, '--tiny',
                        '--device', 'cpu'], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    files = sorted(out.iterdir())
    assert len(files) <= 8 and all(f.stat().st_size <= 16 * 2 ** 20 for f in files), [(f.name, f.stat().st_size) for f in files]
    res = json.loads((out / 'evals.json').read_text())
    assert len(res['status']) == 8 and all(s['returncode'] == 0 for s in res['status'].values()), res['status']
    for name, ev in res['evals'].items():
        e = ev['ddim50']
        assert np.isfinite(e['fid']) and e['n'] == 8 and np.isfinite(e['bpd']), (name, e)
    assert np.isfinite(res['evals']['reference']['ddpm']['fid'])
    from safetensors import safe_open
    with safe_open(str(out / 'rows_ema.safetensors'), 'pt') as f:
        meta = f.metadata()
        assert len(meta) == 7 and all(json.loads(m)['config']['model'] == 'tiny' for m in meta.values())
    with safe_open(str(out / 'reference_ema.safetensors'), 'pt') as f:
        assert f.metadata()['kind'] == 'ddpm_lit.pretrained/1'
    s = np.load(out / 'samples.npz')
    assert sorted(s.files) == sorted(['mu_vlb_learned.ddim50', 'eps_hybrid_learned_range_cosine.ddim50', 'reference.ddim50',
                                      'reference.ddpm'])
    assert all(s[k].shape == (8, 28, 28, 1) and s[k].dtype == np.uint8 for k in s.files)
    bench = json.loads((out / 'bench.json').read_text())
    assert bench['rows'] and bench['settings'], list(bench)

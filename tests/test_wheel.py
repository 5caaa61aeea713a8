"""`pip install ddpm_lit` as a user gets it: the wheel, installed into a fresh virtual environment outside the
checkout, runs `ddpm-lit` end to end.

The wheel is built from a copy of the checkout's files (tracked, and new ones git does not ignore) with
`python -m build --wheel --no-isolation` (offline: build and setuptools come with the dev extras), then installed
with `pip install --no-deps` into a new venv in a temporary folder. Its dependencies (torch and the rest, ~5 GB)
are not installed again: a `.pth` file puts this venv's site-packages on the new venv's path, after its own, and
as a plain path, so that the editable install of the checkout that lives there is not activated. Every command runs
with its working directory outside the checkout, and `ddpm_lit` must be imported from the new venv. A file that only
the repository has (the classifier weights as package data, a module left out of the package) fails here."""
import json, os, shutil, subprocess, sys, sysconfig, zipfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow   # `make test-fast` leaves it out; `make test` runs it

from conftest import ROOT


def _sources():
    "The checkout's files as a fresh clone (plus uncommitted new files) would have them"
    r = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=ROOT, capture_output=True)
    if r.returncode != 0: pytest.skip(f'not a git checkout ({r.stderr.decode().strip()[:200]}): cannot tell its files')
    return [f for f in r.stdout.decode().split('\0') if f and (ROOT / f).is_file()]


def run(cmd, cwd, env, timeout=300):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    "The wheel built from a copy of the checkout"
    pytest.importorskip('build', reason='build is not installed (pip install build; it belongs in the dev extras)')
    src, dist = tmp_path_factory.mktemp('src'), tmp_path_factory.mktemp('dist')
    for f in _sources():
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    run([sys.executable, '-m', 'build', '--wheel', '--no-isolation', '--outdir', dist], src, os.environ)
    whl = list(dist.glob('ddpm_lit-*.whl'))
    assert len(whl) == 1, whl
    return whl[0]


@pytest.fixture(scope='module')
def venv(wheel, tmp_path_factory):
    "(python, bin folder, env) of a new venv with only the wheel installed, dependencies seen from this venv"
    d = tmp_path_factory.mktemp('venv') / 'v'
    run([sys.executable, '-m', 'venv', '--without-pip', d], d.parent, os.environ)
    py = d / 'bin' / 'python'
    run([sys.executable, '-m', 'pip', '--python', py, 'install', '-q', '--no-deps', '--no-index', wheel], d.parent, os.environ)
    site = Path(run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], d.parent, os.environ).strip())
    (site / '_ddpm_lit_test_deps.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV')}
    env.update(PATH=f"{d / 'bin'}{os.pathsep}{env.get('PATH', '')}", OMP_NUM_THREADS='1', PYTHONNOUSERSITE='1')
    return py, d / 'bin', env


def test_wheel_holds_the_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    mods = sorted(p.name for p in (ROOT / 'ddpm_lit').glob('*.py'))
    missing = [m for m in mods if f'ddpm_lit/{m}' not in names]
    assert not missing, f'modules of ddpm_lit/ missing from the wheel: {missing}'
    weights = sorted(p.name for p in (ROOT / 'ddpm_lit' / 'weights').glob('*.safetensors'))
    assert weights and all(f'ddpm_lit/weights/{w}' in names for w in weights), f'weights {weights} not all in {names}'
    ep = next(n for n in names if n.endswith('.dist-info/entry_points.txt'))
    assert 'ddpm-lit = ddpm_lit.cli:main' in zipfile.ZipFile(wheel).read(ep).decode()
    assert not [n for n in names if n.startswith(('nbs/', 'tests/', 'tools/'))], 'repository folders in the wheel'


# after `ddpm-lit train` (the console script), one process does the rest: each start imports torch, seconds apiece
CHECK = """
import json, sys, ddpm_lit
from ddpm_lit.cli import main
from ddpm_lit.metrics import load_classifier
clf = load_classifier()                                  # the weights shipped as package data
main(['sample', 'run', '--n', '4', '--device', 'cpu', '--no-progress', '--out', 'grid.png', '--npz', 's.npz'])
main(['evaluate', 'run', '--n', '0', '--bpd-n', '2', '--device', 'cpu', '--no-progress', '--json', 'eval.json'])
# the shipped reference model, from the package data, by name (no run directory anywhere)
from ddpm_lit.pretrained import available_pretrained, load_pretrained
main(['sample', 'pretrained:fashion_mnist', '--n', '4', '--sampler', 'dpm++2m', '--steps', '5', '--device', 'cpu',
      '--no-progress', '--npz', 'ref.npz'])
main(['sample', 'pretrained:fashion_mnist_cond', '--class', 'Sandal', '--guidance', '1', '--n', '2', '--sampler', 'dpm++3m',
      '--steps', '5', '--device', 'cpu', '--no-progress', '--npz', 'cond.npz'])     # its class-conditional twin
print(json.dumps(dict(file=ddpm_lit.__file__, feature_dim=clf.feature_dim, pretrained=available_pretrained(),
                      ref_file=str(load_pretrained('fashion_mnist').path))))
"""


def test_installed_wheel_runs_end_to_end(venv, tmp_path):
    "Train (the installed `ddpm-lit` command), sample, evaluate: a tiny run on a generated folder of images"
    from PIL import Image
    py, bin_, env = venv
    imgs = tmp_path / 'imgs'; imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12): Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(imgs / f'{i:02d}.png')
    exe = bin_ / 'ddpm-lit'
    assert exe.is_file(), 'the wheel installed no ddpm-lit command'
    run([exe, 'train', '--dataset', 'folder', '--data-dir', imgs, '--model', 'tiny', '--steps', '2', '--batch-size', '4',
         '--image-size', '8', '--T', '10', '--warmup', '1', '--device', 'cpu', '--no-progress', '--out', 'run'], tmp_path, env)
    assert list((tmp_path / 'run' / 'checkpoints').glob('step_*.pt'))
    out = json.loads(run([py, '-c', CHECK], tmp_path, env).strip().splitlines()[-1])
    where = Path(out['file']).resolve()
    assert bin_.parent.resolve() in where.parents, f'ddpm_lit imported from {where}, not from the new venv'
    assert ROOT.resolve() not in where.parents
    assert out['feature_dim'] > 0
    assert np.load(tmp_path / 's.npz')['arr_0'].shape == (4, 8, 8, 1)
    assert Image.open(tmp_path / 'grid.png').size[0] > 0
    assert {'fashion_mnist', 'fashion_mnist_cond'} <= set(out['pretrained']) and bin_.parent.resolve() in Path(out['ref_file']).resolve().parents, out
    ref = np.load(tmp_path / 'ref.npz')['arr_0']
    assert ref.shape == (4, 28, 28, 1) and ref.std() > 10, (ref.shape, ref.std())   # images, not a constant
    assert np.load(tmp_path / 'cond.npz')['arr_0'].shape == (2, 28, 28, 1)
    res = json.loads((tmp_path / 'eval.json').read_text())
    assert res['bpd_n'] == 2 and np.isfinite(res['bpd']) and res['bpd'] > 0, res

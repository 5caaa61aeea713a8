"""Class-conditional runs from the command line: `train --class-cond` on a folder with one sub-folder per class,
`sample --class NAME|K|all --guidance W`, `evaluate --guidance` refusing an unconditional run, and a one-line error for
each way the labels or classes can be wrong. (The Fashion-MNIST run and its accuracy/FID against w are in
tools/guidance.py and the guidance chapter.)"""
import numpy as np
import pytest
from PIL import Image

from conftest import cli

FAST = ['--image-size', '8', '--model', 'tiny', '--T', '20', '--batch-size', '8', '--warmup', '2', '--device', 'cpu',
        '--no-progress']


@pytest.fixture(scope='module')
def class_folder(tmp_path_factory):
    "stripes/ 12 grey PNGs with a lit row band, blocks/ 12 with a lit square: a two-class ImageFolder"
    d, rng = tmp_path_factory.mktemp('data') / 'shapes', np.random.default_rng(0)
    for i in range(12):
        for name in ('stripes', 'blocks'):
            a = np.zeros((8, 8), np.uint8); r = rng.integers(0, 5)
            if name == 'stripes': a[r:r + 3, :] = 255
            else: a[r:r + 3, r:r + 3] = 255
            (d / name).mkdir(parents=True, exist_ok=True); Image.fromarray(a).save(d / name / f'{i:02d}.png')
    return d


@pytest.fixture(scope='module')
def cond_run(class_folder, tmp_path_factory):
    "one class-conditional run, trained once for the tests of this file"
    run = tmp_path_factory.mktemp('runs') / 'cond'
    cli('train', '--dataset', 'folder', '--data-dir', class_folder, '--class-cond', '--steps', '6', '--ckpt-every', '6',
        *FAST, '--out', run, check=True)
    return run


def test_train_class_cond_then_sample_each_way(cond_run, tmp_path):
    r = cli('sample', cond_run, '--class', 'all', '--n', '6', '--guidance', '2', '--sampler', 'ddim', '--steps', '4',
            '--npz', tmp_path / 'all.npz', '--out', tmp_path / 'all.png', check=True)
    assert "class all, one row each, guidance w=2" in r.stdout
    assert np.load(tmp_path / 'all.npz')['arr_0'].shape == (6, 8, 8, 1)      # 2 classes x 3
    for spec in ('Stripes', '1'):                                              # a name (any case) or a label
        r = cli('sample', cond_run, '--class', spec, '--n', '2', '--sampler', 'ddim', '--steps', '3',
                '--npz', tmp_path / 's.npz', check=True)
        assert "class 'stripes', guidance w=0" in r.stdout
    r = cli('sample', cond_run, '--n', '2', '--sampler', 'ddim', '--steps', '3', '--npz', tmp_path / 'u.npz', check=True)
    assert 'samples (DDIM 3 steps, eta 0) in' in r.stdout and 'guidance' not in r.stdout   # no --class: the null class


@pytest.mark.parametrize('args, needle', [
    (['--class', 'cats'], "--class: expected a label in 0..1, a class name (blocks, stripes) or 'all', got 'cats'"),
    (['--class', '2'], "--class: expected a label in 0..1, a class name or 'all', got 2"),
    (['--guidance', '1'], '--guidance needs --class'),
])
def test_bad_class_or_guidance_is_one_line(cond_run, args, needle):
    r = cli('sample', cond_run, '--n', '2', *args)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr, r.stderr
    assert needle in r.stderr, r.stderr


def test_unlabelled_data_and_unconditional_runs_are_refused(image_folder, tmp_path):
    r = cli('train', '--dataset', 'folder', '--data-dir', image_folder, '--class-cond', '--steps', '2', *FAST,
            '--out', tmp_path / 'x')
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--class-cond needs labelled data, but 'folder:" in r.stderr and "imgs' has no labels" in r.stderr
    run = tmp_path / 'plain'
    cli('train', '--dataset', 'folder', '--data-dir', image_folder, '--steps', '2', '--ckpt-every', '2', *FAST,
        '--out', run, check=True)
    r = cli('sample', run, '--class', '0', '--n', '2')
    assert r.returncode == 1 and '--class: this run is unconditional (trained without --class-cond)' in r.stderr, r.stderr
    r = cli('evaluate', run, '--n', '0', '--bpd-n', '0', '--guidance', '1')
    assert r.returncode == 1 and '--guidance needs a class-conditional run' in r.stderr, r.stderr

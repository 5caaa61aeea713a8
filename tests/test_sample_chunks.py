"""tools/sample_chunks.py: samples drawn chunk by chunk, stopped and resumed, assemble to exactly the file one
`ddpm-lit sample --npz` writes with the same seed and batch size (the seed rule of chapter 05); the bound of test images
in chunks is `bits_per_dim`'s, with all T terms or estimated from fewer passes."""
import json, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpm_lit.distributed import derive_seed
from ddpm_lit.metrics import bits_per_dim
from ddpm_lit.run import load_data, load_run
from ddpm_lit.sample import npz_settings

from conftest import cli

pytestmark = pytest.mark.slow   # `make test-fast` leaves it out; `make test` runs it

ROOT = Path(__file__).resolve().parents[1]
TOOL = [sys.executable, str(ROOT / 'tools' / 'sample_chunks.py')]


@pytest.fixture
def run(image_folder, tmp_path):
    "A two-step run of the tiny U-Net (T = 10) on the 32-image folder, for the tool to sample or bound"
    out = tmp_path / 'run'
    cli('train', '--dataset', 'folder', '--data-dir', image_folder, '--model', 'tiny', '--image-size', '8', '--T', '10',
        '--batch-size', '8', '--steps', '2', '--warmup', '1', '--ckpt-every', '2', '--device', 'cpu', '--no-progress',
        '--out', out, check=True)
    return out


def test_chunks_resume_and_assemble_to_ddpm_lit_sample(run, tmp_path):
    want = tmp_path / 'want.npz'
    cli('sample', run, '-n', '7', '--batch-size', '3', '--seed', '4', '--sampler', 'ddpm', '--npz', want, '--device', 'cpu',
        '--no-progress', check=True)
    args = [str(run), '--sampler', 'ddpm', '--n', '7', '--batch-size', '3', '--seed', '4', '--out', str(tmp_path / 'chunks')]
    subprocess.run(TOOL + args + ['--part', '1/2'], check=True, capture_output=True)    # two processes share the work
    assert [c.name for c in (tmp_path / 'chunks').glob('chunk_*.npz')] == ['chunk_00001.npz']
    r = subprocess.run(TOOL + args + ['--part', '0/2'], check=True, capture_output=True, text=True)
    assert '1 of 3 chunks already drawn; 2 to go in part 0 of 2' in r.stdout, r.stdout
    bad = subprocess.run(TOOL + args + ['--part', '2/2'], capture_output=True, text=True)
    assert bad.returncode == 2 and "--part: I/M with 0 <= I < M (this process's share of M), got '2/2'" in bad.stderr, bad.stderr
    chunks = sorted((tmp_path / 'chunks').glob('chunk_*.npz'))
    assert [c.name for c in chunks] == ['chunk_00000.npz', 'chunk_00001.npz', 'chunk_00002.npz']
    stamp = chunks[0].stat().st_mtime_ns
    chunks[1].unlink()                                           # as if stopped before chunk 1 was written
    r = subprocess.run(TOOL + args, check=True, capture_output=True, text=True)
    assert '2 of 3 chunks already drawn; 1 to go' in r.stdout, r.stdout
    assert chunks[0].stat().st_mtime_ns == stamp                 # a finished chunk is not drawn again
    got = tmp_path / 'got.npz'
    subprocess.run(TOOL + args + ['--assemble', str(got)], check=True, capture_output=True)
    np.testing.assert_array_equal(np.load(got)['arr_0'], np.load(want)['arr_0'])
    keys = ('run', 'checkpoint', 'step', 'n', 'sampler', 'steps', 'eta', 'var_type', 'seed', 'batch_size')
    said, drawn = npz_settings(want), npz_settings(got)          # and they say the same about how they were drawn
    assert {k: drawn[k] for k in keys} == {k: said[k] for k in keys} and (drawn['sampler'], drawn['steps'], drawn['seed']) == ('ddpm', 10, 4), (drawn, said)
    bad = subprocess.run(TOOL + [a if a != '4' else '5' for a in args] + ['--assemble', str(got)], capture_output=True, text=True)
    assert bad.returncode == 2 and '--assemble: the chunks in' in bad.stderr and 'seed: 4 there, 5 now' in bad.stderr, bad.stderr
    chunks[2].unlink()
    r = subprocess.run(TOOL + args + ['--assemble', str(got)], capture_output=True, text=True)
    assert r.returncode == 2 and '--assemble: 1 of 3 chunks not drawn yet (first: 2)' in r.stderr, r.stderr


def test_bound_in_chunks_is_the_bound(run, tmp_path):
    "--bound: chunk k is bits_per_dim of its images with its x_t seeded by derive_seed(seed, k); assembled over the split"
    for bs, name in ((32, 'one'), (10, 'four')):                 # the 32 images in one chunk, and in chunks of 10, 10, 10, 2
        args = [str(run), '--bound', '--batch-size', str(bs), '--out', str(tmp_path / name)]
        subprocess.run(TOOL + args, check=True, capture_output=True)
        subprocess.run(TOOL + args + ['--assemble', str(tmp_path / f'{name}.json')], check=True, capture_output=True)
    one, four = (json.loads((tmp_path / f'{n}.json').read_text()) for n in ('one', 'four'))
    assert one['n'] == four['n'] == 32 and len(list((tmp_path / 'four').glob('chunk_*.npz'))) == 4
    r = load_run(str(run)); test = load_data(r.cfg, train=False)
    want = bits_per_dim(r.model, r.diffusion, test.to_float(test.images_at(torch.arange(32))), batch_size=32, seed=derive_seed(0, 0))
    assert abs(one['bpd'] - want['total_bpd']) < 1e-9 and abs(one['bpd_se'] - want['total_bpd_se']) < 1e-9
    assert abs(sum(four['bpd_terms']) + four['bpd_prior'] - four['bpd']) < 1e-9   # the terms add up to the bound
    assert abs(four['bpd'] - one['bpd']) < 4 * one['bpd_se']     # other x_t draws: the same bound within its noise


def test_bound_estimate_first_n_and_settings_guard(run, tmp_path):
    "--bound --passes P --n N: the first N test images, each chunk `bits_per_dim(..., passes=P)`; a folder keeps one set of settings"
    args = [str(run), '--bound', '--passes', '4', '--n', '20', '--batch-size', '20', '--out', str(tmp_path / 'est')]
    subprocess.run(TOOL + args, check=True, capture_output=True)
    subprocess.run(TOOL + args + ['--assemble', str(tmp_path / 'est.json')], check=True, capture_output=True)
    got = json.loads((tmp_path / 'est.json').read_text())
    r = load_run(str(run)); test = load_data(r.cfg, train=False)
    want = bits_per_dim(r.model, r.diffusion, test.to_float(test.images_at(torch.arange(20))), batch_size=20,
                        seed=derive_seed(0, 0), passes=4)
    assert (got['n'], got['passes']) == (20, 4) and abs(got['bpd'] - want['total_bpd']) < 1e-9, (got, want)
    assert (got['bpd_n'], got['bpd_passes'], got['bpd_dims'], got['bpd_var_type']) == (20, 4, 64, r.diffusion.var_type)   # evaluate's keys
    per_image = np.load(tmp_path / 'est.npz')                    # each image's bound, beside the JSON
    assert per_image['index'].tolist() == list(range(20)) and abs(per_image['total_bpd'].mean() - got['bpd']) < 1e-9
    # the same folder with other settings: refused, nothing written; the finished chunk is kept
    stamp = (tmp_path / 'est' / 'chunk_00000.npz').stat().st_mtime_ns
    bad = subprocess.run(TOOL + [a if a != '4' else '6' for a in args], capture_output=True, text=True)
    assert bad.returncode == 1 and "holds chunks made with other settings (passes: 4 there, 6 now); use another folder" in bad.stderr, bad.stderr
    assert (tmp_path / 'est' / 'chunk_00000.npz').stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / 'est' / 'settings.json').read_text())['passes'] == 4
    for flags, msg in ((['--passes', '11'], '--passes: from 2 to T = 10, got 11'), (['--n', '0'], '--n: with --bound, from 1 to the'),
                       (['--n', '3', '--passes', '4'], '--passes: only with --bound')):
        a = [str(run)] + (['--bound'] if 'only with' not in msg else []) + flags + ['--out', str(tmp_path / 'x')]
        bad = subprocess.run(TOOL + a, capture_output=True, text=True)
        assert bad.returncode == 2 and msg in bad.stderr, (flags, bad.stderr)


def test_bf16_chunks_are_named_and_not_mixed(run, tmp_path):
    "--bf16: the network in bf16 autocast on the CPU (the shipped model: the tiny run's output is too near 0 to show it); the settings and the assembled file say so"
    args = ['pretrained:fashion_mnist', '--sampler', 'ddim', '--steps', '2', '--n', '4', '--batch-size', '2', '--out']
    subprocess.run(TOOL + args + [str(tmp_path / 'f32')], check=True, capture_output=True)
    subprocess.run(TOOL + args + [str(tmp_path / 'b16'), '--bf16'], check=True, capture_output=True)
    f32, b16 = (json.loads((tmp_path / n / 'settings.json').read_text()) for n in ('f32', 'b16'))
    assert (f32['precision'], b16['precision'], b16['compiled']) == ('float32', 'bf16 autocast (CPU)', False), (f32, b16)
    a, b = (np.load(tmp_path / n / 'chunk_00000.npz')['arr_0'].astype(int) for n in ('f32', 'b16'))
    assert (a != b).any() and np.abs(a - b).mean() < 8, np.abs(a - b).mean()   # the same noise, a coarser network pass
    subprocess.run(TOOL + args + [str(tmp_path / 'b16'), '--bf16', '--assemble', str(tmp_path / 'b16.npz')], check=True, capture_output=True)
    assert npz_settings(tmp_path / 'b16.npz')['precision'] == 'bf16 autocast (CPU)'
    bad = subprocess.run(TOOL + args + [str(tmp_path / 'f32'), '--bf16'], capture_output=True, text=True)   # not mixed in one folder
    assert bad.returncode == 1 and "(precision: 'float32' there, 'bf16 autocast (CPU)' now)" in bad.stderr, bad.stderr
    bad = subprocess.run(TOOL + [str(run), '--bound', '--bf16', '--out', str(tmp_path / 'x')], capture_output=True, text=True)
    assert bad.returncode == 2 and '--bf16/--compile: only when sampling (the bound is computed in float32)' in bad.stderr, bad.stderr

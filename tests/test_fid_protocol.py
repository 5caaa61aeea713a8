"""The FID protocol (chapter 08): images reach an FID backend as 8-bit integers rounded by `to_uint8`, so a real image
survives the trip uint8 -> the float in [-1, 1] the data loader makes -> the backend's input unchanged (the truncation
torchmetrics applies to floats with normalize=True does not); `evaluate --inception --reference train|test` feeds the
chosen split and records it. The Inception weights are downloaded by torchmetrics on first use and this machine has no
network: everything up to the backend runs with a stand-in metric, and the one test that needs the weights skips,
saying so, when they are absent."""
import re, json
from pathlib import Path

import numpy as np
import pytest
import torch

import ddpm_lit.metrics as metrics
from ddpm_lit.data import ImageData, find_data, load_image_data
from ddpm_lit.metrics import inception_fid, inception_input
from ddpm_lit.sample import to_uint8


def _have_fashion_mnist():
    try: find_data('fashion_mnist', download=False); return True
    except FileNotFoundError: return False


needs_fm = pytest.mark.skipif(not _have_fashion_mnist(), reason='Fashion-MNIST is not on disk (apt-get install dataset-fashion-mnist)')


def _truncated(x):
    "The old path: floats in [0, 1] handed to torchmetrics with normalize=True, which computes (imgs * 255).byte()"
    return ((x.clamp(-1, 1) + 1) / 2 * 255).byte()


def _round_trip(u, image_size):
    "uint8 [N, C, S, S] -> ImageData.to_float (padded to image_size) -> inception_input; returns (the backend's input cropped, the old path's)"
    d = ImageData(u, image_size=image_size)
    x = d.to_float(u)                                      # the float in [-1, 1] the data loader makes
    p = (image_size - u.shape[-1]) // 2
    crop = lambda v: v[:, :, p:image_size - p, p:image_size - p]
    got = inception_input(x)
    assert got.dtype == torch.uint8 and got.shape == (len(u), 3, image_size, image_size)
    if p: assert (got[:, :, :p] == 0).all()              # the padding is black, as -1 is
    return crop(got)[:, :u.shape[1]], crop(_truncated(x))


def test_every_level_round_trips():
    u = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    got, old = _round_trip(u, 16)
    assert torch.equal(got, u)
    assert (old != u).sum() == 47 and (old <= u).all()    # truncation: 47 of the 256 levels come back one low


@needs_fm
def test_real_images_round_trip():
    "All 10,000 Fashion-MNIST test images, padded to 32x32 as the models see them, reach the backend as their own pixels"
    te = load_image_data('fashion_mnist', train=False, download=False)
    got, old = _round_trip(te.images, 32)
    assert torch.equal(got, te.images)
    assert (old != te.images).any() and (old[0] != te.images[0]).any()   # the old path fails already on the first image


class Recorder:
    "A stand-in for torchmetrics' FrechetInceptionDistance: counts what `update` is handed and sums its pixels"
    def __init__(self): self.n, self.sums, self.dtypes = {True: 0, False: 0}, {True: 0, False: 0}, set()
    def update(self, imgs, real):
        self.n[real] += len(imgs); self.sums[real] += int(imgs.long().sum()); self.dtypes.add(imgs.dtype)
        assert imgs.shape[1] == 3
    def compute(self): return torch.tensor(1.25)


def test_inception_fid_streams_a_dataset_and_rounds_samples():
    ref = ImageData(torch.randint(0, 256, (250, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)),
                    image_size=32)
    smp = torch.rand(30, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    rec = Recorder()
    r = inception_fid(smp, ref, batch_size=64, metric=rec)
    assert (r.fid, r.n_a, r.n_b) == (1.25, 30, 250) and rec.n == {True: 250, False: 30} and rec.dtypes == {torch.uint8}
    assert rec.sums[True] == 3 * int(ref.images.long().sum())                       # the reference's own pixels, 3 channels
    assert rec.sums[False] == 3 * int(((smp.double() + 1) * 127.5 + 0.5).floor().sum())   # the samples, rounded


def test_inception_input_errors():
    with pytest.raises(ValueError, match='1 or 3 channels'): inception_input(torch.zeros(2, 2, 8, 8))
    with pytest.raises(TypeError, match=r'float in \[-1, 1\] or uint8'): inception_input(torch.zeros(2, 1, 8, 8, dtype=torch.int32))
    with pytest.raises(ValueError, match=r'must be \[N, C, H, W\]'): inception_input(torch.zeros(8, 8))


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    "A two-step tiny run on Fashion-MNIST (T = 10)"
    from ddpm_lit.train import TrainConfig, Trainer
    out = tmp_path_factory.mktemp('run')
    cfg = TrainConfig(model='tiny', T=10, batch_size=8, steps=2, ckpt_every=2, warmup=1, device='cpu')
    Trainer(cfg, out).fit(progress=False)
    return out


@needs_fm
@pytest.mark.parametrize('reference, n_ref', [('train', 60000), ('test', 10000), (None, 60000)])
def test_evaluate_inception_reference(tiny_run, tmp_path, monkeypatch, capsys, reference, n_ref):
    "`ddpm-lit evaluate --inception [--reference R]`: the split R (train by default) reaches the metric whole, as uint8, and the JSON says so"
    from ddpm_lit.cli import main
    rec = Recorder()
    monkeypatch.setattr(metrics, 'inception_metric', lambda device='cpu': rec)
    out = tmp_path / 'e.json'
    main(['evaluate', str(tiny_run), '--inception', *(['--reference', reference] if reference else []), '--n', '6',
          '--sampler', 'ddim', '--steps', '2', '--seed', '3', '--bpd-n', '0', '--no-floor', '--device', 'cpu', '--no-progress',
          '--json', str(out)])
    ref = load_image_data('fashion_mnist', train=(reference or 'train') == 'train', image_size=32, download=False)
    assert rec.n == {True: n_ref, False: 6} and rec.dtypes == {torch.uint8}
    assert rec.sums[True] == 3 * int(ref.images.long().sum())      # every image of the split, its own pixels (padding is 0)
    res = json.loads(out.read_text())
    split = reference or 'train'
    assert (res['inception_fid'], res['inception_fid_n'], res['inception_fid_ref_n'], res['inception_fid_reference']) == (1.25, 6, n_ref, split)
    assert (res['n'], res['sampler'], res['steps'], res['seed'], res['fid_reference']) == (6, 'ddim', 2, 3, 'test')
    assert res['inception_fid_protocol'].startswith(f"6 samples (DDIM 2 steps, eta 0, seed 3) vs the {n_ref} {split} images of fashion_mnist")
    assert f"Inception FID 1.250  (n = 6 samples vs the {n_ref} {split} images; DDIM 2 steps, eta 0, seed 3" in capsys.readouterr().out


@needs_fm
def test_evaluate_reports_precision_recall(tiny_run, tmp_path, capsys):
    "precision and recall beside the FID, for the samples and for the real-data floor, in the JSON and the printed lines"
    from ddpm_lit.cli import main
    out = tmp_path / 'e.json'
    main(['evaluate', str(tiny_run), '--n', '12', '--sampler', 'ddim', '--steps', '2', '--bpd-n', '0', '--device', 'cpu',
          '--no-progress', '--json', str(out)])
    res = json.loads(out.read_text())
    assert res['pr_k'] == 3 and all(0 <= res[k] <= 1 for k in ('precision', 'recall', 'precision_floor', 'recall_floor'))
    assert res['recall_floor'] >= res['recall']          # 12 real images cover more of the test set than 12 samples of a 2-step model
    printed = capsys.readouterr().out
    assert f"precision {res['precision']:.3f}, recall {res['recall']:.3f} (k = 3)" in printed, printed


def test_reference_needs_inception(tmp_path):
    "Checked at the door, before the run is even opened"
    with pytest.raises(ValueError, match='--reference chooses the Inception FID'):
        metrics.evaluate(tmp_path / 'no_run', reference='test')
    with pytest.raises(ValueError, match=re.escape("EvalConfig.reference='validation': expected one of ['train', 'test']")):
        metrics.evaluate(tmp_path / 'no_run', inception=True, reference='validation')


def _inception_weights():
    "torch-fidelity's Inception-v3 weights in the torch hub cache, where torchmetrics looks first"
    return Path(torch.hub.get_dir()) / 'checkpoints' / 'weights-inception-2015-12-05-6726825d.pth'


def test_inception_metric_takes_uint8():
    "The real metric: built with normalize=False, it takes inception_input's uint8 images; FID of a set with itself ~ 0"
    pytest.importorskip('torchmetrics', reason="torchmetrics is not installed (pip install 'ddpm_lit[fid]')")
    if not _inception_weights().is_file():
        pytest.skip("torchmetrics' Inception weights are not in the torch hub cache (they are downloaded on first use, "
                    "and this machine has no network)")
    m = metrics.inception_metric()
    assert m.normalize is False
    x = torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    r = inception_fid(x, x, batch_size=32, metric=m)
    assert (r.n_a, r.n_b) == (64, 64) and abs(r.fid) < 1e-2, r


def test_inception_metric_without_torchmetrics():
    try: import torchmetrics  # noqa: F401
    except ImportError: pass
    else: pytest.skip('torchmetrics is installed: the error for its absence cannot be shown here')
    with pytest.raises(ValueError, match=r"pip install 'ddpm_lit\[fid\]'"): metrics.inception_metric()

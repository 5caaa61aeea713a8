"""tools/ship_pretrained.py: a run directory, or a file save_pretrained wrote elsewhere (the GPU round brings the reference
model back so) with its training log, becomes a shipped model with a card whose totals add a continued run's training
to the model it started from."""
import json, subprocess, sys
from dataclasses import replace
from pathlib import Path

import torch

from ddpm_lit.data import ImageData
from ddpm_lit.train import TrainConfig, Trainer, load_run, save_pretrained, PRETRAINED

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / 'tools' / 'ship_pretrained.py'


def tiny_run(tmp:Path, **kw)->Path:
    toy = ImageData((torch.rand(16, 1, 8, 8) > .5).to(torch.uint8) * 255)
    cfg = TrainConfig(model='tiny', image_size=8, T=20, batch_size=8, steps=4, ckpt_every=4, warmup=1, log_every=2,
                      device='cpu', **kw)
    Trainer(cfg, tmp, toy).fit(progress=False)
    return tmp


def ship(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def test_ship_run_dir(tmp_path):
    run = tiny_run(tmp_path / 'run')
    r = ship(run, 'tiny', '--to', tmp_path / 'tiny.safetensors', '--results', tmp_path / 'res')
    assert r.returncode == 0, r.stderr
    card = json.loads((tmp_path / 'res' / 'card.json').read_text())
    assert card['training']['steps'] == 4 and card['training']['images_seen'] == 32 and card['checkpoint_step'] == 4
    assert len((tmp_path / 'res' / 'metrics.jsonl').read_text().splitlines()) == 2   # logged at steps 2 and 4


def test_ship_file_continued(tmp_path):
    "A save_pretrained file of a run started with --init pretrained:fashion_mnist: the card adds the shipped model's training"
    run = tiny_run(tmp_path / 'run', init=None)
    r = load_run(tmp_path / 'run')
    r.cfg = replace(r.cfg, init=PRETRAINED + 'fashion_mnist')   # as the GPU round's file records it
    save_pretrained(r, tmp_path / 'brought_back.safetensors')
    res = tmp_path / 'res'
    assert ship(tmp_path / 'brought_back.safetensors', 'tiny', '--to', tmp_path / 'x.safetensors', '--results', res
                ).stderr.strip().endswith('a .safetensors run needs --metrics (its training log)')
    out = ship(tmp_path / 'brought_back.safetensors', 'tiny', '--to', tmp_path / 'x.safetensors', '--results', res,
               '--metrics', run / 'metrics.jsonl', '--metrics-out', 'metrics_gpu.jsonl')
    assert out.returncode == 0, out.stderr
    tr = json.loads((res / 'card.json').read_text())['training']
    before = load_run(PRETRAINED + 'fashion_mnist').card['training']
    assert tr['this_run']['images_seen'] == 32 and tr['before'] == before
    assert tr['images_seen'] == before['images_seen'] + 32 and tr['steps'] == before['steps'] + 4
    assert (res / 'metrics_gpu.jsonl').exists() and not (res / 'metrics.jsonl').exists()
    assert load_run(PRETRAINED + 'fashion_mnist').card['training'] == before      # the package's model is untouched


def test_load_run_safetensors(tmp_path):
    "load_run (so every command that takes a RUN) reads a file save_pretrained wrote: the same network, EMA only"
    import pytest
    run = load_run(tiny_run(tmp_path / 'run'))
    save_pretrained(run, tmp_path / 'm.safetensors', card={'note': 'x'})
    r = load_run(tmp_path / 'm.safetensors')
    assert r.step == run.step and r.cfg == run.cfg and r.card == {'note': 'x'}
    assert all(torch.equal(a, b) for a, b in zip(r.model.state_dict().values(), run.model.state_dict().values()))
    with pytest.raises(ValueError, match='holds EMA weights only'): load_run(tmp_path / 'm.safetensors', ema=False)

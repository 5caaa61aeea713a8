"""ddpm_lit.interop against diffusers (chapter 12), offline: random networks whose every weight is perturbed (so no
zero-initialised layer hides a wrong mapping) converted both ways in the released models' layouts and conventions
(google/ddpm-cifar10-32's config exactly, norm_eps=1e-6 and downsample_padding=0 included); DDPMScheduler.step
against ddpm_step with the same noise; DDPMPipeline on an exported folder against ddpm_sample on the imported run;
`ddpm-lit export` / `ddpm-lit import` and their one-line errors; what happens without diffusers."""
import contextlib, io, json, subprocess, sys

import numpy as np
import pytest
import torch

from conftest import cli

try: import diffusers
except ImportError: diffusers = None
if diffusers is not None:
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
    diffusers.utils.logging.set_verbosity_error(); diffusers.utils.logging.disable_progress_bar()
# a skip per test, not one for the module: conftest lists each and, under DDPM_LIT_REQUIRE_ALL=1, fails it (a module-level
# skip happens at collection, where that hook never sees it); the tests without the mark need no diffusers
needs_diffusers = pytest.mark.skipif(diffusers is None, reason="diffusers is not installed "
                                     "(pip install 'ddpm_lit[interop]'; it belongs in the dev extras)")

from ddpm_lit.data import ImageData
from ddpm_lit.interop import (schedule_from_diffusers, scheduler_to_diffusers, unet_config_from_diffusers,
                              unet_from_diffusers, unet_to_diffusers)
from ddpm_lit.cli import main
from ddpm_lit.sample import ddpm_sample, ddpm_step
from ddpm_lit.train import TrainConfig, Trainer, load_run
from ddpm_lit.unet import Downsample

EPS32 = torch.finfo(torch.float32).eps

# google/ddpm-cifar10-32's unet/config.json as released: the paper's network with the TensorFlow code's GroupNorm eps
# (1e-6) and stride-2 padding ('SAME': 0 before, 1 after, downsample_padding=0), ddpm_lit's norm_eps=1e-6, tf_padding=True
RELEASED_CIFAR10_32 = dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256), layers_per_block=2,
                           down_block_types=('DownBlock2D', 'AttnDownBlock2D', 'DownBlock2D', 'DownBlock2D'),
                           up_block_types=('UpBlock2D', 'UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D'), attention_head_dim=None,
                           freq_shift=1, flip_sin_to_cos=False, center_input_sample=False, time_embedding_type='positional',
                           act_fn='silu', mid_block_scale_factor=1, norm_num_groups=32, norm_eps=1e-6, downsample_padding=0)
# google/ddpm-celebahq-256 (and the LSUN models): 6 levels, attention at the 5th (16x16)
RELEASED_CELEBAHQ_256 = dict(RELEASED_CIFAR10_32, sample_size=256, block_out_channels=(128, 128, 256, 256, 512, 512),
                             down_block_types=('DownBlock2D',) * 4 + ('AttnDownBlock2D', 'DownBlock2D'),
                             up_block_types=('UpBlock2D', 'AttnUpBlock2D') + ('UpBlock2D',) * 4)
# what unet_to_diffusers writes for a network ddpm_lit trained (diffusers' defaults for these two fields)
OURS = dict(norm_eps=1e-5, downsample_padding=1)
CIFAR10_32 = dict(RELEASED_CIFAR10_32, block_out_channels=(32, 64, 64, 64), norm_num_groups=8, **OURS)   # narrow, ddpm_lit's conventions
LAYOUTS = {
    'cifar10-32-as-released': RELEASED_CIFAR10_32,
    'celebahq-256-as-released-channels-over-8': dict(RELEASED_CELEBAHQ_256, block_out_channels=(16, 16, 32, 32, 64, 64), norm_num_groups=8),
    'cifar10-32-narrow-ddpm-lit-conventions': CIFAR10_32,
    'two-attention-levels-no-mid-attention': dict(CIFAR10_32, block_out_channels=(32, 64, 64), layers_per_block=1, add_attention=False,
                                                  down_block_types=('DownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D'),
                                                  up_block_types=('AttnUpBlock2D', 'AttnUpBlock2D', 'UpBlock2D')),
}
TINY = dict(CIFAR10_32, sample_size=8, block_out_channels=(16, 32), layers_per_block=1,
            down_block_types=('DownBlock2D', 'AttnDownBlock2D'), up_block_types=('AttnUpBlock2D', 'UpBlock2D'))
CONVENTIONS = {'ddpm_lit': OURS, 'released': dict(norm_eps=1e-6, downsample_padding=0)}


def run_main(*args):
    "`ddpm-lit ARGS` in this process (the command's own start-up is tested once, in test_commands_end_to_end): (status, stdout, stderr)"
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try: main([str(a) for a in args]); code = 0
        except SystemExit as ex: code = ex.code
    return code, o.getvalue(), e.getvalue()


def perturb(m, scale=0.02, seed=0):
    "Add N(0, scale²) to every parameter (GroupNorm scales and biases too), in place; eval mode"
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters(): p.add_(torch.randn(p.shape, generator=g) * scale)
    return m.eval()


def rel_diff(a, b): return ((a - b).abs().max() / b.abs().max()).item()


@needs_diffusers
@pytest.mark.parametrize('name', list(LAYOUTS))
def test_unet_both_ways_same_outputs(name):
    cfg = LAYOUTS[name]
    theirs = perturb(UNet2DModel(**cfg))
    ours = unet_from_diffusers(theirs)
    # the conventions cross as options, and reach every GroupNorm and every Downsample of our network
    assert (ours.config['norm_eps'], ours.config['tf_padding']) == (cfg['norm_eps'], cfg['downsample_padding'] == 0)
    assert {m.eps for m in ours.modules() if isinstance(m, torch.nn.GroupNorm)} == {cfg['norm_eps']}
    assert {m.tf_padding for m in ours.modules() if isinstance(m, Downsample)} == {cfg['downsample_padding'] == 0}
    n = cfg['sample_size']
    x, t = torch.randn(2, 3, n, n, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 999])
    with torch.no_grad(): d1 = rel_diff(ours(x, t), theirs(x, t).sample)
    perturb(ours, seed=1)                                   # new weights on our side, then back to diffusers
    back = unet_to_diffusers(ours)
    with torch.no_grad(): d2 = rel_diff(back(x, t).sample, ours(x, t))
    print(f'{name}: diffusers->ddpm_lit {d1:.1e}, ddpm_lit->diffusers {d2:.1e}')
    assert d1 < 1e-5 and d2 < 1e-5, (d1, d2)
    assert (back.config.norm_eps, back.config.downsample_padding) == (cfg['norm_eps'], cfg['downsample_padding'])
    assert unet_config_from_diffusers(back.config) == ours.config


@pytest.mark.parametrize('field, value', [('downsample_padding', 2), ('downsample_padding', -1), ('norm_eps', 0.), ('attention_head_dim', 8),
                                          ('flip_sin_to_cos', True), ('freq_shift', 0), ('up_block_types', ('UpBlock2D',) * 4),
                                          ('block_out_channels', (32, 48, 64, 64))])
def test_unrepresentable_layout_is_one_line_naming_the_field(field, value):
    with pytest.raises(ValueError) as e: unet_config_from_diffusers({**RELEASED_CIFAR10_32, field: value})
    assert f'{field}=' in str(e.value) and len(str(e.value).splitlines()) == 1


@needs_diffusers
def test_folders(tmp_path):
    net = perturb(UNet2DModel(**TINY))
    net.save_pretrained(tmp_path / 'unet_only')
    DDPMPipeline(unet=net, scheduler=DDPMScheduler()).save_pretrained(tmp_path / 'pipeline')
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 500])
    with torch.no_grad():
        for f in ('unet_only', 'pipeline'): assert rel_diff(unet_from_diffusers(tmp_path / f)(x, t), net(x, t).sample) < 1e-5
    with pytest.raises(ValueError, match='not a diffusers UNet2DModel or pipeline folder'): unet_from_diffusers(tmp_path / 'pipeline' / 'scheduler')


def float64_replica(S, sched):
    "The scheduler's own code computing in float64 from our β's"
    S = DDPMScheduler.from_config(S.config)
    S.betas = sched.betas.clone(); S.alphas = 1 - S.betas; S.alphas_cumprod = torch.cumprod(S.alphas, 0)
    S.one = torch.tensor(1., dtype=torch.float64)
    return S


@needs_diffusers
@pytest.mark.parametrize('beta_schedule', ['linear', 'squaredcos_cap_v2'])
@pytest.mark.parametrize('variance_type', ['fixed_small', 'fixed_large'])
def test_scheduler_step_is_ddpm_step(beta_schedule, variance_type):
    """Same x_t, model output and noise (DDPMScheduler.step draws torch.randn from the generator it gets): float64 agrees
    to rounding; float32 as shipped within eps32 / min β, the cancellation of diffusers' β_t = 1 - ᾱ_t/ᾱ_{t-1}"""
    S = DDPMScheduler(num_train_timesteps=50, beta_schedule=beta_schedule, variance_type=variance_type)
    sched, opts = schedule_from_diffusers(S)
    assert opts == dict(var_type=variance_type, clip_x0=True, parameterization='eps')
    g = torch.Generator().manual_seed(0)
    for S_, dtype, tol in [(float64_replica(S, sched), torch.float64, 1e-12), (S, torch.float32, EPS32 / sched.betas.min().item())]:
        for t in [49, 25, 1, 0]:
            x = torch.randn(4, 3, 8, 8, generator=g, dtype=dtype) * 1.5
            out = torch.randn(4, 3, 8, 8, generator=g, dtype=dtype)
            theirs = S_.step(out, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
            z = torch.randn(x.shape, generator=torch.Generator().manual_seed(t), dtype=dtype) if t > 0 else None
            ours, _ = ddpm_step(sched, out, x, torch.full((4,), t), z, **opts)
            assert rel_diff(ours, theirs) < tol, (dtype, t)
    # and the config round trip
    S2 = scheduler_to_diffusers(sched, **opts)
    assert (S2.config.beta_schedule, S2.config.variance_type, S2.config.num_train_timesteps) == (beta_schedule, variance_type, 50)


def pipeline_images(folder, n=3, seed=1):
    "DDPMPipeline.from_pretrained(folder) over all its T steps: images [n, H, W, C] in [0, 1]"
    pipe = DDPMPipeline.from_pretrained(folder, low_cpu_mem_usage=False); pipe.set_progress_bar_config(disable=True)
    return pipe(batch_size=n, generator=torch.Generator().manual_seed(seed),
                num_inference_steps=pipe.scheduler.config.num_train_timesteps, output_type='np').images


def run_images(run, n=3, seed=1, ema=True):
    "ddpm_sample on a run, with a generator seeded like the pipeline's: images [n, H, W, C] in [0, 1]"
    r = load_run(run, ema=ema)
    x = ddpm_sample(r.model, r.diffusion, (n, *r.shape), generator=torch.Generator().manual_seed(seed))
    return (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()


@needs_diffusers
@pytest.mark.parametrize('conventions', list(CONVENTIONS))
@pytest.mark.parametrize('variance_type, beta_schedule', [('fixed_small', 'linear'), ('fixed_large', 'squaredcos_cap_v2')])
def test_import_then_export_same_images(tmp_path, variance_type, beta_schedule, conventions):
    "A pipeline folder -> ddpm-lit import -> ddpm_sample, and -> ddpm-lit export -> DDPMPipeline: the same images, either conventions"
    DDPMPipeline(unet=perturb(UNet2DModel(**{**TINY, **CONVENTIONS[conventions]})), scheduler=DDPMScheduler(num_train_timesteps=10,
                 variance_type=variance_type, beta_schedule=beta_schedule)).save_pretrained(tmp_path / 'pipe')
    code, out, err = run_main('import', tmp_path / 'pipe', '--out', tmp_path / 'run')
    assert (code, err) == (0, '') and 'step_00000000.pt' in out
    cfg = json.loads((tmp_path / 'run' / 'config.json').read_text())
    assert (cfg['T'], cfg['var_type'], cfg['schedule']) == (10, variance_type, 'linear' if beta_schedule == 'linear' else 'cosine')
    original, ours = pipeline_images(tmp_path / 'pipe'), run_images(tmp_path / 'run')
    assert np.abs(ours - original).max() < 1e-4              # float32 rounding; measured ~3e-6 (chapter 12)
    assert run_main('export', tmp_path / 'run', '--format', 'diffusers', '--out', tmp_path / 'exported')[0] == 0
    assert np.abs(pipeline_images(tmp_path / 'exported') - original).max() == 0
    exported = json.loads((tmp_path / 'exported' / 'unet' / 'config.json').read_text())
    assert {k: exported[k] for k in CONVENTIONS[conventions]} == CONVENTIONS[conventions]


@needs_diffusers
def test_export_trained_run_ema_and_raw(tmp_path):
    "A run trained by ddpm_lit: the exported pipeline samples what ddpm_sample samples; EMA weights by default, raw with --no-ema"
    toy = ImageData((torch.rand(16, 1, 8, 8) > .5).to(torch.uint8) * 255)
    Trainer(TrainConfig(model='tiny', image_size=8, T=10, batch_size=8, steps=3, ckpt_every=3, warmup=1, device='cpu'),
            tmp_path / 'run', toy).fit(progress=False)
    assert run_main('export', tmp_path / 'run', '--out', tmp_path / 'ema')[0] == 0
    assert run_main('export', tmp_path / 'run', '--no-ema', '--out', tmp_path / 'raw')[0] == 0
    assert np.abs(pipeline_images(tmp_path / 'ema') - run_images(tmp_path / 'run')).max() < 1e-4
    for folder, ema in [('ema', True), ('raw', False)]:
        mine, theirs = load_run(tmp_path / 'run', ema=ema).model.state_dict(), unet_from_diffusers(tmp_path / folder).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), folder
    ema, raw = load_run(tmp_path / 'run').model.state_dict(), load_run(tmp_path / 'run', ema=False).model.state_dict()
    assert any(not torch.equal(ema[k], raw[k]) for k in ema)   # the two weight sets differ after 3 steps


@pytest.mark.parametrize('sub', ['export', 'import'])
def test_help(sub):
    code, out, err = run_main(sub, '--help')
    assert code == 0 and f'usage: ddpm-lit {sub}' in out and '--out' in out


@needs_diffusers
def test_import_unet_folder_without_scheduler(tmp_path):
    "A bare UNet2DModel folder becomes a run with the paper's schedule, and the command says so on stderr"
    perturb(UNet2DModel(**TINY)).save_pretrained(tmp_path / 'unet')
    code, out, err = run_main('import', tmp_path / 'unet', '--out', tmp_path / 'run', '--dataset', 'folder', '--data-dir', tmp_path)
    assert code == 0 and 'no scheduler config' in err and len(err.strip().splitlines()) == 1, err
    r = load_run(tmp_path / 'run')
    assert (r.cfg.schedule, r.cfg.T, r.cfg.var_type, r.cfg.dataset, r.cfg.channels, r.step) == ('linear', 1000, 'fixed_large', 'folder', 3, 0)


@needs_diffusers
def test_cli_errors_are_one_line(tmp_path):
    (tmp_path / 'released').mkdir()
    (tmp_path / 'released' / 'config.json').write_text(json.dumps({'_class_name': 'UNet2DModel', **RELEASED_CIFAR10_32,
                                                                    'downsample_padding': 2}))
    DDPMPipeline(unet=UNet2DModel(**TINY), scheduler=DDPMScheduler(clip_sample=False)).save_pretrained(tmp_path / 'noclip')
    (tmp_path / 'full').mkdir(); (tmp_path / 'full' / 'x').write_text('')
    for args, status, needle in [
            (('import', tmp_path / 'noclip' / 'scheduler', '--out', tmp_path / 'r1'), 1, 'not a diffusers UNet2DModel or pipeline folder'),
            (('import', tmp_path / 'nope', '--out', tmp_path / 'r2'), 1, 'is not a folder'),
            (('import', tmp_path / 'released', '--out', tmp_path / 'r3'), 1, 'downsample_padding=2'),
            (('import', tmp_path / 'noclip', '--out', tmp_path / 'r4'), 1, 'clip_sample=False'),
            (('export', tmp_path / 'nope', '--out', tmp_path / 'e1'), 1, 'checkpoint not found'),
            (('export', tmp_path / 'run', '--format', 'onnx', '--out', tmp_path / 'e2'), 2, '--format'),
            (('import', tmp_path / 'noclip'), 2, '--out')]:
        code, out, err = run_main(*args)
        assert code == status, (args, err)
        assert len(err.strip().splitlines()) == 1 and needle in err and 'Traceback' not in err, err


@needs_diffusers
def test_commands_end_to_end(tmp_path):
    "The installed `ddpm-lit` command: import a pipeline folder, sample the run, export it again"
    DDPMPipeline(unet=perturb(UNet2DModel(**TINY)), scheduler=DDPMScheduler(num_train_timesteps=10)).save_pretrained(tmp_path / 'pipe')
    r = cli('import', tmp_path / 'pipe', '--out', tmp_path / 'run', check=True)
    assert r.stderr == '' and 'ddpm-lit sample' in r.stdout
    cli('sample', tmp_path / 'run', '--n', '2', '--npz', tmp_path / 's.npz', '--device', 'cpu', '--no-progress', check=True)
    assert np.load(tmp_path / 's.npz')['arr_0'].shape == (2, 8, 8, 3)
    r = cli('export', tmp_path / 'run', '--out', tmp_path / 'again', check=True)
    assert r.stderr == '' and 'DDPMPipeline.from_pretrained' in r.stdout
    assert np.abs(pipeline_images(tmp_path / 'again') - pipeline_images(tmp_path / 'pipe')).max() == 0


def test_without_diffusers():
    "ddpm_lit.interop and the CLI import without diffusers; using them is a one-line error naming the extra"
    code = r'''
import sys; sys.modules['diffusers'] = None          # as if it were not installed
import ddpm_lit.interop as I
from ddpm_lit.unet import UNet
try: I.unet_to_diffusers(UNet.from_preset('tiny', image_size=8)); print('no error')
except ImportError as e: print('ImportError:', e)
from ddpm_lit.cli import main
main(['export', 'some_run', '--out', 'some_dir'])
'''
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert "ImportError: ddpm_lit.interop needs diffusers: pip install 'ddpm_lit[interop]'" in r.stdout, r.stdout + r.stderr
    assert r.returncode == 1 and r.stderr.strip() == "ddpm-lit export: error: ddpm_lit.interop needs diffusers: pip install 'ddpm_lit[interop]'", r.stderr

"""The fast paths compute what the plain float32 path computes.

channels_last, bf16 autocast and torch.compile are only worth having if they leave the answer alone. For a fixed
seed, each test computes with a ddpm_lit U-Net the loss L_simple (fixed x0, t, ε), its gradient, DDIM samples and
ancestral samples, along the plain float32 eager path (no TF32 on CUDA) and along a fast path, and bounds both the
relative L2 error ||fast - ref|| / ||ref|| and the largest absolute difference of every element. The network's
zero-initialised layers (output convolution, attention projections, second convolution of each residual block) are
re-drawn first, so that ε_θ ≠ 0 and the comparison is not vacuous; dropout is off.

Bounds (observed values, on this project's CPU with the 'tiny' network, in brackets):

* float32 paths (channels_last, compile) only reorder float32 arithmetic: relative 1e-4 everywhere [≤ 2.2e-6]; max
  abs 1e-5 on the loss [1.2e-7], 1e-4 × max|∇| on gradients [2e-6 ×], 1e-3 on samples [3.4e-6 DDIM-50, 6.6e-7
  ancestral]. (Compiled with the eager backend on the CPU the results are identical: the same kernels run.)
* bf16 autocast keeps 8 significant bits (a rounding error of 2^-9 ≈ 0.2 % per operation): relative 5e-3 on the
  loss [2.6e-4], 5e-2 on gradients [2.2e-2], 2e-2 on samples [6e-3 DDIM-50, 4e-3 ancestral]; max abs 5e-2 × max|∇|
  on gradients [2e-2 ×], 5e-2 on ancestral samples [9e-3] and 0.1 on DDIM-50 samples [6e-2].
* What bf16 cannot meet: a useful max-abs bound on DDIM with few steps. Its first step forms x̂0 from ε_θ at t = 999,
  which multiplies ε_θ's bf16 rounding by sqrt((1-ᾱ_T)/ᾱ_T) ≈ 157 (before clipping), and fewer, larger steps carry
  more of that into the sample. With 10 steps the largest pixel difference was 0.29 here (and 0.71 for the 'small' network in the recorded CPU
  benchmark, bench/results/cpu-small.json) while the relative error stayed near 3e-2; with 50 steps it is 6e-2. So
  DDIM is checked with 50 steps, where a useful max-abs bound holds.

The CPU tests use the 'tiny' preset on 8×8 images and take seconds. torch.compile's inductor needs minutes to compile
on a CPU, so compiled kernels are checked on CUDA only (with the 'small' preset at 32×32); on the CPU, compilation with
the `eager` backend checks that the forward pass is captured in one graph (`fullgraph=True`) and that the loss and its
gradient come out the same.
"""
import copy, math
from contextlib import contextmanager, nullcontext

import pytest
import torch

from ddpm_lit.schedule import NoiseSchedule
from ddpm_lit.loss import simple_loss
from ddpm_lit.sample import ddpm_sample, ddim_sample
from ddpm_lit.unet import UNet

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

DDIM_STEPS, T_ANCESTRAL = 50, 20
FP32 = dict(loss=(1e-4, 1e-5), grad=(1e-4, 1e-4), ddim=(1e-4, 1e-3), ddpm=(1e-4, 1e-3))   # (relative, max abs)
BF16 = dict(loss=(5e-3, 5e-3), grad=(5e-2, 5e-2), ddim=(2e-2, 1e-1), ddpm=(2e-2, 5e-2))   # grad max abs: × max|∇|


def redraw_zero_layers(m:torch.nn.Module, seed:int=1)->torch.nn.Module:
    "Re-draw every all-zero weight (the zero-initialised layers) with variance 1/fan_in, so that ε_θ ≠ 0"
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            if p.ndim > 1 and not p.any(): p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
    return m


@contextmanager
def strict_fp32():
    "Plain float32 on CUDA: no TF32 in matmuls or cuDNN convolutions (the reference path)"
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try: yield
    finally: torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


class Case:
    "A network, a batch and a schedule; `run` computes loss, gradients and samples along one path"
    def __init__(self, device:str, preset:str, in_ch:int, size:int, batch:int):
        self.device = torch.device(device)
        torch.manual_seed(0)
        self.base = redraw_zero_layers(UNet.from_preset(preset, in_ch=in_ch, image_size=size, dropout=0.)).to(self.device).eval()
        g = torch.Generator().manual_seed(0)
        self.shape = (batch, in_ch, size, size)
        self.x0 = (torch.rand(self.shape, generator=g) * 2 - 1).to(self.device)
        self.t = torch.randint(0, 1000, (batch,), generator=g).to(self.device)
        self.noise = torch.randn(self.shape, generator=g).to(self.device)
        self.sched = NoiseSchedule.linear(1000).to(self.device)
        self.sched_anc = NoiseSchedule.linear(T_ANCESTRAL).to(self.device)

    def run(self, channels_last=False, bf16=False, compile=None, samples=True)->dict:
        m = copy.deepcopy(self.base)
        if channels_last: m = m.to(memory_format=torch.channels_last)
        fwd = torch.compile(m, **compile) if compile is not None else m
        x0 = self.x0.contiguous(memory_format=torch.channels_last) if channels_last else self.x0
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
        with (nullcontext() if bf16 else strict_fp32()):
            with amp: loss = simple_loss(fwd, self.sched, x0, t=self.t, noise=self.noise)
            loss.backward()
            out = dict(loss=loss.detach().float().reshape(1),
                       grad=torch.cat([p.grad.float().flatten() for p in m.parameters()]))
            if samples:
                gen = lambda: torch.Generator(self.device).manual_seed(0)
                with torch.no_grad(), amp:
                    out['ddim'] = ddim_sample(fwd, self.sched, self.shape, DDIM_STEPS, generator=gen(), dtype=torch.float32)
                    out['ddpm'] = ddpm_sample(fwd, self.sched_anc, self.shape, generator=gen(), dtype=torch.float32)
        return {k: v.float() for k, v in out.items()}


def assert_close(fast:dict, ref:dict, bounds:dict, path:str):
    "Every quantity of `fast` within its (relative L2, max abs) bounds of `ref`; one message listing all failures"
    bad = []
    for k, f in fast.items():
        rel_tol, abs_tol = bounds[k]
        if k == 'grad': abs_tol *= ref[k].abs().max().item()       # gradients: max abs relative to the largest entry
        d = (f - ref[k]).double()
        rel, mx = (d.norm() / ref[k].double().norm().clamp_min(1e-30)).item(), d.abs().max().item()
        assert torch.isfinite(f).all(), f"{path}, {k}: not finite"
        if rel > rel_tol or mx > abs_tol:
            bad.append(f"{k}: relative {rel:.2e} (bound {rel_tol:.0e}), max abs {mx:.2e} (bound {abs_tol:.1e})")
    assert not bad, f"{path} differs from float32 eager: " + '; '.join(bad)


# ---------------------------------------------------------------------------------------------------------------
# CPU: the 'tiny' network on 8x8 images, batch 4
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def cpu():
    threads = torch.get_num_threads(); torch.set_num_threads(1)   # tiny tensors: threads only contend
    case = Case('cpu', 'tiny', in_ch=1, size=8, batch=4)
    case.ref = case.run()
    yield case
    torch.set_num_threads(threads)


def test_reference_is_not_vacuous(cpu):
    "ε_θ ≠ 0, gradients ≠ 0, samples spread over [-1, 1]: a comparison with them means something"
    assert cpu.ref['grad'].abs().max() > 1e-3
    for k in ('ddim', 'ddpm'): assert cpu.ref[k].std() > 0.1, k
    with torch.no_grad(): eps = cpu.base(cpu.x0, cpu.t)
    assert eps.abs().mean() > 0.1


def test_cpu_channels_last(cpu):
    assert_close(cpu.run(channels_last=True), cpu.ref, FP32, 'channels_last (CPU)')


def test_cpu_bf16_autocast(cpu):
    assert_close(cpu.run(bf16=True), cpu.ref, BF16, 'bf16 autocast (CPU)')


def test_cpu_bf16_changes_something(cpu):
    "The bf16 path really runs in bf16 (otherwise the test above would pass trivially)"
    out = cpu.run(bf16=True, samples=False)
    assert (out['loss'] - cpu.ref['loss']).abs().item() > 0


def test_cpu_compile_traces(cpu):
    "torch.compile captures the forward pass in one graph (fullgraph; the eager backend generates no code) and agrees"
    torch._dynamo.reset()
    try: out = cpu.run(compile=dict(backend='eager', fullgraph=True), samples=False)
    finally: torch._dynamo.reset()
    assert_close(out, cpu.ref, FP32, 'torch.compile(backend="eager", fullgraph=True) (CPU)')


# ---------------------------------------------------------------------------------------------------------------
# CUDA: the 'small' network on 32x32 images, batch 8, with inductor
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def gpu():
    case = Case('cuda', 'small', in_ch=1, size=32, batch=8)
    case.ref = case.run()
    return case


@needs_cuda
def test_cuda_channels_last(gpu):
    assert_close(gpu.run(channels_last=True), gpu.ref, FP32, 'channels_last (CUDA)')


@needs_cuda
def test_cuda_bf16_autocast(gpu):
    assert_close(gpu.run(bf16=True), gpu.ref, BF16, 'bf16 autocast (CUDA)')


@needs_cuda
def test_cuda_compile(gpu):
    torch._dynamo.reset()
    try: assert_close(gpu.run(compile={}), gpu.ref, FP32, 'torch.compile (CUDA)')
    finally: torch._dynamo.reset()


@needs_cuda
def test_cuda_compile_channels_last_bf16(gpu):
    torch._dynamo.reset()
    try: assert_close(gpu.run(channels_last=True, bf16=True, compile={}), gpu.ref, BF16, 'compile+channels_last+bf16 (CUDA)')
    finally: torch._dynamo.reset()

#!/usr/bin/env python
"""Many samples, or the bound on a whole test set, on a CPU across days: the work in chunks written to a folder, resumable.

Chunk k holds the `batch_size` images that `generate` draws as its batch k (seeded by (seed, k): chapter 05's seed
rule), so the assembled file is exactly what one `ddpm-lit sample RUN --n N --batch-size B --seed S --npz` writes, on
any machine and however often the work was stopped. Each chunk is written atomically when it is done; a rerun skips
the chunks already there. Then `--assemble` writes the one .npz that `ddpm-lit evaluate RUN --samples` scores, with how
its images were drawn (run, step, sampler, steps, seed: `save_npz`'s settings), which that evaluation's protocol names.

    # the shipped model's 10,000 ancestral samples for its card: one one-thread process per core, the network in bf16
    # autocast and compiled (3.4x faster than float32 here), stopped and resumed at will; the chunks are committed
    for i in 0 1; do OMP_NUM_THREADS=1 nohup .venv/bin/python tools/sample_chunks.py pretrained:fashion_mnist --sampler ddpm \
        --n 10000 --batch-size 100 --bf16 --compile --out results/reference/ancestral_n10000 --part $i/2 & done
    .venv/bin/python tools/sample_chunks.py pretrained:fashion_mnist --sampler ddpm --n 10000 --batch-size 100 --bf16 --compile \
        --out results/reference/ancestral_n10000 --assemble runs/ancestral_n10000.npz
    ddpm-lit evaluate pretrained:fashion_mnist --samples runs/ancestral_n10000.npz --bpd-n 0 --json eval_ddpm1000_n10000.json

`--bf16` changes how the images are drawn (the same noise, a coarser network pass), so it is kept in the settings, a
folder never mixes the two, and the evaluation's protocol names it; `results/reference/README.md` measures what it moves.

With `--bound`, chunk k is instead the variational bound (chapter 08's `bits_per_dim`) of test images k*B .. (k+1)*B - 1,
its x_t (and, with `--passes`, its timesteps) drawn from `derive_seed(seed, k)`, per image; `--n` takes the first n test
images (default: all). `--passes P` estimates each image's bound from P network passes instead of T, without bias
(chapter 08's `vlb_estimate`, which measures the noise it adds on the shipped model).
`--assemble OUT.json` gives the mean over the images with its standard error and the mean of every term, and writes
each image's bound beside it (OUT.npz: `index`, `total_bpd`):

    OMP_NUM_THREADS=1 nohup .venv/bin/python tools/sample_chunks.py pretrained:fashion_mnist --bound --passes 100 \
        --batch-size 100 --out runs/bound_test_p100 &
    .venv/bin/python tools/sample_chunks.py pretrained:fashion_mnist --bound --passes 100 --batch-size 100 \
        --out runs/bound_test_p100 --assemble results/reference/bound_test_p100.json
"""
import argparse, json, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / 'ddpm_lit').is_dir() and str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))

import numpy as np
import torch

from ddpm_lit.distributed import derive_seed
from ddpm_lit.loss import vlb_terms
from ddpm_lit.metrics import vlb_estimate
from ddpm_lit.run import load_data, load_run, write_atomic
from ddpm_lit.sample import SampleConfig, save_npz
from ddpm_lit.scale import sample_chunks, sample_part


def chunk_path(out:Path, k:int)->Path: return out / f'chunk_{k:05d}.npz'


def where(path)->str:
    "A checkpoint's path, relative to this repository when inside it: a committed folder of chunks resumes in any clone"
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def check_finished(out:Path, n_chunks:int, p, word:str):
    "--assemble: a one-line usage error unless every chunk is there"
    missing = [k for k in range(n_chunks) if not chunk_path(out, k).exists()]
    if missing: p.error(f"--assemble: {len(missing)} of {n_chunks} chunks not {word} yet (first: {missing[0]}); run without --assemble")


def settings_diff(old:dict, new:dict)->str:
    "How two chunk folders' settings differ ('' when they do not), the command line aside"
    return '; '.join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in sorted(set(old) | set(new))
                     if k != 'command' and old.get(k) != new.get(k))


def run_chunks(out:Path, n_chunks:int, settings:dict, work, word:str, part:tuple=(0, 1)):
    "Write the settings, then every chunk of this part (k % M == I) not yet in `out`: work(k) -> (arrays for its .npz, a line for the log)"
    out.mkdir(parents=True, exist_ok=True)
    f = out / 'settings.json'
    if f.exists():                      # chunks of other settings must not be mixed with these
        diff = settings_diff(json.loads(f.read_text()), settings)
        if diff: sys.exit(f"error: --out {out} holds chunks made with other settings ({diff}); use another folder")
    write_atomic(f, lambda fh: fh.write(json.dumps(settings, indent=1).encode()))
    done = sum(chunk_path(out, k).exists() for k in range(n_chunks))
    i, m = part
    todo = [k for k in range(i, n_chunks, m) if not chunk_path(out, k).exists()]
    print(f"{done} of {n_chunks} chunks already {word}; {len(todo)} to go" + (f" in part {i} of {m}" if m > 1 else ''), flush=True)
    for k in todo:
        t0 = time.time(); arrays, line = work(k)
        write_atomic(chunk_path(out, k), lambda f: np.savez_compressed(f, **arrays))
        print(f"chunk {k}: {line}, {time.time() - t0:.0f} s", flush=True)


def bound_chunk(r, test, k:int, batch_size:int, seed:int, n:int, passes:int=None)->dict:
    "The bound of test images k*B .. min((k+1)*B, n) - 1: per image in bits/dim, and the per-term sums over them"
    idx = torch.arange(k * batch_size, min((k + 1) * batch_size, n))
    g = torch.Generator().manual_seed(derive_seed(seed, k))
    x0 = test.to_float(test.images_at(idx))
    with torch.inference_mode():
        v = (vlb_terms(r.model, r.diffusion, x0, generator=g) if passes is None else
             vlb_estimate(r.model, r.diffusion, x0, passes, generator=g))
    return dict(index=idx.numpy(), total_bpd=v['total_bpd'].double().numpy(), prior_bpd=v['prior_bpd'].double().numpy(),
                terms_bpd_sum=v['terms_bpd'].double().sum(0).numpy())


def assemble_bound(out:Path, n_chunks:int, a, p, r)->None:
    "The bound over every chunk's images, with the keys `ddpm-lit evaluate --json` gives it (a model card takes either)"
    check_finished(out, n_chunks, p, 'done')
    parts = [np.load(chunk_path(out, k)) for k in range(n_chunks)]
    tot = np.concatenate([q['total_bpd'] for q in parts]); n = len(tot)
    terms = sum(q['terms_bpd_sum'] for q in parts) / n
    settings = json.loads((out / 'settings.json').read_text())
    res = dict(settings, n=n, device='cpu', bpd=float(tot.mean()), bpd_se=float(tot.std(ddof=1) / np.sqrt(n)), bpd_n=n,
               bpd_passes=settings.get('passes', r.sched.T), bpd_prior=float(np.concatenate([q['prior_bpd'] for q in parts]).mean()),
               bpd_decoder=float(terms[0]), bpd_dims=int(np.prod(r.shape)), bpd_terms=terms.tolist(), bpd_var_type=settings['var_type'])
    Path(a.assemble).write_text(json.dumps(res, indent=1))
    np.savez_compressed(Path(a.assemble).with_suffix('.npz'), index=np.concatenate([q['index'] for q in parts]), total_bpd=tot)
    print(f"{a.assemble}: {res['bpd']:.4f} ± {res['bpd_se']:.4f} bits/dim on {n} test images")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('run', help='a run, a checkpoint or pretrained:NAME')
    p.add_argument('--sampler', default='ddpm'); p.add_argument('--steps', type=int, default=50)
    p.add_argument('--eta', type=float, default=0.0); p.add_argument('--n', type=int, default=None, help='images (with --bound: the first n test images; default all)')
    p.add_argument('--batch-size', type=int, default=100, help='images per chunk (and per sampler call)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--bound', action='store_true', help="the bound on the whole test split instead of samples (the sampling flags unused)")
    p.add_argument('--passes', type=int, default=None, help="with --bound: network passes per image, an unbiased estimate (default: all T terms)")
    p.add_argument('--out', required=True, help='folder of chunks (created)')
    p.add_argument('--part', default='0/1', metavar='I/M', help='only the chunks k with k %% M == I: M processes (one thread each) '
                   'share the work, each with its own I (default 0/1: all)')
    p.add_argument('--assemble', default=None, metavar='NPZ', help='only this: join the finished chunks into one .npz')
    p.add_argument('--bf16', action='store_true', help='sampling: the network in bf16 autocast on the CPU (about 2.5x faster '
                   'on a CPU with AMX; recorded in the settings, so the evaluation names it)')
    p.add_argument('--compile', action='store_true', help='sampling: the network through torch.compile (about 1.4x faster '
                   'with --bf16, after a minute of compiling; recorded in the settings)')
    a = p.parse_args(argv)
    if a.n is None and not a.bound: p.error('--n: required (the number of images) unless --bound')
    if a.passes is not None and not a.bound: p.error('--passes: only with --bound (network passes per test image)')
    if a.bound and (a.bf16 or a.compile): p.error('--bf16/--compile: only when sampling (the bound is computed in float32)')
    try: part = tuple(int(v) for v in a.part.split('/')); assert len(part) == 2 and 0 <= part[0] < part[1]
    except (ValueError, AssertionError): p.error(f"--part: I/M with 0 <= I < M (this process's share of M), got {a.part!r}")
    cfg = SampleConfig(n=a.n or 2, sampler=a.sampler, steps=a.steps, eta=a.eta, batch_size=a.batch_size, seed=a.seed)  # checked here
    out, command = Path(a.out), ' '.join(['tools/sample_chunks.py', *(argv or sys.argv[1:])])
    if a.bound:
        r = load_run(a.run); test = load_data(r.cfg, train=False)
        n = len(test) if a.n is None else a.n
        if not 1 <= n <= len(test): p.error(f"--n: with --bound, from 1 to the {len(test)} test images, got {n}")
        if a.passes is not None and not 2 <= a.passes <= r.sched.T: p.error(f"--passes: from 2 to T = {r.sched.T}, got {a.passes}")
        chunks = sample_chunks(n, cfg.batch_size)
        if a.assemble: return assemble_bound(out, len(chunks), a, p, r)
        def work(k):
            c = bound_chunk(r, test, k, cfg.batch_size, cfg.seed, n, a.passes)
            return c, f"{len(c['index'])} test images, {c['total_bpd'].mean():.3f} bits/dim"
        return run_chunks(out, len(chunks), dict(run=a.run, checkpoint=where(r.path), step=r.step, batch_size=cfg.batch_size,
                          seed=cfg.seed, var_type=r.diffusion.var_type, split='test', n=n, passes=a.passes or r.sched.T,
                          command=command), work, 'done', part)
    chunks = sample_chunks(cfg.n, cfg.batch_size)
    r = load_run(a.run)
    # the network's precision is part of how the samples were drawn: chunks of float32 and of bf16 are not mixed
    fast = dict(precision='bf16 autocast (CPU)' if a.bf16 else 'float32', compiled=a.compile)
    settings = dict(run=a.run, checkpoint=where(r.path), step=r.step, **cfg.kwargs(), n=cfg.n, **fast, command=command)
    if a.assemble:
        check_finished(out, len(chunks), p, 'drawn')
        drawn = json.loads((out / 'settings.json').read_text())
        diff = settings_diff(drawn, settings)
        if diff: p.error(f"--assemble: the chunks in {out} were drawn with other settings ({diff})")
        u = np.concatenate([np.load(chunk_path(out, k))['arr_0'] for k in range(len(chunks))])
        # how they were drawn travels with them: `ddpm-lit evaluate --samples` names the sampler and seed in its protocol
        save_npz(u, a.assemble, settings=cfg.drawn(r, a.run, **fast, command=drawn['command'], chunks=len(chunks)))
        print(f"{a.assemble}: {u.shape[0]} images"); return
    model = torch.compile(r.model) if a.compile else r.model
    def work(k):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=a.bf16):
            [(kk, u)] = sample_part(model, r.diffusion, cfg.n, r.shape, cfg.sampler, cfg.steps, cfg.eta, cfg.batch_size, cfg.seed,
                                    rank=k, world_size=len(chunks))    # chunk k alone: generate's batch k
        assert kk == k
        return dict(arr_0=u.numpy()), f"{u.shape[0]} images"
    run_chunks(out, len(chunks), settings, work, 'drawn', part)


if __name__ == '__main__':
    main()

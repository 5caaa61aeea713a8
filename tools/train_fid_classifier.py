"""Train the Fashion-MNIST classifier whose penultimate layer gives ddpm_lit's FID features.

    .venv/bin/python tools/train_fid_classifier.py            # the shipped weights: seed 0, 1 thread, CPU

It sees exactly what the diffusion models see: the 60,000 training images padded from 28x28 to 32x32, in [-1, 1]
(`ImageData.to_float` of chapter 04a). Adam with a one-cycle learning rate, batch 128, a fixed seed, on the CPU;
the batch order is a pure function of (seed, epoch). With one thread the run is bit-for-bit repeatable on the same
machine (and one thread is also the fastest on a busy 2-core box). It prints the test accuracy and writes the
weights (rounded to float16 to keep the file small, and the accuracy is measured after the rounding; safetensors,
no pickled code) with the accuracy, the seed and this command in the file's metadata
to ddpm_lit/weights/fashion_mnist_classifier.safetensors. The test set is used only for the final report.
"""
import argparse, json, platform, shlex, sys, time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ddpm_lit.data import load_image_data            # noqa: E402
from ddpm_lit.metrics import FMClassifier, CLASSIFIER_FILE   # noqa: E402


def accuracy(model, data, batch_size=1000):
    "Top-1 accuracy on an ImageData with labels"
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(data.to_float(data.images[i:i + batch_size])).argmax(1) for i in range(0, len(data), batch_size)])
    return (pred == data.labels).float().mean().item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--epochs', type=int, default=4)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--lr', type=float, default=2e-3, help='peak learning rate of the one-cycle schedule')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads (1: repeatable, and fast on a shared box)')
    p.add_argument('--data-dir', help='where Fashion-MNIST is (default: found automatically)')
    p.add_argument('--out', default=str(ROOT / 'ddpm_lit' / 'weights' / CLASSIFIER_FILE))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    train = load_image_data('fashion_mnist', a.data_dir, train=True, image_size=32, download=False)
    test = load_image_data('fashion_mnist', a.data_dir, train=False, image_size=32, download=False)
    model = FMClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    nb = len(train) // a.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=a.epochs * nb, pct_start=0.15)
    t0 = time.time()
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(a.seed * 1000 + epoch))
        tot = 0.0
        for i in range(nb):
            idx = perm[i * a.batch_size:(i + 1) * a.batch_size]
            loss = F.cross_entropy(model(train.to_float(train.images[idx])), train.labels[idx])
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sched.step()
            tot += loss.item()
        print(f"epoch {epoch + 1}/{a.epochs}: train loss {tot / nb:.4f}, {time.time() - t0:.0f}s", flush=True)
    secs = time.time() - t0
    with torch.no_grad():   # ship float16 weights (half the bytes); the accuracy reported is the rounded model's
        for v in model.state_dict().values():
            if v.is_floating_point(): v.copy_(v.half().float())
    acc = accuracy(model, test)
    print(f"test accuracy {acc:.4f} on {len(test)} images; trained in {secs:.0f}s")
    from safetensors.torch import save_file
    sd = {k: (v.half() if v.is_floating_point() else v).detach().contiguous() for k, v in model.state_dict().items()}
    cmd = 'python tools/train_fid_classifier.py' + ''.join(' ' + shlex.quote(s) for s in (argv if argv is not None else sys.argv[1:]))
    meta = dict(test_accuracy=f"{acc:.4f}", seed=str(a.seed), epochs=str(a.epochs), batch_size=str(a.batch_size), lr=str(a.lr),
                threads=str(a.threads), train_seconds=f"{secs:.0f}", command=cmd, torch=torch.__version__,
                machine=platform.machine(), widths=json.dumps(list(model.widths)), feature_dim=str(model.feature_dim),
                dtype='float16',
                input='1x32x32 in [-1, 1]: 28x28 Fashion-MNIST padded with -1 (ddpm_lit.data ImageData.to_float)')
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(out), metadata=meta)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)")


if __name__ == '__main__':
    main()

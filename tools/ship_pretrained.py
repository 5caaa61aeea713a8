"""Ship a trained run as a package model: ddpm_lit/weights/NAME.safetensors (EMA weights + config + model card).

    .venv/bin/python tools/ship_pretrained.py runs/reference fashion_mnist --eval results/reference/eval_ddim50_n1000.json ... --results results/reference
    # a model trained elsewhere and brought back as save_pretrained's file (bench/gpu_round.py), with its training log:
    .venv/bin/python tools/ship_pretrained.py reference_ema.safetensors fashion_mnist --metrics reference_metrics.jsonl ...

The card holds the recipe (the run's resolved TrainConfig), the images seen, the training time (summed from the run's
metrics.jsonl, so pauses between sessions do not count), the hardware line given with --hardware, the command that
retrains it, and every evaluation JSON passed with --eval (as `ddpm-lit evaluate --json` wrote it). The card is also
written beside the results (--results) as card.json, with the run's metrics.jsonl, so a reader can see it without loading the weights.
"""
import argparse, json
from dataclasses import asdict
from pathlib import Path
from ddpm_lit.train import load_run, save_pretrained, pretrained_path

def training_log(metrics:Path, upto:int)->list:
    "A run's metrics.jsonl records up to step `upto` (the shipped checkpoint's)"
    return [r for r in (json.loads(l) for l in open(metrics) if l.strip()) if r['step'] <= upto]

def training_summary(cfg:dict, recs:list, step:int)->dict:
    "Steps, images seen and compute time of a run up to `step`, from its metrics.jsonl records (each covers log_every steps)"
    secs, prev = 0.0, 0
    for r in recs:
        secs += (r['step'] - prev) * cfg['batch_size'] / r['images_per_s']; prev = r['step']
    secs += (step - prev) * cfg['batch_size'] / recs[-1]['images_per_s']     # the steps after the last log line
    prev = step
    return dict(steps=prev, images_seen=prev * cfg['batch_size'], epochs=round(prev * cfg['batch_size'] / 60000, 2),
                train_seconds=round(secs), final_loss=recs[-1]['loss'])

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('run', help='a run directory, or a .safetensors file written by save_pretrained (then --metrics)')
    p.add_argument('name')
    p.add_argument('--metrics', default=None, help="the training log (metrics.jsonl) of a .safetensors run")
    p.add_argument('--to', default=None, help="where the model file goes (default: the package's weights folder, ddpm_lit/weights/NAME.safetensors)")
    p.add_argument('--metrics-out', default='metrics.jsonl', help="the name the training log gets in --results")
    p.add_argument('--results', required=True, help='the results folder that gets card.json (e.g. results/reference)')
    p.add_argument('--eval', nargs='*', default=[], help='ddpm-lit evaluate JSON files to put on the card')
    p.add_argument('--hardware', default='2-core CPU (x86-64), one thread for training')
    p.add_argument('--command', default='OMP_NUM_THREADS=1 ddpm-lit train --preset reference --out runs/reference '
                                        '(then --resume, as often as wanted; --steps N extends it; on another machine '
                                        '--init pretrained:fashion_mnist continues from the shipped weights)')
    a = p.parse_args(argv)
    if a.run.endswith('.safetensors') and not a.metrics: p.error("a .safetensors run needs --metrics (its training log)")
    r = load_run(a.run); cfg = json.loads(json.dumps(asdict(r.cfg)))   # the resolved config, as config.json holds it
    recs = training_log(Path(a.metrics) if a.metrics else Path(a.run) / 'metrics.jsonl', r.step)
    training = training_summary(cfg, recs, r.step)
    if (r.cfg.init or '').startswith('pretrained:'):   # a run continued from the shipped model: its training adds to the card's
        before = load_run(r.cfg.init).card['training']
        if before.get('this_run') == training: before = before['before']   # the same run shipped again (more evaluations)
        training = dict(this_run=training, before=before, **{k: round(before.get(k, 0) + training[k], 2)
                                                            for k in ('steps', 'images_seen', 'epochs', 'train_seconds')})
    card = dict(name=a.name, recipe=cfg, network=r.model.config,
                parameters=sum(q.numel() for q in r.model.parameters()), checkpoint_step=r.step, hardware=a.hardware,
                command=a.command, training=training,
                evaluations=[json.loads(Path(e).read_text()) | {'file': str(e)} for e in a.eval])
    out = save_pretrained(r, a.to or pretrained_path(a.name), card)
    res = Path(a.results); res.mkdir(parents=True, exist_ok=True)
    (res / 'card.json').write_text(json.dumps(card, indent=1))
    (res / a.metrics_out).write_text(''.join(json.dumps(x) + '\n' for x in recs))   # the training curve, for the chapter
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, step {r.step}) and {res / 'card.json'}")

if __name__ == '__main__':
    main()

"""Committed notebook outputs and the README show results, not the machine they were made on: no absolute paths of
that machine (its checkout, home, temporary folders, site-packages) and no warnings in any output."""
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MACHINE = re.compile(r'/work/|/home/\w|/root/|/tmp/tmp|site-packages|\w+Warning: ')


def _outputs(nb_path):
    for i, c in enumerate(json.loads(nb_path.read_text())['cells']):
        for o in c.get('outputs', []):
            texts = [''.join(o['text'])] if 'text' in o else []
            for kind, v in o.get('data', {}).items():
                if kind.startswith('text/'): texts.append(''.join(v) if isinstance(v, list) else str(v))
            for t in texts: yield i, o.get('name', o['output_type']), t


def test_no_machine_paths_or_warnings_in_notebook_outputs():
    bad = [f"{nb.name} cell {i} ({kind}): {m.group(0)!r} in {t[max(0, m.start() - 60):m.end() + 60]!r}"
           for nb in sorted((ROOT / 'nbs').glob('*.ipynb')) for i, kind, t in _outputs(nb) for m in [MACHINE.search(t)] if m]
    assert not bad, '\n'.join(bad[:10])


def test_no_machine_paths_or_warnings_in_readme():
    bad = [l for l in (ROOT / 'README.md').read_text().splitlines() if MACHINE.search(l)]
    assert not bad, bad[:5]


def test_the_scan_finds_what_it_looks_for():
    "The pattern is not vacuous: the outputs this test exists for are caught"
    for s in ['/work/main/.venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found',
              'wrote /tmp/tmpf1d1uh4n/o.png', 'UserWarning: something']:
        assert MACHINE.search(s), s
    assert not MACHINE.search('wrote $TMP/o.png: the masked input')

"""A chapter is a textbook chapter about the method: no chapter, README or docs page speaks of how it was made. Dates,
sessions and sweeps belong in results/<name>/README.md beside the data (issue: a textbook, not a lab log)."""
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAB_LOG = re.compile(r'\bsessions?\b|\blent\b|\bearlier versions?\b|\bthe day before\b|\bdevelopment machine\b', re.I)


def _texts(nb):
    "Every markdown cell's text and every code cell's outputs, with the cell index"
    for i, c in enumerate(json.loads(nb.read_text())['cells']):
        if c['cell_type'] == 'markdown': yield i, ''.join(c['source'])
        for o in c.get('outputs', []):
            if 'text' in o: yield i, ''.join(o['text'])
            for kind, v in o.get('data', {}).items():
                if kind in ('text/plain', 'text/markdown'): yield i, ''.join(v) if isinstance(v, list) else str(v)


def test_chapters_do_not_read_as_a_lab_log():
    bad = [f"{nb.name} cell {i}: {m.group(0)!r} in {t[max(0, m.start() - 50):m.end() + 50]!r}"
           for nb in sorted((ROOT / 'nbs').glob('*.ipynb')) for i, t in _texts(nb) for m in [LAB_LOG.search(t)] if m]
    assert not bad, '\n'.join(bad)


def test_readme_does_not_read_as_a_lab_log():
    bad = [l for l in (ROOT / 'README.md').read_text().splitlines() if LAB_LOG.search(l)]
    assert not bad, bad


def test_the_scan_finds_what_it_looks_for():
    for s in ['Measured in the session of 2026-11-22', 'a GPU lent to this work', 'Earlier versions of this project',
              '`demo` of the day before', 'on the development machine']:
        assert LAB_LOG.search(s), s
    assert not LAB_LOG.search('the lentil soup; a relentless loss')

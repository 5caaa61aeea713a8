"""Execute a chapter in place and keep its outputs, as `jupyter nbconvert --execute --inplace` does, except that cells
flagged with a `tst_flags` entry (`slow`, `cuda`, `notest`) keep the outputs they have: a committed chapter's long
training and its figures are not re-run (or blanked) when the rest of the chapter changes.

    .venv/bin/python tools/run_chapter.py nbs/07b_train.ipynb [more notebooks]     (run with the notebook's folder as cwd)
"""
import re, sys
from pathlib import Path
import nbformat
from nbclient import NotebookClient

FLAGS = ('slow', 'cuda', 'notest')

def flagged(cell)->bool:
    "A code cell whose `#| ...` directives name one of FLAGS"
    return any(re.match(r'#\|\s*(' + '|'.join(FLAGS) + r')\b', l.strip()) for l in cell.source.splitlines())

def run(path:Path, timeout:int=1800):
    nb = nbformat.read(path, as_version=4)
    keep = {i: c.outputs for i, c in enumerate(nb.cells) if c.cell_type == 'code' and flagged(c)}
    client = NotebookClient(nb, timeout=timeout, resources={'metadata': {'path': str(path.parent)}})
    with client.setup_kernel():
        for i, c in enumerate(nb.cells):
            if c.cell_type != 'code': continue
            if i in keep: c.outputs = keep[i]; continue
            client.execute_cell(c, i)
    nbformat.write(nb, path)
    print(f"ran {path} ({len(keep)} flagged cells kept as they were)")

if __name__ == '__main__':
    for p in sys.argv[1:]: run(Path(p).resolve())

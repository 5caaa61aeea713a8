"""What "Run All" costs a reader: execute every chapter as JupyterLab's Run All does (every code cell, those flagged
`slow` included, in a fresh kernel with the chapter's folder as the working directory), outputs discarded, and time it.

    OMP_NUM_THREADS=2 .venv/bin/python tools/run_all_timings.py [nbs/07b_train.ipynb ...] [--json results/run_all/timings.json]

Writes, per chapter: the wall time, whether it ran to the end (or the error), and its three slowest cells. Time it on an
idle machine: the point is the 5-minute budget a reader on two cores has.
"""
import argparse, json, os, platform, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def run_all(path:Path, timeout:int=1800)->dict:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, resources={'metadata': {'path': str(path.parent)}})
    cells, t0, error = [], time.time(), None
    with client.setup_kernel():
        for i, c in enumerate(nb.cells):
            if c.cell_type != 'code': continue
            t = time.time()
            try: client.execute_cell(c, i)
            except Exception as e:      # a chapter that stops on Run All is a finding, not a crash of this script
                error = f"cell {i}: {type(e).__name__}: {str(e).strip().splitlines()[-1][:200] if str(e).strip() else ''}"
                break
            finally: cells.append((time.time() - t, i, c.source.splitlines()[0][:80] if c.source else ''))
    slowest = sorted(cells, reverse=True)[:3]
    return dict(chapter=path.name, seconds=round(time.time() - t0, 1), completed=error is None, error=error,
                slowest=[dict(cell=i, seconds=round(s, 1), first_line=l) for s, i, l in slowest])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('chapters', nargs='*', help='notebooks (default: every nbs/[0-9]*.ipynb and nbs/index.ipynb)')
    p.add_argument('--json', default=str(ROOT / 'results' / 'run_all' / 'timings.json'))
    a = p.parse_args()
    paths = [Path(c).resolve() for c in a.chapters] or sorted((ROOT / 'nbs').glob('[0-9]*.ipynb')) + [ROOT / 'nbs' / 'index.ipynb']
    out = Path(a.json); out.parent.mkdir(parents=True, exist_ok=True)
    res = dict(command='tools/run_all_timings.py ' + ' '.join(a.chapters), date=time.strftime('%Y-%m-%d %H:%M'),
               machine=f"{os.cpu_count()} cores, {platform.machine()}", omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
               load_before=os.getloadavg()[0], chapters=[])
    for path in paths:
        r = run_all(path)
        res['chapters'].append(r)
        print(f"{r['chapter']:32s} {r['seconds']:7.1f} s  {'ok' if r['completed'] else 'STOPPED: ' + r['error']}", flush=True)
        out.write_text(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()

"""Every notebook in nbs/ through nbdev's own test runner, one pytest test per notebook.

Cells flagged with a `tst_flags` entry of pyproject.toml (`slow`, `cuda`, `notest`) are skipped, as `nbdev-test`
does. Set DDPM_LIT_FORCE_FLAGS="slow" (space separated) to run such cells too.
"""
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow   # `make test-fast` leaves it out; `make test` runs it
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook

CFG = get_config(Path(__file__).parent)
NBS = sorted(p for p in CFG.path('nbs_path').glob('*.ipynb') if not p.name.startswith('_'))
SKIP = CFG.tst_flags.split()
FORCE = os.environ.get('DDPM_LIT_FORCE_FLAGS', '').split()


def test_there_are_notebooks():
    assert len(NBS) >= 4, f"expected the chapters in {CFG.path('nbs_path')}, found {[p.name for p in NBS]}"


@pytest.mark.parametrize('nb', NBS, ids=[p.stem for p in NBS])
def test_notebook(nb):
    ok, secs = run_notebook(nb, skip_flags=SKIP, force_flags=FORCE, basepath=CFG.config_path, showerr=True)
    assert ok, f"{nb.name} failed after {secs:.1f}s: see the traceback above"

import shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXE = shutil.which('ddpm-lit', path=str(Path(sys.executable).parent)) or 'ddpm-lit'


def cli(*args, check=False, timeout=600, **kw):
    "Run the installed `ddpm-lit` command; return the CompletedProcess"
    r = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"ddpm-lit {' '.join(map(str, args))} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture
def image_folder(tmp_path):
    "A folder of 32 small grey PNGs: data for end-to-end runs that needs no download"
    from PIL import Image
    d = tmp_path / 'imgs'; d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(32):
        a = np.zeros((8, 8), np.uint8); a[rng.integers(0, 4):, rng.integers(0, 4):] = 255
        Image.fromarray(a).save(d / f'{i:02d}.png')
    return d

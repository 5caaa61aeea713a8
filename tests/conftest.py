"""Shared pieces of the tests: the `ddpm-lit` command, a folder of images, headless Chromium for the browser tests,
and what happens to tests that skip because this machine lacks a package.

A test that needs a system package skips when it is missing (`make test` installs them first where it may: as
root with apt-get, through tools/system_deps.sh). The run then ends with a section listing exactly those tests and
the one command that enables them. With DDPM_LIT_REQUIRE_ALL=1 (set by .ci/run) such a skip is a failure instead:
CI must run everything."""
import contextlib, os, re, shutil, signal, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXE = shutil.which('ddpm-lit', path=str(Path(sys.executable).parent)) or 'ddpm-lit'
REQUIRE_ALL = os.environ.get('DDPM_LIT_REQUIRE_ALL', '') == '1'


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


# ---------------------------------------------------------------------------------------------------------------
# Headless Chromium (tests/test_docs_browser.py, tests/test_lab_browser.py)
# ---------------------------------------------------------------------------------------------------------------

# the flags that work in a container as root, offline
CHROME_FLAGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                '--disable-background-networking', '--disable-component-update', '--disable-sync',
                '--disable-dev-shm-usage', '--window-size=1400,1000']


def _which(*names):
    for n in names:
        if not n: continue
        p = shutil.which(n) if os.sep not in n else (n if os.access(n, os.X_OK) else None)
        if p: return p


@pytest.fixture(scope='module')
def browser():
    "(chromium, chromedriver) paths, or skip naming the package that is missing"
    chrome = _which(os.environ.get('CHROME_BIN', ''), 'chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')
    driver = _which(os.environ.get('CHROMEDRIVER', ''), 'chromedriver',
                    os.path.join(os.environ['CHROMEWEBDRIVER'], 'chromedriver') if os.environ.get('CHROMEWEBDRIVER') else '',
                    '/usr/lib/chromium/chromedriver')
    lack = [(what, pkg, var) for ok, what, pkg, var in [(chrome, 'Chromium', 'chromium', 'CHROME_BIN'),
                                                         (driver, 'chromedriver', 'chromium-driver', 'CHROMEDRIVER')] if not ok]
    if lack:   # both named at once: installing one and then finding the other missing is no help
        pytest.skip(f"{', '.join('no ' + w for w, _, _ in lack)}: apt-get install {' '.join(p for _, p, _ in lack)} "
                    f"(or set {' and '.join(v for _, _, v in lack)})")
    try: import selenium  # noqa: F401
    except ImportError: pytest.skip('selenium is not installed (pip install selenium; it belongs in the dev extras)')
    return chrome, driver


def _children(pid):
    "Descendant process ids of `pid` (Linux /proc), to clean up after a browser that would not quit"
    kids = {}
    for d in Path('/proc').glob('[0-9]*'):
        try: ppid = int((d / 'stat').read_text().rsplit(')', 1)[1].split()[1])
        except Exception: continue
        kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []): out.append(c); todo.append(c)
    return out


@contextlib.contextmanager
def chrome_driver(browser, profile_dir, timeout=60):
    "A Selenium driver of headless Chromium with a fresh profile; quit at the end, leftovers ended by their ids"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    chrome, chromedriver = browser
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for f in CHROME_FLAGS + [f'--user-data-dir={profile_dir}']: opts.add_argument(f)
    service = Service(chromedriver, log_output=os.devnull)
    try: drv = webdriver.Chrome(options=opts, service=service)
    except Exception as e: pytest.skip(f'headless Chromium did not start: {type(e).__name__}: {str(e)[:300]}')
    drv.set_page_load_timeout(timeout); drv.set_script_timeout(timeout)
    pid = getattr(getattr(service, 'process', None), 'pid', None)
    tree = _children(pid) if pid else []
    try: yield drv
    finally:
        try: drv.quit()
        except Exception: pass
        # quit() stops chromedriver and the browser; any of those processes still alive is ended by its id
        for p in dict.fromkeys(([pid] if pid else []) + tree + (_children(pid) if pid else [])):
            try:
                if b'chrom' not in Path(f'/proc/{p}/cmdline').read_bytes(): continue   # gone, id reused
                os.kill(p, signal.SIGKILL)
            except (OSError, ProcessLookupError, PermissionError): pass


# ---------------------------------------------------------------------------------------------------------------
# Skips for want of a package: listed at the end of the run, or failures under DDPM_LIT_REQUIRE_ALL=1
# ---------------------------------------------------------------------------------------------------------------

# (skip reason pattern, what is missing, the Debian package that provides it; 'pip': a package of the dev extras;
#  None: nothing to install, the skip is listed and, under DDPM_LIT_REQUIRE_ALL=1, fails)
MISSING = [
    (r'^(no chromedriver, )?no Chromium\b', 'Chromium', 'chromium'),
    (r'^(no Chromium, )?no chromedriver\b', 'chromedriver', 'chromium-driver'),
    (r'^Fashion-MNIST is not on disk', 'Fashion-MNIST', 'dataset-fashion-mnist'),
    (r'no local MathJax', 'MathJax 2', 'pip'),
    (r'^(selenium|jupyterlab|jupyter[ -]server\S*|diffusers) is not installed', 'package of the dev extras', 'pip'),
    (r'^headless Chromium did not start', 'working headless Chromium', None),
]
PIP_COMMAND = ".venv/bin/python -m pip install -e '.[dev]'"


def _reason(report):
    lr = report.longrepr
    r = lr[2] if isinstance(lr, tuple) and len(lr) == 3 else str(lr or '')
    return r.removeprefix('Skipped: ')


def _missing(reason):
    "The (what, package) pairs a skip reason says are missing; () for a skip that is not about this machine"
    return tuple((what, pkg) for pat, what, pkg in MISSING if re.search(pat, reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if REQUIRE_ALL and rep.skipped and not hasattr(rep, 'wasxfail') and _missing(_reason(rep)):
        rep.outcome = 'failed'
        rep.longrepr = f"DDPM_LIT_REQUIRE_ALL=1 (CI) forbids this skip: {_reason(rep)}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    "After the run: the tests that skipped for want of a package, and the one command that enables them"
    groups = {}
    for rep in terminalreporter.stats.get('skipped', []):
        m = _missing(_reason(rep))
        if m: groups.setdefault(m, []).append(rep.nodeid)
    if not groups: return
    tr = terminalreporter
    n = sum(len(v) for v in groups.values())
    tr.section(f'{n} tests skipped because this machine lacks a package', sep='=', yellow=True)
    def how(pkg): return {None: '', 'pip': ' (pip, dev extras)'}.get(pkg, f' (Debian package {pkg})')
    for lack, ids in groups.items():
        tr.write_line(f"{', '.join(f'no {what}{how(pkg)}' for what, pkg in lack)}: {len(ids)} tests")
        for i in ids: tr.write_line(f"    {i}")
    pkgs = [pkg for lack in groups for _, pkg in lack]
    apt = list(dict.fromkeys(p for p in pkgs if p not in (None, 'pip')))
    cmds = ([f"sudo apt-get install -y {' '.join(apt)}"] if apt else []) + ([PIP_COMMAND] if 'pip' in pkgs else [])
    if cmds:
        tr.write_line('')
        tr.write_line(f"enable them with:  {' && '.join(cmds)}", bold=True)
    if apt: tr.write_line("(run as root, `make test` installs the Debian packages itself: tools/system_deps.sh)")

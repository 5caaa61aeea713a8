"""JupyterLab, as `make lab` gives it, in a real browser: the chapters open and run.

Starts a JupyterLab server on 127.0.0.1 (a free port, a random token, runtime, config, data, settings and
workspace folders in a temporary directory, no browser of its own) on a copy of a chapter notebook in a temporary
folder, so that nothing in the repository changes. Headless Chromium (Selenium and the system chromedriver, as in
tests/test_docs_browser.py) opens the chapter, accepts the kernel dialog (nbdev-clean strips the kernelspec, so Lab
asks which kernel), and runs the chapter's first code cells with Shift+Enter, as a reader would, until the first
cell whose committed output is text. The copy's outputs are cleared first, so what the page then shows came from
the kernel: every run cell gets its execution count, none shows an error, and that cell shows its committed text.
The server and its kernel are stopped by the test, also when it fails. Skips, saying why, without Chromium,
chromedriver or JupyterLab (listed at the end of the run; failures under DDPM_LIT_REQUIRE_ALL=1)."""
import json, os, re, secrets, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow   # `make test-fast` leaves it out; `make test` runs it

from conftest import ROOT, _children, chrome_driver

CHAPTER = ROOT / 'nbs' / '00_schedule.ipynb'
TIMEOUT = 90            # seconds at most for the server to start, the page to load, a cell to run


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r: return r.status, r.read()


def first_cells_with_text(nb):
    "(index of the first code cell whose committed output is text, its first line of text); None if it has none"
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] != 'code': continue
        for o in c.get('outputs', []):
            text = ''.join(o.get('text', '') or o.get('data', {}).get('text/plain', ''))
            line = next((l.strip() for l in text.splitlines() if l.strip()), '')
            if line: return i, line


@pytest.fixture
def chapter(tmp_path):
    "A copy of the chapter, outputs and execution counts cleared, in a folder of its own; plus what to expect"
    nb = json.loads(CHAPTER.read_text(encoding='utf-8'))
    want = first_cells_with_text(nb)
    if want is None: pytest.fail(f'{CHAPTER.name} has no code cell with a text output to look for')
    for c in nb['cells']:
        if c['cell_type'] == 'code': c['outputs'], c['execution_count'] = [], None
    d = tmp_path / 'nbs'; d.mkdir()
    (d / CHAPTER.name).write_text(json.dumps(nb, indent=1), encoding='utf-8')
    return d / CHAPTER.name, nb, want


@pytest.fixture
def lab(chapter, tmp_path):
    "A JupyterLab server on the chapter's folder: (base url, token); shut down (kernels included) afterwards"
    try: import jupyterlab  # noqa: F401
    except ImportError: pytest.skip('jupyterlab is not installed (pip install jupyterlab; it belongs in the dev extras)')
    home = tmp_path / 'home'
    env = {**os.environ, 'HOME': str(home), 'JUPYTER_CONFIG_DIR': str(home / 'config'),
           'JUPYTER_RUNTIME_DIR': str(home / 'runtime'), 'JUPYTER_DATA_DIR': str(home / 'data'),
           'JUPYTERLAB_SETTINGS_DIR': str(home / 'settings'), 'JUPYTERLAB_WORKSPACES_DIR': str(home / 'workspaces'),
           'IPYTHONDIR': str(home / 'ipython'), 'MPLCONFIGDIR': str(home / 'mpl'), 'OMP_NUM_THREADS': '1'}
    # no news or update checks: the lab must not reach the network
    notif = home / 'settings' / '@jupyterlab' / 'apputils-extension' / 'notification.jupyterlab-settings'
    notif.parent.mkdir(parents=True); notif.write_text(json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / 'lab.log', 'w+')
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}',
           '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={chapter[0].parent}',
           '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate', '--LabApp.extension_manager=readonly']
    if os.geteuid() == 0: cmd.append('--allow-root')   # containers and CI run as root; Lab refuses without this
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f'http://127.0.0.1:{port}'

    def log_tail(): log.flush(); log.seek(0); return log.read()[-3000:]
    try:
        t0 = time.time()
        while True:
            if proc.poll() is not None: pytest.fail(f'JupyterLab exited ({proc.returncode}) before serving:\n{log_tail()}')
            try:
                if _get(f'{base}/api/status?token={token}')[0] == 200: break
            except OSError: pass
            if time.time() - t0 > TIMEOUT: pytest.fail(f'JupyterLab did not answer within {TIMEOUT}s:\n{log_tail()}')
            time.sleep(0.25)
        yield base, token, log_tail
    finally:
        tree = _children(proc.pid)   # the kernel(s) it started
        if proc.poll() is None:
            try:   # the way Lab's File > Shut Down does it: the server shuts its kernels down, then stops
                req = urllib.request.Request(f'{base}/api/shutdown', method='POST', headers={'Authorization': f'token {token}'})
                urllib.request.urlopen(req, timeout=10).close()
            except OSError: pass
            try: proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try: proc.wait(timeout=10)
                except subprocess.TimeoutExpired: proc.kill(); proc.wait()
        for p in tree:   # whatever it started and left behind, ended by its id
            try:
                if not Path(f'/proc/{p}').exists(): continue
                os.kill(p, signal.SIGKILL)
            except (OSError, ProcessLookupError): pass
        log.close()


@pytest.fixture
def driver(browser, tmp_path):
    with chrome_driver(browser, tmp_path / 'chrome-profile', TIMEOUT) as drv: yield drv


CELLS = r"""
return [...document.querySelectorAll('.jp-Notebook .jp-Cell')].map(c => ({
  code: c.classList.contains('jp-CodeCell'),
  prompt: (c.querySelector('.jp-InputArea-prompt') || {}).textContent || '',
  out: [...c.querySelectorAll('.jp-OutputArea-output')].map(o => o.textContent).join('\n'),
  stderr: [...c.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')].map(o => o.textContent).join('\n')
}));
"""


def _wait(driver, cond, what, timeout=TIMEOUT):
    from selenium.webdriver.support.ui import WebDriverWait
    try: return WebDriverWait(driver, timeout, poll_frequency=0.25).until(lambda d: cond(d))
    except Exception as e:
        raise AssertionError(f'{what}: not within {timeout}s ({type(e).__name__})') from None


def test_chapter_runs_in_jupyterlab(chapter, driver, lab):   # driver first: without a browser, skip before starting Lab
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    path, nb, (target, text) = chapter
    base, token, log_tail = lab
    driver.get(f'{base}/lab/tree/{path.name}?token={token}')
    n_cells = len(nb['cells'])
    try:
        _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, '.jp-Notebook .jp-Cell')) == n_cells,
              f'the notebook with its {n_cells} cells')
        # nbdev-clean strips the kernelspec, so Lab asks for a kernel: take its proposal (the venv's python3)
        dialog = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, '.jp-Dialog .jp-mod-accept')
                       or d.find_elements(By.CSS_SELECTOR, '.jp-Notebook-ExecutionIndicator[data-status="idle"]'),
                       'the kernel dialog or an idle kernel')
        if 'jp-mod-accept' in (dialog[0].get_attribute('class') or ''): dialog[0].click()
        _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, '.jp-Notebook-ExecutionIndicator[data-status="idle"]'),
              'an idle kernel')
        # select the first cell in command mode, then Shift+Enter down to the target cell, as a reader does
        driver.find_elements(By.CSS_SELECTOR, '.jp-Notebook .jp-Cell .jp-InputPrompt')[0].click()
        ActionChains(driver).send_keys(Keys.ESCAPE).perform()
        for _ in range(target + 1):
            ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
            time.sleep(0.1)
        n_code = sum(c['cell_type'] == 'code' for c in nb['cells'][:target + 1])
        cells = _wait(driver, lambda d: (lambda cs: cs if re.search(r'\[\d+\]', cs[target]['prompt']) else None)(
            d.execute_script(CELLS)), f'cell {target} to run')
    except AssertionError as e:
        raise AssertionError(f'{e}\n--- JupyterLab log ---\n{log_tail()}') from None
    ran = [c for c in cells[:target + 1] if c['code']]
    counts = [int(m.group(1)) if (m := re.search(r'\[(\d+)\]', c['prompt'])) else None for c in ran]
    assert counts == list(range(1, n_code + 1)), f'execution counts of the first {n_code} code cells: {counts}'
    errors = [c['stderr'][-500:] for c in ran if re.search(r'Traceback|Error', c['stderr'])]
    assert not errors, f'error output: {errors}'
    assert text in cells[target]['out'], f"cell {target} shows {cells[target]['out'][:300]!r}, expected {text!r}"
    assert not any(c['prompt'].strip(' :') not in ('[ ]', '') for c in cells[target + 1:] if c['code']), \
        'cells below the target ran too'

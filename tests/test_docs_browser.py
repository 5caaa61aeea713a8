"""The documentation site in a real browser (headless Chromium through Selenium and the system chromedriver).

Builds the site with `tools/build_docs.py` into a temporary folder, serves it on 127.0.0.1 from a thread, and
checks, for every page the notebooks in nbs/ make: the page loads, its figures decode, MathJax typeset its math
(no raw `$...$` left, no TeX errors), the navigation links all load, in-site anchors exist, and the API reference
shows each public name of /work/shared/API.md whose chapter notebook exists. Screenshots of two pages go to
tests/artifacts/. Skips, saying why, when Chromium or chromedriver is missing or the site has no local MathJax
(tests/conftest.py lists those skips at the end of the run; under DDPM_LIT_REQUIRE_ALL=1 they fail).
"""
import functools, http.server, importlib.util, json, os, re, sys, threading, time
import urllib.error, urllib.parse, urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow   # `make test-fast` leaves it out; `make test` runs it

from conftest import chrome_driver

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / 'tests' / 'artifacts'
TIMEOUT = 60          # seconds at most for one page load, one script, one wait


def _load_build_docs():
    spec = importlib.util.spec_from_file_location('build_docs', ROOT / 'tools' / 'build_docs.py')
    mod = importlib.util.module_from_spec(spec)
    sys.modules['build_docs'] = mod   # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


bd = _load_build_docs()
try: PAGES = bd.discover_pages()
except Exception as e:  # reported by the tests below, not at collection
    PAGES, DISCOVER_ERROR = [], e
else: DISCOVER_ERROR = None
STEMS = {p.stem for p in PAGES}


# ---------------------------------------------------------------------------------------------------------------
# The public API contract: which names each chapter's page must document
# ---------------------------------------------------------------------------------------------------------------

# As in /work/shared/API.md; used as is when API.md is not beside the checkout, and merged with it when it is.
CONTRACT = {
    '00_schedule': ['linear_betas', 'cosine_betas', 'NoiseSchedule'],
    '01_forward': ['q_mean_variance', 'q_sample', 'q_step'],
    '02_posterior': ['q_posterior', 'predict_x0_from_eps', 'p_mean_variance'],
    '03_unet': ['UNet'],
    '04_loss': ['normal_kl', 'discretized_gaussian_log_likelihood', 'simple_loss', 'vlb_terms'],
    '06_sample': ['ddpm_sample', 'ddim_sample'],
    '07_score_connection': ['eps_to_score', 'score_to_eps'],
}


def _api_md():
    for c in [os.environ.get('DDPM_LIT_API_MD', ''), ROOT / 'shared' / 'API.md', ROOT.parent / 'shared' / 'API.md',
              Path('/work/shared/API.md')]:
        if c and Path(c).is_file(): return Path(c)


def api_contract():
    "{chapter stem: [public names]} from API.md's `## ddpm_lit.mod  (nbs/NN_name.ipynb)` sections and bullets"
    res = {k: list(v) for k, v in CONTRACT.items()}
    p = _api_md()
    if p is None: return res
    stem = None
    for line in p.read_text(encoding='utf-8').splitlines():
        m = re.match(r'^##\s+\S+\s+\(nbs/([\w-]+)\.ipynb\)', line)
        if m: stem = m.group(1); continue
        if line.startswith('## '): stem = None; continue
        if stem and line.startswith('- `'):
            names = re.findall(r'^- `([A-Za-z_]\w*)\(', line) + re.findall(r'\band `([A-Za-z_]\w*)\(', line)
            for n in names:
                if n not in res.setdefault(stem, []): res[stem].append(n)
    return res


API = [(stem, name) for stem, names in api_contract().items() for name in names]


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: browser, site, server, driver
# ---------------------------------------------------------------------------------------------------------------

# `browser` (the Chromium and chromedriver paths, or a skip) is a fixture of conftest.py


@pytest.fixture(scope='module')
def site(browser, tmp_path_factory):
    "The site, built into a temporary folder; skips when it cannot be built for lack of notebooks or MathJax"
    if DISCOVER_ERROR is not None: raise DISCOVER_ERROR
    out = tmp_path_factory.mktemp('site')
    # what the committed notebooks hold, read as the build reads them (chapters may change while tests run)
    facts = {p.stem: notebook_facts(p.src) for p in PAGES if p.src.exists()}
    t, cpu = time.time(), time.process_time()
    try: report = bd.build_site(out, quiet=True)
    except bd.DocsError as e: pytest.skip(f'the site cannot be built here: {e}')
    report['build_seconds'], report['build_cpu_seconds'] = time.time() - t, time.process_time() - cpu
    report['facts'] = facts
    report['built'] = {p.stem: p for p in report['pages']}
    return report


@pytest.fixture(scope='module')
def server(site):
    "http://127.0.0.1:PORT/ serving the site from a thread; shut down at the end"
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    handler = functools.partial(Quiet, directory=str(site['out']))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    httpd.daemon_threads = True
    th = threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.2}, daemon=True)
    th.start()
    try: yield f'http://127.0.0.1:{httpd.server_address[1]}/'
    finally:
        httpd.shutdown(); httpd.server_close(); th.join(timeout=5)


@pytest.fixture(scope='module')
def driver(browser, tmp_path_factory):
    "Headless Chromium (conftest.chrome_driver: the flags that work here, a fresh profile, cleaned up after)"
    with chrome_driver(browser, tmp_path_factory.mktemp('chrome-profile'), TIMEOUT) as drv: yield drv


# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------

def http_get(url):
    with urllib.request.urlopen(url, timeout=10) as r: return r.status, r.headers.get('Content-Type', ''), r.read()


WAIT_MATHJAX = """
const done = arguments[arguments.length - 1];
if (!window.MathJax || !MathJax.Hub) { done('no MathJax'); return; }
MathJax.Hub.Queue(() => done('ok'));   // runs after the typesetting already queued
"""

PAGE_FACTS = r"""
const main = document.querySelector('main');
const imgs = [...main.querySelectorAll('img')].map(i => ({src: i.src.slice(0, 60), w: i.naturalWidth, ok: i.complete}));
const math = main.querySelectorAll('.MathJax_CHTML, .MathJax, .MathJax_Display, mjx-container').length;
const tex = [...main.querySelectorAll('script[type^="math/tex"]')];
const errors = [...main.querySelectorAll('.mjx-merror, .MathJax_Error, merror, [class*="merror"]')]
  .map(e => { const s = e.closest('.MathJax_CHTML, .MathJax'); const src = s && s.nextElementSibling; return src ? src.textContent : e.textContent; });
const clone = main.cloneNode(true);
clone.querySelectorAll('pre, code, script, style, .MathJax_Preview, .MathJax_CHTML, .MathJax, .MathJax_Display, .MJX_Assistive_MathML, mjx-container').forEach(e => e.remove());
clone.querySelectorAll('span:not([class])').forEach(e => { if (e.textContent === '$') e.remove(); });  // MathJax's escaped \\$
const headings = [...main.querySelectorAll('h1, h2, h3, h4, h5, h6')].map(h => h.textContent.replace(/#$/, '').trim());
const showdoc = [...main.querySelectorAll('.show-doc h1, .show-doc h2, .show-doc h3, .show-doc h4')].map(h => h.textContent.replace(/#$/, '').trim());
const nav = [...document.querySelectorAll('#site-nav a, a.navbar-brand')].map(a => a.href);
return {title: document.title, h1: (document.querySelector('h1.title') || {}).textContent, imgs, math, tex: tex.length,
        errors, text: clone.textContent, headings, showdoc, nav};
"""


def notebook_facts(path):
    "From the committed notebook: does its prose have math, how many figures do its shown cells have"
    nb = json.loads(Path(path).read_text(encoding='utf-8'))
    has_math, figs = False, 0
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown' and re.search(r'\$[^$\s]', src): has_math = True
        if c['cell_type'] != 'code': continue
        opts = src.split('\n')
        if any(re.match(r'#\|\s*(hide|export|exporti)\b|#\|\s*(include|output)\s*:\s*false', l) for l in opts): continue
        figs += sum(1 for o in c.get('outputs', []) if {'image/png', 'image/jpeg', 'image/svg+xml'} & set(o.get('data', {})))
    return has_math, figs


@functools.lru_cache(maxsize=None)
def _load(driver, url):
    "Open `url`, wait for it, its images and MathJax; return the page facts (cached per url)"
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get(url)
    WebDriverWait(driver, TIMEOUT).until(lambda d: d.execute_script('return document.readyState') == 'complete')
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: d.execute_script('return [...document.images].every(i => i.complete)'))
    try: WebDriverWait(driver, TIMEOUT).until(lambda d: d.execute_script('return !window.MathJax || MathJax.isReady === true'))
    except Exception: pass   # reported below as MathJax not having run
    mj = driver.execute_async_script(WAIT_MATHJAX) if driver.execute_script('return !!(window.MathJax && MathJax.isReady)') \
        else 'MathJax did not load or start'
    facts = driver.execute_script(PAGE_FACTS)
    facts['mathjax'] = mj
    return facts


def _screenshot(driver, url, name):
    "Top of the page (viewport) and the whole page (capped), as PNGs in tests/artifacts/"
    import base64
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if driver.current_url != url:
        _load.cache_clear(); _load(driver, url)
    driver.execute_script('window.scrollTo(0, 0)')
    driver.save_screenshot(str(ARTIFACTS / f'{name}.png'))
    try:
        h = driver.execute_script('return document.documentElement.scrollHeight')
        shot = driver.execute_cdp_cmd('Page.captureScreenshot', {
            'format': 'png', 'captureBeyondViewport': True,
            'clip': {'x': 0, 'y': 0, 'width': 1400, 'height': min(int(h), 12000), 'scale': 1}})
        (ARTIFACTS / f'{name}_full.png').write_bytes(base64.b64decode(shot['data']))
    except Exception: pass


SCREENSHOT_STEMS = {'index'} | ({'02_posterior'} if '02_posterior' in STEMS else {'00_schedule'})


# ---------------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------------

def test_there_are_pages():
    if DISCOVER_ERROR is not None: raise DISCOVER_ERROR
    assert PAGES, 'no notebooks found in nbs/'


def test_build_is_fast(site):
    "Under a minute of work (CPU time, so that a busy machine does not fail it), and no runaway wall time"
    cpu, wall = site['build_cpu_seconds'], site['build_seconds']
    assert cpu < 60 and wall < 180, f"building the site took {cpu:.0f}s of CPU, {wall:.0f}s in all"
    assert not site['warnings'], 'show_doc failed while building:\n' + '\n'.join(site['warnings'])


@pytest.mark.parametrize('page', PAGES, ids=[p.stem for p in PAGES])
def test_page(page, site, server, driver):
    if page.stem not in site['built']: pytest.skip(f'{page.src.name} was removed before the build')
    page = site['built'][page.stem]
    url = urllib.parse.urljoin(server, page.href)
    status, ctype, _ = http_get(url)
    assert status == 200 and 'text/html' in ctype, f'{url}: HTTP {status} {ctype}'
    f = _load(driver, url)
    assert page.title in f['title'] and f['h1'] and f['h1'].strip(), f"{page.href}: title {f['title']!r}, h1 {f['h1']!r}"
    # figures: every image decodes, and the committed figures are all there
    has_math, n_figs = site['facts'].get(page.stem) or notebook_facts(page.src)
    bad = [i for i in f['imgs'] if not (i['ok'] and i['w'] > 0)]
    assert not bad, f'{page.href}: images that did not decode: {bad}'
    assert len(f['imgs']) >= n_figs, f"{page.href}: {len(f['imgs'])} images shown, the notebook has {n_figs} figures"
    # math: MathJax loaded from the local copy and typeset everything, without TeX errors
    assert f['mathjax'] == 'ok', f"{page.href}: MathJax did not run ({f['mathjax']})"
    if has_math:
        assert f['math'] > 0 and f['tex'] > 0, f"{page.href}: the notebook has math but no MathJax output is on the page"
    assert not f['errors'], f"{page.href}: MathJax could not typeset: {f['errors'][:5]}"
    raw = re.findall(r'\$\$.{0,60}|\$[^$\n]{1,80}\$', f['text'])
    assert not raw, f'{page.href}: raw TeX left in the visible text: {raw[:5]}'
    if page.stem in SCREENSHOT_STEMS: _screenshot(driver, url, page.stem)


def test_navigation_links_resolve(site, server, driver):
    f = _load(driver, urllib.parse.urljoin(server, 'index.html'))
    hrefs = [h.split('#')[0] for h in f['nav'] if h.startswith(server)]
    assert hrefs, 'no navigation links on index.html'
    missing = [p.href for p in PAGES if urllib.parse.urljoin(server, p.href) not in hrefs]
    assert not missing, f'pages missing from the navigation: {missing}'
    for h in dict.fromkeys(hrefs):
        status, ctype, _ = http_get(h)
        assert status == 200 and 'text/html' in ctype, f'{h}: HTTP {status}'
    if 'index' not in STEMS: _screenshot(driver, urllib.parse.urljoin(server, 'index.html'), 'index')  # the landing page


def test_in_site_anchors_exist(site):
    "Every link within the site (nbdev's doc links included) finds its page and its anchor"
    from bs4 import BeautifulSoup
    out = Path(site['out'])
    docs = {p.relative_to(out).as_posix(): BeautifulSoup(p.read_text(encoding='utf-8'), 'html.parser')
            for p in out.rglob('*.html') if 'mathjax' not in p.relative_to(out).parts}
    ids = {k: {t['id'] for t in s.find_all(id=True)} for k, s in docs.items()}
    broken = []
    for k, s in docs.items():
        for a in s.select('main a[href]'):
            href = a['href']
            if re.match(r'^[a-z]+:|^//', href): continue
            path, _, frag = href.partition('#')
            target = os.path.normpath(os.path.join(os.path.dirname(k), path)).replace(os.sep, '/') if path else k
            if target not in ids: broken.append(f'{k}: {href} (no such page)'); continue
            if frag and frag not in ids[target]:
                # nbdev links every method it exports (`#unet.ddpm_cifar10`); one documented only through its
                # class (no show_doc of its own) lands on the class, as on the Quarto site
                if '.' in frag and frag.split('.')[0] in ids[target]: continue
                broken.append(f'{k}: {href} (no #{frag})')
    assert not broken, 'broken links:\n' + '\n'.join(broken[:20])


@pytest.mark.parametrize('stem,name', API, ids=[f'{s}-{n}' for s, n in API])
def test_api_reference(stem, name, site, server, driver):
    page = next((p for p in PAGES if p.stem == stem), None)
    if page is None: pytest.skip(f'chapter {stem} is not written yet (no nbs/{stem}.ipynb)')
    f = _load(driver, urllib.parse.urljoin(server, page.href))
    def has(hs): return any(re.search(rf'(^|[\s.`]){re.escape(name)}($|[\s(.:`])', h) for h in hs)
    assert has(f['showdoc']) or has(f['headings']), \
        f"{page.href} documents no `{name}`: show_doc headings {f['showdoc']}"

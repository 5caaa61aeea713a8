"""Build ddpm_lit's documentation offline: the static site `docs/` and `README.md`, with no Quarto.

    python tools/build_docs.py site   [--out docs]        # `make docs`
    python tools/build_docs.py readme [--out README.md]   # `make readme`

The published site is built by nbdev 3 with Quarto (`nbdev-docs`, run by .github/workflows/deploy.yaml), and
`nbdev-readme` makes README.md with Quarto too. Quarto cannot be installed everywhere (not here, not in this
project's CI), so this script builds the same pages from the same notebooks with nbdev's own notebook processing
and nbconvert's rendering, and no network at all.

How it maps onto nbdev 3:

- Which notebooks, in which order, under which names: nbdev's `nbglob` (files and folders starting with `_` or `.`
  skipped, sub-folders when `recursive`), the order of nbdev's sidebar (`nbdev_sidebar`: index first, then by path),
  and nbdev's `nbpath2html` names (`00_schedule.ipynb` -> `schedule.html`, `index.ipynb` -> `index.html`).
- Notebook processing: `nbdev-docs` runs `proc_nbs`, which runs `nbdev.processors.FilterDefaults` on each notebook
  (front matter from the `# Title` + `> description` cell, `show_doc` cells added after `#| export` cells, `#| hide`
  and `#| export` cells removed, `#| exports` code folded after its docs, `hide_line`, `filter_stream`, backticked
  names linked to their docs, directives turned into Quarto cell options). This script runs the same
  `FilterDefaults` processors with one substitution: nbdev's `exec_show_docs` executes a notebook's exported and
  import cells in a kernel to produce the `show_doc` output; here `show_doc` is evaluated against the installed
  package's module instead (`ddpm_lit.<default_exp>`, which `nbdev-export` generated from those same cells). Only
  when the package lacks a name (a chapter not exported yet, or changed since `nbdev-export`) are the notebook's
  `#| export` cells run, as one module, to document it, as nbdev does. No other notebook code runs: every output
  shown is the committed one.
- Rendering: where Quarto (pandoc) renders the processed notebook, this uses nbconvert's `HTMLExporter` with the
  template below (Quarto-like markup: `.cell`, `.cell-output`, a title block, a sidebar, an "On this page" table of
  contents), then honours the Quarto cell options nbdev leaves (`echo`, `output`, `include`, `code-fold`,
  `code-summary`, `fig-cap`, `warning`) and strips every `#|` line from the code shown. Math is rendered in the
  browser by MathJax 2 from a local copy (Debian's libjs-mathjax, else the copy the `jupyter-server-mathjax` package
  of the dev extras ships, which has only the STIX-Web fonts; copied into `docs/mathjax/`), with `$...$`
  inline and `$$...$$` display delimiters; nbconvert's markdown renderer passes LaTeX through untouched.
  `nbs/styles.css` (the stylesheet Quarto uses) is applied to both.
- README: `nbdev-readme` renders `index.ipynb` with Quarto to GitHub markdown (`-t gfm`) and rewrites relative doc
  links to the hosted site (nbdev's `readme_filter`). Here: the same processing, nbconvert's `MarkdownExporter`
  with a small template (code as ```` ``` python ```` blocks, text outputs as indented blocks, figures written to
  `index_files/figure-gfm/`, next to README.md as `nbdev-readme` keeps them), and `readme_filter.doc_link` for links.

Everything is found at build time, so new chapters need no change here. Options: `--out` for either command.

What differs from the Quarto site: no full-text search, no dark mode, no "report an issue" action, no Markdown
alternate (`.md`) pages, no copy-code buttons, `.qmd`/`.md` sources are not rendered, and pandoc-only markdown
(footnotes, cross-references, span attributes, div attributes other than `:::` classes and callouts) is shown as
written. MathJax 2 (local) instead of Quarto's MathJax 3 (CDN). Figures stay embedded PNGs instead of files. The
layout and fonts are plain CSS (system fonts) rather than Bootstrap's cosmo theme.
"""
from __future__ import annotations

import argparse, contextlib, functools, html, importlib, json, os, posixpath, re, shutil, sys, time, warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# MathJax 2: Debian's libjs-mathjax first, then an explicit override, then the copy jupyter-server-mathjax ships.
MATHJAX_CANDIDATES = ['/usr/share/javascript/mathjax', '/usr/share/nodejs/mathjax']
MATHJAX_CONFIGS = ['TeX-AMS_CHTML-full', 'TeX-AMS-MML_HTMLorMML-full', 'TeX-AMS_HTML-full']   # first one present
MATHJAX_SKIP = ('unpacked', 'test', 'docs', '*.md', '*.txt', 'LICENSE', 'package.json', 'bower.json', 'composer.json')


class DocsError(RuntimeError):
    "The documentation cannot be built (missing input or tool), with the reason in the message"


@contextlib.contextmanager
def _cwd(path):
    "nbdev reads its configuration (and source files for line numbers) relative to the current directory"
    old = os.getcwd()
    os.chdir(path)
    try: yield
    finally: os.chdir(old)


def _cfg():
    from nbdev.config import get_config
    return get_config(ROOT)


def mathjax_config(mathjax: Path | None) -> str:
    "The `?config=` of MathJax.js: CommonHTML output where the copy has it (Debian's), else HTML-CSS"
    have = [c for c in MATHJAX_CONFIGS if mathjax and (Path(mathjax) / 'config' / f'{c}.js').exists()]
    return (have[0] if have else MATHJAX_CONFIGS[0]) + ',Safe'


def mathjax_fonts(mathjax: Path | None) -> str:
    """`MathJax.Hub.Config` arguments for a copy without MathJax's TeX web fonts (jupyter-server-mathjax ships only
    STIX-Web): HTML-CSS output in STIX-Web, as Jupyter configures it; '' for a copy that has the TeX fonts (Debian's)"""
    fonts = Path(mathjax) / 'fonts' / 'HTML-CSS' if mathjax else None
    if not fonts or (fonts / 'TeX').is_dir() or not (fonts / 'STIX-Web').is_dir(): return ''
    return ('{"HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null}, '
            'SVG: {font: "STIX-Web"}}')


def find_mathjax() -> Path | None:
    "Folder holding a MathJax 2 `MathJax.js`: $DDPM_LIT_MATHJAX, Debian's libjs-mathjax, or jupyter-server-mathjax"
    cands = [os.environ.get('DDPM_LIT_MATHJAX', '')] + MATHJAX_CANDIDATES
    try:
        import jupyter_server_mathjax
        cands.append(str(Path(jupyter_server_mathjax.__file__).parent / 'static'))
    except Exception: pass
    for c in cands:
        if c and (Path(c) / 'MathJax.js').is_file(): return Path(c)
    return None


# ----------------------------------------------------------------------------------------------------------------
# Which pages
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class Page:
    src: Path               # the notebook
    href: str               # output path in the site, posix, e.g. 'schedule.html'
    title: str
    description: str = ''
    section: str = ''       # sub-folder of nbs/, '' at the top
    stem: str = ''          # notebook name without suffix, e.g. '00_schedule'


def _frontmatter(path: Path) -> dict:
    "nbdev's front matter of a notebook (title, description, ...) without processing the rest"
    from fastcore.nbio import read_nb
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor
    nb = read_nb(path)
    NBProcessor(nb=nb, procs=[FrontmatterProc], rm_directives=False).process()
    return dict(getattr(nb, 'frontmatter_', {}) or {})


def discover_pages(nbs_path: Path | None = None) -> list[Page]:
    "The notebooks that become pages, in nbdev's sidebar order (index first), named as nbdev names them"
    from nbdev.config import nbpath2html
    from nbdev.doclinks import nbglob
    cfg = _cfg()
    nbs = Path(nbs_path or cfg.nbs_path)
    with _cwd(cfg.config_path):
        files = [Path(f) for f in nbglob(nbs, file_glob='*.ipynb')]
    rels = sorted((f.relative_to(nbs) for f in files),
                  key=lambda r: (r.parent.as_posix(), r.name != 'index.ipynb', r.as_posix()))
    pages, seen = [], {}
    for rel in rels:
        href = nbpath2html(rel).as_posix()
        if href in seen: raise DocsError(f"{rel} and {seen[href]} would both become {href} (nbdev strips the NN_ prefix)")
        seen[href] = rel
        fm = _frontmatter(nbs / rel)
        pages.append(Page(src=nbs / rel, href=href, title=str(fm.get('title') or rel.stem),
                          description=str(fm.get('description') or ''), section=rel.parent.as_posix().strip('.'),
                          stem=rel.stem))
    return pages


# ----------------------------------------------------------------------------------------------------------------
# nbdev processing
# ----------------------------------------------------------------------------------------------------------------

def _show_doc_processor():
    import ast, linecache, types
    from fastcore.basics import str2bool
    from fastcore.xtras import dict2obj
    from nbdev.process import Processor
    from nbdev.showdoc import show_doc

    class show_docs_from_package(Processor):
        """Stand-in for nbdev's `exec_show_docs`: evaluate each `show_doc(...)` cell against the installed package
        module(s) the notebook exports to, instead of executing the notebook's cells in a kernel. A name the
        package lacks (a chapter not yet exported, or changed since `nbdev-export`) is documented from the
        notebook's own `#| export` cells, run once as a module: the code nbdev would export, nothing else."""
        failures, notes = [], []

        def begin(self):
            fm = getattr(self.nb, 'frontmatter_', {}) or {}
            self.skip = str2bool(fm.get('skip_showdoc', False))
            self.name = Path(getattr(self.nb, 'path_', 'notebook')).name
            self.lib = _cfg().lib_name
            self.mods, self.export_src = [], []
            for c in self.nb.cells:
                d = getattr(c, 'directives_', None) or {}
                if d.get('default_exp'): self.mods.append(self._full(d['default_exp'].split()[0]))
                for k in ('export', 'exports', 'exporti'):
                    if k in d:
                        if d[k]: self.mods.append(self._full(d[k].split()[0]))
                        if c.cell_type == 'code' and c.get('source'): self.export_src.append(c.source)
            self.mods = list(dict.fromkeys(self.mods))
            self.ns = self.nb_mod = None

        def _full(self, m): return m if m.startswith(self.lib + '.') else f'{self.lib}.{m}'

        def _namespace(self):
            "The installed package's module(s) for this notebook"
            if self.ns is None:
                self.ns = {}
                for name in self.mods:
                    try: self.ns.update(vars(importlib.import_module(name)))
                    except Exception as e: self.notes.append(f"{self.name}: cannot import {name} ({type(e).__name__}: {e})")
                self.ns['show_doc'] = show_doc
            return self.ns

        def _notebook_module(self):
            "The notebook's exported cells run as a module named like the package module (as nbdev-docs runs them)"
            if self.nb_mod is None and self.export_src:
                modname = self.mods[0] if self.mods else f'{self.lib}._docs_{Path(self.name).stem}'
                fname = f'<{self.name}: exported cells>'
                code = '\n\n'.join(self.export_src) + '\n'
                linecache.cache[fname] = (len(code), None, code.splitlines(True), fname)
                mod = types.ModuleType(modname)
                mod.__file__ = fname
                mod.__package__ = modname.rpartition('.')[0]
                with self._as_module(mod), warnings.catch_warnings():
                    warnings.simplefilter('ignore')
                    exec(compile(code, fname, 'exec'), mod.__dict__)
                mod.__dict__.setdefault('show_doc', show_doc)
                self.nb_mod = mod
                self.notes.append(f"{self.name}: documented from the notebook's exported cells (the installed "
                                  f"{modname} lacks some names: run nbdev-export)")
            return self.nb_mod

        @contextlib.contextmanager
        def _as_module(self, mod):
            "Register `mod` in sys.modules while it runs or is inspected (inspect finds class source that way)"
            old = sys.modules.get(mod.__name__)
            sys.modules[mod.__name__] = mod
            try: yield
            finally:
                if old is None: sys.modules.pop(mod.__name__, None)
                else: sys.modules[mod.__name__] = old

        def _eval(self, expr):
            code = compile(ast.Expression(expr), '<show_doc>', 'eval')
            try: return eval(code, dict(self._namespace()))
            except (NameError, AttributeError):
                mod = self._notebook_module()
                if mod is None: raise
                with self._as_module(mod): 
                    r = eval(code, dict(vars(mod)))
                    return r._repr_markdown_() if r is not None else None, True

        def cell(self, cell):
            if self.skip or cell.cell_type != 'code' or not re.search(r'^show_doc', cell.source or '', re.M): return
            try: body = ast.parse(cell.source).body
            except SyntaxError: return
            if not body: return
            last = body[-1]
            if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
                    and getattr(last.value.func, 'id', None) == 'show_doc'): return
            cell.metadata['show_doc'] = True
            try:
                r = self._eval(last.value)
                md = r[0] if isinstance(r, tuple) else (r._repr_markdown_() if r is not None else None)
            except Exception as e:
                kept = 'keeping its committed output' if cell.get('outputs') else 'no output'
                self.failures.append(f"{self.name}: {ast.unparse(last)} failed ({type(e).__name__}: {e}); {kept}")
                return
            if md is None: return
            md = _fix_source_line(md)
            cell.outputs = [dict2obj({'output_type': 'execute_result', 'execution_count': None, 'metadata': {},
                                      'data': {'text/markdown': md}})]

    return show_docs_from_package


def _fix_source_line(md: str) -> str:
    "nbdev 3.3 links show_doc's [source] to `file.py#LNone` (it looks the line up by the qualified name): fix it"
    from nbdev.doclinks import _get_exps
    m = re.search(r'^#+ (\S+)\s*$', md, re.M)
    def line(mm):
        py = mm.group(2)
        try: n = _get_exps(py).get(m.group(1)) if m else None
        except Exception: n = None
        return f'{mm.group(1)}#L{n}' if n else mm.group(1)
    return re.sub(r'(https?://\S+?/blob/\S+?/(\S+?\.py))#LNone', line, md)


@functools.lru_cache(maxsize=None)
def _filter():
    from nbdev.processors import FilterDefaults, exec_show_docs
    sd = _show_doc_processor()

    class OfflineFilter(FilterDefaults):
        "nbdev's docs processors, with `exec_show_docs` replaced by `show_docs_from_package`"
        def base_procs(self):
            return [sd if p is exec_show_docs else p for p in super().base_procs()]
    return OfflineFilter(), sd


def process_notebook(path: Path):
    "Run nbdev's docs processors over the notebook at `path`; return (nbformat notebook, front matter)"
    import nbformat
    from fastcore.nbio import read_nb, nb2dict
    filt, _ = _filter()
    nb = read_nb(path)
    with _cwd(_cfg().config_path), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        filt(nb)
    fm = dict(getattr(nb, 'frontmatter_', {}) or {})
    d = nb2dict(nb)
    # the front matter is carried separately; nbdev inserts it as a raw YAML cell for Quarto
    if d['cells'] and d['cells'][0]['cell_type'] == 'raw' and ''.join(d['cells'][0]['source']).startswith('---'):
        d['cells'] = d['cells'][1:]
    return nbformat.reads(json.dumps(d), as_version=4), fm   # reads() joins the split lines back


# ----------------------------------------------------------------------------------------------------------------
# What Quarto does with the processed notebook
# ----------------------------------------------------------------------------------------------------------------

_re_opt = re.compile(r'^\s*#\|\s?(.*)$')


def _parse_opts(source: str):
    "Split leading `#| key: value` lines (Quarto cell options, as nbdev leaves them) from the code"
    lines, opts = source.splitlines(True), {}
    i = 0
    while i < len(lines) and (_re_opt.match(lines[i]) or (not lines[i].strip() and opts)):
        m = _re_opt.match(lines[i])
        if m:
            mm = re.match(r'([^\s:]+)\s*:?\s?(.*?)\s*$', m.group(1))
            if mm:
                k, v = mm.groups()
                v = v.strip()
                if len(v) >= 2 and v[0] == v[-1] and v[0] in '"\'': v = v[1:-1]
                opts[k] = {'true': True, 'false': False, '': True}.get(v.lower(), v)
        i += 1
    return opts, ''.join(lines[i:]).strip('\n')


def apply_cell_options(nb):
    "Honour the Quarto cell options left in code cells and strip every leading `#|` line from the code shown"
    cells = []
    for c in nb.cells:
        if c.cell_type == 'code':
            opts, c.source = _parse_opts(c.source)
            if opts.get('include') is False: continue
            if opts.get('echo') is False or not c.source.strip():
                c.metadata.setdefault('transient', {})['remove_source'] = True
            if opts.get('output') is False: c.outputs = []
            if opts.get('warning') is False:
                c.outputs = [o for o in c.outputs if not (o.output_type == 'stream' and o.name == 'stderr')]
            c.metadata['quarto'] = {k: v for k, v in opts.items() if isinstance(v, (str, bool, int, float))}
            if not c.source.strip() and not c.outputs: continue
        cells.append(c)
    nb.cells = cells
    return nb


_re_fence = re.compile(r'^\s*(```|~~~)')
_re_link_attrs = re.compile(r'(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)(?:\s+"([^"]*)")?\)\{([^}]*)\}')
_re_attr = re.compile(r'''(\.[\w-]+)|(#[\w-]+)|([\w-]+)=("[^"]*"|'[^']*'|[^\s}]+)''')
_re_div_open = re.compile(r'^\s*:::+\s*(?:\{([^}]*)\}|([\w-]+))\s*$')
_re_div_close = re.compile(r'^\s*:::+\s*$')
CALLOUTS = {'note': 'Note', 'tip': 'Tip', 'warning': 'Warning', 'caution': 'Caution', 'important': 'Important'}


def _attrs(s: str):
    "Pandoc attributes `{.cls #id key=val}` -> (classes, id, {key: val})"
    classes, ident, kv = [], None, {}
    for cls, hid, k, v in _re_attr.findall(s):
        if cls: classes.append(cls[1:])
        elif hid: ident = hid[1:]
        elif k: kv[k] = v[1:-1] if v[:1] in '"\'' else v
    return classes, ident, kv


def _html_attrs(classes, ident, kv):
    out = ''
    if ident: out += f' id="{html.escape(ident)}"'
    if classes: out += f' class="{html.escape(" ".join(classes))}"'
    for k, v in kv.items(): out += f' {k}="{html.escape(v)}"'
    return out


def _link_attrs_html(m):
    bang, text, url, title, attrs = m.groups()
    a = _html_attrs(*_attrs(attrs))
    t = f' title="{html.escape(title)}"' if title else ''
    if bang: return f'<img src="{html.escape(url)}" alt="{html.escape(text)}"{t}{a}>'
    return f'<a href="{html.escape(url)}"{t}{a}>{text}</a>'


def _outside_code(md: str, fn):
    "Apply `fn` to the markdown lines outside fenced code blocks (and outside inline code spans)"
    out, fence = [], None
    for line in md.split('\n'):
        m = _re_fence.match(line)
        if fence:
            out.append(line)
            if m and m.group(1) == fence: fence = None
            continue
        if m:
            fence = m.group(1); out.append(line); continue
        parts = re.split(r'(`+[^`]*`+)', line)
        out.append(''.join(p if i % 2 else fn(p) for i, p in enumerate(parts)))
    return '\n'.join(out)


def quarto_markdown_to_html_markdown(md: str) -> str:
    """Pandoc/Quarto markdown that nbconvert's CommonMark renderer does not know, made plain: link and image
    attributes (`[source](url){target="_blank"}`, which nbdev's `show_doc` emits) become HTML, `:::` divs and
    callouts become `<div>`s, and an escaped dollar `\\$` stays a literal dollar for MathJax"""
    md = _outside_code(md, lambda s: _re_link_attrs.sub(_link_attrs_html, s).replace('\\$', '\\\\\\$'))
    out, fence = [], None
    for line in md.split('\n'):
        m = _re_fence.match(line)
        if fence or m:
            if fence and m and m.group(1) == fence: fence = None
            elif not fence and m: fence = m.group(1)
            out.append(line); continue
        mo, mc = _re_div_open.match(line), _re_div_close.match(line)
        if mo:
            classes, ident, kv = _attrs(mo.group(1) or '.' + mo.group(2))
            callout = next((c.split('-', 1)[1] for c in classes if c.startswith('callout-')), None)
            if callout: classes = ['callout', *classes]
            out += ['', f'<div{_html_attrs(classes, ident, kv)}>', '']
            if callout: out += [f'<p class="callout-title">{kv.get("title", CALLOUTS.get(callout, callout.title()))}</p>', '']
        elif mc: out += ['', '</div>', '']
        else: out.append(line)
    return '\n'.join(out)


def readme_markdown(md: str) -> str:
    "For GitHub: drop pandoc link attributes (`[x](u){...}` -> `[x](u)`)"
    return _outside_code(md, lambda s: _re_link_attrs.sub(
        lambda m: f'{m.group(1)}[{m.group(2)}]({m.group(3)})', s))


def fix_markdown(nb, fn):
    "Apply `fn` to every markdown cell and every text/markdown output"
    for c in nb.cells:
        if c.cell_type == 'markdown': c.source = fn(c.source)
        for o in c.get('outputs', []):
            if 'text/markdown' in o.get('data', {}):
                v = o.data['text/markdown']
                o.data['text/markdown'] = fn(''.join(v) if isinstance(v, list) else v)
    return nb


# ----------------------------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------------------------

PAGE_TEMPLATE = r"""
{%- extends 'display_priority.j2' -%}
{% from 'mathjax.html.j2' import mathjax %}

{%- block header -%}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="ddpm_lit tools/build_docs.py: nbdev processors + nbconvert">
<title>{{ resources.page.title | e }} – {{ resources.site.title | e }}</title>
{%- if resources.page.description %}
<meta name="description" content="{{ resources.page.description | e }}">
{%- endif %}
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{{ resources.root }}site.css">
<link rel="stylesheet" href="{{ resources.root }}styles.css">
{%- if resources.site_mathjax_fonts %}
<script type="text/x-mathjax-config">MathJax.Hub.Config({{ resources.site_mathjax_fonts }});</script>
{%- endif %}
{{ mathjax(resources.site_mathjax_url) }}
</head>
{%- endblock header -%}

{%- block body_header -%}
<body>
<header id="quarto-header" class="navbar">
  <a class="navbar-brand" href="{{ resources.root }}index.html">{{ resources.site.title | e }}</a>
  {%- if resources.site.repo_url %}
  <a class="navbar-repo external" href="{{ resources.site.repo_url | e }}">GitHub</a>
  {%- endif %}
</header>
<div class="page-layout">
<nav id="site-nav" class="sidebar" aria-label="Chapters">
<ul>
{%- for item in resources.nav %}
  {%- if item.section %}<li class="sidebar-section">{{ item.section | e }}</li>{% endif %}
  <li class="sidebar-item"><a href="{{ item.href | e }}"{% if item.active %} class="active" aria-current="page"{% endif %}>{{ item.title | e }}</a></li>
{%- endfor %}
</ul>
</nav>
<main id="quarto-document-content" class="content">
<header id="title-block-header">
<h1 class="title">{{ resources.page.title_html }}</h1>
{%- if resources.page.description_html %}
<div class="description">{{ resources.page.description_html }}</div>
{%- endif %}
</header>
{%- endblock body_header -%}

{%- block body_footer -%}
</main>
<nav id="TOC" class="toc" aria-label="On this page"></nav>
</div>
<footer class="page-footer">Built from the notebooks in <code>nbs/</code> by <code>tools/build_docs.py</code>
(nbdev processors + nbconvert); the published site is built by <code>nbdev-docs</code>.</footer>
</body>
{%- endblock body_footer -%}

{%- block footer -%}
</html>
{%- endblock footer -%}

{% block codecell %}
{%- set q = cell.metadata.get('quarto', {}) -%}
<div class="cell{% if cell.metadata.get('show_doc') %} show-doc{% endif %}">
{{ super() }}
{%- if q.get('fig-cap') %}
<p class="figure-caption">{{ q['fig-cap'] | e }}</p>
{%- endif %}
</div>
{%- endblock codecell %}

{% block input %}
{%- set q = cell.metadata.get('quarto', {}) -%}
{%- if q.get('code-fold') %}<details class="code-fold"{% if q['code-fold'] == 'show' %} open{% endif %}><summary>{{ q.get('code-summary', 'Code') | e }}</summary>{% endif -%}
<div class="sourceCode cell-code">{{ cell.source | highlight_code(metadata=cell.metadata) }}</div>
{%- if q.get('code-fold') %}</details>{% endif -%}
{%- endblock input %}

{% block execute_result -%}
{%- block data_priority scoped -%}{{ super() }}{%- endblock data_priority -%}
{%- endblock execute_result %}

{% block stream_stdout -%}
<div class="cell-output cell-output-stdout"><pre><code>{{- output.text | ansi2html -}}</code></pre></div>
{%- endblock stream_stdout %}

{% block stream_stderr -%}
<div class="cell-output cell-output-stderr"><pre><code>{{- output.text | ansi2html -}}</code></pre></div>
{%- endblock stream_stderr %}

{% block error -%}
<div class="cell-output cell-output-error"><pre><code>{{- super() -}}</code></pre></div>
{%- endblock error %}

{%- block traceback_line %}
{{ line | ansi2html }}
{%- endblock traceback_line %}

{%- block data_text scoped -%}
<div class="cell-output cell-output-display"><pre><code>{{- output.data['text/plain'] | ansi2html -}}</code></pre></div>
{%- endblock data_text -%}

{% block data_png scoped -%}
<div class="cell-output cell-output-display"><figure class="figure"><img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}" alt="{{ cell.metadata.get('quarto', {}).get('fig-alt', 'figure') | e }}"
{%- set width=output | get_metadata('width', 'image/png') -%}{%- if width is not none %} width="{{ width | escape_html }}"{% endif -%}
{%- set height=output | get_metadata('height', 'image/png') -%}{%- if height is not none %} height="{{ height | escape_html }}"{% endif -%}
></figure></div>
{%- endblock data_png %}

{% block data_jpg scoped -%}
<div class="cell-output cell-output-display"><figure class="figure"><img src="data:image/jpeg;base64,{{ output.data['image/jpeg'] | escape_html }}" alt="figure"></figure></div>
{%- endblock data_jpg %}

{% block data_svg scoped -%}
<div class="cell-output cell-output-display"><figure class="figure"><img src="data:image/svg+xml;base64,{{ output.data['image/svg+xml'] | text_base64 | escape_html }}" alt="figure"></figure></div>
{%- endblock data_svg %}

{% block data_html scoped -%}
<div class="cell-output cell-output-display">{{ output.data['text/html'] }}</div>
{%- endblock data_html %}

{% block data_markdown scoped -%}
{%- if cell.metadata.get('quarto', {}).get('output') == 'asis' or cell.metadata.get('show_doc') -%}
{{ output.data['text/markdown'] | markdown2html }}
{%- else -%}
<div class="cell-output cell-output-display">{{ output.data['text/markdown'] | markdown2html }}</div>
{%- endif -%}
{%- endblock data_markdown %}

{% block data_latex scoped -%}
<div class="cell-output cell-output-display">{{ output.data['text/latex'] | e }}</div>
{%- endblock data_latex %}

{%- block data_javascript scoped %}{% endblock -%}
{%- block data_widget_view scoped %}{% endblock -%}

{% block markdowncell scoped -%}
{{ cell.source | markdown2html | strip_files_prefix }}
{%- endblock markdowncell %}

{% block unknowncell scoped %}{% endblock unknowncell %}
"""

README_TEMPLATE = r"""
{%- extends 'markdown/index.md.j2' -%}
{% block input %}
``` python
{{ cell.source }}
```
{% endblock input %}
{% block data_png %}
{%- if "filenames" in output.metadata %}
![]({{ output.metadata.filenames['image/png'] | path2url }})
{%- endif %}
{% endblock data_png %}
{% block data_jpg %}
{%- if "filenames" in output.metadata %}
![]({{ output.metadata.filenames['image/jpeg'] | path2url }})
{%- endif %}
{% endblock data_jpg %}
{% block data_svg %}{% endblock data_svg %}
{% block data_html scoped %}{% endblock data_html %}
{%- block data_javascript scoped %}{% endblock -%}
"""

SITE_CSS = r"""
:root { --primary: #2780e3; --border: #dee2e6; --muted: #6c757d; --code-bg: #f8f9fa; --nav-h: 3.2rem; }
* { box-sizing: border-box; }
html { font-size: 16px; scroll-padding-top: calc(var(--nav-h) + 0.5rem); }
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #343a40; line-height: 1.55; background: #fff; }
a { color: var(--primary); text-decoration: none; } a:hover { text-decoration: underline; }
code, pre { font-family: SFMono-Regular, Menlo, Monaco, Consolas, "Liberation Mono", "Courier New", monospace; font-size: 0.875em; }
p code, li code, td code, h1 code, h2 code, h3 code { color: #7d12ba; background: none; }
#quarto-header { position: sticky; top: 0; z-index: 10; height: var(--nav-h); display: flex; align-items: center;
                 justify-content: space-between; padding: 0 1.5rem; background: var(--primary); }
#quarto-header a { color: #fff; } .navbar-brand { font-size: 1.25rem; font-weight: 600; }
.page-layout { display: grid; grid-template-columns: 16rem minmax(0, 52rem) 14rem; gap: 2rem; justify-content: center;
               padding: 0 1rem; }
.sidebar, .toc { position: sticky; top: var(--nav-h); align-self: start; max-height: calc(100vh - var(--nav-h));
                 overflow-y: auto; padding: 1.5rem 0; font-size: 0.92rem; }
.sidebar ul, .toc ul { list-style: none; margin: 0; padding: 0; }
.sidebar li.sidebar-item { margin-top: 3px; }
.sidebar li.sidebar-section { margin-top: 0.8rem; font-weight: 600; color: var(--muted); text-transform: capitalize; }
.sidebar a { display: block; color: #000; padding: 4px 8px; border-radius: 6px; }
.sidebar a.active { background-color: #e8e8fc; font-weight: 600; }
.toc h2 { font-size: 0.92rem; margin: 0 0 0.5rem; font-weight: 600; }
.toc ul { border-left: 1px solid var(--border); }
.toc li a { display: block; padding: 2px 0 2px 0.8rem; color: var(--muted); }
.toc li li a { padding-left: 1.6rem; }
.content { padding: 1.5rem 0 4rem; min-width: 0; }
#title-block-header { margin-bottom: 2rem; }
h1.title { font-size: 2.2rem; margin: 0.5rem 0 0.3rem; }
h2 { font-size: 1.6rem; margin-top: 2.2rem; padding-bottom: 0.3rem; border-bottom: 1px solid var(--border); }
h3 { font-size: 1.3rem; margin-top: 1.8rem; } h4 { font-size: 1.1rem; }
h2 a.anchor-link, h3 a.anchor-link, h4 a.anchor-link { visibility: hidden; margin-left: 0.4rem; color: var(--muted); font-size: 0.8em; }
h2:hover a.anchor-link, h3:hover a.anchor-link, h4:hover a.anchor-link { visibility: visible; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.95rem; }
th, td { border-bottom: 1px solid var(--border); padding: 0.3rem 0.7rem; text-align: left; vertical-align: top; }
thead th { border-bottom: 2px solid #adb5bd; }
hr { border: 0; border-top: 1px solid var(--border); margin: 2rem 0 1rem; }
.cell-code .highlight pre, .content > .highlight pre, .show-doc .highlight pre, .content pre {
       background: var(--code-bg); border: 1px solid var(--border); border-radius: 4px; padding: 0.6rem 0.8rem;
       overflow-x: auto; margin: 0; }
.cell-output pre { border: 0; background: none; padding: 0.4rem 0.8rem; overflow-x: auto; }
.cell-output pre code { font-size: 1em; }
.cell-output-stderr pre { background: #fff5f5; }
.cell-output-display img, .content img { max-width: 100%; height: auto; }
.cell-output-display figure { margin: 0.5rem 0; }
.figure-caption { color: var(--muted); font-size: 0.9rem; text-align: center; }
details.code-fold > summary { cursor: pointer; color: var(--muted); font-size: 0.9rem; margin-bottom: 0.3rem; }
.show-doc h3 { margin-top: 0.6rem; }
.show-doc p:first-child a[target="_blank"] { float: right; font-size: smaller; }
.callout { border-left: 5px solid var(--primary); background: #f3f8fe; padding: 0.2rem 1rem; margin: 1rem 0; border-radius: 4px; }
.callout-warning, .callout-caution { border-left-color: #ff7518; background: #fff7f0; }
.callout-important { border-left-color: #ff0039; background: #fff3f5; }
.callout-tip { border-left-color: #3fb618; background: #f5fcf3; }
.callout-title { font-weight: 600; margin: 0.5rem 0 0; }
.page-footer { border-top: 1px solid var(--border); color: var(--muted); font-size: 0.85rem; padding: 1rem 2rem; text-align: center; }
.chapter-list li { margin: 0.3rem 0; } .chapter-list .chapter-desc { color: var(--muted); }
@media (max-width: 1200px) { .page-layout { grid-template-columns: 14rem minmax(0, 1fr); } .toc { display: none; } }
@media (max-width: 800px) { .page-layout { display: block; } .sidebar { position: static; max-height: none; } }
"""

DEFAULT_STYLES_CSS = "/* nbs/styles.css was not found: nothing extra */\n"


def _pygments_css():
    from pygments.formatters import HtmlFormatter
    return HtmlFormatter(style='default').get_style_defs('.highlight')


def pandoc_id(text: str) -> str:
    "Pandoc's `auto_identifiers` (Quarto's heading ids): the ids nbdev's doc links point to (`#noiseschedule`)"
    s = re.sub(r'[^\w\s.-]', '', text.strip().lower())
    s = re.sub(r'\s+', '-', s)
    s = re.sub(r'^[^a-z\u00c0-\uffff]+', '', s)
    return s or 'section'


def _inline_md(exporter, text: str) -> str:
    "Markdown of a title or description, rendered inline (math kept for MathJax)"
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
    r = MarkdownWithMath(renderer=IPythonRenderer(escape=False, exclude_anchor_links=True)).render(text or '')
    r = r.strip()
    return re.sub(r'^<p>(.*)</p>$', r'\1', r, flags=re.S)


class SiteBuilder:
    "Renders processed notebooks into pages of one static site"

    def __init__(self, out: Path, pages: list[Page], mathjax: Path | None, cfg, nbs: Path | None = None):
        from jinja2 import DictLoader
        from nbconvert import HTMLExporter
        self.out, self.pages, self.mathjax, self.cfg = out, pages, mathjax, cfg
        self.nbs = Path(nbs or cfg.nbs_path).resolve()
        self.exporter = HTMLExporter(extra_loaders=[DictLoader({'ddpm_lit_page.html.j2': PAGE_TEMPLATE})],
                                     template_file='ddpm_lit_page.html.j2', exclude_input_prompt=True,
                                     exclude_output_prompt=True)
        self.doc_url = f"{cfg.get('doc_host', '').rstrip('/')}{cfg.get('doc_baseurl', '')}".rstrip('/') + '/'
        self.resources_to_copy: set[tuple[Path, str]] = set()
        self.warnings: list[str] = []

    def _root(self, href: str) -> str:
        depth = href.count('/')
        return '../' * depth

    def _rel(self, frm: str, to: str) -> str:
        return posixpath.relpath(to, posixpath.dirname(frm) or '.')

    def _nav(self, href: str):
        items, last = [], None
        for p in self.pages:
            sec = p.section if p.section != last else ''
            last = p.section
            items.append({'href': self._rel(href, p.href), 'title': p.title, 'active': p.href == href, 'section': sec})
        return items

    def _resources(self, page: Page):
        root = self._root(page.href)
        mj = f'{root}mathjax/MathJax.js?config={mathjax_config(self.mathjax)}'
        return {'page': {'title': page.title, 'description': page.description,
                         'title_html': _inline_md(self.exporter, page.title),
                         'description_html': _inline_md(self.exporter, page.description)},
                'site': {'title': self.cfg.get('title') or self.cfg.lib_name,
                         'repo_url': self.cfg.get('git_url', '')},
                'root': root, 'nav': self._nav(page.href), 'site_mathjax_url': mj,
                'site_mathjax_fonts': mathjax_fonts(self.mathjax),
                'metadata': {'name': page.stem, 'path': str(page.src.parent)}}

    def _fix_link(self, page: Page, url: str, is_src: bool) -> str:
        "Hosted doc URLs -> relative; links to notebooks -> their page; local files -> copied into the site"
        from nbdev.config import nbpath2html
        if not url or url.startswith(('#', 'data:', 'mailto:', 'javascript:')): return url
        if self.doc_url != '/' and url.startswith(self.doc_url):
            target = url[len(self.doc_url):]
            path, _, frag = target.partition('#')
            path = path or 'index.html'
            if path.endswith('.html.md'): path = path[:-3]
            return self._rel(page.href, path) + (f'#{frag}' if frag else '')
        if re.match(r'^[a-z][a-z0-9+.-]*:', url, re.I) or url.startswith('//'): return url
        path, _, frag = url.partition('#')
        path, _, query = path.partition('?')
        if not path: return url
        src_dir = page.src.parent
        if path.endswith('.ipynb'): path = nbpath2html(Path(path)).as_posix()
        elif path.endswith(('.qmd', '.md')) and not is_src: path = str(Path(path).with_suffix('.html').as_posix())
        else:
            f = (src_dir / path).resolve()
            if f.is_file() and self.nbs in f.parents:
                self.resources_to_copy.add((f, f.relative_to(self.nbs).as_posix()))
        return path + (f'?{query}' if query else '') + (f'#{frag}' if frag else '')

    def _postprocess(self, page: Page, doc: str) -> str:
        from bs4 import BeautifulSoup
        soup = BeautifulSoup(doc, 'html.parser')
        main = soup.find('main')
        seen, toc = {}, []
        for h in main.find_all(['h1', 'h2', 'h3', 'h4', 'h5', 'h6']):
            if 'title' in (h.get('class') or []): continue
            for a in h.select('a.anchor-link'): a.decompose()
            text = re.sub(r'\s+', ' ', h.get_text()).strip()
            base = pandoc_id(text)
            hid = base if base not in seen else f'{base}-{seen[base]}'
            seen[base] = seen.get(base, 0) + 1
            h['id'] = hid
            anchor = soup.new_tag('a', attrs={'class': 'anchor-link', 'href': f'#{hid}', 'aria-hidden': 'true'})
            anchor.string = '#'
            h.append(anchor)
            if h.name in ('h2', 'h3'): toc.append((int(h.name[1]), hid, text))
        nav = soup.find('nav', id='TOC')
        if toc:
            t = soup.new_tag('h2'); t.string = 'On this page'; nav.append(t)
            ul = soup.new_tag('ul'); nav.append(ul)
            cur = None
            for lvl, hid, text in toc:
                li = soup.new_tag('li'); a = soup.new_tag('a', href=f'#{hid}'); a.string = text; li.append(a)
                if lvl == 2 or cur is None:
                    ul.append(li); cur = li
                else:
                    sub = cur.find('ul', recursive=False)
                    if sub is None: sub = soup.new_tag('ul'); cur.append(sub)
                    sub.append(li)
        else: nav.decompose()
        for tag, attr in (('a', 'href'), ('img', 'src'), ('source', 'src')):
            for el in main.find_all(tag):
                if el.get(attr): el[attr] = self._fix_link(page, el[attr], attr == 'src')
        return '<!DOCTYPE html>\n' + str(soup).replace('<!DOCTYPE html>', '', 1).lstrip()

    def render(self, page: Page, nb) -> str:
        nb = apply_cell_options(fix_markdown(nb, quarto_markdown_to_html_markdown))
        body, _ = self.exporter.from_notebook_node(nb, resources=self._resources(page))
        return self._postprocess(page, body)

    def landing_page(self) -> str:
        "index.html when there is no index.ipynb: the site title, its description and the chapters"
        import nbformat
        lines = [f'{self.cfg.get("description", "")}', '', '## Chapters', '']
        lines += [f'- [{p.title}]({p.href})' + (f': {p.description}' if p.description else '') for p in self.pages]
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('\n'.join(lines))])
        page = Page(src=self.nbs / 'index.ipynb', href='index.html',
                    title=self.cfg.get('title') or self.cfg.lib_name, stem='index')
        return self.render(page, nb)


def _copy_mathjax(src: Path, dest: Path):
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(*MATHJAX_SKIP), dirs_exist_ok=True)


def build_site(out: str | Path | None = None, nbs_path: str | Path | None = None, quiet: bool = False,
               require_mathjax: bool = True) -> dict:
    """Build the static site into `out` (default: nbdev's `doc_path`, `docs/`); returns a report dict: out, pages, seconds, warnings.
    Raises `DocsError` when there is nothing to build or no local MathJax (with `require_mathjax`)."""
    t0 = time.time()
    cfg = _cfg()
    out = Path(out or cfg.doc_path).resolve()
    pages = discover_pages(nbs_path)
    if not pages: raise DocsError(f"no notebooks in {nbs_path or cfg.nbs_path}")
    mathjax = find_mathjax()
    if mathjax is None and require_mathjax:
        raise DocsError("no local MathJax 2 found: install Debian's libjs-mathjax (/usr/share/javascript/mathjax), "
                        "or pip install jupyter-server-mathjax, or set DDPM_LIT_MATHJAX to a folder with MathJax.js")
    nbs = Path(nbs_path or cfg.nbs_path).resolve()
    if out == cfg.config_path.resolve() or out in cfg.config_path.resolve().parents or out == nbs or out in nbs.parents:
        raise DocsError(f"refusing to build into {out}: it holds the project or its notebooks")
    if out.exists() and any(out.iterdir()) and not (out / '.nojekyll').exists():
        raise DocsError(f"refusing to empty {out}: it is not empty and not a previous build (no .nojekyll)")
    if out.exists():
        for p in out.iterdir():
            if p.name == 'mathjax' and mathjax: continue
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)

    sb = SiteBuilder(out, pages, mathjax, cfg, nbs_path)
    _, sd = _filter()
    sd.failures.clear(); sd.notes.clear()
    for page in pages:
        t = time.time()
        nb, fm = process_notebook(page.src)
        page.title = str(fm.get('title') or page.title)
        page.description = str(fm.get('description') or page.description)
        dest = out / page.href
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(sb.render(page, nb), encoding='utf-8')
        if not quiet: print(f"  {page.src.relative_to(sb.nbs)} -> {page.href}  ({time.time() - t:.1f}s)")
    if not any(p.href == 'index.html' for p in pages):
        (out / 'index.html').write_text(sb.landing_page(), encoding='utf-8')
        if not quiet: print("  (no index.ipynb) -> index.html listing the chapters")

    for f, rel in sorted(sb.resources_to_copy):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, out / rel)
    (out / 'site.css').write_text(SITE_CSS + '\n/* pygments */\n' + _pygments_css(), encoding='utf-8')
    styles = sb.nbs / 'styles.css'
    (out / 'styles.css').write_text(styles.read_text(encoding='utf-8') if styles.exists() else DEFAULT_STYLES_CSS,
                                    encoding='utf-8')
    (out / '.nojekyll').write_text('')
    if mathjax: _copy_mathjax(mathjax, out / 'mathjax')
    secs = time.time() - t0
    warns = list(sd.failures)
    if not quiet:
        print(f"built {len(pages)} page(s) into {out} in {secs:.1f}s"
              + (f" (MathJax from {mathjax})" if mathjax else " (no local MathJax: math will not render)"))
        for n in dict.fromkeys(sd.notes): print(f"note: {n}", file=sys.stderr)
        for w in warns: print(f"warning: {w}", file=sys.stderr)
    return {'out': out, 'pages': pages, 'seconds': secs, 'warnings': warns, 'mathjax': mathjax}


# ----------------------------------------------------------------------------------------------------------------
# README
# ----------------------------------------------------------------------------------------------------------------

def build_readme(out: str | Path | None = None, quiet: bool = False, src: str | Path | None = None) -> Path:
    "README.md from the readme notebook (`readme_nb`, index.ipynb), as `nbdev-readme` would make it, offline"
    from jinja2 import DictLoader
    from nbconvert import MarkdownExporter
    from nbdev.readme_filter import doc_link
    cfg = _cfg()
    src = Path(src or cfg.nbs_path / cfg.readme_nb).resolve()
    if not src.exists(): raise DocsError(f"{src} does not exist: nothing to make README.md from")
    out = Path(out or cfg.config_path / 'README.md').resolve()
    nb, fm = process_notebook(src)
    nb = apply_cell_options(fix_markdown(nb, readme_markdown))
    files_dir = f'{src.stem}_files'
    from traitlets.config import Config
    c = Config()   # MarkdownExporter extracts figures to files; name them the way Quarto's gfm output does
    c.ExtractOutputPreprocessor.output_filename_template = 'figure-gfm/cell-{cell_index}-output-{index}{extension}'
    c.ExtractOutputPreprocessor.extract_output_types = {'image/png', 'image/jpeg'}
    exp = MarkdownExporter(config=c, extra_loaders=[DictLoader({'ddpm_lit_readme.md.j2': README_TEMPLATE})],
                           template_file='ddpm_lit_readme.md.j2', exclude_input_prompt=True,
                           exclude_output_prompt=True)
    body, res = exp.from_notebook_node(nb, resources={'output_files_dir': files_dir})
    base = cfg.get('doc_url') or (f"{cfg.get('doc_host', '')}{cfg.get('doc_baseurl', '')}" if cfg.get('doc_host') else '')
    if base:
        nbdir = Path(cfg.readme_nb).parent.as_posix()
        body = _outside_code(body, lambda s: re.sub(r'(?<!!)\[([^\]]*)\]\(([^)\s]+)\)',
                             lambda m: f'[{m.group(1)}]({doc_link(m.group(2), base, nbdir)})', s))
    head = f"# {fm.get('title', cfg.get('title') or cfg.lib_name)}\n\n"
    if fm.get('description'): head += f"> {fm['description']}\n\n"
    text = head + re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'
    out.write_text(text, encoding='utf-8')
    outputs = res.get('outputs', {})
    if outputs:
        d = out.parent / files_dir
        if d.exists(): shutil.rmtree(d)
        for name, data in outputs.items():
            (out.parent / name).parent.mkdir(parents=True, exist_ok=True)
            (out.parent / name).write_bytes(data)
    if not quiet: print(f"wrote {out} from {os.path.relpath(src, cfg.config_path)}"
                        + (f" and {len(outputs)} image(s) in {files_dir}/" if outputs else ''))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('site', help='build the static documentation site (default into docs/)')
    s.add_argument('--out', help="output folder (default: nbdev's doc_path, docs/ at the repository root)")
    s.add_argument('--quiet', action='store_true')
    r = sub.add_parser('readme', help='write README.md from nbs/index.ipynb')
    r.add_argument('--out', help='output file (default: README.md at the repository root)')
    r.add_argument('--quiet', action='store_true')
    a = ap.parse_args(argv)
    try:
        if a.cmd == 'site': build_site(a.out, quiet=a.quiet)
        else: build_readme(a.out, quiet=a.quiet)
    except DocsError as e:
        print(f"build_docs: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

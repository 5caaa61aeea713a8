"""The chapters read in import order: a module imports only modules of earlier chapters, and a chapter's code cells
import only what earlier chapters (or itself) export, so a reader who goes chapter by chapter never meets a name
before the chapter that makes it (the front page, index.ipynb, is the exception: it shows the finished package)."""
import ast, json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG, NBS = ROOT / 'ddpm_lit', ROOT / 'nbs'


def chapter_of_module()->dict:
    "module name -> the notebook it is exported from (its 'File to edit' line)"
    out = {}
    for p in PKG.glob('*.py'):
        m = re.search(r'File to edit: \.\./nbs/(\S+)\.ipynb', p.read_text())
        if m: out[p.stem] = m.group(1)
    return out


def imported(tree)->set:
    "ddpm_lit modules named by the import statements of a parsed file (relative or absolute)"
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level == 1: out.add(node.module.split('.')[0])
            elif node.module.startswith('ddpm_lit.'): out.add(node.module.split('.')[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split('.')[1] for a in node.names if a.name.startswith('ddpm_lit.')}
    return out


def notebook_code(nb:Path)->str:
    "A notebook's code cells as one Python text (cell magics and shell lines dropped)"
    cells = json.loads(nb.read_text())['cells']
    lines = [l for c in cells if c['cell_type'] == 'code' for l in ''.join(c['source']).splitlines()
             if not l.lstrip().startswith(('%', '!'))]
    return '\n'.join(lines)


def test_modules_import_earlier_chapters():
    ch = chapter_of_module()
    assert {'distributed', 'sample', 'train', 'cli', 'scale'} <= set(ch), sorted(ch)
    late = [f"{m} ({ch[m]}) imports {t} ({ch[t]})" for m in ch for t in imported(ast.parse((PKG / f'{m}.py').read_text()))
            if t in ch and t != m and ch[t] > ch[m]]
    assert not late, late


def test_chapters_import_earlier_chapters():
    ch = chapter_of_module()
    late = []
    for nb in sorted(NBS.glob('[0-9]*.ipynb')):
        for t in imported(ast.parse(notebook_code(nb))):
            if t in ch and ch[t] > nb.stem: late.append(f"{nb.stem} imports {t} ({ch[t]})")
    assert not late, late


def test_the_check_sees_a_late_import():
    "The check above can fail: a chapter-06 module importing the trainer (chapter 07b) is reported"
    ch = chapter_of_module()
    tree = ast.parse('from .train import Trainer\nfrom ddpm_lit.schedule import NoiseSchedule')
    assert imported(tree) == {'train', 'schedule'}
    assert [t for t in imported(tree) if ch[t] > ch['sample']] == ['train']

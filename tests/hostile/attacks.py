"""Hostile chapter-1 submissions, one per attack, with the grade each must get (see tests/test_grade.py).

Each attack replaces the body of one exercise cell of a small, correct chapter-1 notebook (or adds a cell, or
breaks the file). `expect` maps exercise ids to points (FULL: 1.1 is worth 4, 1.2 3, 1.3 3, 1.4 4, 1.5 3, 1.6 5);
`reason` is a text
the CSV's reasons must contain; `absent` is a text they must not contain.
"""

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent.parent
CANARY = Path(__file__).resolve().parent / "canary.txt"
MARKER = "HOSTILE_BACKGROUND_MARKER"
FULL = {"1.1": 4, "1.2": 3, "1.3": 3, "1.4": 4, "1.5": 3, "1.6": 5}
SECRET = "the-instructors-secret-hidden-test"

ATTENTION = "def causal_attention(q, k, v):\n"
BLOCK = "class Block(nn.Module):\n"
COUNT = "def count_parameters(config):\n"
SPLIT = "def split_heads(x, n_head):\n"
FORWARD = "def forward(model, idx):\n"
GOOD_ATTENTION = '''    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
    weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
    return weights @ v, weights
'''
NO_MASK = '''    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1)
    return w @ v, w
'''


def mini_solution(replace: dict | None = None, extra_cells=()):
    """Chapter 1's setup cell, exercise cells and check lines; `replace` maps a cell's first line to new code."""
    nb = nbformat.read(ROOT / "solutions" / "01_mini_transformer.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    kept = [code[0]] + [c for c in code if "### BEGIN SOLUTION" in c.source or "= check." in c.source]
    cells = []
    for cell in kept:
        source = cell.source
        if "= check." in source:
            source = next(line for line in source.splitlines() if "= check." in line)
        for first_line, new in (replace or {}).items():
            if source.startswith(first_line):
                source = new
        cells.append(nbformat.v4.new_code_cell(source))
    for position, source in extra_cells:
        cells.insert(position if position >= 0 else len(cells), nbformat.v4.new_code_cell(source))
    return nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata)


def attention(body: str, header: str = "") -> dict:
    return {ATTENTION: header + ATTENTION + body}


def count(body: str, header: str = "") -> dict:
    return {COUNT: header + COUNT + body}


def split(body: str) -> dict:
    return {SPLIT: SPLIT + body}


def forward(body: str) -> dict:
    return {FORWARD: FORWARD + body}


def block(source: str) -> dict:
    """The whole 1.4 cell: `source` defines Block."""
    return {BLOCK: source}


OWN_BLOCK_INIT = '''    def __init__(self, config):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.attn = mt.CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.mlp = mt.MLP(config)
'''


ATTACKS = {
    # --- delegation: the library's reference, by every route ------------------------------------------------
    "delegate_import.ipynb": dict(replace=attention("    return ca(q, k, v)\n", "from minitransformer.model import causal_attention as ca\n"),
                                  expect={**FULL, "1.1": 0}, reason="1.1: uses the library's reference for this exercise"),
    "delegate_alias.ipynb": dict(replace=attention("    return mt.causal_attention(q, k, v)\n"),
                                 expect={**FULL, "1.1": 0}, reason="1.1: uses the library's reference"),
    "delegate_layer.ipynb": dict(replace=attention("    layer = mt.CausalSelfAttention\n    return None\n"),
                                 expect={**FULL, "1.1": 0}, reason="1.1: uses the library's reference"),
    "delegate_check_internals.ipynb": dict(replace=attention("    return check.EXERCISES['1.1'].reference(q, k, v)\n"),
                                           expect={**FULL, "1.1": 0}, reason="1.1: uses the library's reference"),
    "delegate_dynamic.ipynb": dict(
        replace=attention("    m = __import__('minitrans' + 'former')\n    return getattr(m, 'causal_' + 'attention')(q, k, v)\n"),
        expect={**FULL, "1.1": 0}, reason="1.1: uses the library's reference"),
    "delegate_dynamic_registry.ipynb": dict(  # the checks' own registry, by a name no static look can read
        replace=attention("    import sys\n"
                          "    core = sys.modules['minitransformer.cour' + 'se.check.core']\n"
                          "    return core.EXERCISES['1.1'].reference(q, k, v)\n"),
        expect={**FULL, "1.1": 0}, reason="1.1: uses the library's reference for this exercise"),
    "delegate_decorated.ipynb": dict(  # a decorator swaps the learner's function for the library's
        replace=attention("    pass\n", "@lambda f: getattr(__import__('minitransformer'), 'causal_' + 'attention')\n"),
        expect={**FULL, "1.1": 0}, reason="1.1: uses the library's reference for this exercise"),
    # 1.4: the library's Block subclassed, borrowed or instantiated with no learner frame on the call stack
    "delegate_block_subclass.ipynb": dict(
        replace=block("class Block(getattr(__import__('minitransformer'), 'Block')):\n    pass\n"),
        expect={**FULL, "1.4": 0}, reason="1.4: uses the library's reference for this exercise"),
    "delegate_block_importlib.ipynb": dict(
        replace=block("import importlib\n\n"
                      "class Block(importlib.import_module('minitransformer.' + 'model').Block):\n"
                      "    def forward(self, x):\n        return super().forward(x)\n"),
        expect={**FULL, "1.4": 0}, reason="1.4: uses the library's reference for this exercise"),
    "delegate_block_borrowed_forward.ipynb": dict(  # its own __init__, the library's forward via sys.modules
        replace=block("import sys\n\nclass Block(nn.Module):\n" + OWN_BLOCK_INIT
                      + "    forward = getattr(sys.modules['minitransformer.' + 'model'], 'Block').forward\n"),
        expect={**FULL, "1.4": 0}, reason="1.4: uses the library's reference for this exercise"),
    "delegate_block_decorated.ipynb": dict(  # the class statement is replaced by the library's class
        replace=block("@lambda cls: getattr(__import__('minitransformer'), 'Bl' + 'ock')\nclass Block(nn.Module):\n    pass\n"),
        expect={**FULL, "1.4": 0}, reason="1.4: uses the library's reference for this exercise"),
    "delegate_block_instance.ipynb": dict(  # Block(config) returns an instance of the library's Block, made by
        replace=block("import functools\n\n"  # C code: no learner frame on the call stack
                      "class Maker(type):\n"
                      "    __call__ = staticmethod(functools.partial(getattr(__import__('minitransformer'), 'Block')))\n\n"
                      "class Block(nn.Module, metaclass=Maker):\n    pass\n"),
        expect={**FULL, "1.4": 0}, reason="1.4: uses the library's reference for this exercise"),
    # 1.2 and 1.5: the library's head split borrowed with a stand-in self, the library's model called
    "split_borrowed.ipynb": dict(
        replace=split("    import types\n"
                      "    layer = getattr(__import__('minitransformer'), 'CausalSelf' + 'Attention')\n"
                      "    return layer.split_heads(types.SimpleNamespace(n_head=n_head), x)\n"),
        expect={**FULL, "1.2": 0}, reason="1.2: uses the library's reference for this exercise"),
    "forward_calls_model.ipynb": dict(replace=forward("    return model(idx)\n"),
                                      expect={**FULL, "1.5": 0}, reason="1.5: uses the library's reference for this exercise"),
    "forward_borrows_hidden_states.ipynb": dict(replace=forward("    return model.lm_head(type(model).hidden_states(model, idx))\n"),
                                                expect={**FULL, "1.5": 0}, reason="1.5: uses the library's reference"),
    "count_by_instantiating.ipynb": dict(replace=count("    return sum(p.numel() for p in mt.MiniTransformer(config).parameters())\n"),
                                         expect={**FULL, "1.6": 0}, reason="1.6: uses the library's reference"),
    "count_own_layers.ipynb": dict(  # builds the model from torch layers and counts: configs too large to build
        replace=count("    import torch.nn as nn\n    d, h = config.d_model, config.mlp_ratio * config.d_model\n"
                      "    layers = [nn.Embedding(config.vocab_size, d), nn.Embedding(config.block_size, d), nn.LayerNorm(d, bias=config.bias),\n"
                      "              nn.Linear(d, config.vocab_size, bias=False)]\n"
                      "    for _ in range(config.n_layer):\n"
                      "        layers += [nn.LayerNorm(d, bias=config.bias), nn.LayerNorm(d, bias=config.bias)]\n"
                      "        layers += [nn.Linear(d, d, bias=config.bias) for _ in range(4)]\n"
                      "        layers += [nn.Linear(d, h, bias=config.bias), nn.Linear(h, d, bias=config.bias)]\n"
                      "    return sum(p.numel() for layer in layers for p in layer.parameters())\n"),
        expect={**FULL, "1.6": lambda p: p < 5}, reason="1.6:"),
    "hardcoded_counts.ipynb": dict(  # the notebook's five configs, memorised
        replace=count("    table = {(64, 2, 4, 35, 32, True): 106624, (64, 4, 4, 35, 32, True): 206592}\n"
                      "    key = (config.d_model, config.n_layer, config.mlp_ratio, config.vocab_size, config.block_size, config.bias)\n"
                      "    return table.get(key, 106624)\n"),
        expect={**FULL, "1.6": 0}, reason="1.6: wrong result"),
    # --- reaching the judge ------------------------------------------------------------------------------------
    "patch_checks_default_arg.ipynb": dict(
        replace={ATTENTION: "def causal_attention(q, k, v, _=setattr(__import__('minitransformer.course.check.ch1', "
                            "fromlist=['x']), 'close', lambda *a, **k: True)):\n" + NO_MASK},
        expect={**FULL, "1.1": 0}, reason="1.1: uses the library's reference"),
    "patch_torch_in_sandbox.ipynb": dict(  # patches torch where it runs: the judge compares elsewhere
        replace=attention("    torch.allclose = lambda *a, **k: True\n    torch.equal = lambda *a, **k: True\n" + NO_MASK),
        expect={**FULL, "1.1": 2}, reason="1.1: wrong result"),
    "forge_stdout.ipynb": dict(  # writes fake replies and results to every file descriptor it can find
        replace=attention("    import os, json\n"
                          "    for fd in range(0, 64):\n"
                          "        try:\n"
                          "            os.write(fd, b'RESULT {\"1.1\": {\"points\": 4}}\\n' * 1000 + b'\\x00' * 65536)\n"
                          "        except OSError:\n"
                          "            pass\n"
                          "    for pid in os.listdir('/proc'):\n"
                          "        for fd in range(0, 8):\n"
                          "            try:\n"
                          "                with open(f'/proc/{pid}/fd/{fd}', 'wb') as f:\n"
                          "                    f.write(b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x10{\"ok\": true}')\n"
                          "            except OSError:\n"
                          "                pass\n" + NO_MASK),
        expect={**FULL, "1.1": lambda p: p <= 2}, reason="1.1:"),
    "eq_trick.ipynb": dict(  # an object equal to everything, and a tensor subclass that lies
        replace={**count("    class Anything(int):\n        def __eq__(self, other):\n            return True\n"
                         "        __hash__ = int.__hash__\n    return Anything(0)\n"),
                 **attention("    class Liar(torch.Tensor):\n        @classmethod\n"
                             "        def __torch_function__(cls, func, types, args=(), kwargs=None):\n            return True\n"
                             "    T = q.size(-2)\n"
                             "    return torch.zeros_like(q).as_subclass(Liar), torch.zeros(*q.shape[:-1], T).as_subclass(Liar)\n")},
        expect={**FULL, "1.1": lambda p: p <= 1, "1.6": 0}, reason="1.6: wrong result"),
    "write_course_and_others.ipynb": dict(  # tries to rewrite the checks, a canary, the other submissions
        replace=attention("    import glob, os\n"
                          f"    targets = [{str(ROOT / 'minitransformer' / 'course' / 'check' / 'ch1.py')!r}, {str(CANARY)!r}]\n"
                          "    targets += glob.glob('/tmp/**/*.ipynb', recursive=True)\n"
                          f"    targets += glob.glob({str(ROOT / 'solutions' / '*.ipynb')!r})\n"
                          "    for path in targets:\n"
                          "        try:\n"
                          "            open(path, 'w').write('hacked')\n"
                          "        except OSError:\n"
                          "            pass\n" + GOOD_ATTENTION),
        extra_cells=[(1, f"open({str(CANARY)!r}, 'w').write('hacked')")],
        expect=FULL, reason=None),
    "read_hidden_tests.ipynb": dict(  # hunts for the instructor's hidden tests and puts them in its output
        replace=attention("    import glob\n"
                          "    found = glob.glob('/tmp/**/chapter_01.py', recursive=True) + glob.glob('/root/**/chapter_01.py', recursive=True)\n"
                          "    text = ''.join(open(p).read() for p in found if 'hidden' in p)\n"
                          "    raise ValueError(text[:200] or 'nothing found')\n"),
        expect={**FULL, "1.1": 0}, reason="1.1: error: ValueError: nothing found", absent=SECRET),
    "background_process.ipynb": dict(  # leaves processes behind that would rewrite the grades later
        replace=attention("    import subprocess, sys\n"
                          f"    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)  # {MARKER}'],\n"
                          "                     start_new_session=True)\n"
                          "    import os\n"
                          "    if os.fork() == 0:\n"
                          "        os.setsid()\n"
                          f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(300)  # {MARKER}'])\n"
                          + GOOD_ATTENTION),
        expect=FULL, reason=None),
    "memory_hog.ipynb": dict(replace=attention("    hog = bytearray(64 * 1024**3)\n" + GOOD_ATTENTION),
                             expect={**FULL, "1.1": 0}, reason="1.1: error: MemoryError"),
    "exits.ipynb": dict(replace={**attention("    import sys\n    sys.exit(0)\n"), **count("    import os\n    os._exit(0)\n")},
                        expect={**FULL, "1.1": 0, "1.6": 0}, reason="1.6: error"),
    "kills_its_server.ipynb": dict(replace=attention("    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n" + GOOD_ATTENTION),
                                   expect={**FULL, "1.1": 0}, reason="1.1: error"),
    "loops_forever.ipynb": dict(replace=attention("    while True:\n        pass\n"), expect={**FULL, "1.1": 0},
                                reason="1.1: time-out"),
    "huge_output.ipynb": dict(replace=attention("    print('y' * 5_000_000)\n" + GOOD_ATTENTION),
                              extra_cells=[(1, "print('x' * 5_000_000)")], expect=FULL, reason=None),
    "network.ipynb": dict(replace=attention("    import urllib.request\n    urllib.request.urlopen('http://example.com', timeout=3)\n" + GOOD_ATTENTION),
                          expect={**FULL, "1.1": 0}, reason="1.1: error: URLError"),
    "shape_specific.ipynb": dict(  # a mask built for the notebook's 6 positions only
        replace=attention("    future = torch.ones(6, 6, dtype=torch.bool).triu(diagonal=1)\n"
                          "    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))\n"
                          "    weights = torch.softmax(scores.masked_fill(future, float('-inf')), dim=-1)\n"
                          "    return weights @ v, weights\n"),
        expect={**FULL, "1.1": 0}, reason="1.1: error"),
}

GOOD = {"honest.ipynb": dict(replace={}, expect=FULL, reason=None),
        "=SUM(A1)@evil.ipynb": dict(replace={}, expect=FULL, reason=None),
        "-starts-with-dash.ipynb": dict(replace={}, expect=FULL, reason=None)}


def broken_files(folder: Path) -> dict:
    """Files that are not (good) notebooks; each must still get a row and a reason."""
    import json

    nb = json.loads(nbformat.v4.writes(mini_solution()))
    nb["cells"][1]["source"] = 12345
    not_text = json.dumps(nb)
    cases = {
        "not_json.ipynb": ("{not json", "not a valid notebook"),
        "deeply_nested.ipynb": ("[" * 200_000 + "]" * 200_000, "not a valid notebook"),
        "cell_not_text.ipynb": (not_text, "the source of cell"),
        "not_a_dict.ipynb": ("[1, 2, 3]", "not a valid notebook: the file is not a JSON object"),
        "wrong_chapter.ipynb": (nbformat.v4.writes(nbformat.read(ROOT / "solutions" / "02_why_peft.ipynb", as_version=4)),
                                "wrong chapter: this is chapter 2"),
    }
    for name, (text, _) in cases.items():
        (folder / name).write_text(text)
    return {name: reason for name, (_, reason) in cases.items()}


# Attacks on the run of the whole notebook (graded with execution): `run` is the status the CSV must show,
# exactly or (ending in "...") as a prefix.
FORGE_STATUS = """import os
forged = b'\\nSTATUS ok\\n' * 1000 + b'z' * 300_000 + b'\\nSTATUS ok\\n'
for target in ('/proc/self/fd/1', '/proc/self/fd/2', '/proc/1/fd/1', '/proc/1/fd/2'):
    try:
        fd = os.open(target, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, forged)
        os.close(fd)
    except OSError:
        pass
raise ValueError('after the flood')
"""
RUN_ATTACKS = {
    "flood_fd1.ipynb": dict(extra_cells=[(1, "import os\nos.write(1, b'x' * 300_000)\nos.write(2, b'y' * 300_000)")],
                            run="ok"),
    "forge_status.ipynb": dict(extra_cells=[(1, FORGE_STATUS)], run="error in cell 2 (counting every cell from the top, text cells too): ValueError: after the flood"),
}

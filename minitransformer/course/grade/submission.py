"""Reading notebooks without running them: the chapter's exercises, a submission's definitions, its chapter,
its participation. Whatever a file contains, these either return or raise `BadSubmission` with a reason."""

from __future__ import annotations

import ast
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ..paths import REPOSITORY as ROOT, SOLUTIONS
CHECK_CALL = re.compile(r"^\s*(\w+)\s*=\s*check\.(\w+)\(\s*(\w+)\s*\)", re.M)
MAX_BYTES = 50 * 1024 * 1024  # a notebook larger than this is not graded
MAX_CELLS = 20_000


class BadSubmission(Exception):
    """The file cannot be graded; the message is the reason in the CSV."""


@dataclass
class Exercise:
    id: str
    name: str  # the name the learner's cell defines
    max_points: int


def chapter_notebook(chapter: int) -> Path:
    matches = sorted(SOLUTIONS.glob(f"{chapter:02d}_*.ipynb"))
    if not matches:
        available = sorted(int(p.name[:2]) for p in SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
        raise ValueError(f"no chapter {chapter!r}; the chapters are {available}")
    return matches[0]


def load(path: Path) -> dict:
    """The notebook's JSON, or BadSubmission with the reason."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise BadSubmission(f"not a valid notebook: the file has {size:,} bytes (at most {MAX_BYTES:,})")
        text = path.read_bytes().decode("utf-8", errors="replace")
        old = sys.getrecursionlimit()
        nb = json.loads(text)
    except BadSubmission:
        raise
    except RecursionError:
        raise BadSubmission("not a valid notebook: its JSON is nested too deeply") from None
    except (OSError, ValueError, MemoryError) as error:
        raise BadSubmission(f"not a valid notebook: {type(error).__name__}: {str(error)[:150]}") from None
    if not isinstance(nb, dict):
        raise BadSubmission("not a valid notebook: the file is not a JSON object")
    return nb


def code_cells(nb: dict) -> list[str]:
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise BadSubmission("not a valid notebook: it has no list of cells")
    if len(cells) > MAX_CELLS:
        raise BadSubmission(f"not a valid notebook: {len(cells):,} cells (at most {MAX_CELLS:,})")
    sources = []
    for i, cell in enumerate(cells, 1):
        if not isinstance(cell, dict):
            raise BadSubmission(f"not a valid notebook: cell {i} is not a JSON object")
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise BadSubmission(f"not a valid notebook: the source of cell {i} is not text")
        sources.append(source)
    return sources


def strip_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def parse(source: str):
    """ast.parse, or None for code that does not parse (or is too deep or large to parse)."""
    try:
        return ast.parse(strip_magics(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _root_name(node) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def exercises_of(chapter: int) -> tuple[list[Exercise], list[str]]:
    """The chapter's exercises (from its check cells) and the trusted context statements to run first."""
    from .. import check

    nb = json.loads(chapter_notebook(chapter).read_text())
    exercises, context, imported = [], [], set()
    for source in code_cells(nb):
        for _, checker_name, defined in CHECK_CALL.findall(source):
            checker = getattr(check, checker_name, None)
            exercise_id = getattr(checker, "exercise_id", None)
            if exercise_id in check.EXERCISES:
                exercises.append(Exercise(exercise_id, defined, check.EXERCISES[exercise_id].max_points))
        tree = parse(source)
        for node in tree.body if tree else ():  # imports and plain aliases of imported names (tok = mt.tokenizer)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                context.append(ast.unparse(node))
                imported.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.Assign) and _root_name(node.value) in imported:
                context.append(ast.unparse(node))
    return exercises, context


def learner_definitions(cells: list[str], name: str) -> str | None:
    """The functions, classes and imports of the last cell that defines `name` at top level; nothing else."""
    for source in reversed(cells):
        tree = parse(source)
        if tree is None:
            continue
        defines = any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name for n in tree.body)
        if defines:
            kept = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom))]
            try:
                return ast.unparse(ast.Module(body=kept, type_ignores=[]))
            except RecursionError:
                return None
    return None


def detect_chapter(nb: dict, cells: list[str]) -> int | None:
    from .. import check

    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    meta = meta.get("minitransformer") if isinstance(meta.get("minitransformer"), dict) else {}
    if type(meta.get("chapter")) is int:
        return meta["chapter"]
    ids = {getattr(getattr(check, c, None), "exercise_id", None) for s in cells for _, c, _ in CHECK_CALL.findall(s)}
    chapters = {int(i.split(".")[0]) for i in ids if isinstance(i, str)}
    return chapters.pop() if len(chapters) == 1 else None


def predictions(cells: list[str]) -> int:
    """How many `check.prediction(what, guess, actual)` calls have a guess that is not left as `...` or None.

    A guess given by name counts when that name's last top-level assignment in the notebook is not `...`/None.
    """
    assigned: dict[str, ast.AST] = {}
    calls = []
    for source in cells:
        tree = parse(source)
        if tree is None:
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        assigned[target.id] = node.value
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "prediction" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "check":
                guess = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "guess"), None)
                calls.append(guess)

    def blank(value) -> bool:
        return value is None or (isinstance(value, ast.Constant) and (value.value is Ellipsis or value.value is None))

    count = 0
    for guess in calls:
        if isinstance(guess, ast.Name):
            guess = assigned.get(guess.id)
        count += not blank(guess)
    return count

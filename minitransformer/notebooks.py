"""The notebook pipeline: solutions/ is the source of truth, chapters/ is generated from it.

    python -m minitransformer.notebooks generate   # write chapters/ from solutions/
    python -m minitransformer.notebooks check      # fail if chapters/ is out of date
    python -m minitransformer.notebooks execute solutions/01_*.ipynb   # re-run, store outputs

In a solution notebook an exercise body sits between nbgrader's markers:

        ### BEGIN SOLUTION
        ...the answer...
        ### END SOLUTION

The student version replaces it by `raise NotImplementedError()` at the same indentation, clears
every output, and drops the `nbval-check-output` tag (a student notebook has no stored outputs to
compare; it is only run top to bottom).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
CHAPTERS = ROOT / "chapters"

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = "# YOUR CODE HERE\n{indent}raise NotImplementedError()"
CHECK_TAG = "nbval-check-output"
SOLUTION_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)" + re.escape(BEGIN) + r"[^\n]*\n.*?^[ \t]*" + re.escape(END) + r"[^\n]*$",
    re.DOTALL | re.MULTILINE,
)


def stub_source(source: str, where: str = "cell") -> str:
    """Replace every solution block of a code cell by a stub; unbalanced markers are an error."""
    if source.count(BEGIN) != source.count(END):
        raise ValueError(f"{where}: {source.count(BEGIN)} '{BEGIN}' but {source.count(END)} '{END}' markers")

    def replace(match):
        indent = match.group("indent")
        return indent + STUB.format(indent=indent)

    stubbed = SOLUTION_BLOCK.sub(replace, source)
    if BEGIN in stubbed or END in stubbed:
        raise ValueError(f"{where}: solution markers are nested or out of order")
    return stubbed


def student_version(nb, name: str = "notebook"):
    """A copy of a solution notebook with stubs for the exercises and no outputs."""
    nb = nbformat.from_dict(nb)  # a deep copy
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)
        tags = [t for t in cell.metadata.get("tags", []) if t != CHECK_TAG]
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
        if cell.cell_type == "code":
            cell.source = stub_source(cell.source, f"{name}, cell {index}")
            cell.outputs = []
            cell.execution_count = None
    return nb


def render(nb) -> str:
    return nbformat.writes(nb) + "\n"


def expected_chapters(solutions: Path = SOLUTIONS) -> dict[str, str]:
    return {
        path.name: render(student_version(nbformat.read(path, as_version=4), path.name))
        for path in sorted(solutions.glob("*.ipynb"))
    }


def generate(solutions: Path = SOLUTIONS, chapters: Path = CHAPTERS) -> list[str]:
    chapters.mkdir(exist_ok=True)
    expected = expected_chapters(solutions)
    for name, text in expected.items():
        (chapters / name).write_text(text)
    for stale in set(p.name for p in chapters.glob("*.ipynb")) - set(expected):
        (chapters / stale).unlink()
    return sorted(expected)


def out_of_date(solutions: Path = SOLUTIONS, chapters: Path = CHAPTERS) -> list[str]:
    """Names of chapter notebooks that differ from what generate would write (or should not exist)."""
    expected = expected_chapters(solutions)
    present = {p.name: p.read_text() for p in chapters.glob("*.ipynb")}
    problems = [f"{n}: missing" for n in expected if n not in present]
    problems += [f"{n}: differs from its solution" for n in expected if n in present and present[n] != expected[n]]
    problems += [f"{n}: has no solution notebook" for n in present if n not in expected]
    return sorted(problems)


def execute(path: Path, timeout: int = 600) -> float:
    """Run a solution notebook top to bottom in its folder and store its outputs; return seconds."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # wall-clock stamps would change on every run
    path.write_text(render(nb))
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Generate, check or execute the course notebooks.")
    parser.add_argument("command", choices=["generate", "check", "execute"])
    parser.add_argument("notebooks", nargs="*", help="for execute: solution notebooks (default: all)")
    args = parser.parse_args(argv)
    if args.command == "generate":
        for name in generate():
            print(f"wrote chapters/{name}")
    elif args.command == "check":
        problems = out_of_date()
        if problems:
            print("chapters/ is out of date; run `make notebooks` (never edit chapters/ by hand):")
            print("\n".join(f"  {p}" for p in problems))
            return 1
        print("chapters/ is in sync with solutions/")
    else:
        for path in [Path(p) for p in args.notebooks] or sorted(SOLUTIONS.glob("*.ipynb")):
            print(f"executed {path} in {execute(path):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The notebook pipeline: solutions/ is the source of truth, chapters/ is generated from it.

    python -m minitransformer.course.notebooks generate   # write chapters/ from solutions/
    python -m minitransformer.course.notebooks check      # fail if chapters/ is out of date
    python -m minitransformer.course.notebooks execute solutions/01_*.ipynb   # re-run, store outputs

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

from .paths import CHAPTERS, REPOSITORY as ROOT, SOLUTIONS

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


def notebooks_to_run(command: str, arguments: list[str]) -> list[Path]:
    """What the command line names, checked before anything runs: execute takes solution notebooks
    (solutions/*.ipynb; none means all of them), generate and check take nothing (they work on every notebook)."""
    if command != "execute":
        if arguments:
            raise ValueError(f"{command} takes no arguments (it works on every notebook in solutions/ and chapters/), "
                             f"got {', '.join(map(repr, arguments))}")
        return []
    paths = []
    for argument in arguments:
        path = Path(argument)
        folder = path.resolve().parent
        if folder == SOLUTIONS.resolve() and path.suffix == ".ipynb" and path.is_file():
            paths.append(path)
            continue
        problem = ("does not exist" if not path.exists() else "is a folder" if path.is_dir()
                   else "is a student chapter, generated from its solution notebook" if folder == CHAPTERS.resolve()
                   else "is not a solution notebook")
        raise ValueError(f"execute runs solution notebooks (solutions/*.ipynb, e.g. solutions/01_mini_transformer.ipynb; "
                         f"none means all of them), got {argument!r}, which {problem}")
    return paths or sorted(SOLUTIONS.glob("*.ipynb"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Generate, check or execute the course notebooks.")
    parser.add_argument("command", choices=["generate", "check", "execute"])
    parser.add_argument("notebooks", nargs="*", help="for execute: solution notebooks (default: all); generate and check take none")
    args = parser.parse_args(argv)
    try:
        notebooks = notebooks_to_run(args.command, args.notebooks)
    except ValueError as error:
        parser.error(str(error))
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
        for path in notebooks:
            print(f"executed {path} in {execute(path):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The notebook pipeline: chapters/ is generated from solutions/ and kept in sync."""

import nbformat
import pytest

from minitransformer.course.notebooks import (BEGIN, CHAPTERS, CHECK_TAG, END, SOLUTIONS, out_of_date, stub_source,
                                       student_version)

SOLUTION_NOTEBOOKS = sorted(SOLUTIONS.glob("*.ipynb"))


def test_chapters_are_in_sync_with_solutions():
    assert out_of_date() == [], "run `make notebooks` (or `python -m minitransformer.course.notebooks generate`)"


def test_stub_keeps_indentation_and_code_around_it():
    source = f"def f(x):\n    y = 1\n    {BEGIN}\n    return x + y\n    {END}\n\nprint(f)"
    assert stub_source(source) == "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nprint(f)"


def test_unbalanced_markers_are_an_error():
    with pytest.raises(ValueError, match="1 '### BEGIN SOLUTION' but 0"):
        stub_source(f"{BEGIN}\nx = 1\n")


def test_student_version_has_no_answers_and_no_outputs():
    for path in SOLUTION_NOTEBOOKS:
        student = student_version(nbformat.read(path, as_version=4))
        for cell in student.cells:
            assert BEGIN not in cell.source and END not in cell.source
            assert CHECK_TAG not in cell.metadata.get("tags", [])
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=lambda p: p.name)
def test_solution_notebooks_follow_the_chapter_template(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "By the end of this chapter you can" in text
    assert "## Summary" in text and "Try it yourself" in text
    exercises = sum(c.source.count(BEGIN) for c in code)
    assert exercises >= 3, f"{path.name} has {exercises} exercises"
    checks = [c for c in code if "check." in c.source and CHECK_TAG in c.metadata.get("tags", [])]
    assert len(checks) >= 3, "every exercise needs a check cell whose output nbval compares"
    assert all(c.execution_count is not None for c in code), "solutions are stored executed (run `make notebooks`)"
    assert all(c.outputs for c in checks), "every check cell stores its output for nbval to compare"
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_every_solution_has_a_chapter():
    assert [p.name for p in SOLUTION_NOTEBOOKS] == sorted(p.name for p in CHAPTERS.glob("*.ipynb"))

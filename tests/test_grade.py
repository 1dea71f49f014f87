"""The autograder: right points and reasons for good, stubbed, broken and hostile submissions."""

import csv
import json
import sys

import nbformat
import pytest

from minitransformer.grade import SOLUTIONS, grade, main, write_csv
from minitransformer.notebooks import BEGIN, CHAPTERS

CHAPTER_NUMBERS = sorted(int(p.name[:2]) for p in SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
FULL_CH1 = {"1.1": 4, "1.2": 4, "1.3": 5}


def points(result):
    return {k: v for k, v in result.points.items() if not k.endswith(" max")}


@pytest.mark.parametrize("chapter", CHAPTER_NUMBERS)
def test_solutions_get_full_marks_and_chapters_score_zero_as_stubs(chapter):
    solution = next(SOLUTIONS.glob(f"{chapter:02d}_*.ipynb"))
    graded = grade(solution, chapter, execute=False)
    assert graded.reasons == [] and all(graded.points[e] == graded.points[e + " max"] for e in points(graded)), graded
    student = grade(CHAPTERS / solution.name, chapter, execute=False)
    assert sum(points(student).values()) == 0
    assert student.reasons == [f"{e}: stub" for e in points(student)]


def mini_solution(extra_cells=(), replace=None):
    """Chapter 1's setup cell, exercise cells and check cells: a quick notebook to run."""
    nb = nbformat.read(SOLUTIONS / "01_mini_transformer.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    kept = [code[0]] + [c for c in code if BEGIN in c.source or "= check." in c.source]
    cells = []
    for cell in kept:
        source = cell.source
        if "= check." in source:  # the check line alone (the rest of the cell uses omitted cells)
            source = next(line for line in source.splitlines() if "= check." in line)
        for old, new in (replace or {}).items():
            source = source.replace(old, new)
        cells.append(nbformat.v4.new_code_cell(source))
    for position, source in extra_cells:
        cells.insert(position if position >= 0 else len(cells), nbformat.v4.new_code_cell(source))
    out = nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata)
    return out


def write(nb, path):
    nbformat.write(nb, path)
    return path


def test_a_good_submission_runs_and_gets_full_marks(tmp_path):
    result = grade(write(mini_solution(), tmp_path / "good.ipynb"), 1, timeout=120)
    assert result.run == "ok" and points(result) == FULL_CH1 and result.reasons == []


def test_the_full_chapter_solution_runs_ok_including_its_cell_meant_to_raise():
    result = grade(SOLUTIONS / "01_mini_transformer.ipynb", 1, timeout=300)
    assert result.run == "ok" and points(result) == FULL_CH1


def test_a_notebook_that_loops_forever_times_out_but_its_exercises_still_count(tmp_path):
    nb = mini_solution(extra_cells=[(-1, "while True:\n    pass")])
    result = grade(write(nb, tmp_path / "loop.ipynb"), 1, timeout=25)
    assert result.run == "time-out after 25 s" and points(result) == FULL_CH1


def test_an_exercise_that_never_returns_scores_zero_with_a_time_out(tmp_path):
    nb = mini_solution(replace={"    T = q.size(-2)\n    scores": "    while True:\n        pass\n    T = q.size(-2)\n    scores"})
    result = grade(write(nb, tmp_path / "slow.ipynb"), 1, execute=False, exercise_timeout=5)
    assert points(result) == {**FULL_CH1, "1.1": 0}
    assert result.reasons == ["1.1: time-out: the check did not finish in 5 s"]


@pytest.mark.parametrize("cell, status", [
    ((0, "import does_not_exist"), "error in code cell 1: ModuleNotFoundError"),
    ((3, "import sys\nsys.exit(3)"), "error in code cell 4: SystemExit"),
    ((3, "raise RuntimeError('boom')"), "error in code cell 4: RuntimeError: boom"),
])
def test_notebooks_that_crash_exit_or_raise_get_the_reason_and_keep_their_points(cell, status, tmp_path):
    result = grade(write(mini_solution(extra_cells=[cell]), tmp_path / "bad.ipynb"), 1, timeout=120)
    assert result.run.startswith(status) and points(result) == FULL_CH1


def test_printing_megabytes_changes_nothing(tmp_path):
    nb = mini_solution(extra_cells=[(1, "print('x' * 5_000_000)")],
                       replace={"    T = q.size(-2)\n": "    print('y' * 5_000_000)\n    T = q.size(-2)\n"})
    result = grade(write(nb, tmp_path / "loud.ipynb"), 1, timeout=120)
    assert result.run == "ok" and points(result) == FULL_CH1


def test_a_file_that_is_not_a_notebook_scores_zero(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text("{not json")
    result = grade(path, 1)
    assert points(result) == {"1.1": 0, "1.2": 0, "1.3": 0}
    assert result.reasons[0].startswith("not a valid notebook")


def test_another_chapters_notebook_scores_zero(tmp_path):
    result = grade(SOLUTIONS / "02_why_peft.ipynb", 1)
    assert sum(points(result).values()) == 0
    assert result.reasons == ["wrong chapter: this is chapter 2 notebook, graded as chapter 1"]


WRONG_ATTENTION = "    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1)\n    return w @ v, w\n"


def test_redefining_checks_and_references_at_top_level_gains_nothing(tmp_path):
    honest = mini_solution(replace={"    T = q.size(-2)\n    scores": WRONG_ATTENTION + "    T = q.size(-2)\n    scores"})
    honest_result = grade(write(honest, tmp_path / "honest.ipynb"), 1, execute=False)
    assert honest_result.points["1.1"] == 2  # no mask: not causal, wrong values
    patches = ("check.causal_attention = lambda f: f\n"
               "mt.causal_attention = causal_attention\n"
               "import minitransformer.check.core as core\n"
               "core.run = lambda *a, **k: None\n")
    hostile = mini_solution(extra_cells=[(1, patches), (-1, patches)],
                            replace={"    T = q.size(-2)\n    scores": WRONG_ATTENTION + "    T = q.size(-2)\n    scores"})
    result = grade(write(hostile, tmp_path / "hostile.ipynb"), 1, execute=False)
    assert result.points["1.1"] == 2 and result.points["1.2"] == 4


@pytest.mark.parametrize("trick", [
    # at definition time, through a default argument
    "def causal_attention(q, k, v, _=setattr(__import__('minitransformer.check.ch1', fromlist=['x']), 'close', "
    "lambda *a, **k: True)):\n    return q, q[..., :1].expand(*q.shape[:-1], q.size(-2))\n",
    # during the call, from inside the function
    "def causal_attention(q, k, v):\n    import torch\n    torch.allclose = lambda *a, **k: True\n"
    "    return q, q[..., :1].expand(*q.shape[:-1], q.size(-2))\n",
    # replacing the reference the check compares against
    "def causal_attention(q, k, v):\n    import minitransformer.model as m\n    m.causal_attention = lambda q, k, v: (q, q)\n"
    "    return q, q\n",
])
def test_monkeypatching_from_inside_the_exercise_scores_zero_as_tampering(trick, tmp_path):
    nb = mini_solution()
    for cell in nb.cells:
        if cell.source.startswith("def causal_attention"):
            cell.source = trick
    result = grade(write(nb, tmp_path / "tamper.ipynb"), 1, execute=False)
    assert result.points["1.1"] == 0 and result.reasons[0].startswith("1.1: tampering")
    assert result.points["1.2"] == 4 and result.points["1.3"] == 5  # other exercises are graded apart


def test_a_tensor_subclass_cannot_fake_comparisons(tmp_path):
    trick = ("import torch\n"
             "class Liar(torch.Tensor):\n"
             "    @classmethod\n"
             "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
             "        return True\n"
             "def causal_attention(q, k, v):\n"
             "    out = torch.zeros_like(q).as_subclass(Liar)\n"
             "    return out, torch.zeros(*q.shape[:-1], q.size(-2)).as_subclass(Liar)\n")
    nb = mini_solution()
    for cell in nb.cells:
        if cell.source.startswith("def causal_attention"):
            cell.source = trick
    result = grade(write(nb, tmp_path / "liar.ipynb"), 1, execute=False)
    assert result.points["1.1"] < 4


def test_a_submission_cannot_write_the_grades(tmp_path):
    grades = tmp_path / "grades.csv"
    nb = mini_solution(extra_cells=[(1, f"open({str(grades)!r}, 'w').write('hacked')")])
    submission = write(nb, tmp_path / "writer.ipynb")
    main([str(submission), "--chapter", "1", "--csv", str(grades), "--timeout", "120"])
    rows = list(csv.DictReader(grades.open()))
    assert rows[0]["total"] == "13" and rows[0]["max"] == "13"


def test_hidden_instructor_checks_add_points_and_reasons(tmp_path):
    folder = tmp_path / "hidden"
    folder.mkdir()
    (folder / "chapter_01.py").write_text(
        "import torch\n"
        "def check_causal_attention(fn):\n"
        "    q = torch.randn(1, 1, 30, 8)\n"
        "    out, w = fn(q, q, q)\n"
        "    assert out.shape == q.shape, 'long sequences'\n"
        "def check_count_parameters(fn):\n"
        "    assert False, 'the instructor wants a docstring'\n")
    result = grade(SOLUTIONS / "01_mini_transformer.ipynb", 1, execute=False, extra_tests=folder)
    assert result.points["1.1"] == 5 and result.points["1.1 max"] == 5
    assert result.points["1.3"] == 5 and result.points["1.3 max"] == 6
    assert result.reasons == ["1.3: hidden check check_count_parameters: the instructor wants a docstring"]


def test_csv_has_a_row_per_submission_with_reasons(tmp_path):
    results = [grade(SOLUTIONS / "01_mini_transformer.ipynb", 1, execute=False),
               grade(CHAPTERS / "01_mini_transformer.ipynb", 1, execute=False)]
    write_csv(results, 1, tmp_path / "g.csv")
    rows = list(csv.DictReader((tmp_path / "g.csv").open()))
    assert [r["total"] for r in rows] == ["13", "0"]
    assert rows[1]["reasons"] == "1.1: stub | 1.2: stub | 1.3: stub"
    assert list(rows[0]) == ["file", "run", "1.1", "1.2", "1.3", "total", "max", "reasons"]


def test_unknown_chapter_is_an_error():
    with pytest.raises(ValueError, match=r"no chapter 42; the chapters are \[1, 2"):
        main(["x.ipynb", "--chapter", "42"])

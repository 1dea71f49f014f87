"""The autograder: right points and reasons for good, stubbed, broken and hostile submissions."""

import csv
import hashlib
import importlib.util
import os
from pathlib import Path

import nbformat
import pytest

from minitransformer.course.check import core
from minitransformer.course.grade import SOLUTIONS, grade, main, write_csv
from minitransformer.course.grade.sandbox import Pool, bwrap
from minitransformer.course.grade.submission import predictions
from minitransformer.course.notebooks import CHAPTERS

_spec = importlib.util.spec_from_file_location("hostile_attacks", Path(__file__).parent / "hostile" / "attacks.py")
attacks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(attacks)

ROOT = Path(__file__).resolve().parent.parent
CHAPTER_NUMBERS = sorted(int(p.name[:2]) for p in SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
FULL_CH1 = attacks.FULL
assert bwrap() is not None, "the grader's tests need bubblewrap: apt-get install bubblewrap (.ci/run installs it)"


def points(result):
    return {k: v for k, v in result.points.items() if not k.endswith(" max")}


def write(nb, path):
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("chapter", CHAPTER_NUMBERS)
def test_solutions_get_full_marks_and_chapters_score_zero_as_stubs(chapter):
    from minitransformer.course.grade import exercises_of, hidden_paths

    solution = next(SOLUTIONS.glob(f"{chapter:02d}_*.ipynb"))
    parsed = exercises_of(chapter)
    hide = hidden_paths([solution])
    pool = Pool(hide, False, parsed[1])
    try:
        graded = grade(solution, chapter, execute=False, seed=1234 + chapter, parsed=parsed, pool=pool, hide=hide)
        student = grade(CHAPTERS / solution.name, chapter, execute=False, seed=99, parsed=parsed, pool=pool, hide=hide)
    finally:
        pool.close()
    assert graded.reasons == [] and all(graded.points[e] == graded.points[e + " max"] for e in points(graded)), graded
    assert sum(points(student).values()) == 0
    assert student.reasons == [f"{e}: stub" for e in points(student)]


def test_a_good_submission_runs_sandboxed_and_gets_full_marks(tmp_path):
    nb = attacks.mini_solution(extra_cells=[(1, "print('x' * 5_000_000)")])  # megabytes of output change nothing
    result = grade(write(nb, tmp_path / "good.ipynb"), 1, timeout=180)
    assert result.run == "ok" and points(result) == FULL_CH1 and result.reasons == []


def test_what_a_notebook_writes_to_its_file_descriptors_cannot_hide_or_forge_its_run_status(tmp_path):
    """A flood on fd 1/2 without a newline, and forged STATUS lines on every channel the notebook can reach
    (bubblewrap's own copy of the runner's stdout included): the run is still reported as it ended."""
    files = []
    for name, attack in attacks.RUN_ATTACKS.items():
        files.append(write(attacks.mini_solution(extra_cells=attack["extra_cells"]), tmp_path / name))
    grades = tmp_path / "grades.csv"
    assert main([str(f) for f in files] + ["--chapter", "1", "--csv", str(grades), "--timeout", "180", "--jobs", "2"]) == 0
    rows = {Path(r["file"]).name: r for r in csv.DictReader(grades.open())}
    for name, attack in attacks.RUN_ATTACKS.items():
        assert rows[name]["run"] == attack["run"], (name, rows[name]["run"])
        assert rows[name]["total"] == str(sum(FULL_CH1.values())), (name, rows[name]["reasons"])


def test_a_notebook_that_loops_or_writes_the_course_keeps_its_exercise_points(tmp_path):
    loop = attacks.mini_solution(extra_cells=[(-1, "while True:\n    pass")])
    result = grade(write(loop, tmp_path / "loop.ipynb"), 1, timeout=40)
    assert result.run == "time-out after 40 s" and points(result) == FULL_CH1
    writer = attacks.mini_solution(extra_cells=[(1, f"open({str(attacks.CANARY)!r}, 'w').write('hacked')")])
    result = grade(write(writer, tmp_path / "writer.ipynb"), 1, timeout=180)
    assert result.run.startswith("error in cell 2 (counting every cell from the top, text cells too): OSError") and points(result) == FULL_CH1
    assert attacks.CANARY.read_text().startswith("A file the hostile submissions try to overwrite")


def tree_hashes(*folders):
    hashes = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                hashes[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def descendants(pid):
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def marked_processes():
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if attacks.MARKER.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_a_hostile_class_graded_in_one_run(tmp_path, monkeypatch):
    """Every attack gets the grade it deserves, no file outside the CSV changes, no process outlives the grader."""
    folder = tmp_path / "class"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "chapter_01.py").write_text(f"# {attacks.SECRET}\n"
                                          "def check_causal_attention(fn):\n"
                                          "    import torch\n"
                                          "    q = torch.randn(1, 1, 30, 8)\n"
                                          "    out, weights = fn(q, q, q)\n"
                                          "    assert out.shape == q.shape, 'fails on long sequences'\n")
    expected = {}
    for name, attack in {**attacks.ATTACKS, **attacks.GOOD}.items():
        nb = attacks.mini_solution(attack["replace"], attack.get("extra_cells", ()))
        write(nb, folder / name)
        expected[name] = attack
    for sub in ("a", "b"):  # the same student name in two folders
        write(attacks.mini_solution(), folder / sub / "twin.ipynb")
    broken = attacks.broken_files(folder)
    files = sorted(p for p in folder.rglob("*.ipynb"))
    before = tree_hashes(folder, hidden, ROOT / "minitransformer" / "course" / "check", ROOT / "minitransformer" / "course" / "grade",
                         ROOT / "tests" / "hostile")

    monkeypatch.chdir(folder)  # relative paths, a name starting with '-'
    grades = tmp_path / "grades.csv"
    argv = [str(p.relative_to(folder)) for p in files] + ["--chapter", "1", "--csv", str(grades), "--no-execute",
                                                          "--extra-tests", "../hidden", "--exercise-timeout", "20", "--seed", "7"]
    assert main(argv) == 0
    rows = {Path(r["file"]).name if not r["file"].startswith("'") else Path(r["file"][1:]).name: r
            for r in csv.DictReader(grades.open()) if "/a/" not in r["file"] and "/b/" not in r["file"]}
    twins = [r for r in csv.DictReader(grades.open()) if "twin" in r["file"]]
    for name, attack in expected.items():
        row = rows[name]
        for exercise, want in attack["expect"].items():
            got = int(row[exercise])
            hidden_point = 1 if exercise == "1.1" else 0  # the instructor's hidden check, passed by a right answer
            ok = want(got) if callable(want) else got in (want, want + hidden_point)
            assert ok, (name, exercise, got, row["reasons"])
        if attack["reason"]:
            assert attack["reason"] in row["reasons"], (name, row["reasons"])
        if attack.get("absent"):
            assert attack["absent"] not in row["reasons"]
        assert row["seed"] == "7"
    full = str(sum(FULL_CH1.values()) + 1)  # and the instructor's hidden check of 1.1
    assert rows["honest.ipynb"]["total"] == full and rows["honest.ipynb"]["max"] == full
    for name, reason in broken.items():
        assert reason in rows[name]["reasons"] and rows[name]["total"] == "0", (name, rows[name]["reasons"])
    raw = grades.read_text()
    assert "'=SUM(A1)@evil" in raw and ",=" not in raw  # no cell starts with a formula
    assert all(r["flags"].startswith("duplicate name: also") for r in twins) and len(twins) == 2
    assert "1.1≈solution" in rows["honest.ipynb"]["similarity"]
    assert rows["delegate_alias.ipynb"]["similarity"] != rows["honest.ipynb"]["similarity"]
    assert tree_hashes(folder, hidden, ROOT / "minitransformer" / "course" / "check", ROOT / "minitransformer" / "course" / "grade",
                       ROOT / "tests" / "hostile") == before
    assert descendants(os.getpid()) == [] and marked_processes() == []


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
    result = grade(SOLUTIONS / "01_mini_transformer.ipynb", 1, execute=False, extra_tests=folder, seed=3)
    assert result.points["1.1"] == 5 and result.points["1.1 max"] == 5
    assert result.points["1.6"] == 5 and result.points["1.6 max"] == 6
    assert result.reasons == ["1.6: hidden check check_count_parameters: the instructor wants a docstring"]


def test_csv_columns_and_participation(tmp_path):
    results = [grade(SOLUTIONS / "01_mini_transformer.ipynb", 1, execute=False, seed=5),
               grade(CHAPTERS / "01_mini_transformer.ipynb", 1, execute=False, seed=5)]
    write_csv(results, 1, tmp_path / "g.csv", seed=5)
    rows = list(csv.DictReader((tmp_path / "g.csv").open()))
    assert [r["total"] for r in rows] == ["22", "0"] and sum(FULL_CH1.values()) == 22
    assert rows[1]["reasons"] == "1.1: stub | 1.2: stub | 1.3: stub | 1.4: stub | 1.5: stub | 1.6: stub"
    assert list(rows[0]) == ["file", "student", "run", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "total", "max", "predictions", "similarity",
                             "flags", "seed", "reasons"]
    assert rows[0]["seed"] == "5" and rows[1]["similarity"] == ""


def test_predictions_count_guesses_that_are_not_left_blank():
    cells = ["guess_a = 0.3\nguess_b = ...\nguess_c = None", "check.prediction('a', guess_a, 1.0)",
             "check.prediction('b', guess_b, 2.0)\ncheck.prediction('c', guess_c, 2.0)",
             "check.prediction('d', 'b', 'b')\ncheck.prediction('e', guess=..., actual=1)", "not python ("]
    assert predictions(cells) == 2


def test_without_bubblewrap_the_grader_refuses_and_says_how_to_install(monkeypatch, capsys):
    import minitransformer.course.grade.run as run

    monkeypatch.setattr(run, "bwrap", lambda: None)
    with pytest.raises(SystemExit):
        main([str(SOLUTIONS / "01_mini_transformer.ipynb"), "--chapter", "1", "--no-execute"])
    assert "apt-get install bubblewrap" in capsys.readouterr().err


def test_unknown_chapter_is_an_error():
    with pytest.raises(ValueError, match=r"no chapter 42; the chapters are \[1, 2"):
        main(["x.ipynb", "--chapter", "42"])

"""What a learner reads: no authoring leftovers, a glossary link, predictions and questions in every chapter."""

import ast
import importlib
import re

import nbformat
import pytest

from minitransformer.course.notebooks import CHAPTERS, SOLUTIONS

NOTEBOOKS = sorted(SOLUTIONS.glob("*.ipynb")) + sorted(CHAPTERS.glob("*.ipynb"))
SOLUTION_NOTEBOOKS = sorted(SOLUTIONS.glob("*.ipynb"))

# Words that only an author's draft would show a learner.
LEFTOVERS = re.compile(r"seed outline|the outline|seed document|\bTODO\b|\bFIXME\b|\bXXX\b|\{\{|\}\}|<placeholder|"
                       r"lorem ipsum|\?\?\?", re.IGNORECASE)
# A markdown heading written as a comment inside a code cell: section text stranded in code.
STRANDED_HEADING = re.compile(r"^\s*#\s+#{1,4}\s+\S", re.MULTILINE)
BACKTICKED = re.compile(r"`[^`]*`")


def _id(path):
    return f"{path.parent.name}/{path.name}"


def code_trees(nb):
    """The parsed code cells of a notebook (cells with IPython magics are skipped)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            try:
                yield ast.parse(cell.source)
            except SyntaxError:
                continue


def constants_assigned(nb) -> set[str]:
    """ALL_CAPS names the notebook's code assigns (e.g. STEPS = 150): they must not leak into prose bare."""
    names = set()
    for tree in code_trees(nb):
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", node.id):
                names.add(node.id)
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_markdown_has_no_authoring_leftovers(path):
    nb = nbformat.read(path, as_version=4)
    constants = constants_assigned(nb)
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            for match in LEFTOVERS.finditer(cell.source):
                problems.append(f"cell {index}: {match.group(0)!r}")
            prose = BACKTICKED.sub("", cell.source)
            for name in constants:
                if re.search(rf"\b{name}\b", prose):
                    problems.append(f"cell {index}: the code constant {name} appears in prose (unrendered placeholder?)")
        elif cell.cell_type == "code" and STRANDED_HEADING.search(cell.source):
            problems.append(f"cell {index}: a markdown heading sits as a comment inside a code cell")
    assert problems == [], f"{_id(path)}: " + "; ".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_every_chapter_links_the_glossary_and_states_its_time(path):
    nb = nbformat.read(path, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "README.md#glossary" in markdown, f"{_id(path)} never links to the glossary (../README.md#glossary)"
    opening = next(c.source for c in nb.cells if c.cell_type == "markdown")
    assert re.search(r"\d+\s*(?:[-–]\s*\d+\s*)?min", opening), f"{_id(path)}: the opening cell gives no time for a learner"


def _calls(nb, name: str) -> list[ast.Call]:
    calls = []
    for tree in code_trees(nb):
        calls += [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                  and n.func.attr == name and isinstance(n.func.value, ast.Name) and n.func.value.id == "check"]
    return calls


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=_id)
def test_every_chapter_asks_for_predictions_and_ends_with_questions(path):
    nb = nbformat.read(path, as_version=4)
    chapter = nb.metadata["minitransformer"]["chapter"]
    assert len(_calls(nb, "prediction")) >= 2, f"{_id(path)}: fewer than 2 'predict first' checks"
    quizzes = _calls(nb, "quiz")
    assert len(quizzes) == 1, f"{_id(path)}: expected one check.quiz(...) at the end, found {len(quizzes)}"
    assert ast.literal_eval(quizzes[0].args[0]) == chapter
    questions = importlib.import_module(f"minitransformer.course.check.quizzes.ch{chapter}").QUESTIONS
    assert 3 <= len(questions) <= 5, f"chapter {chapter} has {len(questions)} questions; 3-5 expected"
    assert len({q.id for q in questions}) == len(questions)
    for q in questions:
        assert q.explanation.strip(), f"chapter {chapter} {q.id} has no explanation"
        if q.choices:
            assert str(q.answer).lower() in q.choices, f"chapter {chapter} {q.id}: answer not among its choices"


def _plain(text: str) -> str:
    return " ".join(text.replace("`", "").replace("**", "").replace('\\"', '"').split()).lower()


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=_id)
def test_every_chapter_shows_its_questions_before_the_quiz(path):
    nb = nbformat.read(path, as_version=4)
    chapter = nb.metadata["minitransformer"]["chapter"]
    quiz_cell = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "check.quiz(" in c.source)
    shown = _plain(" ".join(c.source for c in nb.cells[:quiz_cell] if c.cell_type == "markdown"))
    for q in importlib.import_module(f"minitransformer.course.check.quizzes.ch{chapter}").QUESTIONS:
        assert _plain(q.text)[:60] in shown, f"{_id(path)}: question {q.id} is not shown before check.quiz"


def test_a_blank_quiz_answer_reveals_nothing(capsys):
    from minitransformer.course import check
    from minitransformer.course.check.practice import questions

    for chapter in range(1, 11):
        check.quiz(chapter, {})
        out = capsys.readouterr().out
        for q in questions(chapter):
            assert _plain(q.explanation)[:40] not in _plain(out), f"chapter {chapter} {q.id}: a blank shows the explanation"
        assert "not answered yet" in out


def _prediction_cells(nb):
    """(index of a `guess = ...  # your prediction` cell, its variable) for every prediction in a notebook."""
    for index, cell in enumerate(nb.cells):
        match = re.search(r"^\s*(\w+) = \.\.\.\s*#.*predict", cell.source, re.M) if cell.cell_type == "code" else None
        if match:
            yield index, match.group(1)


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=_id)
def test_no_prose_reveals_a_prediction_before_it_is_checked(path):
    # Markdown is on screen before anything runs: between a prediction and the cell that checks it, only code.
    nb = nbformat.read(path, as_version=4)
    for index, name in _prediction_cells(nb):
        checked = next((k for k in range(index + 1, len(nb.cells)) if nb.cells[k].cell_type == "code"
                        and "check.prediction" in nb.cells[k].source and name in nb.cells[k].source), None)
        assert checked is not None, f"cell {index}: the prediction `{name}` is never checked"
        prose = [k for k in range(index + 1, checked) if nb.cells[k].cell_type == "markdown"]
        assert not prose, f"cells {prose} (text) come between the prediction `{name}` (cell {index}) and its check"


def test_the_readme_states_each_chapters_own_learner_time():
    readme = (SOLUTIONS.parent / "README.md").read_text()
    table = dict(re.findall(r"^\| (\d+) [^|]+\| (\d+) min \|", readme, re.M))
    assert len(table) == len(SOLUTION_NOTEBOOKS)
    for path in SOLUTION_NOTEBOOKS:
        opening = " ".join(nbformat.read(path, as_version=4).cells[0].source.split())
        stated = re.search(r"[Aa]bout (\d+) min", opening).group(1)
        assert table[str(int(path.name[:2]))] == stated, f"{path.name}: the chapter says {stated} min, the README table {table[str(int(path.name[:2]))]}"
    total = sum(map(int, table.values()))
    assert f"add up to {total} minutes" in readme

"""Practice that is not graded: "predict first" prompts and end-of-chapter questions.

Predict, then run. Before a headline measurement the notebook asks for a guess in a variable:

    my_guess = ...            # e.g. 0.3, or "b"
    ...the measurement runs...
    check.prediction("forgetting of full fine-tuning", my_guess, measured, tolerance=0.1)

and the check says how close the guess was (a guess left as `...` is skipped with a reminder). The autograder
records these as participation (how many predictions a submission made), never as points.

Check your understanding. Each chapter ends with a few conceptual questions answered in code:

    answers = {"q1": "b", "q2": 16}
    check.quiz(3, answers)

The questions and their explanations live in `minitransformer/course/check/quizzes/chN.py` as `QUESTIONS`, a list of
`Question`; the check prints, for each one, whether the answer is right and why the right answer is right.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from numbers import Number


@dataclass(frozen=True)
class Question:
    id: str  # "q1", "q2", ...
    text: str  # the question, as the notebook states it (for the feedback)
    answer: object  # a letter for multiple choice, a number, or a string
    explanation: str  # why the right answer is right
    tolerance: float = 0.0  # for numbers: relative tolerance (0.1 = within 10%)
    choices: tuple[str, ...] = ()  # for multiple choice: the valid letters, e.g. ("a", "b", "c")


def _is_left_blank(value) -> bool:
    return value is Ellipsis or value is None


def prediction(what: str, guess, actual, tolerance: float | None = None) -> None:
    """Compare a learner's guess with the measured value; print how close it was. Never raises for a bad guess.

    Numbers: the guess counts as close when |guess - actual| <= tolerance (absolute; default 10% of |actual|).
    Anything else (an option letter, a method name): close when equal, case and spaces ignored.
    Prints only (returns None), so a notebook cell that ends with it shows no stray value.
    """
    _verdict(what, guess, actual, tolerance)


def _verdict(what: str, guess, actual, tolerance: float | None = None) -> bool | None:
    """Print the verdict on one guess; True/False (close or not), None when the guess was left as `...`."""
    if _is_left_blank(guess):
        print(f"🔮 {what}: no prediction made (the variable is still `...`). Guess before you run next time: "
              f"the measured value was {_fmt(actual)}.")
        return None
    if isinstance(actual, Number) and not isinstance(actual, bool):
        if not isinstance(guess, Number) or isinstance(guess, bool):
            print(f"🔮 {what}: your guess {guess!r} is not a number; the measured value was {_fmt(actual)}.")
            return False
        if math.isnan(float(guess)):
            print(f"🔮 {what}: your guess is NaN; the measured value was {_fmt(actual)}.")
            return False
        tol = abs(actual) * 0.1 if tolerance is None else tolerance
        error = float(guess) - float(actual)
        close = abs(error) <= tol
        direction = "high" if error > 0 else "low"
        verdict = "close ✔" if close else f"{direction} by {_fmt(abs(error))}"
        print(f"🔮 {what}: you guessed {_fmt(guess)}, measured {_fmt(actual)} — {verdict} (within ±{_fmt(tol)} counts as close).")
        return close
    close = str(guess).strip().lower() == str(actual).strip().lower()
    print(f"🔮 {what}: you picked {guess!r}, the measurement says {actual!r} — {'right ✔' if close else 'not this time'}.")
    return close


def _fmt(x) -> str:
    if isinstance(x, Number) and not isinstance(x, bool):
        x = float(x)
        if x == int(x) and abs(x) < 1e15:
            return f"{int(x):,}"
        return f"{x:.3g}"
    return repr(x)


def questions(chapter: int) -> list[Question]:
    """The end-of-chapter questions of one chapter."""
    if not isinstance(chapter, int) or isinstance(chapter, bool):
        raise TypeError(f"chapter must be an int such as 3, got {chapter!r}")
    try:
        module = importlib.import_module(f"minitransformer.course.check.quizzes.ch{chapter}")
    except ModuleNotFoundError:
        raise ValueError(f"chapter {chapter} has no questions") from None
    return list(module.QUESTIONS)


def _correct(q: Question, given) -> bool:
    if q.choices:
        return isinstance(given, str) and given.strip().lower() == str(q.answer).lower()
    if isinstance(q.answer, Number) and not isinstance(q.answer, bool):
        if not isinstance(given, Number) or isinstance(given, bool) or math.isnan(float(given)):
            return False
        return abs(float(given) - float(q.answer)) <= q.tolerance * abs(float(q.answer)) + 1e-12
    return str(given).strip().lower() == str(q.answer).strip().lower()


def quiz(chapter: int, answers: dict) -> None:
    """Check a chapter's end-of-chapter answers; print, for each answered question, whether it is right, the answer
    and why. A question left as `...` gets no answer and no explanation: answer it first, then run the cell again."""
    qs = questions(chapter)
    if not isinstance(answers, dict):
        raise TypeError(f"answers must be a dict such as {{'q1': 'b'}}, got {type(answers).__name__}")
    unknown = sorted(set(answers) - {q.id for q in qs})
    if unknown:
        raise ValueError(f"unknown question ids {unknown}; chapter {chapter} has {[q.id for q in qs]}")
    right = 0
    for q in qs:
        given = answers.get(q.id, ...)
        if _is_left_blank(given):
            print(f"· {q.id}: not answered yet (its answer and explanation appear once you answer it)")
            continue
        if q.choices and not (isinstance(given, str) and given.strip().lower() in q.choices):
            print(f"✘ {q.id}: {given!r} is not one of the options {list(q.choices)}. {q.explanation}")
            continue
        ok = _correct(q, given)
        right += ok
        answer = q.answer if not isinstance(q.answer, float) else _fmt(q.answer)
        print(f"{'✔' if ok else '✘'} {q.id}: {'right' if ok else f'the answer is {answer!r}'}. {q.explanation}")
    blank = sum(_is_left_blank(answers.get(q.id, ...)) for q in qs)
    print(f"{right}/{len(qs)} right" + (f" ({blank} not answered)" if blank else ""))

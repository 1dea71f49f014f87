"""The check framework: exercises register their checks; `run` grades, `check` grades and falls back."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator



class StubError(Exception):
    """The candidate still raises NotImplementedError: the exercise has not been attempted."""


@dataclass
class Part:
    description: str
    passed: bool
    message: str = ""
    points: int = 1


@dataclass
class CheckResult:
    exercise: str
    title: str
    status: str  # "passed", "failed", "stub" or "error"
    parts: list[Part] = field(default_factory=list)
    max_points: int = 0
    detail: str = ""

    @property
    def points(self) -> int:
        return sum(p.points for p in self.parts if p.passed)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def report(self) -> str:
        head = f"Exercise {self.exercise} · {self.title}: {self.points}/{self.max_points} points"
        if self.status == "stub":
            return f"{head}\n  … not attempted yet: the body still raises NotImplementedError."
        lines = [head + (" ✅" if self.passed else "")]
        for part in self.parts:
            mark = "✔" if part.passed else "✘"
            lines.append(f"  {mark} {part.description}")
            if part.message and not part.passed:
                lines.append(f"      → {part.message}")
        if self.detail:
            lines.append(f"  {self.detail}")
        return "\n".join(lines)


@dataclass
class Exercise:
    id: str
    title: str
    parts: Callable[[Any], Iterator[Part]]  # yields one Part per checked property
    max_points: int
    reference: Any
    reference_name: str


EXERCISES: dict[str, Exercise] = {}
RESULTS: dict[str, CheckResult] = {}  # the latest result per exercise, in this process


def register(id: str, title: str, max_points: int, reference, reference_name: str):
    def decorator(parts_fn):
        EXERCISES[id] = Exercise(id, title, parts_fn, max_points, reference, reference_name)
        return parts_fn

    return decorator


AFTER_LEARNER_CALL: list[Callable[[], None]] = []  # the grader's integrity checks


def call_learner(fn, *args):
    """Call learner code; a NotImplementedError means the exercise is still a stub."""
    try:
        return fn(*args)
    except NotImplementedError as error:
        raise StubError() from error
    finally:
        for hook in AFTER_LEARNER_CALL:
            hook()


def run(exercise_id: str, candidate) -> CheckResult:
    """Check `candidate` against exercise `exercise_id`; never raises for learner mistakes."""
    if exercise_id not in EXERCISES:
        raise ValueError(f"unknown exercise {exercise_id!r}; valid ids are {sorted(EXERCISES)}")
    exercise = EXERCISES[exercise_id]
    result = CheckResult(exercise.id, exercise.title, "passed", max_points=exercise.max_points)
    try:
        for part in exercise.parts(candidate):
            result.parts.append(part)
    except StubError:
        result.status = "stub"
        result.parts = []  # a stub earns nothing
    except Exception as error:  # the learner's code crashed: say where, in one line
        frame = traceback.extract_tb(error.__traceback__)[-1]
        result.status = "error"
        result.detail = (
            f"✘ your code raised {type(error).__name__}: {error} "
            f"(in {frame.name}, line {frame.lineno}: {frame.line!r})"
        )
    else:
        if not all(p.passed for p in result.parts):
            result.status = "failed"
    RESULTS[exercise_id] = result
    return result


def check(exercise_id: str, candidate, verbose: bool = True):
    """Run the check, print feedback, and return what the rest of the notebook should use."""
    result = run(exercise_id, candidate)
    exercise = EXERCISES[exercise_id]
    if verbose:
        print(result.report())
        if not result.passed:
            print(
                f"  Using the library's reference {exercise.reference_name} for the rest of the "
                "notebook; fix your version and run this cell again."
            )
    return candidate if result.passed else exercise.reference


def checker(exercise_id: str):
    """The notebook-facing function for one exercise: `fn = check.some_exercise(fn)`."""

    def check_exercise(candidate):
        return check(exercise_id, candidate)

    check_exercise.exercise_id = exercise_id
    check_exercise.__doc__ = f"Check exercise {exercise_id}; return the learner's version if it passes, else the reference."
    return check_exercise

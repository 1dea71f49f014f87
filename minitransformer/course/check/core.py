"""The check framework: exercises register their checks; `run` grades, `check` grades and falls back."""

from __future__ import annotations

import random
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

# --- hidden inputs ------------------------------------------------------------------------------------------
# In a notebook every check uses the inputs shown there (HIDDEN_SEED is None). The grader's judge sets
# HIDDEN_SEED once per grading run: each check then draws its inputs (values and, where it matters, shapes and
# sizes) from that seed, which the learner never sees, so hard-coded or shape-specific answers fail.
HIDDEN_SEED: int | None = None


def seed(n: int) -> int:
    """The seed for a check's n-th random input: n in a notebook, drawn from the hidden seed when grading."""
    return n if HIDDEN_SEED is None else random.Random(f"{HIDDEN_SEED}/{n}").randrange(2**31)


def generator(n: int):
    """A torch.Generator seeded with seed(n)."""
    import torch

    return torch.Generator().manual_seed(seed(n))


def pick(n: int, shown, *hidden):
    """`shown` in a notebook; when grading, one of `hidden` chosen by the hidden seed."""
    return shown if HIDDEN_SEED is None else random.Random(f"{HIDDEN_SEED}/pick/{n}").choice(hidden)


def close(a, b, tol=1e-5) -> bool:
    """`a` is a tensor of `b`'s shape and equal to it within `tol` (absolute and relative)."""
    import torch

    return torch.is_tensor(a) and a.shape == b.shape and torch.allclose(a, b, atol=tol, rtol=tol)



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
    forbidden: tuple = ()  # library objects that do this exercise's work: unusable while it is graded


EXERCISES: dict[str, Exercise] = {}
RESULTS: dict[str, CheckResult] = {}  # the latest result per exercise, in this process


def register(id: str, title: str, max_points: int, reference, reference_name: str, forbidden: tuple = ()):
    """`forbidden`: library functions or classes that do the exercise for the learner (its reference is always
    forbidden); the grader scores a submission that uses one 0 ("uses the library's reference")."""
    def decorator(parts_fn):
        EXERCISES[id] = Exercise(id, title, parts_fn, max_points, reference, reference_name, (reference, *forbidden))
        return parts_fn

    return decorator


class LearnerError(Exception):
    """The learner's code raised, in the grader's sandbox; `where` says where (file, line, source)."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(message)
        self.where = where


class Remote:
    """The grader's stand-in for a learner's function or class that lives in the sandbox.

    Calling it (or `call_learner(remote, ...)`) runs the learner's code there on the given inputs and returns
    the result rebuilt as plain data (tensors, numbers, strings, lists, dicts, nn.Linear); other objects come
    back as `Opaque`. A check that needs more of a learner's object (its parameters, its forward pass after a
    change) calls `call_probe(probe, candidate, ...)`: the probe runs next to the learner's code and returns
    plain data. A check written without probes is still graded safely: it only ever sees plain data.
    """

    def __init__(self, transport, name: str):
        self.transport, self.__name__ = transport, name

    def __call__(self, *args):
        return call_learner(self, *args)

    def __repr__(self):
        return f"<learner's {self.__name__}, in the sandbox>"


class Opaque:
    """An object of the learner's that cannot travel as plain data; only its type name comes back."""

    def __init__(self, type_name: str):
        self.type_name = type_name
        self.__name__ = type_name

    def __repr__(self):
        return f"<{self.type_name} object>"


def call_learner(fn, *args):
    """Call learner code; a NotImplementedError means the exercise is still a stub."""
    if isinstance(fn, Remote):
        return fn.transport.call(fn, args)
    try:
        return fn(*args)
    except NotImplementedError as error:
        raise StubError() from error


def call_probe(probe, candidate, *args):
    """Run `probe(candidate, *args)` where the learner's code is: in this process in a notebook, in the
    sandbox when grading. A probe is trusted code of the check module that returns plain data only."""
    if isinstance(candidate, Remote):
        return candidate.transport.probe(probe, candidate, args)
    try:
        return probe(candidate, *args)
    except NotImplementedError as error:
        raise StubError() from error


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
    except LearnerError as error:  # raised in the grader's sandbox
        result.status = "error"
        result.detail = f"✘ your code raised {getattr(error, 'summary', error)} {error.where}".rstrip()
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

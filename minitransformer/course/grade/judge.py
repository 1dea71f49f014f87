"""The judge: grades one submission's exercises without ever running its code in this process.

For each exercise: a static look at the learner's definitions (does it import or name a library object that
does the exercise, or the check and grading modules? then 0, "uses the library's reference for this
exercise"); then the exercise's check runs *here*, on inputs drawn from the run's hidden seed, and every
call into the learner's code goes to the sandbox, which returns plain data (see wire.py) — so the points
are computed by trusted code from the learner's outputs, never by the learner's code.
"""

from __future__ import annotations

import ast
import importlib
import time
from pathlib import Path

from ..check import core
from .sandbox import Pool, ReferenceUse, SandboxError, Transport

REFERENCE = "uses the library's reference for this exercise"
PROTECTED = ("minitransformer.course.check", "minitransformer.course.grade")


def _resolve(path: str):
    """The library object a dotted path names, importing only the library's own modules; None if none."""
    if not (path == "minitransformer" or path.startswith("minitransformer.")):
        return None
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def _chain(node) -> list[str] | None:
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(names)]
    return None


def static_reference_use(source: str, context: list[str], exercise_id: str) -> str | None:
    """The forbidden library object the definitions import or name, or None."""
    forbidden = {id(obj) for obj in core.EXERCISES[exercise_id].forbidden}
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    aliases: dict[str, str] = {}
    imports = []
    for statement in context:
        try:
            imports += [n for n in ast.parse(statement).body if isinstance(n, (ast.Import, ast.ImportFrom))]
        except SyntaxError:
            pass
    learner_imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]

    def bad(path: str) -> bool:
        if path.startswith(PROTECTED):
            return True
        parts = path.split(".")
        for cut in range(1, len(parts) + 1):
            obj = _resolve(".".join(parts[:cut]))
            if obj is not None and (id(obj) in forbidden or getattr(obj, "__name__", "").startswith(PROTECTED)):
                return True
        return False

    for node in imports + learner_imports:
        own = node in learner_imports
        for a in node.names:
            if isinstance(node, ast.Import):
                full = a.name
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            else:
                if node.level:  # a relative import: from the course's own package
                    if own:
                        return f"a relative import ({'.' * node.level}{node.module or ''})"
                    continue
                full = f"{node.module}.{a.name}"
                aliases[a.asname or a.name] = full
            if own and bad(full):
                return full
    bound = set()  # names the learner binds themselves (they shadow the notebook's imports)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    learner_aliases = {a.asname or a.name.split(".")[0] for n in learner_imports for a in n.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and any(p in node.value for p in PROTECTED):
            return node.value[:80]
        chain = _chain(node) if isinstance(node, (ast.Attribute, ast.Name)) else None
        if not chain or chain[0] not in aliases or (chain[0] in bound and chain[0] not in learner_aliases):
            continue
        path = ".".join([aliases[chain[0]], *chain[1:]])
        if bad(path):
            return path
    return None


def grade_exercises(exercises, definitions: dict, context: list[str], *, hide: list[Path], unsafe: bool,
                    exercise_timeout: float, memory: int, extra: Path | None, pool: Pool | None = None) -> dict:
    """{exercise id: {"points", "max", "reason"}} for one submission."""
    results = {}
    own = pool is None
    pool = pool or Pool(hide, unsafe, context)
    hidden = _load_hidden(extra)
    try:
        for exercise in exercises:
            source = definitions.get(exercise.name)
            result = {"points": 0, "max": exercise.max_points, "reason": ""}
            hidden_checks = [f for n, f in sorted(hidden.items())
                             if n == f"check_{exercise.name}" or n.startswith(f"check_{exercise.name}__")]
            result["max"] += len(hidden_checks)
            results[exercise.id] = result
            if not source:
                result["reason"] = f"missing: no cell defines {exercise.name!r}"
                continue
            used = static_reference_use(source, context, exercise.id)
            if used:
                result["reason"] = f"{REFERENCE} ({used})"
                continue
            try:
                sandbox = pool.get()
                deadline = time.monotonic() + exercise_timeout
                job = {"op": "exercise", "id": exercise.id, "name": exercise.name, "source": source, "context": context,
                       "memory": memory, "cpu": int(exercise_timeout) + 5}
                reply, _ = sandbox.request(job, b"", deadline)
                if reply.get("reference_used"):
                    result["reason"] = f"{REFERENCE} ({str(reply['reference_used'])[:100]})"
                elif "define_error" in reply:
                    result["reason"] = f"error while defining: {str(reply['define_error'])[:180]}"
                elif reply.get("ready"):
                    transport = Transport(sandbox, deadline)
                    remote = core.Remote(transport, exercise.name)
                    outcome = core.run(exercise.id, remote)
                    result["points"], result["reason"] = outcome.points, _reason(outcome)
                    if hidden_checks and outcome.status != "stub":
                        _hidden_checks(hidden_checks, remote, result)
                else:
                    result["reason"] = "grading failed: the sandbox did not define the exercise"
            except ReferenceUse as used:
                result["points"], result["reason"] = 0, f"{REFERENCE} ({str(used)[:100]})"
            except SandboxError as error:
                result["points"] = 0
                result["reason"] = (f"time-out: the check did not finish in {exercise_timeout:g} s" if str(error) == "time-out"
                                    else f"error: {error} (out of memory, or the process was killed)")
                pool.discard()
                continue
            except RuntimeError as error:  # the sandbox could not start
                result["reason"] = f"grading failed: {str(error)[:200]}"
                continue
            try:  # end the exercise: its process and everything it started are killed
                sandbox.request({"op": "end"}, b"", time.monotonic() + 30)
            except SandboxError:
                pool.discard()
    finally:
        if own:
            pool.close()
    return results


def _reason(outcome) -> str:
    if outcome.status == "passed":
        return ""
    if outcome.status == "stub":
        return "stub"
    if outcome.status == "error":
        return "error: " + outcome.detail.replace("✘ your code raised ", "")[:200]
    failed = [p for p in outcome.parts if not p.passed]
    return "wrong result: " + "; ".join(f"{p.description} ({p.message})" if p.message else p.description for p in failed)[:300]


def _load_hidden(extra: Path | None) -> dict:
    """The instructor's hidden checks: trusted code, run here in the judge (they get the remote stand-in)."""
    if extra is None or not extra.exists():
        return {}
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"hidden_checks_{abs(hash(str(extra)))}", extra)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {n: f for n, f in vars(module).items() if n.startswith("check_") and callable(f)}


def _hidden_checks(checks, remote, result: dict) -> None:
    reasons = [result["reason"]] if result["reason"] else []
    for hidden in checks:
        try:
            hidden(remote)
            result["points"] += 1
        except AssertionError as error:
            reasons.append(f"hidden check {hidden.__name__}: {str(error)[:150]}")
        except core.StubError:
            reasons.append(f"hidden check {hidden.__name__}: stub")
        except Exception as error:  # noqa: BLE001 (learner errors and instructor errors alike)
            reasons.append(f"hidden check {hidden.__name__}: {type(error).__name__}: {str(error)[:120]}")
    result["reason"] = "; ".join(reasons)

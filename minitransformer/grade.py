"""Grade submitted chapter notebooks: points per exercise, with a reason for every lost point.

    python -m minitransformer.grade SUBMISSION.ipynb ... --chapter 1 --csv grades.csv
    python -m minitransformer.grade chapters/01_mini_transformer.ipynb --chapter 1   # a learner, before submitting

How it works, and why:
1. Each submission is first *run* top to bottom in its own process, in a private temporary folder, with a
   time limit (`--timeout`). This records whether the notebook runs (ok / error in cell N / time-out);
   nothing it prints is trusted or graded. `--no-execute` skips this step.
2. Each exercise is then graded in a *fresh* process: the official chapter notebook's imports are run, then
   only the learner's definitions (functions, classes, imports) from the cell that defines the exercise —
   no other statement of the submission runs — and the library's check is called on them. Every exercise
   is graded in its own forked child with its own time limit, so one exercise cannot affect another.
3. Tampering does not pay: the learner's top-level statements never run in the grading context; the check
   functions, the reference implementations and the torch functions they use are fingerprinted before the
   learner's code runs and after every call into it, and any change scores the exercise 0 ("tampering");
   tensor subclasses cannot fake comparisons (subclass overrides are disabled while grading).
4. Extra, hidden checks: `--extra-tests DIR` loads DIR/chapter_NN.py (kept away from learners); each
   function `check_<name>(obj)` there is one more point for the exercise defining `<name>`, lost with the
   AssertionError's message as the reason.

The CSV has one row per submission: file, run status, each exercise's points, total, maximum, reasons. It is
written once, after every submission was graded, by this process alone.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
CHECK_CALL = re.compile(r"^\s*(\w+)\s*=\s*check\.(\w+)\(\s*(\w+)\s*\)", re.M)
OUTPUT_LIMIT = 200_000  # bytes read back from a grading process; more is cut (and ignored)


@dataclass
class Exercise:
    id: str
    name: str  # the name the learner's cell defines
    max_points: int


@dataclass
class Result:
    file: str
    run: str = "not run"
    points: dict = field(default_factory=dict)
    reasons: list = field(default_factory=list)


def chapter_notebook(chapter: int) -> Path:
    matches = sorted(SOLUTIONS.glob(f"{chapter:02d}_*.ipynb"))
    if not matches:
        available = sorted(int(p.name[:2]) for p in SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
        raise ValueError(f"no chapter {chapter!r}; the chapters are {available}")
    return matches[0]


def _code_cells(nb: dict) -> list[str]:
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise ValueError("the notebook has no list of cells")
    sources = []
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            sources.append("".join(source) if isinstance(source, list) else str(source))
    return sources


def exercises_of(chapter: int) -> tuple[list[Exercise], list[str]]:
    """The chapter's exercises (from its check cells) and the trusted context statements to run first."""
    from . import check

    nb = json.loads(chapter_notebook(chapter).read_text())
    exercises, context, imported = [], [], set()
    for source in _code_cells(nb):
        for _, checker_name, defined in CHECK_CALL.findall(source):
            exercise_id = getattr(getattr(check, checker_name), "exercise_id")
            exercises.append(Exercise(exercise_id, defined, check.EXERCISES[exercise_id].max_points))
        try:
            tree = ast.parse(_strip_magics(source))
        except SyntaxError:
            continue
        for node in tree.body:  # imports and plain aliases of imported names (tok = mt.tokenizer)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                context.append(ast.unparse(node))
                imported.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.Assign) and _root_name(node.value) in imported:
                context.append(ast.unparse(node))
    return exercises, context


def _root_name(node) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _strip_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def learner_definitions(cells: list[str], name: str) -> str | None:
    """The functions, classes and imports of the last cell that defines `name` at top level; nothing else."""
    for source in reversed(cells):
        try:
            tree = ast.parse(_strip_magics(source))
        except SyntaxError:
            continue
        defines = any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name for n in tree.body)
        if defines:
            kept = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom))]
            return ast.unparse(ast.Module(body=kept, type_ignores=[]))
    return None


def detect_chapter(nb: dict) -> int | None:
    meta = nb.get("metadata", {}).get("minitransformer", {}) if isinstance(nb.get("metadata"), dict) else {}
    if isinstance(meta, dict) and isinstance(meta.get("chapter"), int):
        return meta["chapter"]
    from . import check

    ids = {getattr(getattr(check, c, None), "exercise_id", None) for s in _code_cells(nb) for _, c, _ in CHECK_CALL.findall(s)}
    chapters = {int(i.split(".")[0]) for i in ids if i}
    return chapters.pop() if len(chapters) == 1 else None


# --- step 1: run the notebook ---------------------------------------------------------------------------

def run_notebook(path: Path, timeout: float) -> str:
    """Execute a copy of the notebook in a private folder and a process of its own; return its status."""
    with tempfile.TemporaryDirectory(prefix="grade-run-") as folder:
        copy = Path(folder) / "submission.ipynb"
        copy.write_bytes(path.read_bytes())
        code = (
            "import sys, nbformat\n"
            "from nbclient import NotebookClient\n"
            "from nbclient.exceptions import CellExecutionError, DeadKernelError\n"
            "nb = nbformat.read(sys.argv[1], as_version=4)\n"
            "client = NotebookClient(nb, timeout=None, kernel_name='python3', allow_errors=True,\n"
            "                        resources={'metadata': {'path': sys.argv[2]}})\n"
            "try:\n"
            "    client.execute()\n"
            "except DeadKernelError:\n"
            "    print('STATUS the kernel died'); sys.exit()\n"
            "code_cells = [c for c in nb.cells if c.cell_type == 'code']\n"
            "for i, cell in enumerate(code_cells, 1):\n"
            "    if 'raises-exception' in cell.metadata.get('tags', []):\n"
            "        continue  # a cell the course marks as meant to raise (it shows an error message)\n"
            "    for out in cell.get('outputs', []):\n"
            "        if out.get('output_type') == 'error':\n"
            "            print(f\"STATUS error in code cell {i}: {out.get('ename')}: {str(out.get('evalue'))[:120]}\"); sys.exit()\n"
            "print('STATUS ok')\n"
        )
        process = subprocess.Popen([sys.executable, "-c", code, str(copy), folder], cwd=folder,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_clean_env(folder),
                                   start_new_session=True)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the runner; its kernel exits when its parent is gone
            process.communicate()
            return f"time-out after {timeout:g} s"
        lines = [l for l in stdout.decode(errors="replace").splitlines() if l.startswith("STATUS ")]
        if not lines:
            tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            return f"could not run: {tail[0][:160]}"
        return lines[-1][len("STATUS "):]


def _clean_env(home: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "JUPYTER_"))}
    env.update({"HOME": home, "JUPYTER_RUNTIME_DIR": str(Path(home) / "runtime"), "PYTHONDONTWRITEBYTECODE": "1"})
    return env


# --- step 2: grade the definitions, in a fresh process --------------------------------------------------

def grade_definitions(chapter: int, cells: list[str], exercise_timeout: float, extra_tests: Path | None,
                      exercises: list[Exercise], context: list[str]) -> dict:
    """Grade every exercise of `chapter` from the submission's definitions, in a fresh worker process."""
    job = {
        "chapter": chapter,
        "context": context,
        "exercises": [{"id": e.id, "name": e.name, "max_points": e.max_points,
                       "source": learner_definitions(cells, e.name)} for e in exercises],
        "timeout": exercise_timeout,
        "extra": str(extra_tests / f"chapter_{chapter:02d}.py") if extra_tests and (extra_tests / f"chapter_{chapter:02d}.py").exists() else None,
    }
    with tempfile.TemporaryDirectory(prefix="grade-check-") as folder:
        total_timeout = 30 + exercise_timeout * (len(exercises) + 1)
        try:
            completed = subprocess.run([sys.executable, "-m", "minitransformer.grade", "--worker"], input=json.dumps(job).encode(),
                                       capture_output=True, timeout=total_timeout, cwd=folder, env=_clean_env(folder),
                                       start_new_session=True)
        except subprocess.TimeoutExpired:
            return {e.id: {"points": 0, "max": e.max_points, "reason": "time-out while grading"} for e in exercises}
    output = completed.stdout[:OUTPUT_LIMIT].decode(errors="replace")
    marker = output.rfind("RESULT ")
    if marker < 0:
        return {e.id: {"points": 0, "max": e.max_points, "reason": "grading failed"} for e in exercises}
    return json.loads(output[marker + len("RESULT "):].splitlines()[0])


def _fingerprint() -> dict:
    """Identities of everything a check relies on: check functions, references, torch comparisons."""
    import torch

    from . import calculator, check, forgetting, measure, model, quantize
    from .check import ch1, ch2, ch3, ch4, ch5, ch6, ch7, ch8, ch9, core
    from .peft import selective

    watched = {}
    for module in (check, core, ch1, ch2, ch3, ch4, ch5, ch6, ch7, ch8, ch9, model, measure, calculator, forgetting, selective, quantize):
        for attr, value in vars(module).items():
            if callable(value) or isinstance(value, dict):
                watched[f"{module.__name__}.{attr}"] = (id(value), id(getattr(value, "__code__", None)))
    for attr in ("allclose", "equal", "is_tensor", "cat", "randn", "manual_seed", "ones", "zeros"):
        watched[f"torch.{attr}"] = (id(getattr(torch, attr)), None)
    for attr in ("__eq__", "__ne__", "__sub__", "abs", "max", "allclose", "equal", "sum", "item", "shape"):
        watched[f"torch.Tensor.{attr}"] = (id(getattr(torch.Tensor, attr)), None)
    watched["builtins"] = tuple(id(getattr(__builtins__, a) if not isinstance(__builtins__, dict) else __builtins__[a])
                                for a in ("isinstance", "len", "abs", "all", "any", "sum", "type", "int", "float"))
    return watched


def _grade_one(exercise: dict, context: list[str], extra: str | None, baseline: dict) -> dict:
    """Runs in a forked child: define the learner's code, run the check and the hidden checks."""
    import torch

    from . import check
    from .check import core

    result = {"points": 0, "max": exercise["max_points"], "reason": ""}
    if not exercise["source"]:
        result["reason"] = f"missing: no cell defines {exercise['name']!r}"
        return result
    namespace: dict = {"__name__": "__submission__"}
    for statement in context:  # trusted: the official notebook's imports and aliases
        try:
            exec(statement, namespace)
        except Exception:  # e.g. an alias of something only the full notebook defines
            pass
    tampered = []

    def verify():
        if _fingerprint() != baseline:
            changed = [k for k, v in _fingerprint().items() if baseline.get(k) != v]
            tampered.append(changed[0] if changed else "?")
            raise core.StubError()  # stop this exercise at once

    core.AFTER_LEARNER_CALL.append(verify)
    try:
        with torch._C.DisableTorchFunctionSubclass():
            exec(compile(exercise["source"], "<submission>", "exec"), namespace)
            verify()
            candidate = namespace.get(exercise["name"])
            outcome = check.run(exercise["id"], candidate)
            verify()
    except Exception as error:  # the definitions themselves failed
        if tampered:
            result["reason"] = f"tampering: the submission changed {tampered[0]}"
            return result
        result["reason"] = f"error while defining: {type(error).__name__}: {str(error)[:150]}"
        return result
    if tampered:
        result["reason"] = f"tampering: the submission changed {tampered[0]}"
        return result
    result["points"] = outcome.points
    result["reason"] = _reason(outcome)
    if extra and outcome.status != "stub":
        result.update(_hidden_checks(extra, exercise, candidate, result))
    return result


def _reason(outcome) -> str:
    if outcome.status == "passed":
        return ""
    if outcome.status == "stub":
        return "stub"
    if outcome.status == "error":
        return "error: " + outcome.detail.replace("✘ your code raised ", "")[:200]
    failed = [p for p in outcome.parts if not p.passed]
    return "wrong result: " + "; ".join(f"{p.description} ({p.message})" if p.message else p.description for p in failed)[:300]


def _hidden_checks(extra: str, exercise: dict, candidate, result: dict) -> dict:
    import importlib.util

    spec = importlib.util.spec_from_file_location("hidden_checks", extra)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    checks = [f for n, f in sorted(vars(module).items()) if n == f"check_{exercise['name']}" or n.startswith(f"check_{exercise['name']}__")]
    points, maximum, reasons = result["points"], result["max"], [result["reason"]] if result["reason"] else []
    for hidden in checks:
        maximum += 1
        try:
            hidden(candidate)
            points += 1
        except AssertionError as error:
            reasons.append(f"hidden check {hidden.__name__}: {error}")
        except Exception as error:
            reasons.append(f"hidden check {hidden.__name__}: {type(error).__name__}: {str(error)[:120]}")
    return {"points": points, "max": maximum, "reason": "; ".join(reasons)}


def worker() -> None:
    """`python -m minitransformer.grade --worker`: grade the job on stdin; print one RESULT line."""
    job = json.loads(sys.stdin.read())
    import torch  # noqa: F401  (imported once here, before forking)

    from . import check  # noqa: F401
    from .runtime import setup

    setup()
    baseline = _fingerprint()
    results = {}
    for exercise in job["exercises"]:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: grade, write the result, leave without cleanup
            os.close(read_end)
            try:
                sys.stdout = open(os.devnull, "w")  # what the learner's code prints is not graded
                sys.stderr = open(os.devnull, "w")
                outcome = _grade_one(exercise, job["context"], job["extra"], baseline)
            except BaseException as error:  # noqa: BLE001 (sys.exit and friends too)
                outcome = {"points": 0, "max": exercise["max_points"], "reason": f"error: {type(error).__name__}: {str(error)[:150]}"}
            os.write(write_end, json.dumps(outcome).encode()[:OUTPUT_LIMIT])
            os._exit(0)
        os.close(write_end)
        outcome = _wait_for(pid, read_end, job["timeout"])
        results[exercise["id"]] = outcome or {"points": 0, "max": exercise["max_points"],
                                              "reason": f"time-out: the check did not finish in {job['timeout']:g} s"}
    sys.stdout.write("RESULT " + json.dumps(results) + "\n")


def _wait_for(pid: int, read_end: int, timeout: float):
    deadline = time.monotonic() + timeout
    chunks = []
    os.set_blocking(read_end, False)
    while True:
        try:
            chunk = os.read(read_end, 65536)
            if chunk:
                chunks.append(chunk)
        except BlockingIOError:
            pass
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            try:
                while chunk := os.read(read_end, 65536):
                    chunks.append(chunk)
            except BlockingIOError:
                pass
            os.close(read_end)
            try:
                return json.loads(b"".join(chunks).decode())
            except ValueError:
                return None
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            return None
        time.sleep(0.02)


# --- the command ----------------------------------------------------------------------------------------

def grade(path: Path, chapter: int, timeout: float = 300, exercise_timeout: float = 60, execute: bool = True,
          extra_tests: Path | None = None) -> Result:
    result = Result(str(path))
    exercises, context = exercises_of(chapter)
    zero = {e.id: 0 for e in exercises}
    try:
        nb = json.loads(Path(path).read_text(errors="replace"))
        cells = _code_cells(nb)
    except (OSError, ValueError) as error:
        result.run, result.points = "not run", zero
        result.reasons = [f"not a valid notebook: {str(error)[:150]}"]
        return result
    found = detect_chapter(nb)
    if found != chapter:
        result.run, result.points = "not run", zero
        result.reasons = [f"wrong chapter: this is {'chapter ' + str(found) if found else 'not a chapter'} notebook, "
                          f"graded as chapter {chapter}"]
        return result
    if execute:
        result.run = run_notebook(Path(path), timeout)
    graded = grade_definitions(chapter, cells, exercise_timeout, extra_tests, exercises, context)
    for exercise in exercises:
        outcome = graded.get(exercise.id, {"points": 0, "reason": "not graded"})
        result.points[exercise.id] = outcome["points"]
        result.points[exercise.id + " max"] = outcome.get("max", exercise.max_points)
        if outcome.get("reason"):
            result.reasons.append(f"{exercise.id}: {outcome['reason']}")
    return result


def write_csv(results: list[Result], chapter: int, path: Path) -> None:
    exercises, _ = exercises_of(chapter)
    rows = []
    for r in results:
        row = {"file": r.file, "run": r.run}
        total = maximum = 0
        for e in exercises:
            row[e.id] = r.points.get(e.id, 0)
            total += row[e.id]
            maximum += r.points.get(e.id + " max", e.max_points)
        row.update({"total": total, "max": maximum, "reasons": " | ".join(r.reasons)})
        rows.append(row)
    fields = ["file", "run", *[e.id for e in exercises], "total", "max", "reasons"]
    tmp = Path(path).with_suffix(".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def main(argv=None) -> int:
    if argv is None and sys.argv[1:] == ["--worker"]:
        worker()
        return 0
    parser = argparse.ArgumentParser(description="Grade chapter notebooks: points per exercise, and why.")
    parser.add_argument("submissions", nargs="+", type=Path)
    parser.add_argument("--chapter", type=int, required=True)
    parser.add_argument("--csv", type=Path, help="write the grades here")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to run a whole notebook (default 300)")
    parser.add_argument("--exercise-timeout", type=float, default=60, help="seconds per exercise check (default 60)")
    parser.add_argument("--no-execute", action="store_true", help="grade the definitions without running the notebook")
    parser.add_argument("--extra-tests", type=Path, help="folder with hidden checks, chapter_NN.py")
    args = parser.parse_args(argv)
    chapter_notebook(args.chapter)  # a clear error for a chapter that does not exist
    if args.extra_tests and not args.extra_tests.is_dir():
        parser.error(f"--extra-tests {args.extra_tests} is not a folder")
    results = []
    for path in args.submissions:
        start = time.perf_counter()
        result = grade(path, args.chapter, args.timeout, args.exercise_timeout, not args.no_execute, args.extra_tests)
        results.append(result)
        points = sum(v for k, v in result.points.items() if not k.endswith(" max"))
        maximum = sum(v for k, v in result.points.items() if k.endswith(" max")) or "?"
        print(f"{path}: {points}/{maximum} points, run: {result.run} ({time.perf_counter() - start:.1f} s)")
        for reason in result.reasons:
            print(f"    {reason}")
    if args.csv:
        write_csv(results, args.chapter, args.csv)
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The command: grade a class's notebooks in parallel (one submission per core) and write the CSV."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..check import core
from . import report
from .judge import grade_exercises
from .sandbox import INSTALL_HINT, ROOT, Pool, bwrap, clean_env, command, visible_in_sandbox
from .submission import (SOLUTIONS, BadSubmission, chapter_notebook, code_cells, detect_chapter, exercises_of,
                         learner_definitions, load, predictions)

MEMORY = 2 * 1024**3  # bytes an exercise's process may add to what it holds after importing torch
RUN_MEMORY = 8 * 1024**3  # address space of each process running a whole notebook (torch maps ~2-3 GB by itself)


@dataclass
class Result:
    file: str
    run: str = "not run"
    points: dict = field(default_factory=dict)
    reasons: list = field(default_factory=list)
    predictions: int = 0
    similar: str = ""
    flags: list = field(default_factory=list)
    seed: int | None = None
    definitions: dict = field(default_factory=dict)  # exercise name -> the learner's definitions
    exercise_names: dict = field(default_factory=dict)  # exercise id -> name


def hidden_paths(submissions, extra_tests=None, csv=None) -> list[Path]:
    """What a sandbox must not see: the submissions, the hidden tests, the grades, the worked solutions."""
    keep = [ROOT, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()]
    hide = {ROOT / "solutions", ROOT / ".git"}
    for path in [*submissions, *([csv] if csv else [])]:
        path = Path(path).resolve()
        folder = path.parent
        if any(k == folder or k.is_relative_to(folder) for k in keep):
            hide.add(path)  # a folder the course lives in: cover the file alone
        else:
            hide.add(folder)
    if extra_tests:
        hide.add(Path(extra_tests).resolve())
    tmp = Path(tempfile.gettempdir()).resolve()
    return sorted(p for p in hide if p != tmp and visible_in_sandbox(p))  # the rest is under the sandbox's empty /tmp


RUNNER = (
    "import ctypes, os, sys\n"
    "try:\n"
    "    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE=0: the kernel cannot open our fds or read our memory\n"
    "except (OSError, AttributeError):\n"
    "    pass\n"
    "nonce = sys.stdin.readline().strip()  # the judge's secret for this run: a status line without it is not ours\n"
    "status = os.dup(1)  # the channel to the judge, kept by this process alone (not inherited)\n"
    "null = os.open(os.devnull, os.O_RDWR)\n"
    "for fd in (0, 1, 2):\n"
    "    os.dup2(null, fd)  # the kernel and all it starts write to /dev/null: nothing they print is read\n"
    "def report(text):\n"
    "    os.write(status, ('\\nSTATUS ' + nonce + ' ' + text + '\\n').encode('utf-8', 'replace')[:2000]); sys.exit()\n"
    "import nbformat\n"
    "from nbclient import NotebookClient\n"
    "from nbclient.exceptions import DeadKernelError\n"
    "nb = nbformat.read(sys.argv[1], as_version=4)\n"
    "client = NotebookClient(nb, timeout=None, kernel_name='python3', allow_errors=True,\n"
    "                        resources={'metadata': {'path': sys.argv[2]}})\n"
    "try:\n"
    "    client.execute()\n"
    "except DeadKernelError:\n"
    "    report('the kernel died')\n"
    "for i, cell in enumerate(nb.cells, 1):  # numbered as a reader counts them, text cells included\n"
    "    if cell.cell_type != 'code' or 'raises-exception' in cell.metadata.get('tags', []):\n"
    "        continue  # a cell the course marks as meant to raise (it shows an error message)\n"
    "    for out in cell.get('outputs', []):\n"
    "        if out.get('output_type') == 'error':\n"
    "            report(f\"error in cell {i} (counting every cell from the top, text cells too): {out.get('ename')}: {str(out.get('evalue'))[:120]}\")\n"
    "report('ok')\n"
)
STATUS_WINDOW = 8192  # bytes of the channel kept while reading it: a status line is at most 2000


def run_notebook(path: Path, timeout: float, hide: list[Path], unsafe: bool) -> str:
    """Execute a copy of the notebook, sandboxed, in a private folder; return its status. Nothing it prints is
    graded or kept: the kernel's output goes to /dev/null, and the runner writes its status (after the kernel
    is done) on its own stdout, tagged with a secret the judge gave it on stdin. Whatever else reaches that
    pipe (code in the sandbox can write to bubblewrap's copy of it) is read and dropped, a window at a time."""
    import select

    nonce = secrets.token_hex(16)
    tag = f"\nSTATUS {nonce} ".encode()
    with tempfile.TemporaryDirectory(prefix="grade-run-") as folder:
        copy = Path(folder) / "submission.ipynb"
        copy.write_bytes(path.read_bytes())
        argv = [sys.executable, "-c", RUNNER, str(copy), folder]
        prlimit = shutil.which("prlimit")
        if prlimit:  # per process: the runner and the kernel each get RUN_MEMORY of address space
            argv = [prlimit, f"--as={RUN_MEMORY}", "--core=0", f"--fsize={200 * 1024**2}", "--", *argv]
        if not unsafe:
            os.chmod(folder, 0o777)  # the sandbox runs as nobody
            argv = command(argv, hide, unsafe, workdir=folder)
        process = subprocess.Popen(argv, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   stdin=subprocess.PIPE, env=clean_env(folder if unsafe else "/tmp"),
                                   start_new_session=True)
        status, window, deadline = None, b"", time.monotonic() + timeout
        try:
            try:
                process.stdin.write(nonce.encode() + b"\n")
                process.stdin.close()
            except OSError:
                pass
            channel = process.stdout.fileno()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return f"time-out after {timeout:g} s"
                if not select.select([channel], [], [], min(remaining, 1.0))[0]:
                    if process.poll() is not None and not select.select([channel], [], [], 0.5)[0]:
                        break  # the runner is gone and nothing more comes (a process it left may hold the pipe)
                    continue
                chunk = os.read(channel, 1 << 16)
                if not chunk:
                    break
                window += chunk
                at = window.rfind(tag)
                if at >= 0 and b"\n" in window[at + len(tag):]:
                    line = window[at + len(tag):].split(b"\n", 1)[0]
                    status = line.decode("utf-8", errors="replace")
                window = window[-STATUS_WINDOW:]
        finally:
            _kill(process)
            process.stdout.close()
    return status if status is not None else "could not run: the runner gave no status"


def _kill(process) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass
    process.wait()


def grade(path, chapter: int, timeout: float = 300, exercise_timeout: float = 60, execute: bool = True,
          extra_tests: Path | None = None, *, seed: int | None = None, unsafe: bool = False, memory: int = MEMORY,
          hide: list[Path] | None = None, parsed=None, pool=None) -> Result:
    """Grade one submission. Never raises for what the file contains: every problem is a reason."""
    path = Path(path).resolve()
    if not unsafe and bwrap() is None:
        raise RuntimeError(INSTALL_HINT)
    exercises, context = parsed or exercises_of(chapter)
    if seed is None:
        seed = core.HIDDEN_SEED if core.HIDDEN_SEED is not None else secrets.randbelow(2**31)
    previous, core.HIDDEN_SEED = core.HIDDEN_SEED, seed
    try:
        return _grade(path, chapter, timeout, exercise_timeout, execute, extra_tests, seed, unsafe, memory, hide,
                      exercises, context, pool)
    finally:
        core.HIDDEN_SEED = previous


def _grade(path, chapter, timeout, exercise_timeout, execute, extra_tests, seed, unsafe, memory, hide, exercises,
           context, pool) -> Result:
    result = Result(str(path), seed=seed, points={e.id: 0 for e in exercises})
    result.exercise_names = {e.id: e.name for e in exercises}
    extra = Path(extra_tests).resolve() / f"chapter_{chapter:02d}.py" if extra_tests else None
    if hide is None:
        hide = hidden_paths([path], extra_tests)
    try:
        nb = load(path)
        cells = code_cells(nb)
        found = detect_chapter(nb, cells)
        if found != chapter:
            raise BadSubmission(f"wrong chapter: this is {'chapter ' + str(found) if found else 'not a chapter'} "
                                f"notebook, graded as chapter {chapter}")
        result.predictions = predictions(cells)
        result.definitions = {e.name: learner_definitions(cells, e.name) for e in exercises}
        if execute:
            result.run = run_notebook(path, timeout, hide, unsafe)
        graded = grade_exercises(exercises, result.definitions, context, hide=hide, unsafe=unsafe,
                                 exercise_timeout=exercise_timeout, memory=memory, extra=extra, pool=pool)
    except BadSubmission as error:
        result.reasons = [str(error)]
        return result
    except Exception as error:  # noqa: BLE001 (one bad file never stops the class)
        result.reasons = [f"grading failed: {type(error).__name__}: {str(error)[:150]}"]
        return result
    for exercise in exercises:
        outcome = graded.get(exercise.id, {"points": 0, "reason": "not graded"})
        result.points[exercise.id] = outcome["points"]
        result.points[exercise.id + " max"] = outcome.get("max", exercise.max_points)
        if outcome.get("reason"):
            result.reasons.append(f"{exercise.id}: {outcome['reason']}")
    return result


def write_csv(results: list[Result], chapter: int, path: Path, seed: int | None = None) -> None:
    exercises, _ = exercises_of(chapter)
    report.duplicate_flags([r for r in results if not r.flags])
    solution, stubs = _reference_tokens(chapter, exercises)
    report.similarity_flags(results, solution, stubs)
    report.write_csv(results, exercises, Path(path), seed)


def _reference_tokens(chapter: int, exercises) -> tuple[dict, dict]:
    from ..paths import CHAPTERS

    tokens = []
    for notebook in (chapter_notebook(chapter), CHAPTERS / chapter_notebook(chapter).name):
        try:
            cells = code_cells(load(notebook))
        except (BadSubmission, OSError):
            cells = []
        tokens.append({e.name: report.normalized_tokens(learner_definitions(cells, e.name) or "") for e in exercises})
    return tokens[0], tokens[1]


def _argv(argv: list[str]) -> list[str]:
    """A submission whose file name starts with '-' is a file, not an option."""
    return [f"./{a}" if a.startswith("-") and not a.startswith("--") and Path(a).is_file() else a for a in argv]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Grade chapter notebooks: points per exercise, and why.")
    parser.add_argument("submissions", nargs="+", type=Path)
    parser.add_argument("--chapter", type=int, required=True)
    parser.add_argument("--csv", type=Path, help="write the grades here")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to run a whole notebook (default 300)")
    parser.add_argument("--exercise-timeout", type=float, default=60, help="seconds per exercise check (default 60)")
    parser.add_argument("--no-execute", action="store_true", help="grade the definitions without running the notebook")
    parser.add_argument("--extra-tests", type=Path, help="folder with hidden checks, chapter_NN.py")
    parser.add_argument("--seed", type=int, help="the hidden seed for the checks' inputs (default: a random one, in the CSV)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="submissions graded at once (default: one per core)")
    parser.add_argument("--memory", type=float, default=MEMORY / 1024**3, help="GiB an exercise may allocate (default 2)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="grade without bubblewrap: learners' code runs unconfined, as you (only for code you trust)")
    args = parser.parse_args(_argv(list(sys.argv[1:] if argv is None else argv)))
    chapter_notebook(args.chapter)  # a clear error for a chapter that does not exist
    if not args.unsafe_no_sandbox and bwrap() is None:
        parser.error(INSTALL_HINT)
    submissions = [p.resolve() for p in args.submissions]  # before any work, whatever the working folder
    extra = args.extra_tests.resolve() if args.extra_tests else None
    csv_path = args.csv.resolve() if args.csv else None
    if extra and not extra.is_dir():
        parser.error(f"--extra-tests {args.extra_tests} is not a folder")
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    core.HIDDEN_SEED = seed
    parsed = exercises_of(args.chapter)
    hide = hidden_paths(submissions, extra, csv_path)
    start = time.perf_counter()
    pool = Pool(hide, args.unsafe_no_sandbox, parsed[1])

    def one(path):
        began = time.perf_counter()
        result = grade(path, args.chapter, args.timeout, args.exercise_timeout, not args.no_execute, extra, seed=seed,
                       unsafe=args.unsafe_no_sandbox, memory=int(args.memory * 1024**3), hide=hide, parsed=parsed, pool=pool)
        points = sum(v for k, v in result.points.items() if not k.endswith(" max"))
        maximum = sum(v for k, v in result.points.items() if k.endswith(" max")) or "?"
        lines = [f"{path}: {points}/{maximum} points, run: {result.run} ({time.perf_counter() - began:.1f} s)"]
        lines += [f"    {reason}" for reason in result.reasons]
        print("\n".join(lines), flush=True)
        return result

    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as threads:
            results = list(threads.map(one, submissions))
    finally:
        pool.close()
    print(f"graded {len(results)} submissions in {time.perf_counter() - start:.1f} s (seed {seed})")
    if csv_path:
        write_csv(results, args.chapter, csv_path, seed)
        print(f"wrote {csv_path}")
    return 0

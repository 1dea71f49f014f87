"""The judge's side of the sandbox: start bubblewrap, send requests, read only the replies to them.

A sandbox sees the system and the course read-only, a private writable /tmp, no network, its own process
IDs (everything in it dies with it), none of the other submissions, hidden tests or grade files (they are
covered), and runs with no capabilities as user `nobody`. Memory, CPU time, file size and process count
are limited inside (see server.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import wire

from ..paths import REPOSITORY as ROOT
INSTALL_HINT = ("bubblewrap is not installed: install it (Debian/Ubuntu: `sudo apt-get install bubblewrap`; "
                "Fedora: `sudo dnf install bubblewrap`), or pass --unsafe-no-sandbox to run learners' code "
                "unconfined, as your own user (only for code you trust)")


class SandboxError(BaseException):
    """The sandbox timed out, died or replied with something that is not a reply (BaseException: a check's
    `except Exception` must not swallow it)."""


# The sandbox gets a fresh, empty /tmp. A course or a Python that lives under /tmp (a clone in a temp folder, as
# CI makes) is bound back in, read-only, so the sandbox can still import the course and run its Python.
REBOUND = sorted({p for p in (ROOT, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve())
                  if p.is_relative_to("/tmp")})


def visible_in_sandbox(path: Path) -> bool:
    """Whether the sandbox could see `path` without a cover: outside /tmp, or inside a folder bound back in."""
    return not path.is_relative_to("/tmp") or any(path.is_relative_to(r) for r in REBOUND)


def bwrap() -> str | None:
    return shutil.which("bwrap")


def _covers(hide: list[Path]) -> list[str]:
    args = []
    for path in hide:
        if path.is_dir():
            args += ["--tmpfs", str(path)]
        elif path.exists():
            args += ["--ro-bind", "/dev/null", str(path)]
    return args


def command(argv: list[str], hide: list[Path], unsafe: bool, workdir: str | None = None) -> list[str]:
    """`argv` wrapped in bubblewrap (or as is when unsafe); `workdir`: a folder it may write, its working folder."""
    if unsafe:
        return argv
    tool = bwrap()
    if tool is None:
        raise RuntimeError(INSTALL_HINT)
    rebind = [arg for path in REBOUND for arg in ("--ro-bind", str(path), str(path))]
    return [tool, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", *rebind,
            *_covers(hide), *(["--bind", workdir, workdir] if workdir else []),
            "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534",
            "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--chdir", workdir or "/tmp",
            "--setenv", "HOME", "/tmp", "--", *argv]


def clean_env(home: str = "/tmp") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "JUPYTER_"))}
    env.update({"HOME": home, "PYTHONDONTWRITEBYTECODE": "1", "JUPYTER_RUNTIME_DIR": str(Path(home) / "runtime"),
                "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    return env


class Sandbox:
    """One sandboxed server for one submission; `request` sends a request and waits for its own reply."""

    def __init__(self, hide: list[Path], unsafe: bool, context: list[str] = (), start_timeout: float = 180):
        argv = [sys.executable, "-m", "minitransformer.course.grade.server"]
        self.process = subprocess.Popen(command(argv, hide, unsafe), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, env=clean_env(), cwd="/tmp" if unsafe else None,
                                        start_new_session=True)
        self.seq = 0
        self.unsafe = unsafe
        try:
            header, _ = wire.read_frame(self.process.stdout.fileno(), time.monotonic() + start_timeout)
        except (TimeoutError, EOFError, OSError, ValueError) as error:
            self.close()
            raise RuntimeError(f"the sandbox did not start ({type(error).__name__})") from None
        if header != {"ready": True}:
            self.close()
            raise RuntimeError("the sandbox did not start")
        try:
            self.request({"op": "preload", "context": list(context)}, b"", time.monotonic() + start_timeout)
        except SandboxError:
            self.close()
            raise RuntimeError("the sandbox did not start (preloading the notebook's imports)") from None

    def request(self, header: dict, blob: bytes = b"", deadline: float | None = None) -> tuple[dict, bytes]:
        self.seq += 1
        header = {**header, "seq": self.seq}
        try:
            wire.write_frame(self.process.stdin.fileno(), header, blob)
            while True:
                reply, payload = wire.read_frame(self.process.stdout.fileno(), deadline)
                if isinstance(reply, dict) and reply.get("seq") == self.seq:
                    return reply, payload
                # anything else is not the reply to this request: ignored
        except TimeoutError:
            raise SandboxError("time-out") from None
        except (EOFError, OSError, ValueError, RecursionError, wire.WireError):
            raise SandboxError("the sandbox died") from None

    def close(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except OSError:
            pass
        if self.unsafe:
            _kill_descendants(self.process.pid)
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.process.wait()


def _kill_descendants(pid: int) -> None:
    """Unsafe mode only: best effort, by walking /proc for children of the server's session."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().split()[5]) == pid:  # the session id
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass


class Pool:
    """One long-lived sandbox per grading thread, reused from exercise to exercise (its server kills every
    process and empties /tmp between exercises); a sandbox that timed out or died is replaced."""

    def __init__(self, hide: list[Path], unsafe: bool, context: list[str]):
        import threading

        self.hide, self.unsafe, self.context = hide, unsafe, context
        self.local, self.lock, self.open = threading.local(), threading.Lock(), []

    def get(self) -> Sandbox:
        sandbox = getattr(self.local, "sandbox", None)
        if sandbox is None or sandbox.process.poll() is not None:
            sandbox = self.local.sandbox = Sandbox(self.hide, self.unsafe, self.context)
            with self.lock:
                self.open.append(sandbox)
        return sandbox

    def discard(self) -> None:
        sandbox = getattr(self.local, "sandbox", None)
        if sandbox is not None:
            sandbox.close()
        self.local.sandbox = None

    def close(self) -> None:
        with self.lock:
            for sandbox in self.open:
                sandbox.close()
            self.open.clear()


class Transport:
    """What `check.core.call_learner` and `call_probe` use while grading: requests to one exercise's child."""

    def __init__(self, sandbox: Sandbox, deadline: float):
        self.sandbox, self.deadline = sandbox, deadline
        self.reference_used: str | None = None

    def _send(self, header: dict, args: tuple):
        from ..check.core import LearnerError, StubError

        reply, payload = self.sandbox.request(header, wire.pickle_args(args), self.deadline)
        if reply.get("reference_used") and not self.reference_used:
            self.reference_used = str(reply["reference_used"])[:120]
        if self.reference_used:
            raise ReferenceUse(self.reference_used)
        if reply.get("stub"):
            raise StubError()
        if "crashed" in reply:  # the exercise's process died (os._exit, out of memory, a crash): the sandbox lives on
            raise LearnerError(f"{str(reply['crashed'])[:120]} (it exited, crashed or ran out of memory)")
        if "raised" in reply:
            raise learner_error(str(reply["raised"])[:60], str(reply.get("message", ""))[:4000], str(reply.get("where", ""))[:200])
        try:
            data = wire.decode(payload)
        except wire.WireError as error:
            raise LearnerError(f"WireError: {error}") from None
        if not isinstance(data, dict) or "result" not in data:
            raise LearnerError("WireError: a reply without a result")
        return data

    def call(self, remote, args: tuple):
        import torch

        data = self._send({"op": "call"}, args)
        states = data.get("states")
        for arg, state in zip(args, states if isinstance(states, list) else []):
            if isinstance(arg, torch.nn.Module) and isinstance(state, dict):
                _apply_state(arg, state)
        return data["result"]

    def probe(self, probe, remote, args: tuple):
        return self._send({"op": "probe", "probe": f"{probe.__module__}:{probe.__name__}"}, args)["result"]


class ReferenceUse(BaseException):
    """The learner's code reached a forbidden library object in the sandbox."""


def _apply_state(module, state: dict) -> None:
    """What the learner's function did to a module the judge gave it: requires_grad flags and values."""
    import torch

    with torch.no_grad():
        for name, p in module.named_parameters():
            entry = state.get(name)
            if isinstance(entry, (list, tuple)) and len(entry) == 2 and type(entry[0]) is bool:
                p.requires_grad_(entry[0])
                if torch.is_tensor(entry[1]) and entry[1].shape == p.shape:
                    p.copy_(entry[1].to(p.dtype))


_BUILTIN_ERRORS = {e.__name__: e for e in (ValueError, TypeError, KeyError, IndexError, RuntimeError, AttributeError,
                                           AssertionError, ZeroDivisionError, NameError)}


def learner_error(kind: str, message: str, where: str):
    """A LearnerError that is also the builtin exception it names, so `except ValueError` in a check works."""
    from ..check.core import LearnerError

    base = _BUILTIN_ERRORS.get(kind)
    cls = type(f"Learner{kind}", (LearnerError, base), {}) if base else LearnerError
    error = cls(f"{kind}: {message}" if base is None else message, where)
    error.summary = f"{kind}: {message}"
    return error

"""Runs inside the sandbox: defines a learner's code in a fresh child per exercise and answers the judge.

    python -m minitransformer.course.grade.server      (started by the judge, inside bubblewrap)

The server itself never runs learner code. For each exercise it forks a child that runs the notebook's
imports, installs the tripwires (the exercise's forbidden library objects and the check and grading modules
raise when learner code reaches them), defines the learner's functions and classes, and then answers the
judge's requests: call the learner's function on these inputs, or run this probe next to it. The child's
stdout and stderr go to /dev/null, it cannot write to the judge's pipe (the server relays each reply, tagged
with the request's number, and is not dumpable, so no process can open its file descriptors), and when the
exercise ends the server kills the child and every other process left in the sandbox.
"""

from __future__ import annotations

import builtins
import ctypes
import os
import resource
import signal
import socket
import sys
import traceback
import types

from . import wire

SUBMISSION = "<submission>"
_USED: list[str] = []  # what the learner's code reached that it must not


class ReferenceUsed(BaseException):
    """Learner code called a forbidden library object (BaseException: `except Exception` does not hide it)."""


def _from_submission() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename == SUBMISSION:
            return True
        frame = frame.f_back
    return False


def _tripwire(obj, label: str):
    """A wrapper for a forbidden object whose code cannot be rewired in place (a builtin, a partial...)."""
    import functools

    def guard(*args, **kwargs):
        if _from_submission():
            _USED.append(label)
            raise ReferenceUsed(f"uses the library's reference for this exercise ({label})")
        return obj(*args, **kwargs)

    try:
        functools.update_wrapper(guard, obj)
        del guard.__wrapped__  # no shortcut back to the original
    except (AttributeError, TypeError):
        pass
    return guard


def _label(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def _trampoline(free: int, key: int, dispatch) -> types.CodeType:
    """Code for `function.__code__` that hands every call to `dispatch(key, args, kwargs)`; `free` closure
    cells, as many as the function it replaces has (CPython requires the same number)."""
    import warnings

    names = [f"_cell{i}" for i in range(free)]
    source = "def _outer():\n"
    source += f"    {' = '.join(names)} = None\n" if names else ""
    source += "    def _tripwire(*args, **kwargs):\n"
    source += f"        if False:\n            ({', '.join(names)},)\n" if names else ""
    source += "        return '__dispatch__'(987654321, args, kwargs)\n    return _tripwire\n"
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "'str' object is not callable": the constant is replaced below
        exec(compile(source, "<tripwire>", "exec"), namespace)
    code = namespace["_outer"]().__code__
    return code.replace(co_consts=tuple(dispatch if c == "__dispatch__" else key if c == 987654321 else c
                                        for c in code.co_consts))


def _all_subclasses(cls: type) -> set:
    found, todo = {cls}, [cls]
    while todo:
        try:
            subs = type.__subclasses__(todo.pop())
        except TypeError:
            continue
        for sub in subs:
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def _init_guard(dispatch, key: int):
    def __init__(self, *args, **kwargs):
        return dispatch(key, (self, *args), kwargs)

    return __init__


class Tripwires:
    """The exercise's forbidden library objects, made to raise when learner code reaches them, by any route.

    A forbidden Python function (or a method of a forbidden class) gets new code in place: every reference to
    it, however it was reached (the package's attributes, `importlib`, `sys.modules`, a copy made elsewhere
    in the library or the checks), now runs the tripwire first. It raises when learner code is on the call
    stack, or, for a method, when `self` is not an instance of the library's own classes (a learner's
    subclass, or a learner class that borrowed the method). `reached(candidate)` then looks at what the
    learner defined: the forbidden object itself, a wrapper of it, a subclass or an instance of a forbidden
    class, a forbidden method in the learner's class."""

    def __init__(self, forbidden: list, namespace: dict):
        self.ids: dict[int, str] = {}  # id of a forbidden object (or its guard) -> label
        self.classes: tuple = tuple(obj for obj in forbidden if isinstance(obj, type))
        self.labels = {cls: _label(cls) for cls in self.classes}
        self._keep: list = []  # the forbidden objects stay alive while their ids are in self.ids
        originals: dict[int, tuple] = {}

        def dispatch(key, args, kwargs):
            original, label, trusted = originals[key]
            if _from_submission() or (trusted is not None and (not args or type(args[0]) not in trusted)):
                _USED.append(label)
                raise ReferenceUsed(f"uses the library's reference for this exercise ({label})")
            return original(*args, **kwargs)

        def rewire(function, label: str, trusted) -> bool:
            if not isinstance(function, types.FunctionType):
                return False
            if function.__code__.co_filename == "<tripwire>":  # already rewired (listed twice)
                return True
            code = function.__code__
            copy = types.FunctionType(code, function.__globals__, function.__name__, function.__defaults__,
                                      function.__closure__)
            copy.__kwdefaults__ = function.__kwdefaults__
            copy.__dict__.update(function.__dict__)
            key = len(originals) + 1
            originals[key] = (copy, label, trusted)
            function.__code__ = _trampoline(len(code.co_freevars), key, dispatch)
            self.ids[id(function)] = label
            self._keep.append(function)
            return True

        for obj in forbidden:
            label = _label(obj)
            self.ids[id(obj)] = label
            self._keep.append(obj)
            if isinstance(obj, type):
                trusted = frozenset(_all_subclasses(obj))  # the library's own subclasses, before learner code
                for name, value in list(vars(obj).items()):
                    if isinstance(value, staticmethod):
                        rewire(value.__func__, label, None)
                    elif isinstance(value, classmethod):
                        rewire(value.__func__, label, None)
                    elif isinstance(value, property):
                        for accessor in (value.fget, value.fset, value.fdel):
                            rewire(accessor, label, trusted)
                    else:
                        rewire(value, label, trusted)
                if "__init__" not in vars(obj):  # an inherited __init__ (shared with other classes): guard it here
                    key = len(originals) + 1
                    originals[key] = (obj.__init__, label, trusted)
                    obj.__init__ = guarded_init = _init_guard(dispatch, key)
                    self.ids[id(guarded_init)] = label
                    self._keep.append(guarded_init)
                continue
            if rewire(obj, label, None):
                continue
            guard = _tripwire(obj, label)  # not a Python function: replace the library's references to it
            self.ids[id(guard)] = label
            self._keep.append(guard)
            for module in list(sys.modules.values()):
                if getattr(module, "__name__", "").startswith(("minitransformer", "__main__")):
                    for attr, value in list(vars(module).items()):
                        if value is obj:
                            setattr(module, attr, guard)
            for attr, value in list(namespace.items()):
                if value is obj:
                    namespace[attr] = guard

    def reached(self, candidate) -> str | None:
        """The forbidden object the learner's definition is, wraps, subclasses, instantiates or borrows; or None."""
        todo, seen = [candidate], set()
        while todo and len(seen) < 10_000:
            obj = todo.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if id(obj) in self.ids:
                return self.ids[id(obj)]
            try:
                if isinstance(obj, type):
                    for klass in type.mro(obj):
                        if klass in self.labels:
                            return f"{self.labels[klass]}, subclassed"
                    for klass in [*type.mro(obj), *type.mro(type(obj))]:
                        if not str(getattr(klass, "__module__", "")).startswith(("builtins", "torch", "typing", "abc", "minitransformer")):
                            todo.extend(vars(klass).values())
                    continue
                for klass in type.mro(type(obj)):
                    if klass in self.labels:
                        return f"{self.labels[klass]}, an instance"
                for attr in ("__func__", "__wrapped__", "func", "fget", "fset", "__self__"):
                    try:
                        inner = getattr(obj, attr)  # learner code may run here: the child is sandboxed anyway
                    except Exception:  # noqa: BLE001
                        continue
                    if attr != "__self__" or not isinstance(inner, types.ModuleType):
                        todo.append(inner)
            except Exception:  # noqa: BLE001 (an odd object: nothing more to look at)
                continue
        return None


def install_tripwires(forbidden: list, namespace: dict) -> Tripwires:
    """Make the forbidden objects raise when learner code reaches them; block importing the check modules."""
    wires = Tripwires(forbidden, namespace)
    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if globals is not None and globals.get("__name__") == "__submission__":
            wanted = [name] + [f"{name}.{f}" for f in (fromlist or ())]
            if any(w.startswith(("minitransformer.course.check", "minitransformer.course.grade")) for w in wanted):
                _USED.append(name)
                raise ReferenceUsed("uses the library's reference for this exercise (imports the checks)")
        return real_import(name, globals, locals, fromlist, level)

    builtins.__import__ = guarded_import
    return wires


def _limit(memory: int, cpu: int) -> None:
    with open("/proc/self/statm") as handle:
        virtual = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    for kind, value in ((resource.RLIMIT_AS, virtual + memory), (resource.RLIMIT_CPU, cpu),
                        (resource.RLIMIT_FSIZE, 20 * 1024 * 1024), (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, 64)):
        try:
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError):
            pass


def _where(error: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == SUBMISSION]
    if not frames:
        return ""
    f = frames[-1]
    return f"(in {f.name}, line {f.lineno})"


def _reply_error(sock, error: BaseException) -> None:
    used = {"reference_used": _USED[0]} if _USED else {}
    if isinstance(error, NotImplementedError):
        wire.write_frame(sock, {"stub": True, **used})
    else:
        wire.write_frame(sock, {"raised": type(error).__name__[:60], "message": str(error)[:4000], "where": _where(error), **used})


def child(sock: int, job: dict) -> None:
    """One exercise: define the learner's code, then answer requests until the server kills us."""
    import torch

    from .. import check
    from ..check.core import EXERCISES

    _not_dumpable()
    _limit(job["memory"], job["cpu"])
    namespace: dict = {"__name__": "__submission__"}
    for statement in job["context"]:  # the official notebook's imports and aliases
        try:
            exec(compile(statement, "<notebook>", "exec"), namespace)
        except Exception:  # noqa: BLE001 (an alias of something only the full notebook defines)
            pass
    exercise = EXERCISES[job["id"]]
    wires = install_tripwires(list(exercise.forbidden), namespace)
    try:
        exec(compile(job["source"], SUBMISSION, "exec"), namespace)
        candidate = namespace.get(job["name"])
        if candidate is None:
            raise NameError(f"{job['name']!r} is not defined")
        reached = wires.reached(candidate)
        if reached:
            _USED.append(reached)
            raise ReferenceUsed(f"uses the library's reference for this exercise ({reached})")
    except BaseException as error:  # noqa: BLE001
        wire.write_frame(sock, {"define_error": f"{type(error).__name__}: {str(error)[:200]}",
                                **({"reference_used": _USED[0]} if _USED else {})})
        return
    wire.write_frame(sock, {"ready": True})
    while True:
        try:
            header, blob = wire.read_frame(sock)
        except (EOFError, OSError):
            return
        try:
            args = wire.unpickle_args(blob)
            if header["op"] == "probe":
                module, _, name = header["probe"].partition(":")
                probe = getattr(sys.modules[module], name)
                result, states = probe(candidate, *args), None
            else:
                with torch.enable_grad():
                    result = candidate(*args)
                states = [{n: [p.requires_grad, p.detach()] for n, p in a.named_parameters()}
                          if isinstance(a, torch.nn.Module) else None for a in args]
            payload = wire.encode({"result": result, "states": states})
        except BaseException as error:  # noqa: BLE001 (SystemExit and friends too)
            _reply_error(sock, error)
            continue
        wire.write_frame(sock, {"ok": True, **({"reference_used": _USED[0]} if _USED else {})}, payload)


def _kill_others() -> None:
    """Kill every process in this sandbox except its init and the server (the sandbox has its own PIDs)."""
    me = os.getpid()
    for _ in range(100):
        others = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
        if not others:
            return
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass


def _not_dumpable() -> None:
    """Other processes of the same user can no longer ptrace us or open our file descriptors via /proc."""
    try:
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def _wipe_tmp() -> None:
    import shutil

    for entry in os.listdir("/tmp"):
        path = os.path.join("/tmp", entry)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            pass


def serve() -> None:
    requests, replies = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    _not_dumpable()  # other processes in the sandbox cannot open our pipes through /proc
    import torch  # noqa: F401  (imported once, before forking)

    from .. import check
    from ...runtime import setup

    setup()
    own_pid_namespace = os.getpid() in (1, 2)
    wire.write_frame(replies, {"ready": True})
    pid, sock = None, None
    while True:
        try:
            header, blob = wire.read_frame(requests)
        except (EOFError, OSError):
            break
        seq = header.get("seq")
        if header["op"] == "preload":  # the official notebook's imports, once, before any learner code
            for statement in header["context"]:
                try:
                    exec(compile(statement, "<notebook>", "exec"), {})
                except Exception:  # noqa: BLE001
                    pass
            wire.write_frame(replies, {"seq": seq, "ready": True})
            continue
        if header["op"] == "exercise":
            parent_end, child_end = socket.socketpair()
            pid = os.fork()
            if pid == 0:
                parent_end.close()
                os.close(requests)
                os.close(replies)
                try:
                    child(child_end.fileno(), header)
                finally:
                    os._exit(0)
            child_end.close()
            sock = parent_end
        elif header["op"] == "end":
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except OSError:
                    pass
            if sock is not None:
                sock.close()
            pid, sock = None, None
            if own_pid_namespace:  # the next exercise (maybe another learner's) starts from a clean sandbox
                _kill_others()
                _wipe_tmp()
            wire.write_frame(replies, {"seq": seq, "ended": True})
            continue
        else:  # a call or a probe: pass it to the child
            try:
                wire.write_frame(sock.fileno(), header, blob)
            except (OSError, AttributeError):
                wire.write_frame(replies, {"seq": seq, "crashed": "the exercise's process is gone"})
                continue
        try:  # relay the child's reply, tagged with the request's number
            reply, payload = wire.read_frame(sock.fileno())
            if not isinstance(reply, dict):
                raise wire.WireError("not a dict")
        except (EOFError, OSError, ValueError, RecursionError, wire.WireError):
            reply, payload = {"crashed": "the exercise's process ended without replying"}, b""
        reply["seq"] = seq
        wire.write_frame(replies, reply, payload)


if __name__ == "__main__":
    serve()

"""Plain data across the sandbox wall: JSON for numbers, strings, lists and dicts, safetensors for tensors.

What the sandbox sends back is never unpickled. Tensors come back as plain `torch.Tensor`s (a subclass and
its overrides do not survive), numbers as `int`/`float`, containers as `list`/`tuple`/`dict`, an exact
`nn.Linear` as a fresh `nn.Linear`; anything else as `Opaque(type name)`, which equals nothing but itself.
Requests the judge sends *into* the sandbox are pickled (trusted data, only ever loaded inside it).
"""

from __future__ import annotations

import io
import json
import os
import select
import time

MAX_DEPTH = 32
MAX_ITEMS = 200_000
MAX_FRAME = 256 * 1024 * 1024  # bytes of one message; more is a broken reply


class WireError(Exception):
    """A reply that is not well-formed plain data."""


# --- encoding (inside the sandbox) ---------------------------------------------------------------------------

def encode(value) -> bytes:
    import torch
    from safetensors.torch import save

    tensors: dict = {}
    count = 0

    def enc(v, depth):
        nonlocal count
        count += 1
        if depth > MAX_DEPTH or count > MAX_ITEMS:
            raise WireError("the value is nested too deeply or is too large to send back")
        if v is None or type(v) is bool:
            return v
        if isinstance(v, torch.Tensor):
            t = v.detach().as_subclass(torch.Tensor)
            if t.layout != torch.strided:
                t = t.to_dense()
            key = f"t{len(tensors)}"
            tensors[key] = t.contiguous().clone()
            return {"$t": key}
        if isinstance(v, bool):
            return bool(v)
        if isinstance(v, int):
            return int.__index__(v)
        if isinstance(v, float):
            f = float.__float__(v)
            return {"$f": repr(f)} if f != f or f in (float("inf"), float("-inf")) else f
        if isinstance(v, str):
            return {"$s": str.__str__(v)[:100_000]}
        if type(v) is torch.nn.Linear:
            return {"$linear": [v.in_features, v.out_features, enc(v.weight, depth + 1),
                                None if v.bias is None else enc(v.bias, depth + 1)]}
        if isinstance(v, (list, tuple, set, frozenset)):
            items = [enc(x, depth + 1) for x in (sorted(v, key=repr) if isinstance(v, (set, frozenset)) else v)]
            return {"$tuple" if isinstance(v, tuple) else "$list": items}
        if isinstance(v, dict):
            return {"$dict": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in v.items()]}
        if type(v).__module__ == "numpy":
            if hasattr(v, "shape") and getattr(v, "ndim", 0) > 0:
                return enc(torch.as_tensor(v.copy()), depth + 1)
            item = v.item()
            return enc(item, depth + 1) if isinstance(item, (int, float, bool)) else {"$object": type(v).__name__}
        return {"$object": type(v).__name__[:100]}

    meta = json.dumps(enc(value, 0)).encode()
    blob = save(tensors) if tensors else b""
    return len(meta).to_bytes(8, "big") + meta + blob


# --- decoding (in the judge) ---------------------------------------------------------------------------------

def decode(data: bytes):
    import torch
    from safetensors.torch import load

    from ..check.core import Opaque

    if len(data) < 8:
        raise WireError("a reply too short to hold data")
    n = int.from_bytes(data[:8], "big")
    if n > len(data) - 8:
        raise WireError("a reply shorter than it says")
    try:
        meta = json.loads(data[8:8 + n])
        tensors = load(data[8 + n:]) if len(data) > 8 + n else {}
    except (ValueError, RecursionError, MemoryError) as error:
        raise WireError(f"a reply that is not plain data ({type(error).__name__})") from None
    count = 0

    def dec(v, depth):
        nonlocal count
        count += 1
        if depth > MAX_DEPTH or count > MAX_ITEMS:
            raise WireError("a reply nested too deeply")
        if v is None or type(v) in (bool, int, float):
            return v
        if type(v) is dict and len(v) == 1:
            (tag, x), = v.items()
            if tag == "$t" and x in tensors:
                return tensors[x].as_subclass(torch.Tensor)
            if tag == "$f" and x in ("nan", "inf", "-inf"):
                return float(x)
            if tag == "$s" and type(x) is str:
                return x
            if tag in ("$list", "$tuple") and type(x) is list:
                items = [dec(i, depth + 1) for i in x]
                return tuple(items) if tag == "$tuple" else items
            if tag == "$dict" and type(x) is list:
                out = {}
                for pair in x:
                    if type(pair) is not list or len(pair) != 2:
                        raise WireError("a malformed dict in a reply")
                    key = dec(pair[0], depth + 1)
                    try:
                        out[key] = dec(pair[1], depth + 1)
                    except TypeError:
                        raise WireError("a dict key that cannot be a key") from None
                return out
            if tag == "$linear" and type(x) is list and len(x) == 4 and all(type(i) is int and 0 < i < 10**6 for i in x[:2]):
                weight, bias = dec(x[2], depth + 1), None if x[3] is None else dec(x[3], depth + 1)
                layer = torch.nn.Linear(x[0], x[1], bias=bias is not None)
                with torch.no_grad():
                    if torch.is_tensor(weight) and weight.shape == layer.weight.shape:
                        layer.weight.copy_(weight)
                    if bias is not None and torch.is_tensor(bias) and bias.shape == layer.bias.shape:
                        layer.bias.copy_(bias)
                return layer
            if tag == "$object" and type(x) is str:
                return Opaque(x[:100])
        raise WireError("a reply with a value of unknown kind")

    return dec(meta, 0)


# --- frames on pipes -----------------------------------------------------------------------------------------

def write_frame(fd: int, header: dict, blob: bytes = b"") -> None:
    head = json.dumps(header).encode()
    data = len(head).to_bytes(8, "big") + head + len(blob).to_bytes(8, "big") + blob
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, left = [], n
    while left:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, deadline: float | None = None) -> tuple[dict, bytes]:
    n = int.from_bytes(_read_exact(fd, 8, deadline), "big")
    if n > MAX_FRAME:
        raise WireError("a message too large")
    header = json.loads(_read_exact(fd, n, deadline))
    m = int.from_bytes(_read_exact(fd, 8, deadline), "big")
    if m > MAX_FRAME:
        raise WireError("a message too large")
    return header, _read_exact(fd, m, deadline)


def pickle_args(args) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(args, buffer)
    return buffer.getvalue()


def unpickle_args(blob: bytes):  # inside the sandbox only: the judge's own data
    import torch

    return torch.load(io.BytesIO(blob), weights_only=False)

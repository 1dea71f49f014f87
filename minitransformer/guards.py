"""Guards: what an argument must be, stated where numbers and objects enter the library.

Every guard is called `require_*` (the word "check" belongs to the course's exercise checks).

Every error names the argument, says what is valid and shows what arrived, e.g.
"lr must be a finite number > 0, got 0". Numbers of the wrong kind (a float where an int is needed, NaN,
infinity, a bool) are ValueErrors; objects of the wrong type (a list where a tensor is needed) are TypeErrors.
"""

from __future__ import annotations

import math
import numbers

import torch


def _range_text(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return ""


def require_int(name: str, value, low: int | None = 1, high: int | None = None, hint: str = "") -> int:
    """An int (not a bool, not a float) in low..high; `hint` is added to the error message."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or \
            (low is not None and value < low) or (high is not None and value > high):
        hint = f" ({hint})" if hint else ""
        if low == 1 and high is None:
            raise ValueError(f"{name} must be a positive int, got {value!r}{hint}")
        valid = f"in {low}..{high}" if low is not None and high is not None else _range_text(low, high, False, False)
        raise ValueError(f"{name} must be an int{' ' + valid if valid else ''}, got {value!r}{hint}")
    return int(value)


def require_number(name: str, value, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number (not a bool, not NaN or infinity) within the given bounds."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        valid = _range_text(low, high, low_open, high_open)
        if low is not None and high is not None:
            raise ValueError(f"{name} must be {valid}, got {value!r}")
        raise ValueError(f"{name} must be a finite number{' ' + valid if valid else ''}, got {value!r}")
    return float(value) if not isinstance(value, numbers.Integral) else value


def require_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def require_choice(name: str, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def require_tensor(name: str, value, dims: int | tuple[int, ...] | None = None, kind: str | None = None) -> torch.Tensor:
    """A torch.Tensor with `dims` dimensions (an int or a tuple of allowed counts) and values of `kind`
    ("int": integer ids, "float": floating point)."""
    if not isinstance(value, torch.Tensor):
        hint = "; wrap it with torch.tensor(...)" if isinstance(value, (list, tuple, numbers.Number)) else ""
        raise TypeError(f"{name} must be a torch.Tensor, got a {type(value).__name__}{hint}")
    if dims is not None:
        allowed = (dims,) if isinstance(dims, int) else tuple(dims)
        if value.dim() not in allowed:
            wanted = " or ".join(str(d) for d in allowed)
            raise ValueError(f"{name} must have {wanted} dimensions, got shape {tuple(value.shape)}")
    if kind == "int" and (value.dtype == torch.bool or value.is_floating_point() or value.is_complex()):
        raise TypeError(f"{name} must hold integer ids (torch.long), got dtype {value.dtype}; "
                        "use tokenizer.encode(...) and torch.tensor(ids)")
    if kind == "float" and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def divisors(n: int) -> list[int]:
    """The positive divisors of a positive int, in increasing order."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return small + [n // d for d in reversed(small) if d * d != n]


def require_divisor(name: str, value: int, of_name: str, of: int, why: str = "") -> int:
    """`value` (a positive int, checked before) divides `of` exactly; the error lists the values that do.
    `why` is added after what `value` must divide, e.g. " (each head gets d_model / n_head dimensions)"."""
    if of % value:
        raise ValueError(f"{name} must divide {of_name}={of}{why}, got {value!r} (valid: {divisors(of)})")
    return value


def require_order(low_name: str, low, high_name: str, high, hint: str = "") -> None:
    """low <= high, for two bounds checked before (a shortest and a longest length, ...)."""
    if low > high:
        hint = f" ({hint})" if hint else ""
        raise ValueError(f"{low_name} must be <= {high_name}{hint}, got {low_name}={low!r} and {high_name}={high!r}")



def require_same_shapes(expected: dict, found: dict, expected_name: str, found_name: str, where: str = "",
                      hint: str = "") -> None:
    """`found` (tensors read from a file) fits `expected` (a model's state dict): the same names with the same
    shapes. The error names the first tensor that differs (in the model's order) and both shapes; `where`
    starts it (e.g. the files) and `hint` ends it (what to do)."""
    problem = None
    for name, tensor in expected.items():
        want = tuple(tensor.shape)
        if name not in found:
            problem = f"{expected_name} needs a tensor {name!r} of shape {want}, which {found_name} lack"
        elif tuple(found[name].shape) != want:
            problem = f"tensor {name!r} has shape {want} by {expected_name} but {tuple(found[name].shape)} in {found_name}"
        if problem:
            break
    else:
        extra = [name for name in found if name not in expected]
        if extra:
            problem = (f"{found_name} hold a tensor {extra[0]!r} of shape {tuple(found[extra[0]].shape)}, for which "
                       f"{expected_name} has no place")
    if problem:
        raise ValueError(f"{where}{expected_name} and {found_name} disagree: {problem}{'; ' + hint if hint else ''}")

"""Checks for chapter 9's exercises: per-group quantization, dequantization, the bytes of a quantized base."""

import torch

from ..calculator import quantized_weight_bytes
from ..quantize import dequantize, quantize
from .ch1 import close
from .core import Part, call_learner, checker, register


def _weight(seed=0, shape=(6, 32)):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    w[0, 3] = 8.0  # an outlier: it should spoil only its own group
    return w


@register("9.1", "per-group symmetric quantization", 4, quantize, "minitransformer.quantize.quantize")
def _check_quantize(fn):
    w = _weight()
    got = call_learner(fn, w, 4, 8)
    ok = isinstance(got, tuple) and len(got) == 2 and all(torch.is_tensor(t) for t in got)
    yield Part("returns (codes, scales)", ok, f"got {type(got).__name__}")
    if not ok:
        return
    codes, scales = got
    want_codes, want_scales = quantize(w, 4, 8)
    shapes = codes.shape == w.shape and scales.shape == want_scales.shape
    yield Part("codes have the weight's shape; one scale per group of each row: (rows, columns / group_size)", shapes,
               f"codes {tuple(codes.shape)}, scales {tuple(scales.shape)}; expected {tuple(w.shape)} and {tuple(want_scales.shape)}")
    if not shapes:
        return
    in_range = bool((codes.abs() <= 7).all()) and codes.dtype == torch.int8
    yield Part("4-bit codes are int8 values in -7..7", in_range,
               f"codes range over {int(codes.min())}..{int(codes.max())} ({codes.dtype}); symmetric 4-bit uses -(2^3 - 1)..2^3 - 1")
    message = "the codes differ from round(w / scale) with scale = max|w| of the group / 7"
    if torch.equal(codes, torch.trunc(w.reshape(6, 4, 8) / want_scales.unsqueeze(-1)).reshape(6, 32).to(codes.dtype)):
        message = "the codes are truncated: round to the nearest integer (torch.round)"
    elif scales.unique().numel() == 1:
        message = "one scale for the whole tensor: the outlier (8.0) coarsens every weight; use one scale per group"
    yield Part("matches round(w / scale), scale = max|w| per group / (2^(bits-1) - 1)",
               torch.equal(codes.to(torch.int8), want_codes) and close(scales.float(), want_scales, 1e-6), message)


@register("9.2", "dequantization", 2, dequantize, "minitransformer.quantize.dequantize")
def _check_dequantize(fn):
    w = _weight(1)
    codes, scales = quantize(w, 4, 8)
    got = call_learner(fn, codes, scales, 8)
    expected = dequantize(codes, scales, 8)
    yield Part("codes × their group's scale, back in the weight's shape", torch.is_tensor(got) and close(got.float(), expected),
               "multiply each code by the scale of its group (reshape to (rows, groups, group_size) and back)")
    ok = torch.is_tensor(got) and got.shape == w.shape and bool(((got.float() - w).abs() <= scales.repeat_interleave(8, 1) / 2 + 1e-6).all())
    yield Part("every weight comes back within half a step (scale / 2) of the original", ok,
               "the rounding error of each weight must be at most half its group's scale")


_BYTE_CASES = [(1_000_000, 8, 64), (1_000_000, 4, 64), (6_738_415_616, 4, 64), (1_000_000, 4, 16)]


@register("9.3", "the bytes of a quantized base", len(_BYTE_CASES), quantized_weight_bytes,
          "minitransformer.calculator.quantized_weight_bytes")
def _check_bytes(fn):
    for n, bits, group in _BYTE_CASES:
        got = call_learner(fn, n, bits, group)
        want = quantized_weight_bytes(n, bits, group)
        message = f"you said {got!r}, expected {want:,.0f} bytes"
        if isinstance(got, (int, float)) and abs(got - n * bits / 8) < 1e-6:
            message += ": the scales are missing (one 2-byte scale per group)"
        elif isinstance(got, (int, float)) and abs(got - n * bits) < 1e-6:
            message += ": that is bits; divide by 8 for bytes"
        ok = isinstance(got, (int, float)) and abs(got - want) < 1e-6 * max(1, want)
        yield Part(f"correct for {n:,} weights at {bits} bits, groups of {group}", ok, message)


quantize_weights = checker("9.1")
dequantize_weights = checker("9.2")
quantized_bytes = checker("9.3")

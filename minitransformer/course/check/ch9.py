"""Checks for chapter 9's exercises: per-group quantization, dequantization, NF4 quantization, the bytes of a
quantized base."""

import torch

import random

from ... import calculator
from ...calculator import quantized_weight_bytes
from ...quantize import QuantizedLinear, dequantize, dequantize_nf4, nf4_levels, quantize, quantize_model, quantize_nf4
from .core import Part, call_learner, checker, close, generator, pick, register, seed


def _weight(n=0, shape=(6, 32)):
    w = torch.randn(*shape, generator=generator(n))
    w[0, 3] = 8.0  # an outlier: it should spoil only its own group
    return w


@register("9.1", "per-group symmetric quantization", 4, quantize, "minitransformer.quantize.quantize",
          forbidden=(QuantizedLinear, quantize_model))
def _check_quantize(fn):
    rows, groups, group = pick(1, (6, 4, 8), (5, 3, 16), (7, 6, 4), (4, 2, 32))
    w = _weight(0, (rows, groups * group))
    got = call_learner(fn, w, 4, group)
    ok = isinstance(got, tuple) and len(got) == 2 and all(torch.is_tensor(t) for t in got)
    yield Part("returns (codes, scales)", ok, f"got {type(got).__name__}")
    if not ok:
        return
    codes, scales = got
    want_codes, want_scales = quantize(w, 4, group)
    shapes = codes.shape == w.shape and scales.shape == want_scales.shape
    yield Part("codes have the weight's shape; one scale per group of each row: (rows, columns / group_size)", shapes,
               f"codes {tuple(codes.shape)}, scales {tuple(scales.shape)}; expected {tuple(w.shape)} and {tuple(want_scales.shape)}")
    if not shapes:
        return
    in_range = bool((codes.abs() <= 7).all()) and codes.dtype == torch.int8
    yield Part("4-bit codes are int8 values in -7..7", in_range,
               f"codes range over {int(codes.min())}..{int(codes.max())} ({codes.dtype}); symmetric 4-bit uses -(2^3 - 1)..2^3 - 1")
    message = "the codes differ from round(w / scale) with scale = max|w| of the group / 7"
    other_bits = []  # the same rule must hold at every bit width, not only 4
    for i, bits in enumerate(pick(2, (8, 2, 3), (8, 3, 2), (2, 8, 3), (3, 2, 8))):
        w_b = _weight(10 + i, (rows, groups * group))
        got_b = call_learner(fn, w_b, bits, group)
        want_b = quantize(w_b, bits, group)
        ok_b = isinstance(got_b, tuple) and len(got_b) == 2 and all(torch.is_tensor(t) for t in got_b) and \
            got_b[0].shape == want_b[0].shape and got_b[1].shape == want_b[1].shape and \
            torch.equal(got_b[0].to(torch.int8), want_b[0]) and close(got_b[1].float(), want_b[1], 1e-6)
        if not ok_b:
            other_bits.append(bits)
    if torch.equal(codes, torch.trunc(w.reshape(rows, groups, group) / want_scales.unsqueeze(-1)).reshape(w.shape).to(codes.dtype)):
        message = "the codes are truncated: round to the nearest integer (torch.round)"
    elif scales.unique().numel() == 1:
        message = "one scale for the whole tensor: the outlier (8.0) coarsens every weight; use one scale per group"
    matches = torch.equal(codes.to(torch.int8), want_codes) and close(scales.float(), want_scales, 1e-6)
    if matches and other_bits:
        message = (f"right at 4 bits, wrong at {other_bits[0]} bits: the largest code is 2^(bits-1) - 1 "
                   f"({2 ** (other_bits[0] - 1) - 1} at {other_bits[0]} bits); use `bits`, not a fixed 7")
    yield Part("matches round(w / scale), scale = max|w| per group / (2^(bits-1) - 1)", matches and not other_bits, message)


@register("9.2", "dequantization", 2, dequantize, "minitransformer.quantize.dequantize",
          forbidden=(QuantizedLinear, quantize_model))
def _check_dequantize(fn):
    rows, groups, group, bits = pick(1, (6, 4, 8, 4), (5, 3, 16, 8), (7, 6, 4, 3), (3, 2, 32, 4))
    w = _weight(1, (rows, groups * group))
    codes, scales = quantize(w, bits, group)
    got = call_learner(fn, codes, scales, group)
    expected = dequantize(codes, scales, group)
    yield Part("codes × their group's scale, back in the weight's shape", torch.is_tensor(got) and close(got.float(), expected),
               "multiply each code by the scale of its group (reshape to (rows, groups, group_size) and back)")
    ok = torch.is_tensor(got) and got.shape == w.shape and bool(((got.float() - w).abs() <= scales.repeat_interleave(group, 1) / 2 + 1e-6).all())
    yield Part("every weight comes back within half a step (scale / 2) of the original", ok,
               "the rounding error of each weight must be at most half its group's scale")


def _nf4_mistake(w, codes, block) -> str:
    """Name what a learner's NF4 codes did instead, by comparing them with the usual wrong turns."""
    rows, columns = w.shape
    blocks = w.reshape(rows, columns // block, block)
    levels = nf4_levels()
    one_scale = ((w / w.abs().max()).unsqueeze(-1) - levels).abs().argmin(-1)
    if torch.equal(codes.long(), one_scale):
        return "one absmax for the whole tensor: divide each block of block_size weights of a row by its own max|w|"
    unscaled = (blocks.unsqueeze(-1) - levels).abs().argmin(-1).reshape(rows, columns)
    if torch.equal(codes.long(), unscaled):
        return "the weights were not divided by their block's max|w| before looking for the nearest level"
    even = torch.round(blocks / blocks.abs().amax(-1, keepdim=True) * 7).reshape(rows, columns)
    if torch.equal(codes.long(), even.long()) or torch.equal(codes.long(), even.long() + 7):
        return "those are the evenly spaced absmax grid's codes; NF4 stores the index of the nearest NF4 level"
    columns_blocks = w.T.reshape(columns, rows // block, block) if rows % block == 0 else None
    if columns_blocks is not None:
        down = (columns_blocks / columns_blocks.abs().amax(-1, keepdim=True)).reshape(columns, rows).T
        if torch.equal(codes.long(), (down.unsqueeze(-1) - levels).abs().argmin(-1)):
            return "the blocks run down the columns; they are consecutive weights along each row"
    return "store, for each weight / its block's max|w|, the index (0..15) of the nearest of nf4_levels()"


@register("9.3", "NF4 quantization", 3, quantize_nf4, "minitransformer.quantize.quantize_nf4",
          forbidden=(QuantizedLinear, quantize_model, dequantize_nf4))
def _check_nf4(fn):
    rows, blocks, block = pick(1, (64, 2, 32), (32, 4, 16), (16, 3, 64), (48, 2, 16))
    w = _weight(3, (rows, blocks * block)) * 0.05
    got = call_learner(fn, w, block)
    ok = isinstance(got, tuple) and len(got) == 2 and all(torch.is_tensor(t) for t in got)
    yield Part("returns (codes, absmax)", ok, f"got {type(got).__name__}; return the codes and one absmax per block")
    if not ok:
        return
    codes, absmax = got
    want_codes, want_absmax = quantize_nf4(w, block)
    shaped = codes.shape == w.shape and absmax.numel() == want_absmax.numel()
    is_levels = codes.is_floating_point() and bool(((codes.unsqueeze(-1) - nf4_levels()).abs().min(-1).values < 1e-6).all())
    message = (f"codes {tuple(codes.shape)} and absmax {tuple(absmax.shape)}: the codes have the weight's shape "
               f"{tuple(w.shape)}, and there is one absmax per block: {tuple(want_absmax.shape)}")
    if is_levels and codes.shape == w.shape:
        message = "these are the levels themselves; store their index (0..15), 4 bits each, not the float value"
    integer_codes = shaped and not codes.is_floating_point() and bool(((codes >= 0) & (codes <= 15)).all())
    yield Part("codes are integers 0..15 in the weight's shape, one absmax per block", integer_codes, message)
    if not integer_codes:
        return
    right = torch.equal(codes.long(), want_codes.long()) and close(absmax.float().reshape(-1), want_absmax.reshape(-1), 1e-6)
    yield Part("each code is the nearest NF4 level to the weight / its block's max|w|", right,
               "" if right else _nf4_mistake(w, codes, block))


_BYTE_CASES = [(1_000_000, 8, 64), (1_000_000, 4, 64), (6_738_415_616, 4, 64), (1_000_000, 4, 16)]


def _hidden_byte_cases():
    rng = random.Random(seed(93))
    return [(rng.randint(10**5, 10**11), rng.choice([2, 3, 4, 8]), rng.choice([16, 32, 64, 128, 256])) for _ in _BYTE_CASES]


@register("9.4", "the bytes of a quantized base", len(_BYTE_CASES), quantized_weight_bytes,
          "minitransformer.calculator.quantized_weight_bytes", forbidden=(calculator.quantized_weight_bits,))
def _check_bytes(fn):
    for n, bits, group in pick(1, _BYTE_CASES, _hidden_byte_cases()):
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
nf4_quantize = checker("9.3")
quantized_bytes = checker("9.4")

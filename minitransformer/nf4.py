"""NormalFloat 4-bit (NF4), QLoRA's data type for a frozen base, next to the course's evenly spaced grid.

The course's absmax grid (`quantize.quantize`) spreads 15 levels evenly over [-max|w|, max|w|] (codes -7..7; one
of the 16 four-bit codes is never used). Trained weights are roughly normally distributed, so most of them sit
near zero, where an even grid has few levels. NF4 (Dettmers et al., 2023) puts its 16 levels at *quantiles* of a
standard normal instead, so each level is used about equally often: 8 positive levels, 7 negative ones and an
exact zero, all 16 codes used, scaled to [-1, 1]. A block of weights is stored as 4-bit codes (indices into the
16 levels) and one absmax scale: w ≈ level[code] · absmax.

Double quantization stores those absmax scales themselves in 8 bits, in blocks of 256 with one 32-bit scale each:
4 + 8/64 + 32/(64·256) ≈ 4.127 bits per weight instead of 4 + 32/64 = 4.5 with fp32 scales.
"""

from __future__ import annotations

import torch

from .guards import require_int, require_tensor

# Where the outermost levels sit: 1 - (1/32 + 1/30) / 2, the offset QLoRA's reference code uses, so that the
# extreme quantiles are finite and the two halves (16 and 15 quantile intervals) match.
OFFSET = 0.9677083


def nf4_levels() -> torch.Tensor:
    """The 16 NF4 levels, sorted, in [-1, 1]: quantiles of a standard normal, normalised by the largest."""
    positive = torch.special.ndtri(torch.linspace(OFFSET, 0.5, 9, dtype=torch.float64)[:-1])  # 8 levels > 0
    negative = -torch.special.ndtri(torch.linspace(OFFSET, 0.5, 8, dtype=torch.float64)[:-1])  # 7 levels < 0
    levels = torch.cat([positive, torch.zeros(1, dtype=torch.float64), negative]).sort().values
    return (levels / levels.abs().max()).float()


def _check(weight, block_size: int) -> tuple[int, int]:
    require_tensor("weight", weight, dims=2, kind="float")
    if not torch.isfinite(weight).all():
        raise ValueError("weight holds NaN or infinite values, which cannot be quantized")
    rows, columns = weight.shape
    require_int("block_size", block_size, 1)
    if columns % block_size:
        divisors = [g for g in range(1, columns + 1) if columns % g == 0]
        raise ValueError(f"block_size must divide the row length {columns}, got {block_size} (valid: {divisors})")
    return rows, columns


def quantize_nf4(weight: torch.Tensor, block_size: int = 64):
    """NF4 codes (uint8 in 0..15, the weight's shape) and one absmax per block of `block_size` weights of a row."""
    rows, columns = _check(weight, block_size)
    blocks = weight.detach().float().reshape(rows, columns // block_size, block_size)
    absmax = blocks.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12)
    normalised = blocks / absmax  # in [-1, 1]
    codes = (normalised.unsqueeze(-1) - nf4_levels()).abs().argmin(dim=-1).to(torch.uint8)  # nearest level
    return codes.reshape(rows, columns), absmax.squeeze(-1)


def dequantize_nf4(codes: torch.Tensor, absmax: torch.Tensor, block_size: int = 64) -> torch.Tensor:
    """level[code] · absmax of the code's block, back in the codes' shape (float32)."""
    rows, columns = codes.shape
    values = nf4_levels()[codes.long()].reshape(rows, columns // block_size, block_size)
    return (values * absmax.unsqueeze(-1)).reshape(rows, columns)


def double_quantized_bits(bits: int = 4, block_size: int = 64, scale_bits: int = 8, scale_block: int = 256,
                          second_scale_bits: int = 32) -> float:
    """Bits per weight with double quantization: codes + an 8-bit scale per block + a 32-bit scale per
    `scale_block` scales (QLoRA's defaults give 4 + 8/64 + 32/16384 = 4.127)."""
    for name, value in (("bits", bits), ("block_size", block_size), ("scale_bits", scale_bits),
                        ("scale_block", scale_block), ("second_scale_bits", second_scale_bits)):
        require_int(name, value, 1)
    return bits + scale_bits / block_size + second_scale_bits / (block_size * scale_block)

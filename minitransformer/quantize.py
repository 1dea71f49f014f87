"""A quantized frozen base, written by hand: int8 and 4-bit weights with one scale per group.

Symmetric absmax quantization: each group of `group_size` consecutive weights in a row shares one scale,
scale = max|w| / (2^(bits-1) - 1), and each weight is stored as round(w / scale), an integer in
[-(2^(bits-1) - 1), 2^(bits-1) - 1]. 4-bit codes are packed two to a byte. The forward pass dequantizes
(codes · scale) and runs an ordinary linear layer: memory is saved, arithmetic is not (QLoRA does the same,
with a 4-bit "NormalFloat" grid instead of our evenly spaced one).

At the end of this file, NormalFloat 4-bit (NF4), QLoRA's data type for a frozen base, next to the course's
evenly spaced grid. The absmax grid (`quantize`) spreads 15 levels evenly over [-max|w|, max|w|] (codes -7..7; one
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
import torch.nn as nn
import torch.nn.functional as F

from .guards import require_int, require_tensor

BITS = (2, 3, 4, 8)


def _require_grid(bits: int, group_size: int, columns: int):
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in BITS:
        raise ValueError(f"bits must be one of {list(BITS)}, got {bits!r}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1 or columns % group_size:
        divisors = [g for g in range(1, columns + 1) if columns % g == 0]
        raise ValueError(f"group_size must be a positive divisor of the row length {columns}, got {group_size!r} "
                         f"(valid: {divisors})")


def quantize(weight: torch.Tensor, bits: int = 4, group_size: int = 64):
    """Integer codes (int8, same shape as weight) and one scale per group of each row."""
    require_tensor("weight", weight, dims=2, kind="float")
    if not torch.isfinite(weight).all():
        raise ValueError("weight holds NaN or infinite values, which cannot be quantized")
    rows, columns = weight.shape
    _require_grid(bits, group_size, columns)
    levels = 2 ** (bits - 1) - 1
    groups = weight.detach().reshape(rows, columns // group_size, group_size)
    scales = groups.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / levels
    codes = torch.round(groups / scales).clamp(-levels, levels).to(torch.int8)
    return codes.reshape(rows, columns), scales.squeeze(-1)


def dequantize(codes: torch.Tensor, scales: torch.Tensor, group_size: int) -> torch.Tensor:
    rows, columns = codes.shape
    groups = codes.reshape(rows, columns // group_size, group_size).float()
    return (groups * scales.unsqueeze(-1)).reshape(rows, columns)


def pack_4bit(codes: torch.Tensor) -> torch.Tensor:
    """Two 4-bit codes per byte (codes in -7..7 are stored as 0..14)."""
    shifted = (codes.to(torch.int16) + 8).to(torch.uint8).flatten()
    if shifted.numel() % 2:
        shifted = torch.cat([shifted, shifted.new_zeros(1)])
    return shifted[0::2] | (shifted[1::2] << 4)


def unpack_4bit(packed: torch.Tensor, shape) -> torch.Tensor:
    low, high = packed & 0x0F, packed >> 4
    values = torch.stack([low, high], dim=1).flatten()[: shape[0] * shape[1]]
    return (values.to(torch.int16) - 8).to(torch.int8).reshape(shape)


class QuantizedLinear(nn.Module):
    """A frozen linear layer whose weight is stored as low-bit codes plus per-group scales."""

    def __init__(self, linear: nn.Linear, bits: int = 4, group_size: int = 64, scale_dtype=torch.float16):
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got a {type(linear).__name__}")
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.bits, self.group_size, self.shape = bits, group_size, tuple(linear.weight.shape)
        codes, scales = quantize(linear.weight, bits, group_size)
        self.register_buffer("codes", pack_4bit(codes) if bits <= 4 else codes)
        self.register_buffer("scales", scales.to(scale_dtype))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def weight_float(self) -> torch.Tensor:
        codes = unpack_4bit(self.codes, self.shape) if self.bits <= 4 else self.codes
        return dequantize(codes, self.scales.float(), self.group_size)

    def forward(self, x):
        return F.linear(x, self.weight_float(), self.bias)

    def stored_bytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.buffers())

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}, group_size={self.group_size}"


def quantize_model(model: nn.Module, bits: int = 4, group_size: int = 64) -> nn.Module:
    """Replace every linear layer inside the transformer blocks by a QuantizedLinear (in place).

    Quantize a base *before* adding adapters (QLoRA's order): a model that already has adapters, or is
    already quantized, is refused. Every layer is quantized before any is put in, so an error changes nothing.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a MiniTransformer or a Classifier, got a {type(model).__name__}")
    adapted = [name for name, m in model.named_modules() if hasattr(m, "adapter_dicts")]
    if adapted:
        raise ValueError(f"the model already has adapters (at {adapted[0]}): quantize_model would quantize them or "
                         "the layers they wrap. Quantize the base first, then add adapters (QLoRA's order): "
                         "quantize_model(model, ...) and then peft.add_lora(model, ...)")
    done = [name for name, m in model.named_modules() if isinstance(m, QuantizedLinear)]
    if done:
        raise ValueError(f"the model is already quantized ({done[0]} holds {model.get_submodule(done[0]).bits}-bit "
                         "codes); quantize a fresh float model instead")
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear) and ".blocks." in f".{name}"]
    if not targets:
        raise ValueError("the model has no linear layer inside transformer blocks to quantize")
    quantized = [(name, QuantizedLinear(m, bits, group_size)) for name, m in targets]  # checks every layer first
    for name, layer in quantized:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, layer)
    return model


def linear_weight_bytes(model: nn.Module) -> int:
    """Bytes that the transformer blocks' linear weights (and biases) occupy, quantized or not."""
    total = 0
    for name, module in model.named_modules():
        if isinstance(module, QuantizedLinear):
            total += module.stored_bytes()
        elif isinstance(module, nn.Linear) and ".blocks." in f".{name}":
            total += sum(p.numel() * p.element_size() for p in module.parameters(recurse=False))
    return total


# --- NormalFloat 4-bit (NF4) ------------------------------------------------------------------------------------

# Where the outermost levels sit: 1 - (1/32 + 1/30) / 2, the offset QLoRA's reference code uses, so that the
# extreme quantiles are finite and the two halves (16 and 15 quantile intervals) match.
OFFSET = 0.9677083


def nf4_levels() -> torch.Tensor:
    """The 16 NF4 levels, sorted, in [-1, 1]: quantiles of a standard normal, normalised by the largest."""
    positive = torch.special.ndtri(torch.linspace(OFFSET, 0.5, 9, dtype=torch.float64)[:-1])  # 8 levels > 0
    negative = -torch.special.ndtri(torch.linspace(OFFSET, 0.5, 8, dtype=torch.float64)[:-1])  # 7 levels < 0
    levels = torch.cat([positive, torch.zeros(1, dtype=torch.float64), negative]).sort().values
    return (levels / levels.abs().max()).float()


def _require_nf4_input(weight, block_size: int) -> tuple[int, int]:
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
    rows, columns = _require_nf4_input(weight, block_size)
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

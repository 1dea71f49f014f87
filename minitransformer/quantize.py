"""A quantized frozen base, written by hand: int8 and 4-bit weights with one scale per group.

Symmetric absmax quantization: each group of `group_size` consecutive weights in a row shares one scale,
scale = max|w| / (2^(bits-1) - 1), and each weight is stored as round(w / scale), an integer in
[-(2^(bits-1) - 1), 2^(bits-1) - 1]. 4-bit codes are packed two to a byte. The forward pass dequantizes
(codes · scale) and runs an ordinary linear layer: memory is saved, arithmetic is not (QLoRA does the same,
with a 4-bit "NormalFloat" grid instead of our evenly spaced one).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .guards import require_tensor

BITS = (2, 3, 4, 8)


def _check(bits: int, group_size: int, columns: int):
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
    _check(bits, group_size, columns)
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

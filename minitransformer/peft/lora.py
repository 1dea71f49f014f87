"""LoRA: learn a low-rank change to a frozen weight, W + (alpha / r) · B A.

A (r × in) starts random and B (out × r) starts at zero, so B A = 0 and the model is unchanged at step 0.
After training, the change can be merged into W: inference then costs exactly what the base costs.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..quantize import QuantizedLinear
from .core import (WrapperLayer, find_targets, finish_add, language_model, peft_layers, prepare, replace_module,
                   transformer_sites)


class LoRALinear(WrapperLayer):
    kind = "lora"
    adapter_dicts = ("lora_A", "lora_B")

    def __init__(self, base: nn.Module):
        if not isinstance(base, (nn.Linear, QuantizedLinear)):
            raise TypeError(f"LoRALinear wraps an nn.Linear or a QuantizedLinear, got {type(base).__name__}")
        super().__init__(base)
        self.lora_A = nn.ModuleDict()
        self.lora_B = nn.ModuleDict()
        self.lora_dropout = nn.ModuleDict()
        self.scaling: dict[str, float] = {}
        self.merged: list[str] = []
        self.original_weight = None  # a copy of W while anything is merged, so unmerge is exact

    def add(self, name: str, r: int = 8, alpha: float = 8, dropout: float = 0.0, rslora: bool = False):
        if not isinstance(r, int) or isinstance(r, bool) or r < 1:
            raise ValueError(f"LoRA rank r must be a positive int, got {r!r}")
        if not isinstance(alpha, (int, float)) or alpha <= 0:
            raise ValueError(f"LoRA alpha must be a positive number, got {alpha!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout!r}")
        self.register(name, r=r, alpha=alpha, dropout=dropout, rslora=rslora)
        A = nn.Linear(self.base.in_features, r, bias=False)
        B = nn.Linear(r, self.base.out_features, bias=False)
        nn.init.kaiming_uniform_(A.weight, a=math.sqrt(5))  # as nn.Linear (and HF PEFT) initialise
        nn.init.zeros_(B.weight)  # B = 0: the adapted layer starts as the base layer
        self.lora_A[name], self.lora_B[name] = A, B
        self.lora_dropout[name] = nn.Dropout(dropout) if dropout else nn.Identity()
        # alpha / r keeps the update's size steady when you change r; rank-stabilised LoRA uses
        # alpha / sqrt(r), which keeps it steady for large r too.
        self.scaling[name] = alpha / (math.sqrt(r) if rslora else r)

    def delete(self, name: str):
        super().delete(name)
        del self.lora_dropout[name]
        self.scaling.pop(name)

    def delta_weight(self, name: str) -> torch.Tensor:
        return self.lora_B[name].weight @ self.lora_A[name].weight * self.scaling[name]

    def merge(self, name: str):
        if name not in self.settings:
            raise ValueError(f"no LoRA adapter named {name!r} in this layer; it has {self.adapter_names()}")
        if name in self.merged:
            raise ValueError(f"LoRA adapter {name!r} is already merged; merging twice would add its change twice")
        if isinstance(self.base, QuantizedLinear):
            raise ValueError("cannot merge into a quantized weight: the sum would have to be quantized again; "
                             "keep the adapter unmerged (as QLoRA does) or merge into a float copy of the base")
        if self.original_weight is None:
            self.original_weight = self.base.weight.detach().clone()
        self.merged.append(name)
        self._rebuild_weight()

    def unmerge(self, name: str):
        if name not in self.merged:
            raise ValueError(f"LoRA adapter {name!r} is not merged, so there is nothing to unmerge")
        self.merged.remove(name)
        self._rebuild_weight()

    @torch.no_grad()
    def _rebuild_weight(self):
        # W = original + the merged changes, recomputed from the stored original: exact, no drift.
        weight = self.original_weight.clone()
        for name in self.merged:
            weight += self.delta_weight(name)
        self.base.weight.copy_(weight)
        if not self.merged:
            self.original_weight = None

    def can_deactivate(self, name: str):
        if name in self.merged:
            raise ValueError(f"LoRA adapter {name!r} is merged into the weight; unmerge it first")

    def forward(self, x):
        if self.disabled and self.merged:
            return F.linear(x, self.original_weight, self.base.bias)
        y = self.base(x)
        for name in self.active_names():
            if name not in self.merged:
                A, B = self.lora_A[name], self.lora_B[name]
                y = y + B(A(self.lora_dropout[name](x))) * self.scaling[name]
        return y


def linear_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every linear layer LoRA may target, by name: plain, quantized, or already LoRA-wrapped."""
    layers = {}
    for name, (module, _) in transformer_sites(model).items():
        if isinstance(module, (nn.Linear, LoRALinear, QuantizedLinear)):
            layers[name] = module
    return layers


def add_lora(model: nn.Module, name: str = "default", targets=("q_proj", "v_proj"), r: int = 8,
             alpha: float = 8, dropout: float = 0.0, rslora: bool = False) -> list[str]:
    """Add LoRA adapter `name` to the target linear layers; return their names.

    targets: "all-linear" (every linear layer of the transformer except the output heads), a regex matched
    against whole names, or a list of exact names or suffixes (the default: q and v projections).
    """
    prepare(model)
    candidates = linear_layers(model)
    if targets == "all-linear":
        targets = [n for n in candidates if n.split(".")[-1] not in ("lm_head", "head")]
    found = find_targets(targets, candidates, "linear layer")
    for layer_name in found:
        layer = candidates[layer_name]
        if not isinstance(layer, LoRALinear):
            layer = LoRALinear(layer)
            replace_module(model, layer_name, layer)
        layer.add(name, r=r, alpha=alpha, dropout=dropout, rslora=rslora)
    finish_add(model, name)
    return found


def lora_layers(model: nn.Module, name: str | None = None) -> list[tuple[str, LoRALinear]]:
    layers = [(n, l) for n, l in peft_layers(model) if isinstance(l, LoRALinear)]
    if name is not None:
        layers = [(n, l) for n, l in layers if name in l.adapter_names()]
        if not layers:
            raise ValueError(f"no LoRA adapter named {name!r} in the model")
    return layers


def _names_to_merge(model, name):
    if name is not None:
        return [name]
    names = []
    for _, layer in lora_layers(model):
        names += [n for n in layer.active if n not in names]
    if not names:
        raise ValueError("no active LoRA adapter to merge")
    return names


def merge_lora(model: nn.Module, name: str | None = None) -> None:
    """Fold LoRA adapter `name` (default: every active one) into the base weights."""
    for adapter in _names_to_merge(model, name):
        layers = lora_layers(model, adapter)
        # Check every layer before merging any, so an error never leaves the model half merged.
        already = [n for n, l in layers if adapter in l.merged]
        if already:
            raise ValueError(f"LoRA adapter {adapter!r} is already merged (in {already[0]}); merging twice would add its change twice")
        for _, layer in layers:
            layer.merge(adapter)


def unmerge_lora(model: nn.Module, name: str | None = None) -> None:
    """Take LoRA adapter `name` (default: every merged one) back out of the weights, exactly."""
    names = [name] if name is not None else sorted({n for _, l in lora_layers(model) for n in l.merged})
    if not names:
        raise ValueError("no LoRA adapter is merged, so there is nothing to unmerge")
    for adapter in names:
        layers = lora_layers(model, adapter)
        if not any(adapter in l.merged for _, l in layers):
            raise ValueError(f"LoRA adapter {adapter!r} is not merged, so there is nothing to unmerge")
        for _, layer in layers:
            layer.unmerge(adapter)


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge the active LoRA adapters and replace every LoRALinear by a plain nn.Linear (for deployment)."""
    for layer_name, layer in lora_layers(model):
        if isinstance(layer.base, QuantizedLinear):
            raise ValueError(f"{layer_name} has a quantized base weight: merging would have to quantize the sum "
                             "again; keep the adapter unmerged (as QLoRA does)")
        for adapter in layer.active:  # merged adapters are always active (can_deactivate guards it)
            if adapter not in layer.merged:
                layer.merge(adapter)
        replace_module(model, layer_name, layer.base)  # the base Linear now holds W + the changes
    language_model(model)._base_fingerprint = None  # the merged model is a new base
    return model

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
from ..guards import require_bool, require_int, require_number
from .core import (TASK_HEAD, WrapperLayer, require_new_adapter, find_targets, finish_add, innermost, language_model,
                   peft_layers, remember_base, replace_module, transactional, transformer_sites)


def lora_settings(r=8, alpha=8, dropout=0.0, rslora=False) -> dict:
    """LoRA's hyper-parameters, checked: r a positive int, alpha a positive number, dropout in [0, 1)."""
    return {"r": require_int("LoRA rank r", r, 1), "alpha": require_number("LoRA alpha", alpha, 0, low_open=True),
            "dropout": require_number("LoRA dropout", dropout, 0, 1, high_open=True),
            "rslora": require_bool("rslora", rslora)}


class LoRALinear(WrapperLayer):
    kind = "lora"
    adapter_dicts = ("lora_A", "lora_B")
    innermost = True  # W + BA needs W itself: LoRA sits right on the linear layer, inside IA3 or adapters

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
        lora_settings(r, alpha, dropout, rslora)
        self.register(name, r=r, alpha=alpha, dropout=dropout, rslora=rslora)
        A = nn.Linear(self.base_layer.in_features, r, bias=False)
        B = nn.Linear(r, self.base_layer.out_features, bias=False)
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
        if isinstance(self.base_layer, QuantizedLinear):
            raise ValueError("cannot merge into a quantized weight: the sum would have to be quantized again; "
                             "keep the adapter unmerged (as QLoRA does) or merge into a float copy of the base")
        if self.original_weight is None:
            self.original_weight = self.base_layer.weight.detach().clone()
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
        self.base_layer.weight.copy_(weight)
        if not self.merged:
            self.original_weight = None

    def forward(self, x):
        if self.disabled and self.merged:
            return F.linear(x, self.original_weight, self.base_layer.bias)
        y = self.base_layer(x)
        for name in self.active_names():
            if name not in self.merged:
                A, B = self.lora_A[name], self.lora_B[name]
                y = y + B(A(self.lora_dropout[name](x))) * self.scaling[name]
        return y


def linear_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every linear layer LoRA may target, by name (plain, quantized, or wrapped by PEFT layers); a
    Classifier's task head is left out: it trains whole."""
    return {name: module for name, (module, _) in transformer_sites(model).items()
            if name != TASK_HEAD and isinstance(innermost(module), (nn.Linear, QuantizedLinear))}


@transactional
def add_lora(model: nn.Module, name: str = "default", targets=("q_proj", "v_proj"), r: int = 8,
             alpha: float = 8, dropout: float = 0.0, rslora: bool = False) -> list[str]:
    """Add LoRA adapter `name` to the target linear layers; return their names.

    targets: "all-linear" (every linear layer of the transformer except the output heads), a regex matched
    against whole names, or a list of exact names or suffixes (the default: q and v projections).
    Everything is checked before the model changes.
    """
    require_new_adapter(model, name)
    settings = lora_settings(r, alpha, dropout, rslora)
    candidates = linear_layers(model)
    if targets == "all-linear":
        targets = [n for n in candidates if n.split(".")[-1] not in ("lm_head", "head")]
    found = find_targets(targets, candidates, "linear layer")
    remember_base(model)
    for layer_name in found:
        LoRALinear.at_site(model, layer_name, LoRALinear).add(name, **settings)
    finish_add(model, name)
    return found


def lora_layers(model: nn.Module, name: str | None = None) -> list[tuple[str, LoRALinear]]:
    language_model(model)
    layers = [(n, l) for n, l in peft_layers(model) if isinstance(l, LoRALinear)]
    if name is not None:
        if not isinstance(name, str):
            raise TypeError(f"name must be an adapter name (a str) or None, got {name!r}")
        layers = [(n, l) for n, l in layers if name in l.adapter_names()]
        if not layers:
            names = sorted({n for _, l in peft_layers(model) if isinstance(l, LoRALinear) for n in l.adapter_names()})
            raise ValueError(f"no LoRA adapter named {name!r} in the model; its LoRA adapters are {names or 'none'}")
    return layers


def _names_to_merge(model, name):
    if name is not None:
        lora_layers(model, name)
        return [name]
    names = []
    for _, layer in lora_layers(model):
        names += [n for n in layer.active if n not in names]
    if not names:
        raise ValueError("no active LoRA adapter to merge")
    return names


def _require_mergeable(layer_name: str, layer: LoRALinear) -> None:
    if isinstance(layer.base_layer, QuantizedLinear):
        raise ValueError(f"cannot merge into a quantized weight ({layer_name} has a quantized base weight): merging "
                         "would have to quantize the sum "
                         "again; keep the adapter unmerged (as QLoRA does) or merge into a float copy of the base")
    if not isinstance(layer.base_layer, nn.Linear):
        raise ValueError(f"{layer_name}: LoRA wraps a {type(layer.base_layer).__name__} here, not the linear layer "
                         "itself; remove what it wraps (delete_adapter) before merging")


@transactional
def merge_lora(model: nn.Module, name: str | None = None) -> None:
    """Fold LoRA adapter `name` (default: every active one) into the base weights."""
    names = _names_to_merge(model, name)
    # Check every adapter and layer before merging any, so an error never leaves the model half merged.
    for adapter in names:
        for layer_name, layer in lora_layers(model, adapter):
            if adapter in layer.merged:
                raise ValueError(f"LoRA adapter {adapter!r} is already merged (in {layer_name}); merging twice "
                                 "would add its change twice")
            if adapter not in layer.active:
                raise ValueError(f"LoRA adapter {adapter!r} is not active; merged adapters always compute, so "
                                 f"set_active it first (e.g. peft.set_active(model, {adapter!r}))")
            _require_mergeable(layer_name, layer)
    for adapter in names:
        for _, layer in lora_layers(model, adapter):
            layer.merge(adapter)


@transactional
def unmerge_lora(model: nn.Module, name: str | None = None) -> None:
    """Take LoRA adapter `name` (default: every merged one) back out of the weights, exactly."""
    names = [name] if name is not None else sorted({n for _, l in lora_layers(model) for n in l.merged})
    if not names:
        raise ValueError("no LoRA adapter is merged, so there is nothing to unmerge")
    for adapter in names:
        if not any(adapter in l.merged for _, l in lora_layers(model, adapter)):
            raise ValueError(f"LoRA adapter {adapter!r} is not merged, so there is nothing to unmerge")
    for adapter in names:
        for _, layer in lora_layers(model, adapter):
            layer.unmerge(adapter)


@transactional
def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge the active LoRA adapters and replace every LoRALinear by a plain nn.Linear (for deployment).

    Inactive LoRA adapters are dropped with their layers. Other kinds of adapter are refused: merge or
    delete them first.
    """
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA adapter to merge and unload")
    others = sorted({f"{n} ({l.kind})" for n, l in peft_layers(model) if not isinstance(l, LoRALinear)})
    if others:
        raise ValueError(f"merge_and_unload makes a plain model, but other adapters remain: {others[:3]}; "
                         "delete_adapter them (or merge_ia3 and delete) first")
    for layer_name, layer in layers:
        _require_mergeable(layer_name, layer)
    for layer_name, layer in reversed(layers):
        for adapter in layer.active:  # merged adapters are always active (can_deactivate guards it)
            if adapter not in layer.merged:
                layer.merge(adapter)
        replace_module(model, layer_name, layer.base_layer)  # the base Linear now holds W + the changes
    language_model(model)._base_fingerprint = None  # the merged model is a new base
    return model

"""IA3: learned vectors that rescale the keys, the values and the MLP's hidden activations.

Each vector starts at one, so the model starts unchanged; it trains d_model numbers per key and value
projection and mlp_ratio · d_model per MLP: the smallest of the course's methods.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .core import (WrapperLayer, require_new_adapter, find_targets, finish_add, language_model, remember_base, transactional,
                   transformer_sites)

DEFAULT_TARGETS = ("k_proj", "v_proj", "mlp.act")


class IA3Layer(WrapperLayer):
    kind = "ia3"
    adapter_dicts = ("scales",)

    def __init__(self, base: nn.Module, features: int):
        super().__init__(base)
        self.features = features
        self.scales = nn.ParameterDict()
        self.merged: list[str] = []  # adapters folded into a linear weight by merge_ia3
        self.original = None  # (weight, bias) of that linear while anything is merged, so unmerge is exact

    @classmethod
    def wrap(cls, module, lm, layer_name):
        return cls(module, ia3_candidates(lm)[layer_name][1])

    def add(self, name: str):
        self.register(name)
        self.scales[name] = nn.Parameter(torch.ones(self.features))

    def forward(self, x):
        if self.disabled and self.merged:
            if not isinstance(self.base_layer, nn.Linear):  # folded into the next layer, which cannot be undone here
                raise RuntimeError(f"IA3 adapters {self.merged} are merged into the next linear layer; "
                                   "unmerge_ia3 before disabling adapters")
            return F.linear(x, *self.original)
        y = self.base_layer(x)
        for name in self.active_names():
            if name not in self.merged:
                y = y * self.scales[name]
        return y

    def can_deactivate(self, name: str):
        if name in self.merged:
            raise ValueError(f"IA3 adapter {name!r} is merged into the weight; unmerge it first")

    @torch.no_grad()
    def rebuild(self, target: nn.Linear, on_input: bool):
        """Set `target`'s weight to the stored original times every merged scale: exact, no drift."""
        weight, bias = (t.clone() for t in self.original)
        for name in self.merged:
            scale = self.scales[name].detach()
            if on_input:  # scaling the input of a linear layer scales its weight's columns (HF: feedforward)
                weight *= scale[None, :]
            else:  # scaling its output scales the rows and the bias
                weight *= scale[:, None]
                bias = bias * scale if bias is not None else None
        target.weight.copy_(weight)
        if target.bias is not None:
            target.bias.copy_(bias)
        if not self.merged:
            self.original = None


def ia3_candidates(model: nn.Module) -> dict[str, tuple[nn.Module, int]]:
    """Layers IA3 can rescale, with their output width: the block's linear layers and MLP activations."""
    return {name: site for name, site in transformer_sites(model, extra=("mlp.act",)).items()
            if ".blocks." in "." + name}


@transactional
def add_ia3(model: nn.Module, name: str = "default", targets=DEFAULT_TARGETS) -> list[str]:
    """Add IA3 scaling vectors `name` to the targets (default: keys, values, MLP activations)."""
    require_new_adapter(model, name)
    candidates = ia3_candidates(model)
    found = find_targets(targets, {n: m for n, (m, _) in candidates.items()}, "layer IA3 can scale")
    remember_base(model)
    for layer_name in found:
        features = candidates[layer_name][1]
        IA3Layer.at_site(model, layer_name, lambda module: IA3Layer(module, features)).add(name)
    finish_add(model, name)
    return found


def _merge_target(model: nn.Module, layer_name: str, layer: IA3Layer) -> tuple[nn.Linear, bool]:
    """The linear layer an IA3 layer folds into, and whether it scales that layer's input.

    A key or value scale multiplies the projection's output: it folds into that projection's rows.
    A scale on mlp.act multiplies the input of mlp.fc_out: it folds into fc_out's columns (this is
    what HF PEFT's IA3 does for a "feedforward" module).
    """
    if isinstance(layer.base_layer, nn.Linear):
        return layer.base_layer, False
    if layer_name.endswith("mlp.act"):
        target_name = layer_name[: -len("act")] + "fc_out"
        target = model.get_submodule(target_name)
        if type(target) is nn.Linear:
            return target, True
        raise ValueError(f"cannot merge the IA3 scale of {layer_name} into {target_name}: it is a "
                         f"{type(target).__name__}, not a plain nn.Linear (unmerge or remove what wraps it first)")
    raise ValueError(f"cannot merge the IA3 scale of {layer_name}: it wraps a {type(layer.base_layer).__name__}, "
                     "not an nn.Linear (remove what it wraps first)")


def ia3_layers(model: nn.Module, name: str) -> list[tuple[str, IA3Layer]]:
    language_model(model)
    if not isinstance(name, str):
        raise TypeError(f"name must be an adapter name (a str) or None, got {name!r}")
    layers = [(n, l) for n, l in model.named_modules() if isinstance(l, IA3Layer) and name in l.adapter_names()]
    if not layers:
        raise ValueError(f"no IA3 adapter named {name!r} in the model")
    return layers


def _names(model, name, merged: bool) -> list[str]:
    if name is not None:
        ia3_layers(model, name)
        return [name]
    names: list[str] = []
    for _, layer in model.named_modules():
        if isinstance(layer, IA3Layer):
            names += [n for n in (layer.merged if merged else layer.active) if n not in names]
    if not names:
        raise ValueError("no IA3 adapter is merged, so there is nothing to unmerge" if merged
                         else "no active IA3 adapter to merge")
    return names


@transactional
def merge_ia3(model: nn.Module, name: str | None = None) -> None:
    """Fold IA3 adapter `name` (default: every active one) into the linear weights; inference then costs
    what the base costs. Keys/values scale their projection's rows (and bias); mlp.act scales fc_out's columns."""
    for adapter in _names(model, name, merged=False):
        layers = ia3_layers(model, adapter)
        # Check every layer before merging any, so an error never leaves the model half merged.
        already = [n for n, l in layers if adapter in l.merged]
        if already:
            raise ValueError(f"IA3 adapter {adapter!r} is already merged (in {already[0]}); merging twice would "
                             "scale the weights twice")
        inactive = [n for n, l in layers if adapter not in l.active]
        if inactive:
            raise ValueError(f"IA3 adapter {adapter!r} is not active (in {inactive[0]}); set_active it before merging")
        targets = [_merge_target(model, n, l) for n, l in layers]
        for (_, layer), (target, on_input) in zip(layers, targets):
            if layer.original is None:
                layer.original = (target.weight.detach().clone(),
                                  None if target.bias is None else target.bias.detach().clone())
            layer.merged.append(adapter)
            layer.rebuild(target, on_input)


@transactional
def unmerge_ia3(model: nn.Module, name: str | None = None) -> None:
    """Take IA3 adapter `name` (default: every merged one) back out of the weights, exactly."""
    for adapter in _names(model, name, merged=True):
        layers = ia3_layers(model, adapter)
        if not any(adapter in l.merged for _, l in layers):
            raise ValueError(f"IA3 adapter {adapter!r} is not merged, so there is nothing to unmerge")
        targets = [_merge_target(model, n, l) for n, l in layers]
        for (_, layer), (target, on_input) in zip(layers, targets):
            layer.merged.remove(adapter)
            layer.rebuild(target, on_input)

"""IA3: learned vectors that rescale the keys, the values and the MLP's hidden activations.

Each vector starts at one, so the model starts unchanged; it trains d_model numbers per key and value
projection and mlp_ratio · d_model per MLP: the smallest of the course's methods.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .core import WrapperLayer, find_targets, finish_add, prepare, replace_module, transformer_sites

DEFAULT_TARGETS = ("k_proj", "v_proj", "mlp.act")


class IA3Layer(WrapperLayer):
    kind = "ia3"
    adapter_dicts = ("scales",)

    def __init__(self, base: nn.Module, features: int):
        super().__init__(base)
        self.features = features
        self.scales = nn.ParameterDict()

    @classmethod
    def wrap(cls, module, lm, layer_name):
        return cls(module, ia3_candidates(lm)[layer_name][1])

    def add(self, name: str):
        self.register(name)
        self.scales[name] = nn.Parameter(torch.ones(self.features))

    def forward(self, x):
        y = self.base(x)
        for name in self.active_names():
            y = y * self.scales[name]
        return y


def ia3_candidates(model: nn.Module) -> dict[str, tuple[nn.Module, int]]:
    """Layers IA3 can rescale, with their output width: the block's linear layers and MLP activations."""
    return {name: site for name, site in transformer_sites(model, extra=("mlp.act",)).items()
            if ".blocks." in "." + name}


def add_ia3(model: nn.Module, name: str = "default", targets=DEFAULT_TARGETS) -> list[str]:
    """Add IA3 scaling vectors `name` to the targets (default: keys, values, MLP activations)."""
    prepare(model)
    candidates = ia3_candidates(model)
    found = find_targets(targets, {n: m for n, (m, _) in candidates.items()}, "layer IA3 can scale")
    for layer_name in found:
        layer, features = candidates[layer_name]
        if not isinstance(layer, IA3Layer):
            layer = IA3Layer(layer, features)
            replace_module(model, layer_name, layer)
        layer.add(name)
    finish_add(model, name)
    return found

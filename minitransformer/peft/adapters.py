"""Bottleneck adapters: a small down → non-linearity → up module added after a sub-layer, with a residual.

    h  ->  h + up(f(down(h)))

Houlsby placement puts one after the attention and one after the MLP of every block; Pfeiffer placement
only after the MLP. `up` starts at zero, so a new adapter is exactly the identity ("houlsby" init: both
layers small random, so nearly the identity).
"""

from __future__ import annotations

import torch.nn as nn

from ..guards import require_choice, require_int
from .core import WrapperLayer, require_new_adapter, finish_add, remember_base, transactional

PLACEMENTS = {
    "houlsby": ("attn.out_proj", "mlp.fc_out"),  # after attention and after the MLP
    "pfeiffer": ("mlp.fc_out",),  # after the MLP only
}
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
INITS = ("zeros", "houlsby")


class BottleneckAdapter(nn.Module):
    def __init__(self, d_model: int, bottleneck: int, activation: str = "relu", init: str = "zeros"):
        super().__init__()
        self.down = nn.Linear(d_model, bottleneck)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, d_model)
        nn.init.normal_(self.down.weight, std=1e-2)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.bias)
        if init == "zeros":
            nn.init.zeros_(self.up.weight)  # exactly the identity at the start
        else:
            nn.init.normal_(self.up.weight, std=1e-2)  # Houlsby et al.: near-identity

    def forward(self, h):
        return self.up(self.act(self.down(h)))  # the residual is added by the layer that holds it


class AdapterLayer(WrapperLayer):
    """Wraps a sub-layer's output projection: its output h becomes h + adapter(h), per active adapter."""

    kind = "adapter"
    adapter_dicts = ("adapters",)

    def __init__(self, base: nn.Module, d_model: int):
        super().__init__(base)
        self.d_model = d_model
        self.adapters = nn.ModuleDict()

    @classmethod
    def wrap(cls, module, lm, layer_name):
        return cls(module, lm.config.d_model)

    def add(self, name: str, bottleneck: int, activation: str = "relu", init: str = "zeros"):
        self.register(name, bottleneck=bottleneck, activation=activation, init=init)
        self.adapters[name] = BottleneckAdapter(self.d_model, bottleneck, activation, init)

    def forward(self, x):
        h = self.base_layer(x)
        for name in self.active_names():
            h = h + self.adapters[name](h)
        return h


@transactional
def add_adapters(model: nn.Module, name: str = "default", placement: str = "houlsby", bottleneck: int | None = None,
                 reduction_factor: int = 16, activation: str = "relu", init: str = "zeros") -> list[str]:
    """Add bottleneck adapter `name` to every block; return the names of the wrapped layers.

    The bottleneck width is `bottleneck`, or d_model // reduction_factor when it is not given.
    """
    lm = require_new_adapter(model, name)
    require_choice("placement", placement, sorted(PLACEMENTS))
    require_choice("activation", activation, sorted(ACTIVATIONS))
    require_choice("init", init, INITS)
    d_model = lm.config.d_model
    if bottleneck is None:
        bottleneck = d_model // require_int("reduction_factor", reduction_factor, 1, d_model)
    require_int("bottleneck", bottleneck, 1)
    remember_base(model)
    prefix = "base." if lm is not model else ""
    wrapped = []
    for i in range(len(lm.blocks)):
        for site in PLACEMENTS[placement]:
            layer_name = f"{prefix}blocks.{i}.{site}"
            layer = AdapterLayer.at_site(model, layer_name, lambda module: AdapterLayer(module, d_model))
            layer.add(name, bottleneck=bottleneck, activation=activation, init=init)
            wrapped.append(layer_name)
    finish_add(model, name)
    return wrapped

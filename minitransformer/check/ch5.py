"""Checks for chapter 5's exercises: the bottleneck adapter, its near-identity init, inserting it."""

import torch
import torch.nn as nn

from ..checkpoint import load_base
from ..peft.adapters import BottleneckAdapter
from .ch1 import close
from .core import Part, call_learner, checker, register


class ResidualAdapter(nn.Module):
    """The reference answer to exercise 5.1: h + up(relu(down(h)))."""

    def __init__(self, d_model: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(d_model, bottleneck)
        self.act = nn.ReLU()
        self.up = nn.Linear(bottleneck, d_model)

    def forward(self, h):
        return h + self.up(self.act(self.down(h)))


def init_near_identity_reference(adapter: nn.Module) -> None:
    nn.init.normal_(adapter.down.weight, std=1e-2)
    nn.init.zeros_(adapter.down.bias)
    nn.init.zeros_(adapter.up.weight)
    nn.init.zeros_(adapter.up.bias)


def insert_adapters_reference(model, adapter_factory, placement: str = "houlsby") -> list[nn.Module]:
    """Put an adapter after the attention output and the MLP output of every block (Pfeiffer: MLP only)."""
    added = []
    for block in model.blocks:
        sites = [("attn", "out_proj"), ("mlp", "fc_out")] if placement == "houlsby" else [("mlp", "fc_out")]
        for parent_name, child in sites:
            parent = getattr(block, parent_name)
            adapter = adapter_factory()
            setattr(parent, child, nn.Sequential(getattr(parent, child), adapter))
            added.append(adapter)
    return added


@register("5.1", "the bottleneck adapter", 4, ResidualAdapter, "minitransformer.check.ch5.ResidualAdapter")
def _check_adapter(adapter_cls):
    torch.manual_seed(0)
    adapter = call_learner(adapter_cls, 16, 4)
    names = {n for n, _ in adapter.named_parameters()} if isinstance(adapter, nn.Module) else set()
    want = {"down.weight", "down.bias", "up.weight", "up.bias"}
    yield Part("has layers named down (d → bottleneck) and up (bottleneck → d)", names == want,
               f"its parameters are {sorted(names)}; expected {sorted(want)}")
    if names != want:
        return
    shapes_ok = tuple(adapter.down.weight.shape) == (4, 16) and tuple(adapter.up.weight.shape) == (16, 4)
    yield Part("down maps 16 → 4 and up maps 4 → 16 (2·d·m + m + d parameters)", shapes_ok,
               f"down.weight is {tuple(adapter.down.weight.shape)}, up.weight {tuple(adapter.up.weight.shape)}")
    h = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = call_learner(adapter, h)
        delta = adapter.up(torch.relu(adapter.down(h)))
        linear = adapter.up(adapter.down(h))
    yield Part("keeps the residual: output = h + up(f(down(h)))", torch.is_tensor(out) and (close(out, h + delta) or close(out, h + linear)),
               "the output should be the input plus the adapter's change" + (
                   "; you returned only the change: add h back" if torch.is_tensor(out) and close(out, delta) else ""))
    yield Part("has a non-linearity between down and up", torch.is_tensor(out) and not close(out, h + linear),
               "without a non-linearity, up(down(h)) is one low-rank linear map; put a ReLU (or GELU) between")


@register("5.2", "near-identity initialisation", 2, init_near_identity_reference,
          "minitransformer.check.ch5.init_near_identity_reference")
def _check_init(init_fn):
    torch.manual_seed(0)
    adapter = ResidualAdapter(64, 8)
    call_learner(init_fn, adapter)
    h = torch.randn(4, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        change = (adapter(h) - h).abs().max().item()
    yield Part("a new adapter changes its input by less than 1e-3", change < 1e-3,
               f"it changes h by up to {change:.3g}: start `up` at zero (weights and bias), so up(·) = 0")
    trainable = adapter.down.weight.abs().sum().item() > 0
    yield Part("down is not all zero (or no gradient could ever reach up's input)", trainable,
               "if down is zero too, up only ever sees relu(0) = 0 and never learns; keep down small but random")


@register("5.3", "inserting adapters into every block", 3, insert_adapters_reference,
          "minitransformer.check.ch5.insert_adapters_reference")
def _check_insert(insert_fn):
    base = load_base()
    model = load_base()
    ids = torch.randint(0, 35, (4, 12), generator=torch.Generator().manual_seed(3))

    def factory():
        adapter = ResidualAdapter(64, 4)
        init_near_identity_reference(adapter)
        return adapter

    added = call_learner(insert_fn, model, factory)
    adapters = [m for m in model.modules() if isinstance(m, ResidualAdapter)]
    yield Part("one adapter after attention and one after the MLP, in each of the 2 blocks", len(adapters) == 4,
               f"found {len(adapters)} adapters in the model; Houlsby placement puts 2 in every block")
    with torch.no_grad():
        same = torch.allclose(model(ids), base(ids), atol=1e-6)
    yield Part("the model's outputs are unchanged right after insertion", same,
               "with up at zero each adapter returns its input; check you wrap the sub-layer's output, not replace it")
    with torch.no_grad():
        for adapter in adapters:  # (a constant bias would not do: LayerNorm removes a uniform shift)
            adapter.up.weight.normal_(std=0.1, generator=torch.Generator().manual_seed(4))
        moved = not torch.allclose(model(ids), base(ids), atol=1e-3)
    yield Part("the adapters are on the forward path (changing them changes the output)", moved,
               "the adapters are in the model but never called: wrap the existing layer and the adapter in sequence")


bottleneck_adapter = checker("5.1")
near_identity_init = checker("5.2")
insert_adapters = checker("5.3")

"""Checks for chapter 5's exercises: the bottleneck adapter, its near-identity init, inserting it."""

import copy

import torch
import torch.nn as nn

from ...checkpoint import load_base
from ...model import MiniTransformer, ModelConfig
from ...peft.adapters import BottleneckAdapter, add_adapters
from .core import Part, call_learner, call_probe, checker, close, generator, pick, register, seed

_ACTIVATIONS = (torch.relu, nn.functional.gelu, torch.tanh, nn.functional.silu, nn.functional.leaky_relu)


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


def _probe_adapter(adapter_cls, d, m, state, h):
    """Runs where the learner's code is: build their adapter, load the judge's weights, run the judge's input."""
    adapter = adapter_cls(d, m)
    if not isinstance(adapter, nn.Module):
        return {"names": [], "shapes": {}}
    params = dict(adapter.named_parameters())
    seen = {"names": sorted(params), "shapes": {n: list(p.shape) for n, p in params.items()}}
    if set(params) == set(state) and all(list(state[n].shape) == seen["shapes"][n] for n in params):
        adapter.load_state_dict(state)
        with torch.no_grad():
            seen["out"] = adapter(h)
    return seen


@register("5.1", "the bottleneck adapter", 4, ResidualAdapter, "minitransformer.course.check.ch5.ResidualAdapter",
          forbidden=(BottleneckAdapter, add_adapters))
def _check_adapter(adapter_cls):
    d, m = pick(1, (16, 4), (24, 6), (12, 3), (20, 5))
    torch.manual_seed(seed(0))
    reference = ResidualAdapter(d, m)
    with torch.no_grad():  # the judge's weights: every mistake shows
        for p in reference.parameters():
            p.normal_(std=0.5, generator=generator(7))
    h = torch.randn(3, 5, d, generator=generator(1))
    seen = call_probe(_probe_adapter, adapter_cls, d, m, reference.state_dict(), h)
    names, want = set(seen["names"]), {"down.weight", "down.bias", "up.weight", "up.bias"}
    yield Part("has layers named down (d → bottleneck) and up (bottleneck → d)", names == want,
               f"its parameters are {sorted(names)}; expected {sorted(want)}")
    if names != want:
        return
    shapes_ok = seen["shapes"]["down.weight"] == [m, d] and seen["shapes"]["up.weight"] == [d, m]
    yield Part(f"down maps {d} → {m} and up maps {m} → {d} (2·d·m + m + d parameters)", shapes_ok,
               f"down.weight is {tuple(seen['shapes']['down.weight'])}, up.weight {tuple(seen['shapes']['up.weight'])}")
    out = seen.get("out")
    with torch.no_grad():
        deltas = [reference.up(f(reference.down(h))) for f in _ACTIVATIONS]
        linear = reference.up(reference.down(h))
    ok = torch.is_tensor(out) and out.shape == h.shape
    yield Part("keeps the residual: output = h + up(f(down(h)))", ok and any(close(out, h + dl) for dl in (*deltas, linear)),
               "the output should be the input plus the adapter's change" + (
                   "; you returned only the change: add h back" if ok and any(close(out, dl) for dl in deltas) else ""))
    yield Part("has a non-linearity between down and up", ok and not close(out, h + linear),
               "without a non-linearity, up(down(h)) is one low-rank linear map; put a ReLU (or GELU) between")


@register("5.2", "near-identity initialisation", 2, init_near_identity_reference,
          "minitransformer.course.check.ch5.init_near_identity_reference", forbidden=(BottleneckAdapter,))
def _check_init(init_fn):
    torch.manual_seed(seed(0))
    d, m = pick(1, (64, 8), (48, 6), (80, 4))
    adapter = ResidualAdapter(d, m)
    with torch.no_grad():  # every parameter starts far from the answer
        for p in adapter.parameters():
            p.normal_(std=1.0, generator=generator(3))
    call_learner(init_fn, adapter)
    h = torch.randn(4, d, generator=generator(2))
    with torch.no_grad():
        change = (adapter(h) - h).abs().max().item()
    yield Part("a new adapter changes its input by less than 1e-3", change < 1e-3,
               f"it changes h by up to {change:.3g}: start `up` at zero (weights and bias), so up(·) = 0")
    trainable = adapter.down.weight.abs().sum().item() > 0
    yield Part("down is not all zero (or no gradient could ever reach up's input)", trainable,
               "if down is zero too, up's weight only ever sees relu(0) = 0 and down gets no gradient through "
               "a zero up: only up's bias (one constant vector) could learn; keep down small but random")


def _slot(path: str):
    """'blocks.1.attn.out_proj.1' -> '1.attn': which block and which sub-layer an adapter sits in."""
    parts = path.split(".")
    return f"{parts[1]}.{parts[2]}" if len(parts) > 3 and parts[0] == "blocks" and parts[2] in ("attn", "mlp") else path


def _probe_insert(insert_fn, model, d, m, ids, weights):
    """Runs where the learner's code is: insert their way, then report where the adapters are and what the
    model computes, before and after loading the judge's weights into each adapter (by its place)."""
    def factory():
        adapter = ResidualAdapter(d, m)
        init_near_identity_reference(adapter)
        return adapter

    returned = insert_fn(model, factory)
    paths = {id(module): name for name, module in model.named_modules()}
    found = [name for name, module in model.named_modules() if isinstance(module, ResidualAdapter)]
    seen = {"found": found, "returned": [paths.get(id(a), repr(type(a).__name__)) for a in returned]
            if isinstance(returned, list) else repr(type(returned).__name__)}
    with torch.no_grad():
        seen["plain"] = model(ids)
        for name in found:
            if _slot(name) in weights:
                model.get_submodule(name).load_state_dict(weights[_slot(name)])
        seen["perturbed"] = model(ids)
    return seen


@register("5.3", "inserting adapters into every block", 3, insert_adapters_reference,
          "minitransformer.course.check.ch5.insert_adapters_reference", forbidden=(add_adapters,))
def _check_insert(insert_fn):
    if pick(0, True, False):
        base = load_base()
    else:
        torch.manual_seed(seed(50))
        base = MiniTransformer(ModelConfig(n_layer=pick(1, 3, 4), d_model=pick(2, 32, 48), n_head=4))
    d, m, L = base.config.d_model, 4, base.config.n_layer
    ids = torch.randint(0, 35, (4, 12), generator=generator(3))
    weights = {}
    for i in range(L):  # (a constant bias would not do: LayerNorm removes a uniform shift)
        for site in ("attn", "mlp"):
            adapter = ResidualAdapter(d, m)
            with torch.no_grad():
                for p in adapter.parameters():
                    p.normal_(std=0.1, generator=generator(100 + 2 * i + (site == "mlp")))
            weights[f"{i}.{site}"] = adapter.state_dict()
    seen = call_probe(_probe_insert, insert_fn, copy.deepcopy(base), d, m, ids, weights)
    slots = sorted(_slot(p) for p in seen["found"])
    returned = seen["returned"]
    placed = slots == sorted(weights) and isinstance(returned, list) and sorted(map(str, returned)) == sorted(seen["found"])
    message = f"found {len(slots)} adapters in the model; Houlsby placement puts 2 in every block"
    if len(slots) == 2 * L and slots != sorted(weights):
        message = (f"the adapters sit at {sorted(seen['found'])}; put one after each block's attention output "
                   "(attn.out_proj) and one after its MLP output (mlp.fc_out)")
    elif len(slots) == 2 * L and not isinstance(returned, list):
        message = f"return the list of the adapters you added (you returned {returned})"
    elif len(slots) == 2 * L:
        message = f"return exactly the adapters you added, each once; you returned {returned}"
    yield Part(f"one adapter after attention and one after the MLP, in each of the {L} blocks", placed, message)
    with torch.no_grad():
        expected_plain = base(ids)
    same = torch.is_tensor(seen["plain"]) and seen["plain"].shape == expected_plain.shape and \
        torch.allclose(seen["plain"], expected_plain, atol=1e-6)
    yield Part("the model's outputs are unchanged right after insertion", same,
               "with up at zero each adapter returns its input; check you wrap the sub-layer's output, not replace it")
    reference = copy.deepcopy(base)
    insert_adapters_reference(reference, lambda: ResidualAdapter(d, m))
    for name, module in reference.named_modules():
        if isinstance(module, ResidualAdapter):
            module.load_state_dict(weights[_slot(name)])
    with torch.no_grad():
        expected = reference(ids)
        perturbed = seen["perturbed"]
        ok = torch.is_tensor(perturbed) and perturbed.shape == expected.shape and torch.allclose(perturbed, expected, atol=1e-5)
        moved = torch.is_tensor(perturbed) and perturbed.shape == expected.shape and \
            not torch.allclose(perturbed, expected_plain, atol=1e-3)
    message = ("the adapters change the output, but not as adapters applied to the attention output and to the MLP "
               "output would" if moved else
               "the adapters are in the model but never called: wrap the existing layer and the adapter in sequence")
    yield Part("the adapters are on the forward path (changing them changes the output)", ok, message)


bottleneck_adapter = checker("5.1")
near_identity_init = checker("5.2")
insert_adapters = checker("5.3")

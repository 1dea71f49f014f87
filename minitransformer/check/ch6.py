"""Checks for chapter 6's exercises: a LoRA layer, merging it, and choosing its targets by name."""

import math

import torch
import torch.nn as nn

from ..checkpoint import load_base
from .ch1 import close
from .core import Part, StubError, call_learner, checker, register


class LoRALinearReference(nn.Module):
    """The reference answer to exercise 6.1: base(x) + (alpha / r) · x Aᵀ Bᵀ, with A random and B zero."""

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 8):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scaling


def merge_reference(layer) -> nn.Linear:
    merged = nn.Linear(layer.base.in_features, layer.base.out_features, bias=layer.base.bias is not None)
    with torch.no_grad():
        merged.weight.copy_(layer.base.weight + layer.scaling * layer.B @ layer.A)
        if layer.base.bias is not None:
            merged.bias.copy_(layer.base.bias)
    return merged


def lora_targets_reference(model, suffixes) -> list[str]:
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-1] in suffixes]
    if not names:
        linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(f"no linear layer ends in any of {list(suffixes)}; the linear layers are {linear}")
    return names


def _base_layer(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(12, 10)


@register("6.1", "a LoRA layer", 4, LoRALinearReference, "minitransformer.check.ch6.LoRALinearReference")
def _check_lora(cls):
    base = _base_layer()
    layer = call_learner(cls, base, 4, 8)
    ok = isinstance(layer, nn.Module) and all(hasattr(layer, a) for a in ("A", "B", "scaling"))
    shapes = ok and tuple(layer.A.shape) == (4, 12) and tuple(layer.B.shape) == (10, 4)
    yield Part("A is (r × in), B is (out × r), and the base is frozen",
               bool(shapes) and not any(p.requires_grad for p in base.parameters()),
               "keep attributes A, B and scaling; A: (4, 12), B: (10, 4) here; base.requires_grad_(False)"
               if not shapes else "the wrapped base layer must be frozen: base.requires_grad_(False)")
    if not shapes:
        return
    x = torch.randn(5, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        start = call_learner(layer, x)
    yield Part("at the start it computes exactly what the base computes (B = 0)", torch.equal(start, base(x)),
               "initialise B to zeros (and A randomly), so B·A = 0 and the layer starts as the base layer")
    with torch.no_grad():
        layer.B.normal_(generator=torch.Generator().manual_seed(2))
        got = layer(x)
        expected = base(x) + (x @ layer.A.T @ layer.B.T) * (8 / 4)
        by_alpha = base(x) + (x @ layer.A.T @ layer.B.T) * 8
    message = "the output should be base(x) + (alpha / r) · x Aᵀ Bᵀ"
    if close(got, by_alpha):
        message = "scaled by alpha instead of alpha / r: the update would grow with the rank (a real bug in a popular course)"
    yield Part("adds the low-rank update scaled by alpha / r", close(got, expected), message)
    base.zero_grad(set_to_none=True)
    got.requires_grad_(False)
    layer(x).sum().backward()
    grads_ok = layer.A.grad is not None and layer.B.grad is not None and base.weight.grad is None
    yield Part("gradients reach A and B, and not the base weight", grads_ok,
               "A and B must be nn.Parameters (trainable); the base weight must get no gradient")


@register("6.2", "merging LoRA into the weight", 3, merge_reference, "minitransformer.check.ch6.merge_reference")
def _check_merge(merge_fn):
    layer = LoRALinearReference(_base_layer(), r=4, alpha=8)
    with torch.no_grad():
        layer.B.normal_(generator=torch.Generator().manual_seed(3))
    before = layer.base.weight.detach().clone()
    merged = call_learner(merge_fn, layer)
    yield Part("returns an nn.Linear of the same shape", isinstance(merged, nn.Linear)
               and merged.weight.shape == layer.base.weight.shape, f"got {type(merged).__name__}")
    if not isinstance(merged, nn.Linear):
        return
    x = torch.randn(6, 12, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        same = close(merged(x), layer(x))
    message = "merged(x) should equal the LoRA layer's output: W' = W + scaling · B @ A, bias unchanged"
    if torch.is_tensor(merged.weight) and close(merged.weight, before + layer.B @ layer.A):
        message = "the merged weight is missing the scaling (alpha / r)"
    yield Part("merged output equals the unmerged output (to 1e-5)", same, message)
    yield Part("the LoRA layer's own base weight is left unchanged", torch.equal(layer.base.weight, before),
               "build a new weight (e.g. W + ...) instead of adding into layer.base.weight in place")


@register("6.3", "choosing LoRA targets by name", 3, lora_targets_reference, "minitransformer.check.ch6.lora_targets_reference")
def _check_targets(fn):
    model = load_base()
    got = call_learner(fn, model, ("q_proj", "v_proj"))
    want = lora_targets_reference(model, ("q_proj", "v_proj"))
    yield Part("finds the query and value projections of every block", got == want, f"you returned {got!r}, expected {want}")
    got = call_learner(fn, model, ("fc_in", "fc_out"))
    want = lora_targets_reference(model, ("fc_in", "fc_out"))
    yield Part("finds the MLP layers", got == want, f"you returned {got!r}, expected {want}")
    try:
        result = fn(model, ("query",))
        raised, message = False, f"a target that matches nothing returned {result!r}: raise a ValueError instead, naming what exists"
    except ValueError:
        raised, message = True, ""
    except NotImplementedError as error:
        raise StubError() from error
    except Exception as error:
        raised, message = False, f"raise a ValueError (you raised {type(error).__name__})"
    yield Part("a target that matches nothing is an error, not a silent no-op", raised, message)


lora_linear = checker("6.1")
merge_lora = checker("6.2")
lora_targets = checker("6.3")

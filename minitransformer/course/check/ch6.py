"""Checks for chapter 6's exercises: a LoRA layer, merging it, and choosing its targets by name."""

import copy
import math

import torch
import torch.nn as nn

from ...checkpoint import load_base
from ...model import MiniTransformer, ModelConfig
from ...peft import lora
from ...peft.layers import find_targets
from .core import Part, StubError, call_learner, call_probe, checker, close, generator, pick, register, seed


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
    unmatched = [s for s in suffixes if s not in {n.split(".")[-1] for n in names}]
    if unmatched:  # even one typo: training fewer layers than asked is a silent wrong result
        linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(f"no linear layer ends in {unmatched}; the linear layers are {linear}")
    return names


def _sizes():
    """(in, out, r, alpha): the notebook's, or hidden ones when grading."""
    return pick(1, (12, 10, 4, 8), (16, 9, 2, 4), (20, 6, 8, 16), (7, 13, 3, 6), (10, 10, 5, 20))


def _base_layer(n=0):
    torch.manual_seed(seed(n))
    return nn.Linear(*_sizes()[:2])


def _probe_lora(cls, base, r, alpha, A, B, x):
    """Runs where the learner's code is: build their layer, report its state, then load the judge's A and B
    and report the output and the gradients."""
    layer = cls(base, r, alpha)
    if not (isinstance(layer, nn.Module) and all(hasattr(layer, a) for a in ("A", "B", "scaling"))):
        return {"attributes": False}
    seen = {"attributes": True, "A": torch.as_tensor(layer.A).detach().clone(), "B": torch.as_tensor(layer.B).detach().clone(),
            "base_frozen": not any(p.requires_grad for p in base.parameters())}
    if not (torch.is_tensor(layer.A) and torch.is_tensor(layer.B) and layer.A.shape == A.shape and layer.B.shape == B.shape):
        return seen
    with torch.no_grad():
        seen["start"] = layer(x)
        layer.A.copy_(A)
        layer.B.copy_(B)
        seen["got"] = layer(x)
    base.zero_grad(set_to_none=True)
    layer(x).sum().backward()
    seen.update(grad_A=layer.A.grad, grad_B=layer.B.grad, base_grad=base.weight.grad is not None)
    return seen


@register("6.1", "a LoRA layer", 4, LoRALinearReference, "minitransformer.course.check.ch6.LoRALinearReference",
          forbidden=(lora.LoRALinear, lora.add_lora))
def _check_lora(cls):
    n_in, n_out, r, alpha = _sizes()
    base = _base_layer()
    x = torch.randn(5, n_in, generator=generator(1))
    A = torch.randn(r, n_in, generator=generator(5)) * 0.5
    B = torch.randn(n_out, r, generator=generator(2))
    seen = call_probe(_probe_lora, cls, copy.deepcopy(base), r, alpha, A, B, x)
    shapes = seen["attributes"] and torch.is_tensor(seen["A"]) and torch.is_tensor(seen["B"]) and \
        tuple(seen["A"].shape) == (r, n_in) and tuple(seen["B"].shape) == (n_out, r)
    yield Part("A is (r × in), B is (out × r), and the base is frozen",
               bool(shapes) and seen["base_frozen"],
               f"keep attributes A, B and scaling; A: ({r}, {n_in}), B: ({n_out}, {r}) here; base.requires_grad_(False)"
               if not shapes else "the wrapped base layer must be frozen: base.requires_grad_(False)")
    if not shapes:
        return
    with torch.no_grad():
        plain = base(x)
    start = seen["start"]
    a_random = bool(seen["A"].abs().sum() > 0) and seen["A"].unique().numel() > 1
    message = "initialise B to zeros (and A randomly), so B·A = 0 and the layer starts as the base layer"
    if not a_random:
        message = ("A is all zero (or constant) too: with A = B = 0 no gradient ever reaches either, so LoRA never "
                   "learns; initialise A randomly (e.g. kaiming_uniform_) and B to zeros")
    yield Part("at the start it computes exactly what the base computes (B = 0)",
               torch.is_tensor(start) and start.shape == plain.shape and torch.equal(start, plain) and a_random
               and bool((seen["B"] == 0).all()), message)
    got = seen["got"]
    with torch.no_grad():
        expected = plain + (x @ A.T @ B.T) * (alpha / r)
        by_alpha = plain + (x @ A.T @ B.T) * alpha
    message = "the output should be base(x) + (alpha / r) · x Aᵀ Bᵀ"
    if torch.is_tensor(got) and close(got, by_alpha) and alpha != 1:
        message = "scaled by alpha instead of alpha / r: the update would grow with the rank (a real bug in a popular course)"
    yield Part("adds the low-rank update scaled by alpha / r", torch.is_tensor(got) and close(got, expected), message)
    A_, B_ = A.clone().requires_grad_(True), B.clone().requires_grad_(True)
    (base(x).detach() + (x @ A_.T @ B_.T) * (alpha / r)).sum().backward()
    grads_ok = torch.is_tensor(seen["grad_A"]) and torch.is_tensor(seen["grad_B"]) and not seen["base_grad"] and \
        close(seen["grad_A"], A_.grad, 1e-4) and close(seen["grad_B"], B_.grad, 1e-4)
    yield Part("gradients reach A and B, and not the base weight", grads_ok,
               "A and B must be nn.Parameters (trainable); the base weight must get no gradient")


@register("6.2", "merging LoRA into the weight", 3, merge_reference, "minitransformer.course.check.ch6.merge_reference",
          forbidden=(lora.LoRALinear, lora.merge_lora, lora.merge_and_unload))
def _check_merge(merge_fn):
    n_in, _, r, alpha = _sizes()
    layer = LoRALinearReference(_base_layer(), r=r, alpha=alpha)
    with torch.no_grad():
        layer.B.normal_(generator=generator(3))
    before = layer.base.weight.detach().clone()
    merged = call_learner(merge_fn, layer)
    yield Part("returns an nn.Linear of the same shape", isinstance(merged, nn.Linear)
               and merged.weight.shape == layer.base.weight.shape, f"got {type(merged).__name__}")
    if not isinstance(merged, nn.Linear):
        return
    x = torch.randn(6, n_in, generator=generator(4))
    with torch.no_grad():
        same = close(merged(x), layer(x))
    message = "merged(x) should equal the LoRA layer's output: W' = W + scaling · B @ A, bias unchanged"
    if torch.is_tensor(merged.weight) and close(merged.weight, before + layer.B @ layer.A):
        message = "the merged weight is missing the scaling (alpha / r)"
    yield Part("merged output equals the unmerged output (to 1e-5)", same, message)
    yield Part("the LoRA layer's own base weight is left unchanged", torch.equal(layer.base.weight, before),
               "build a new weight (e.g. W + ...) instead of adding into layer.base.weight in place")


@register("6.3", "choosing LoRA targets by name", 3, lora_targets_reference, "minitransformer.course.check.ch6.lora_targets_reference",
          forbidden=(find_targets, lora.add_lora))
def _check_targets(fn):
    if pick(0, True, False):
        model = load_base()
    else:
        torch.manual_seed(seed(60))
        model = MiniTransformer(ModelConfig(n_layer=pick(1, 3, 4, 5), d_model=32))
    first, second = pick(2, (("q_proj", "v_proj"), ("fc_in", "fc_out")), (("k_proj", "fc_out"), ("q_proj", "out_proj")),
                         (("v_proj", "fc_in"), ("k_proj", "q_proj", "v_proj")))
    got = call_learner(fn, copy.deepcopy(model), first)
    want = lora_targets_reference(model, first)
    yield Part("finds the query and value projections of every block", got == want, f"you returned {got!r}, expected {want}")
    got = call_learner(fn, copy.deepcopy(model), second)
    want = lora_targets_reference(model, second)
    yield Part("finds the MLP layers", got == want, f"you returned {got!r}, expected {want}")
    linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    raised, message = True, ""
    for targets, what in (((pick(3, "query", "attn", "proj", "mlp"),), "a target that matches nothing"),
                          ((first[0], pick(4, "v_prj", "q_pro", "fc_ot", "k-proj")), "a typo in one of two targets")):
        try:
            result = call_learner(fn, copy.deepcopy(model), targets)
            raised, message = False, f"{what} ({targets}) returned {result!r}: raise a ValueError instead, naming what exists"
        except StubError:
            raise
        except ValueError as error:
            if not all(name in str(error) for name in linear):
                raised, message = False, f"the ValueError for {what} must list the linear layers that exist, e.g. {linear[:3]}"
        except Exception as error:  # noqa: BLE001 (the learner's mistake, reported)
            raised, message = False, f"raise a ValueError (you raised {type(error).__name__})"
        if not raised:
            break
    yield Part("a target that matches nothing is an error, not a silent no-op", raised, message)


lora_linear = checker("6.1")
merge_lora = checker("6.2")
lora_targets = checker("6.3")

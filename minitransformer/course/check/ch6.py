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
        self.base_layer = base
        self.base_layer.requires_grad_(False)
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        self.scaling = alpha / r

    def forward(self, x):
        return self.base_layer(x) + (x @ self.A.T @ self.B.T) * self.scaling


def merge_reference(layer) -> nn.Linear:
    merged = nn.Linear(layer.base_layer.in_features, layer.base_layer.out_features, bias=layer.base_layer.bias is not None)
    with torch.no_grad():
        merged.weight.copy_(layer.base_layer.weight + layer.scaling * layer.B @ layer.A)
        if layer.base_layer.bias is not None:
            merged.bias.copy_(layer.base_layer.bias)
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
    if not (isinstance(layer, nn.Module) and all(hasattr(layer, a) for a in ("A", "B"))):
        return {"attributes": False, "module": isinstance(layer, nn.Module),
                "missing": [a for a in ("A", "B") if not hasattr(layer, a)]}
    scaling = getattr(layer, "scaling", None)
    seen = {"attributes": True, "A": torch.as_tensor(layer.A).detach().clone(), "B": torch.as_tensor(layer.B).detach().clone(),
            "base_frozen": not any(p.requires_grad for p in base.parameters()),
            "scaling": float(scaling) if isinstance(scaling, (int, float)) or (torch.is_tensor(scaling) and scaling.numel() == 1)
            else None}
    if not (torch.is_tensor(layer.A) and torch.is_tensor(layer.B) and layer.A.shape == A.shape and layer.B.shape == B.shape):
        return seen
    with torch.no_grad():
        seen["start"] = layer(x)
        layer.A.copy_(A)
        layer.B.copy_(B)
        seen["got"] = layer(x)
    base.zero_grad(set_to_none=True)
    try:
        layer(x).sum().backward()
    except RuntimeError as error:  # nothing in the output requires a gradient: no gradient reaches anything
        if "does not require grad" not in str(error):
            raise
    seen.update(grad_A=getattr(layer.A, "grad", None), grad_B=getattr(layer.B, "grad", None),
                base_grad=base.weight.grad is not None)
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
    if not seen["attributes"]:
        message = (f"keep the attributes A and B (missing: {', '.join(seen['missing'])})" if seen["module"]
                   else "LoRALinear must be an nn.Module (class LoRALinear(nn.Module))")
    elif not shapes:
        message = (f"A must be (r, in) = ({r}, {n_in}) and B (out, r) = ({n_out}, {r}) here; yours are "
                   f"{tuple(seen['A'].shape)} and {tuple(seen['B'].shape)}")
    else:
        message = "the wrapped base layer must be frozen: base.requires_grad_(False)"
    yield Part("A is (r × in), B is (out × r), and the base is frozen", bool(shapes) and seen["base_frozen"], message)
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
    scale = alpha / r
    with torch.no_grad():
        update = x @ A.T @ B.T
        expected = plain + update * scale
    message = f"the output should be base(x) + (alpha / r) · x Aᵀ Bᵀ, with alpha / r = {alpha:g} / {r} = {scale:g} here"
    if torch.is_tensor(got) and got.shape == plain.shape:
        for wrong, diagnosis in (
                (alpha, f"scaled by alpha instead of alpha / r: the update would grow with the rank (a real bug in a "
                        f"popular course); the update must be scaled by alpha / r = {alpha:g} / {r} = {scale:g}"),
                (1.0, f"the update is not scaled: the update must be scaled by alpha / r = {alpha:g} / {r} = {scale:g} "
                      "(self.scaling), i.e. base(x) + self.scaling · x Aᵀ Bᵀ"),
                (r / alpha, f"scaled by r / alpha = {r / alpha:g}: the update must be scaled by alpha / r = "
                            f"{alpha:g} / {r} = {scale:g}")):
            if wrong != scale and close(got, plain + update * wrong):
                message = diagnosis
                break
    scaled_ok = torch.is_tensor(got) and close(got, expected)
    if scaled_ok and (seen["scaling"] is None or abs(seen["scaling"] - scale) > 1e-9):
        scaled_ok, message = False, (f"the output is right, but keep the factor as self.scaling = alpha / r = {scale:g} "
                                     f"(merging reads it); yours is {seen['scaling']!r}")
    yield Part("adds the low-rank update scaled by alpha / r", scaled_ok, message)
    # Gradients: compared up to one common factor, so that a wrong scaling (reported above) is not blamed here
    # again; what this part checks is that A and B are trained, by the gradient of this update, and W is not.
    A_, B_ = A.clone().requires_grad_(True), B.clone().requires_grad_(True)
    (base(x).detach() + (x @ A_.T @ B_.T) * scale).sum().backward()
    grad_A, grad_B = seen["grad_A"], seen["grad_B"]
    missing = [name for name, g, want in (("A", grad_A, A_.grad), ("B", grad_B, B_.grad))
               if not (torch.is_tensor(g) and g.shape == want.shape and bool(g.abs().sum() > 0))]
    if missing:
        grads_ok = False
        message = (f"{' and '.join(missing)} got no gradient: make {'them' if len(missing) > 1 else 'it'} an "
                   f"nn.Parameter and use {'them' if len(missing) > 1 else 'it'} in forward without .detach() or no_grad")
    elif seen["base_grad"]:
        grads_ok, message = False, "the base weight got a gradient: freeze the wrapped layer (base.requires_grad_(False))"
    else:
        got_g, want_g = torch.cat([grad_A.flatten(), grad_B.flatten()]), torch.cat([A_.grad.flatten(), B_.grad.flatten()])
        factor = float(got_g @ want_g / (want_g @ want_g))  # the learner's scaling over alpha / r, if any
        grads_ok = factor > 0 and close(grad_A, A_.grad * factor, 1e-4) and close(grad_B, B_.grad * factor, 1e-4)
        message = ("A and B get gradients, but not those of base(x) + scaling · x Aᵀ Bᵀ: use A and B only through "
                   "x @ A.T @ B.T (times the scaling)")
    yield Part("gradients reach A and B, and not the base weight", grads_ok, message)


@register("6.2", "merging LoRA into the weight", 3, merge_reference, "minitransformer.course.check.ch6.merge_reference",
          forbidden=(lora.LoRALinear, lora.merge_lora, lora.merge_and_unload))
def _check_merge(merge_fn):
    n_in, _, r, alpha = _sizes()
    layer = LoRALinearReference(_base_layer(), r=r, alpha=alpha)
    with torch.no_grad():
        layer.B.normal_(generator=generator(3))
    before = layer.base_layer.weight.detach().clone()
    n_out = before.shape[0]
    shapes = (f"the update B @ A has shape (out, in) = ({n_out}, {n_in}), like W (B is ({n_out}, {r}), A is ({r}, {n_in})), "
              f"while Aᵀ @ Bᵀ and (B @ A).T are (in, out) = ({n_in}, {n_out}): use W + scaling · B @ A")
    try:
        merged = call_learner(merge_fn, layer)
    except (RuntimeError, AttributeError) as error:  # a LearnerError from the sandbox is a RuntimeError too
        text = str(error).split("\n")[0]
        if "attribute" in text and "base" in text:
            yield Part("returns an nn.Linear of the same shape", False,
                       f"your merge raised {text[:160]}: the LoRA layer keeps the wrapped layer as `layer.base_layer` "
                       "(Hugging Face PEFT's name), with `layer.A`, `layer.B` and `layer.scaling`")
            return
        if not any(word in text for word in ("size", "shape")):
            raise
        yield Part("returns an nn.Linear of the same shape", False,
                   f"your merge raised a shape error ({text[:160]}): {shapes}")
        return
    shaped = isinstance(merged, nn.Linear) and merged.weight.shape == layer.base_layer.weight.shape
    yield Part("returns an nn.Linear of the same shape", shaped,
               f"got {type(merged).__name__}" if not isinstance(merged, nn.Linear) else
               f"its weight is {tuple(merged.weight.shape)}, the base's is {tuple(before.shape)}: {shapes}")
    if not isinstance(merged, nn.Linear):
        return
    if shaped:
        x = torch.randn(6, n_in, generator=generator(4))
        with torch.no_grad():
            same = close(merged(x), layer(x))
            update = layer.B @ layer.A
        message = "merged(x) should equal the LoRA layer's output: W' = W + scaling · B @ A, bias unchanged"
        if close(merged.weight.detach(), before + update):
            message = "the merged weight is missing the scaling (alpha / r)"
        elif update.T.shape == before.shape and close(merged.weight.detach(), before + layer.scaling * update.T):
            # a square layer: the transposed update raised no shape error
            message = f"the update is transposed: {shapes}"
    else:
        same, message = False, "not comparable: the merged layer has the wrong shape (see above)"
    yield Part("merged output equals the unmerged output (to 1e-5)", same, message)
    yield Part("the LoRA layer's own base weight is left unchanged", torch.equal(layer.base_layer.weight, before),
               "build a new weight (e.g. W + ...) instead of adding into layer.base_layer.weight in place")


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

"""Checks for chapter 7's exercises: a soft prompt, an IA3 scaling vector, attention with a prefix."""

import torch
import torch.nn as nn

from ...model import causal_attention
from ...peft.ia3 import IA3Layer, add_ia3
from ...peft.prefix import PrefixKV, add_prefix
from ...peft.prompt import SoftPrompt, add_prompt
from .core import Part, call_learner, call_probe, checker, close, generator, pick, register


class SoftPromptReference(nn.Module):
    """The reference answer to exercise 7.1: n learned vectors put in front of every sequence."""

    def __init__(self, n_tokens: int, d_model: int):
        super().__init__()
        self.prompt = nn.Parameter(torch.randn(n_tokens, d_model) * 0.02)

    def forward(self, embeddings):
        return torch.cat([self.prompt.expand(embeddings.size(0), -1, -1), embeddings], dim=1)


class IA3ScaleReference(nn.Module):
    """The reference answer to exercise 7.2: a learned per-feature scale, starting at one."""

    def __init__(self, features: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(features))

    def forward(self, x):
        return x * self.scale


def attention_with_prefix_reference(q, k, v, prefix_k, prefix_v):
    """Causal attention where every query also sees P learned prefix keys and values."""
    out, _ = causal_attention(q, torch.cat([prefix_k, k], dim=2), torch.cat([prefix_v, v], dim=2))
    return out


def _probe_soft_prompt(cls, n, d, prompt, x):
    """Runs where the learner's code is: their module's parameters; its output and gradient with the judge's prompt."""
    module = cls(n, d)
    params = dict(module.named_parameters()) if isinstance(module, nn.Module) else {}
    seen = {"params": [[name, list(p.shape)] for name, p in params.items()]}
    if list(params) == ["prompt"] and params["prompt"].shape == prompt.shape:
        with torch.no_grad():
            module.prompt.copy_(prompt)
        out = module(x)
        seen["out"] = out.detach() if torch.is_tensor(out) else out
        if torch.is_tensor(out) and out.requires_grad:
            out.sum().backward()
        seen["grad"] = module.prompt.grad
    return seen


@register("7.1", "a soft prompt", 3, SoftPromptReference, "minitransformer.course.check.ch7.SoftPromptReference",
          forbidden=(SoftPrompt, add_prompt))
def _check_soft_prompt(cls):
    n, d, B, T = pick(1, (3, 8, 2, 5), (4, 6, 3, 7), (2, 10, 1, 4), (5, 4, 2, 3))
    prompt = torch.randn(n, d, generator=generator(4))
    x = torch.randn(B, T, d, generator=generator(1))
    seen = call_probe(_probe_soft_prompt, cls, n, d, prompt, x)
    ok = [name for name, _ in seen["params"]] == ["prompt"] and seen["params"][0][1] == [n, d]
    yield Part("one parameter, `prompt`, of shape (n_tokens, d_model)", ok, f"its parameters: {[tuple(p) for p in seen['params']]}")
    if not ok:
        return
    out = seen.get("out")
    shape = (B, n + T, d)
    right = torch.is_tensor(out) and out.shape == shape and torch.equal(out[:, n:], x) and \
        all(torch.equal(out[b, :n], prompt) for b in range(B))
    message = f"expected shape {shape}: the {n} prompt vectors, then the {T} input vectors, for every sequence"
    if torch.is_tensor(out) and out.shape == shape and torch.equal(out[:, :T], x):
        message = "the prompt goes in front of the input, not after it"
    yield Part("puts the prompt in front of each sequence's embeddings", right, message)
    if right:
        grad = seen.get("grad")
        yield Part("the prompt receives gradients", torch.is_tensor(grad) and close(grad, torch.full((n, d), float(B))),
                   "keep the prompt an nn.Parameter and use it in forward (no .detach())")
    else:
        yield Part("the prompt receives gradients", False, "fix the forward pass first")


def _probe_ia3(cls, features, x, scale):
    """Runs where the learner's code is: their module's parameters, its output at the start and with the judge's scale."""
    module = cls(features)
    params = dict(module.named_parameters()) if isinstance(module, nn.Module) else {}
    seen = {"params": [[name, list(p.shape)] for name, p in params.items()]}
    if list(params) == ["scale"]:
        with torch.no_grad():
            seen["start"] = module(x)
            if params["scale"].shape == scale.shape:
                module.scale.copy_(scale)
                seen["scaled"] = module(x)
    return seen


@register("7.2", "an IA3 scaling vector", 3, IA3ScaleReference, "minitransformer.course.check.ch7.IA3ScaleReference",
          forbidden=(IA3Layer, add_ia3))
def _check_ia3(cls):
    features, rows = pick(1, (6, 4), (9, 3), (5, 7), (12, 2))
    x = torch.randn(rows, features, generator=generator(2))
    scale = pick(2, torch.arange(1.0, features + 1), torch.randn(features, generator=generator(6)))
    seen = call_probe(_probe_ia3, cls, features, x, scale)
    names = [name for name, _ in seen["params"]]
    yield Part("one parameter, `scale`, with one number per feature", names == ["scale"] and seen["params"][0][1] == [features],
               f"its parameters: {[tuple(p) for p in seen['params']]}")
    if names != ["scale"]:
        return
    out = seen.get("start")
    yield Part("starts as the identity (scale = 1)", torch.is_tensor(out) and out.shape == x.shape and torch.equal(out, x),
               "initialise the scale to ones, so the model starts unchanged" + (
                   " (zeros would switch the layer off)" if torch.is_tensor(out) and out.shape == x.shape
                   and torch.equal(out, torch.zeros_like(x)) else ""))
    out = seen.get("scaled")
    yield Part("multiplies each feature by its own scale", torch.is_tensor(out) and close(out, x * scale),
               "the output should be x * scale (element-wise, feature by feature)")


@register("7.3", "attention with a key/value prefix", 4, attention_with_prefix_reference,
          "minitransformer.course.check.ch7.attention_with_prefix_reference", forbidden=(PrefixKV, add_prefix))
def _check_prefix(fn):
    g = generator(3)
    B, H, T, P, hd = pick(1, (2, 2, 5, 3, 4), (1, 3, 7, 2, 8), (2, 1, 4, 5, 6), (3, 2, 6, 1, 4))
    q, k, v = (torch.randn(B, H, T, hd, generator=g) for _ in range(3))
    pk, pv = (torch.randn(B, H, P, hd, generator=g) for _ in range(2))
    out = call_learner(fn, q, k, v, pk, pv)
    yield Part("returns one output per query: shape (B, H, T, head_dim)", torch.is_tensor(out) and out.shape == q.shape,
               f"got {tuple(out.shape) if torch.is_tensor(out) else type(out).__name__}, expected {tuple(q.shape)}")
    if not (torch.is_tensor(out) and out.shape == q.shape):
        return
    expected = attention_with_prefix_reference(q, k, v, pk, pv)
    plain, _ = causal_attention(q, k, v)
    k2, v2 = k.clone(), v.clone()
    k2[..., -1, :] += 2.0
    v2[..., -1, :] += 2.0
    out2 = call_learner(fn, q, k2, v2, pk, pv)
    yield Part("still causal within the sequence", torch.is_tensor(out2) and out2.shape == out.shape and
               torch.allclose(out2[..., :-1, :], out[..., :-1, :], atol=1e-6),
               "an earlier output changed when the last token changed: keep the causal mask for the sequence's own keys")
    pk2 = pk.clone()
    pk2[..., -1, :] += 2.0
    out3 = call_learner(fn, q, k, v, pk2, pv)
    first_moved = torch.is_tensor(out3) and out3.shape == out.shape and \
        not torch.allclose(out3[..., 0, :], out[..., 0, :], atol=1e-6)
    yield Part("every query, even the first, sees every prefix key", first_moved,
               "the first query ignores the prefix: the mask must let query i see all P prefix keys and keys 0..i "
               "(torch.ones(T, P + T).tril(diagonal=P))")
    message = "the values differ from causal attention over [prefix; sequence] keys and values"
    if close(out, plain):
        message = "this is plain causal attention: the prefix keys and values are not used"
    yield Part("matches causal attention over [prefix; sequence]", close(out, expected), message)


soft_prompt = checker("7.1")
ia3_scale = checker("7.2")
attention_with_prefix = checker("7.3")

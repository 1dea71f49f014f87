"""Checks for chapter 7's exercises: a soft prompt, an IA3 scaling vector, attention with a prefix."""

import torch
import torch.nn as nn

from ..model import causal_attention
from .ch1 import close
from .core import Part, call_learner, checker, register


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


@register("7.1", "a soft prompt", 3, SoftPromptReference, "minitransformer.check.ch7.SoftPromptReference")
def _check_soft_prompt(cls):
    torch.manual_seed(0)
    module = call_learner(cls, 3, 8)
    params = dict(module.named_parameters()) if isinstance(module, nn.Module) else {}
    ok = list(params) == ["prompt"] and tuple(params["prompt"].shape) == (3, 8)
    yield Part("one parameter, `prompt`, of shape (n_tokens, d_model)", ok, f"its parameters: {[(n, tuple(p.shape)) for n, p in params.items()]}")
    if not ok:
        return
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(1))
    out = call_learner(module, x)
    right = torch.is_tensor(out) and out.shape == (2, 8, 8) and torch.equal(out[:, 3:], x) and \
        torch.equal(out[0, :3], module.prompt) and torch.equal(out[1, :3], module.prompt)
    message = f"expected shape (2, 8, 8): the 3 prompt vectors, then the 5 input vectors, for every sequence"
    if torch.is_tensor(out) and out.shape == (2, 8, 8) and torch.equal(out[:, :5], x):
        message = "the prompt goes in front of the input, not after it"
    yield Part("puts the prompt in front of each sequence's embeddings", right, message)
    if right:
        out.sum().backward()
        yield Part("the prompt receives gradients", module.prompt.grad is not None,
                   "keep the prompt an nn.Parameter and use it in forward (no .detach())")
    else:
        yield Part("the prompt receives gradients", False, "fix the forward pass first")


@register("7.2", "an IA3 scaling vector", 3, IA3ScaleReference, "minitransformer.check.ch7.IA3ScaleReference")
def _check_ia3(cls):
    module = call_learner(cls, 6)
    params = dict(module.named_parameters()) if isinstance(module, nn.Module) else {}
    yield Part("one parameter, `scale`, with one number per feature", list(params) == ["scale"] and params["scale"].shape == (6,),
               f"its parameters: {[(n, tuple(p.shape)) for n, p in params.items()]}")
    if list(params) != ["scale"]:
        return
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))
    out = call_learner(module, x)
    yield Part("starts as the identity (scale = 1)", torch.is_tensor(out) and torch.equal(out, x),
               "initialise the scale to ones, so the model starts unchanged" + (
                   " (zeros would switch the layer off)" if torch.is_tensor(out) and torch.equal(out, torch.zeros_like(x)) else ""))
    with torch.no_grad():
        module.scale.copy_(torch.arange(1.0, 7.0))
    out = module(x)
    yield Part("multiplies each feature by its own scale", torch.is_tensor(out) and close(out, x * torch.arange(1.0, 7.0)),
               "the output should be x * scale (element-wise, feature by feature)")


@register("7.3", "attention with a key/value prefix", 4, attention_with_prefix_reference,
          "minitransformer.check.ch7.attention_with_prefix_reference")
def _check_prefix(fn):
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 2, 5, 4, generator=g) for _ in range(3))
    pk, pv = (torch.randn(2, 2, 3, 4, generator=g) for _ in range(2))
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
    out2 = fn(q, k2, v2, pk, pv)
    yield Part("still causal within the sequence", torch.allclose(out2[..., :-1, :], out[..., :-1, :], atol=1e-6),
               "an earlier output changed when the last token changed: keep the causal mask for the sequence's own keys")
    pk2 = pk.clone()
    pk2[..., -1, :] += 2.0
    first_moved = not torch.allclose(fn(q, k, v, pk2, pv)[..., 0, :], out[..., 0, :], atol=1e-6)
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

"""Checks for chapter 1's exercises: causal attention, a block's forward pass, the parameter formula."""

import dataclasses
import numbers

import torch

from ... import counts
from ... import model as reference_model
from ...counts import parameter_count_formula, parameter_count_from_config
from ...model import ModelConfig
from .core import Part, call_learner, call_probe, checker, close, generator, pick, register, seed



def _qkv(n=0, shape=(2, 3, 6, 8)):
    g = generator(n)
    return [torch.randn(*shape, generator=g) for _ in range(3)]


def _rows_verdict(weights) -> tuple[bool, str]:
    """Whether every row of weights is a distribution over the keys; if not, what is wrong with the first bad row."""
    row_sums = weights.sum(-1)
    nan_rows = torch.isnan(weights).any(-1)
    bad_rows = nan_rows | (weights < 0).any(-1) | ~torch.isclose(row_sums, torch.ones_like(row_sums), atol=1e-5, rtol=0)
    if not bad_rows.any():
        return True, ""
    b, h, t = (int(i) for i in bad_rows.nonzero()[0])
    where = f"query {t} (batch {b}, head {h})"
    if nan_rows[b, h, t]:
        T = weights.shape[-1]
        rows = sorted({int(i) for i in nan_rows.nonzero()[:, 2]})
        return False, (f"the weights of {where} are NaN: every key was masked for that query, and softmax over "
                       f"all -inf is 0 / 0 (NaN rows: queries {rows} of 0..{T - 1}). Check the mask direction: query "
                       "t may see keys 0..t (itself and the past); mask only the keys after it, above the diagonal "
                       "(torch.ones(T, T).triu(diagonal=1)), never the diagonal or the past")
    if (weights[b, h, t] < 0).any():
        return False, (f"the weights of {where} include {float(weights[b, h, t].min()):.3f} < 0: the weights are the "
                       "softmax of the scores, not the scores themselves")
    return False, (f"the weights of {where} sum to {float(row_sums[b, h, t]):.3f}: apply softmax over the last "
                   "dimension (the keys), after masking")


@register("1.1", "causal self-attention", 4, reference_model.causal_attention, "minitransformer.causal_attention",
          forbidden=(reference_model.CausalSelfAttention,))
def _check_causal_attention(fn):
    q, k, v = _qkv(0, pick(1, (2, 3, 6, 8), (2, 3, 7, 8), (1, 2, 9, 16), (3, 1, 5, 4), (2, 4, 11, 8), (1, 1, 13, 6)))
    returned = call_learner(fn, q, k, v)
    if not (isinstance(returned, tuple) and len(returned) == 2):
        yield Part("returns a pair (output, weights)", False, f"it returned {type(returned).__name__}; return `out, weights`")
        return
    out, weights = returned
    B, H, T, hd = q.shape
    shapes_ok = torch.is_tensor(out) and torch.is_tensor(weights) and out.shape == (B, H, T, hd) and weights.shape == (B, H, T, T)
    yield Part(
        "output has shape (B, H, T, head_dim) and weights (B, H, T, T)",
        shapes_ok,
        f"for q, k, v of shape {tuple(q.shape)} you returned output {tuple(getattr(out, 'shape', ()))} "
        f"and weights {tuple(getattr(weights, 'shape', ()))}",
    )
    if not shapes_ok:
        return
    yield Part("each query's weights are non-negative and sum to 1 over the keys", *_rows_verdict(weights))
    # Causality: change the last position's key and value; no earlier output may move.
    k2, v2 = k.clone(), v.clone()
    k2[..., -1, :] += 3.0
    v2[..., -1, :] += 3.0
    out2, _ = call_learner(fn, q, k2, v2)
    moved = (out2[..., :-1, :] - out[..., :-1, :]).abs().amax(dim=(0, 1, 3)) > 1e-6
    first = int(moved.nonzero()[0]) if moved.any() else -1
    yield Part(
        "causal: changing a later token never changes an earlier output",
        first < 0,
        f"position {first} changed when token {T - 1} changed: your attention is not causal "
        "(mask the scores above the diagonal with -inf before the softmax)",
    )
    expected, _ = reference_model.causal_attention(q, k, v)
    unscaled, _ = reference_model.causal_attention(q * hd**0.5, k, v)
    message = "the values differ from scaled dot-product attention"
    if close(out, unscaled):
        message = f"the scores are not scaled: divide q·k by sqrt(head_dim) = {hd**0.5:.3f}"
    yield Part("matches softmax(q·kᵀ / sqrt(head_dim)) · v", close(out, expected), message)


def _block_variants(block, x):
    """What common mistakes would compute, to recognise them in a learner's output."""
    attn, mlp, ln1, ln2 = block.attn, block.mlp, block.ln1, block.ln2
    post_ln = ln1(x + attn(x))
    post_ln = ln2(post_ln + mlp(post_ln))
    no_residual = mlp(ln2(attn(ln1(x))))
    no_norm = x + attn(x)
    no_norm = no_norm + mlp(no_norm)
    one_norm = x + attn(ln1(x))
    one_norm = one_norm + mlp(ln1(one_norm))
    return [
        (post_ln, "this is a post-LayerNorm block: normalise *before* each sub-layer, x + attn(ln1(x))"),
        (no_residual, "the residual connections are missing: add each sub-layer's output back to x"),
        (no_norm, "the LayerNorms are missing: use self.ln1 before attention and self.ln2 before the MLP"),
        (one_norm, "the MLP must use its own norm, self.ln2, not self.ln1"),
    ]


def _probe_block(block_cls, config, state, inputs):
    """Runs where the learner's code is: build their block, load the judge's weights, run the judge's inputs."""
    candidate = block_cls(config)
    if not isinstance(candidate, torch.nn.Module):
        return {"module": False, "missing": [], "unexpected": []}
    result = candidate.load_state_dict(state, strict=False)
    seen = {"module": True, "missing": list(result.missing_keys), "unexpected": list(result.unexpected_keys)}
    if not seen["missing"] and not seen["unexpected"]:
        with torch.no_grad():
            seen["outputs"] = [candidate(x) for x in inputs]
    return seen


@register("1.2", "a transformer block's forward pass", 4, reference_model.Block, "minitransformer.Block",
          forbidden=(reference_model.MiniTransformer,))
def _check_block(block_cls):
    config = pick(2, ModelConfig(d_model=32, n_head=4), ModelConfig(d_model=48, n_head=6),
                  ModelConfig(d_model=24, n_head=2, mlp_ratio=2), ModelConfig(d_model=40, n_head=5, bias=False))
    torch.manual_seed(seed(0))
    reference = reference_model.Block(config)
    for p in reference.parameters():  # non-trivial norms and biases, so every mistake shows
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, pick(3, 7, 5, 9, 12), config.d_model, generator=generator(1))
    x2 = x.clone()
    x2[:, -1] += 1.0
    seen = call_probe(_probe_block, block_cls, config, reference.state_dict(), [x, x2])
    missing, unexpected = seen["missing"], seen["unexpected"]
    names_ok = seen["module"] and not missing and not unexpected
    yield Part(
        "keeps the sub-module names ln1, attn, ln2, mlp",
        names_ok,
        f"parameters missing: {missing[:4]}, unexpected: {unexpected[:4]}",
    )
    if not names_ok:
        return
    y, y2 = seen["outputs"]
    with torch.no_grad():
        expected = reference(x)
    shape_ok = torch.is_tensor(y) and y.shape == x.shape and torch.is_tensor(y2) and y2.shape == x.shape
    yield Part("output has the input's shape (B, T, d_model)", shape_ok,
               f"input {tuple(x.shape)}, output {tuple(getattr(y, 'shape', ()))}")
    if not shape_ok:
        return
    yield Part("causal: changing the last position leaves earlier positions unchanged",
               torch.allclose(y[:, :-1], y2[:, :-1], atol=1e-6),
               "earlier positions changed: use the block's attention (self.attn), which is causal")
    message = "the output differs from x + attn(ln1(x)), then + mlp(ln2(·))"
    with torch.no_grad():
        for variant, diagnosis in _block_variants(reference, x):
            if close(y, variant):
                message = diagnosis
    yield Part("matches the pre-LayerNorm residual block", close(y, expected), message)


_CONFIGS = [
    ModelConfig(),
    ModelConfig(n_layer=4),
    ModelConfig(d_model=32, n_head=2, mlp_ratio=2),
    ModelConfig(vocab_size=50, block_size=16),
    ModelConfig(bias=False),
]


def _hidden_configs():
    """Varied configs, some far too large to instantiate: only a formula from the config can answer them."""
    import random

    rng = random.Random(seed(13))
    configs = []
    for size in ("small", "small", "large", "large", "huge"):
        n_head = rng.choice([1, 2, 4, 8])
        head_dim = rng.choice([4, 8, 16]) if size == "small" else rng.choice([64, 128])
        n_layer = rng.randint(1, 6) if size == "small" else rng.randint(12, 96 if size == "huge" else 40)
        configs.append(ModelConfig(vocab_size=rng.randint(10, 60000), block_size=rng.choice([8, 64, 1024, 4096]),
                                   d_model=n_head * head_dim * (1 if size == "small" else 4), n_layer=n_layer,
                                   n_head=n_head, mlp_ratio=rng.choice([2, 3, 4]), bias=rng.random() < 0.5))
    return configs


def _components(config) -> dict[str, int]:
    """The formula's components, plus the pieces of them a count can miss on its own."""
    parts = dict(parameter_count_formula(config))
    d, L, b = config.d_model, config.n_layer, 1 if config.bias else 0
    norm = d + b * d
    parts["final LayerNorm (ln_f)"] = norm
    parts["LayerNorms inside the blocks (ln1 and ln2)"] = 2 * L * norm
    if L > 1:
        per_block = 4 * (d * d + b * d) + 2 * config.mlp_ratio * d * d + b * (config.mlp_ratio * d + d) + 2 * norm
        parts["parameters of one block"] = per_block
    return parts


def _diagnose_count(got, config, label) -> str:
    parts = parameter_count_formula(config)
    want = sum(parts.values())
    diff = want - got
    names: dict[int, str] = {}
    for component, count in _components(config).items():  # two components can have the same size
        if count:
            names[count] = f"{names[count]} or the {component}" if count in names else component
    biases = want - parameter_count_from_config(dataclasses.replace(config, bias=False))
    hint = ""
    if diff in names:
        hint = f"; the difference is exactly the {names[diff]} ({diff:,})"
    elif diff == biases and diff:
        hint = f"; the difference is exactly the biases ({diff:,})"
    elif -diff in names:
        hint = f"; you counted the {names[-diff]} ({-diff:,}) twice or where it does not exist"
    return f"for {label} you said {got:,} but the model has {want:,} (off by {diff:+,}){hint}"


@register("1.3", "the parameter-count formula", len(_CONFIGS), parameter_count_from_config,
          "minitransformer.counts.parameter_count_from_config",
          forbidden=(parameter_count_formula, counts.count_parameters, reference_model.MiniTransformer,
                     reference_model.Classifier))
def _check_count(count_fn):
    for config in pick(4, _CONFIGS, _hidden_configs()):
        got = call_learner(count_fn, config)
        model_count = parameter_count_from_config(config)  # the formula, tested against the model's own count
        changed = {k: v for k, v in config.to_dict().items() if v != getattr(ModelConfig(), k)}
        label = ", ".join(f"{k}={v}" for k, v in changed.items()) or "the default config"
        whole = isinstance(got, numbers.Integral) and not isinstance(got, bool)  # a NumPy integer is a count too
        ok = whole and got == model_count
        msg = _diagnose_count(int(got), config, label) if whole else f"return an int, not {type(got).__name__}"
        yield Part(f"correct for {label}", ok, msg)

causal_attention = checker("1.1")
block = checker("1.2")
parameter_count = checker("1.3")

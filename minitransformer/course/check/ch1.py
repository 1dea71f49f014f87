"""Checks for chapter 1's exercises: causal attention, splitting and merging heads, a block's forward pass, the
model's forward pass, the parameter formula."""

import dataclasses
import numbers

import torch

from ... import counts
from ...checkpoint import load_base
from ... import model as reference_model
from ...counts import parameter_count_formula, parameter_count_from_config
from ...model import MiniTransformer, ModelConfig
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


# --- 1.2 and 1.3: splitting the features into heads, and back ------------------------------------------------


def split_heads_reference(x, n_head):
    """(batch, T, d_model) -> (batch, n_head, T, head_dim): head h holds features h*head_dim ... (h+1)*head_dim - 1."""
    B, T, D = x.shape
    return x.view(B, T, n_head, D // n_head).transpose(1, 2)


def merge_heads_reference(x):
    """(batch, n_head, T, head_dim) -> (batch, T, n_head * head_dim): each position's heads side by side again."""
    B, H, T, hd = x.shape
    return x.transpose(1, 2).reshape(B, T, H * hd)


def _shape(value) -> tuple | str:
    return tuple(value.shape) if torch.is_tensor(value) else type(value).__name__


def _split_shape_message(got, x, n_head) -> str:
    B, T, D = x.shape
    hd = D // n_head
    want = (B, n_head, T, hd)
    message = (f"for x of shape {tuple(x.shape)} and n_head={n_head} you returned {got}; expected "
               f"(batch, n_head, T, head_dim) = {want}")
    if got == (B, T, n_head, hd):
        return message + ": the heads still come after time; transpose(1, 2) to put them before it"
    if got in ((B, hd, T, n_head), (B, T, hd, n_head)):
        return message + (f": you made {hd} heads of {n_head} features; there are n_head = {n_head} heads of "
                          f"head_dim = d_model // n_head = {D} // {n_head} = {hd}")
    if isinstance(got, tuple) and len(got) == 4 and got[0] == B and got[2] == T and got[1] * got[3] == D:
        return message + f": {got[1]} heads of {got[3]}; use the n_head argument, not a fixed number"
    return message


def _split_values_message(got, x, n_head) -> str:
    B, T, D = x.shape
    hd = D // n_head
    if close(got, x.reshape(B, n_head, T, hd)):
        return ("you reshaped straight to (batch, n_head, T, head_dim) without a transpose: that cuts the memory in "
                "the wrong places, so a 'head' holds features of several positions. View x as (batch, T, n_head, "
                "head_dim) first, then transpose(1, 2)")
    if close(got, x.view(B, T, hd, n_head).permute(0, 3, 1, 2)):
        return (f"head h got every n_head-th feature (h, h + {n_head}, h + {2 * n_head}, …): split the last "
                f"dimension as (n_head, head_dim), so head h gets the slice h·head_dim … (h+1)·head_dim − 1")
    wrong = ~torch.isclose(got, split_heads_reference(x, n_head), atol=1e-5, rtol=1e-5).all(-1)
    b, h, t = (int(i) for i in wrong.nonzero()[0])
    return (f"head {h} at position {t} (batch {b}) should hold x[{b}, {t}, {h * hd}:{(h + 1) * hd}], the features "
            f"of that head at that position, but holds other numbers")


_SPLIT_SHAPES = [(3, 7, 32, 4), (1, 9, 48, 6), (2, 4, 40, 5), (2, 11, 64, 8), (4, 3, 30, 3), (2, 6, 36, 12)]


@register("1.2", "splitting the features into heads", 3, split_heads_reference,
          "minitransformer.course.check.ch1.split_heads_reference", forbidden=(reference_model.CausalSelfAttention,))
def _check_split_heads(fn):
    B, T, D, H = pick(5, (2, 5, 24, 4), *_SPLIT_SHAPES)
    x = torch.randn(B, T, D, generator=generator(20))
    got = call_learner(fn, x, H)
    shape_ok = _shape(got) == (B, H, T, D // H)
    yield Part("output has shape (batch, n_head, T, head_dim)", shape_ok, _split_shape_message(_shape(got), x, H))
    if not shape_ok:
        return
    values_ok = close(got, split_heads_reference(x, H))
    yield Part("head h holds features h·head_dim … (h+1)·head_dim − 1 of every position", values_ok,
               "" if values_ok else _split_values_message(got, x, H))
    others = [h for h in range(2, D) if D % h == 0 and h != H][:2]
    message = ""
    for other in others:
        got = call_learner(fn, x, other)
        if _shape(got) != (B, other, T, D // other):
            message = _split_shape_message(_shape(got), x, other)
        elif not close(got, split_heads_reference(x, other)):
            message = f"for n_head={other}: " + _split_values_message(got, x, other)
        if message:
            break
    yield Part(f"uses its n_head argument: right for n_head = {' and '.join(map(str, others))} too", not message, message)


_VIEW_MESSAGE = ("after transpose(1, 2) the tensor is no longer contiguous in memory, and .view cannot move memory: "
                 "call .contiguous() before .view(batch, T, d_model), or use .reshape, which copies when it must. "
                 "(merge_heads(split_heads(x)) hides this: there the transpose gives back x's own memory order)")


def _merge_message(got, heads) -> str:
    B, H, T, hd = heads.shape
    want = (B, T, H * hd)
    if _shape(got) != want:
        message = (f"for heads of shape {tuple(heads.shape)} you returned {_shape(got)}; expected "
                   f"(batch, T, n_head·head_dim) = {want}")
        if _shape(got) == (B, T, H, hd):
            return message + ": the heads are back after time but not merged; reshape to (batch, T, n_head·head_dim)"
        return message
    if close(got, heads.reshape(B, T, H * hd)):
        return ("you reshaped (batch, n_head, T, head_dim) straight to (batch, T, d_model) without a transpose: that "
                "mixes positions. transpose(1, 2) first, so each position's heads sit next to each other")
    if close(got, heads.permute(0, 2, 3, 1).reshape(B, T, H * hd)):
        return ("the heads' features are interleaved (feature 0 of every head, then feature 1, …): after "
                "transpose(1, 2), reshape so head h fills features h·head_dim … (h+1)·head_dim − 1")
    return "the values differ from the heads put side by side, head 0 first"


@register("1.3", "merging the heads", 3, merge_heads_reference, "minitransformer.course.check.ch1.merge_heads_reference",
          forbidden=(reference_model.CausalSelfAttention,))
def _check_merge_heads(fn):
    B, T, D, H = pick(6, (2, 5, 24, 4), *_SPLIT_SHAPES)
    x = torch.randn(B, T, D, generator=generator(22))
    split = split_heads_reference(x, H)
    got = call_learner(fn, split)
    yield Part("output has shape (batch, T, n_head·head_dim)", _shape(got) == (B, T, D), _merge_message(got, split))
    if _shape(got) != (B, T, D):
        return
    yield Part("undoes split_heads: merge_heads(split_heads(x)) is x", close(got, x), _merge_message(got, split))
    heads = torch.randn(B, H, T, D // H, generator=generator(23))  # contiguous, like attention's output
    try:
        got = call_learner(fn, heads)
        message = _merge_message(got, heads)
    except RuntimeError as error:
        if "view" not in str(error):
            raise
        got, message = None, _VIEW_MESSAGE
    yield Part("merges attention's output, a fresh contiguous tensor", close(got, merge_heads_reference(heads)), message)


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


@register("1.4", "a transformer block's forward pass", 4, reference_model.Block, "minitransformer.Block",
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


# --- 1.5: the model's forward pass ----------------------------------------------------------------------------


def forward_reference(model, idx):
    """Next-token logits (batch, T, vocab_size) from the model's modules, as MiniTransformer.forward computes them."""
    T = idx.size(1)
    x = model.tok_emb(idx) + model.pos_emb(torch.arange(T, device=idx.device))
    for block in model.blocks:
        x = block(x)
    return model.lm_head(model.ln_f(x))


class _Watched(MiniTransformer):
    """The model a learner's forward pass is given: it notes every use of the model's own forward pass."""

    def forward(self, idx):
        self.library_calls.append("model(idx)")
        return super().forward(idx)

    def hidden_states(self, idx):
        self.library_calls.append("model.hidden_states(idx)")
        return super().hidden_states(idx)

    def embed(self, idx):
        self.library_calls.append("model.embed(idx)")
        return super().embed(idx)


def _probe_forward(forward_fn, config, state, inputs):
    """Runs where the learner's code is: their forward pass on the judge's weights and token ids."""
    model = _Watched(config)
    model.load_state_dict(state)
    model.eval()
    model.library_calls = []
    outputs = []
    with torch.no_grad():
        for idx in inputs:
            try:
                outputs.append(["ok", forward_fn(model, idx)])
            except NotImplementedError:
                raise
            except Exception as error:  # noqa: BLE001 (reported with the input it failed on)
                outputs.append(["error", f"{type(error).__name__}: {error}"[:300]])
    return {"calls": list(model.library_calls), "outputs": outputs}


def _forward_model():
    """The weights a forward pass is checked on: the shipped base in a notebook, varied configs when grading."""
    config = pick(7, None, None, ModelConfig(n_layer=3), ModelConfig(d_model=48, n_head=6, bias=False),
                  ModelConfig(vocab_size=20, block_size=40), ModelConfig(d_model=32, n_head=2, mlp_ratio=2, n_layer=4))
    if config is None:
        base = load_base()
        return base.config, base.state_dict(), "the shipped base"
    torch.manual_seed(seed(24))
    model = MiniTransformer(config)
    for p in model.parameters():  # non-trivial norms, embeddings and head, so every mistake shows
        torch.nn.init.normal_(p, std=0.3)
    changed = {k: v for k, v in config.to_dict().items() if v != getattr(ModelConfig(), k)}
    return config, model.state_dict(), "a model with " + ", ".join(f"{k}={v}" for k, v in changed.items())


def _forward_variants(model, idx):
    """What common mistakes would compute, to recognise them in a learner's logits."""
    T = idx.size(1)
    tok, pos = model.tok_emb(idx), model.pos_emb(torch.arange(T))

    def blocks(x):
        for block in model.blocks:
            x = block(x)
        return x

    variants = [
        (model.lm_head(model.ln_f(blocks(tok))),
         "the position embedding is missing: add model.pos_emb(torch.arange(T)) to the token embeddings, or no "
         "position can tell where it is"),
        (model.lm_head(blocks(tok + pos)),
         "the final LayerNorm is missing: apply model.ln_f to the last block's output, then the LM head"),
        (model.lm_head(model.ln_f(tok + pos)),
         "the LM head reads the embeddings, not the blocks' output: carry x through every block (x = block(x)) "
         "and give the LM head model.ln_f of the result"),
        (model.ln_f(blocks(tok + pos)) @ model.tok_emb.weight.T,
         "the logits come from the token embedding's matrix: this model's LM head is its own layer, model.lm_head "
         "(its weights are not tied to the embedding)"),
    ]
    if len(model.blocks) > 1:
        variants.append((model.lm_head(model.ln_f(model.blocks[-1](tok + pos))),
                         "only the last block reaches the output: each block must read the previous block's output "
                         "(x = block(x)), not the embeddings"))
    if int(idx.max()) < model.config.block_size:
        variants.append((model.lm_head(model.ln_f(blocks(tok + model.pos_emb(idx)))),
                         "the position embedding was looked up with the token ids: look it up with the positions "
                         "0 … T−1, torch.arange(T)"))
    return variants


def _forward_error(error: str, config) -> str:
    message = f"it raised {error}"
    if error.startswith("IndexError"):
        return message + (f". The position embedding has one row per position (block_size = {config.block_size}): "
                          "look it up with the positions torch.arange(T), not with the token ids")
    if "must match the size of tensor" in error:
        return message + (". If it came from the position embedding: add the rows of the T positions present, "
                          "model.pos_emb(torch.arange(T)), not the whole table model.pos_emb.weight "
                          f"({config.block_size} rows)")
    return message


def _forward_shape_message(got, idx, config) -> str:
    B, T = idx.shape
    want = (B, T, config.vocab_size)
    message = f"for token ids of shape {(B, T)} you returned {got}; expected (batch, T, vocab_size) = {want}"
    if got == (B, T, config.d_model):
        return message + (f": these are hidden states (d_model = {config.d_model}); finish with model.lm_head, which "
                          f"scores each of the {config.vocab_size} tokens")
    if got == (B, config.vocab_size):
        return message + ": return the logits of every position, not only the last one"
    return message


@register("1.5", "the model's forward pass", 3, forward_reference, "minitransformer.course.check.ch1.forward_reference",
          forbidden=(reference_model.MiniTransformer,))
def _check_forward(forward_fn):
    config, state, label = _forward_model()
    V, T_max = config.vocab_size, config.block_size
    g = generator(25)
    T = pick(8, 9, 5, 12, 15)
    prompt = torch.randint(0, V, (2, T), generator=g)
    full = torch.randint(0, V, (3, T_max), generator=g)
    if V > T_max:
        prompt[0, -1] = V - 1  # a token id with no position row: looking positions up by token id fails visibly
    inputs = [prompt, full]
    seen = call_probe(_probe_forward, forward_fn, config, state, inputs)
    if seen["calls"]:
        yield Part("computes the logits from the model's modules, not with the model's own forward pass", False,
                   f"you called {seen['calls'][0]}: that is the library's own forward pass (MiniTransformer) doing "
                   "this exercise for you. Write it from model.tok_emb, model.pos_emb, model.blocks, model.ln_f and "
                   "model.lm_head")
        return
    reference = MiniTransformer(config)
    reference.load_state_dict(state)
    reference.eval()
    problems = []
    for (status, got), idx in zip(seen["outputs"], inputs):
        if status != "ok":
            problems.append(_forward_error(got, config))
        elif _shape(got) != (*idx.shape, V):
            problems.append(_forward_shape_message(_shape(got), idx, config))
    yield Part("returns logits of shape (batch, T, vocab_size)", not problems, problems[0] if problems else "")
    what = (f"a prompt of {T} tokens", f"a full context of {T_max} tokens")
    with torch.no_grad():
        for (status, got), idx, name in zip(seen["outputs"], inputs, what):
            expected = reference(idx)
            ok = status == "ok" and close(got, expected)
            message = "no logits to compare (see above)"
            if status == "ok" and _shape(got) == expected.shape:
                message = "the logits differ from embeddings → blocks → final LayerNorm → LM head"
                for variant, diagnosis in _forward_variants(reference, idx):
                    if close(got, variant):
                        message = diagnosis
                        break
            yield Part(f"matches MiniTransformer.forward on {name} ({label})", ok, message)


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


@register("1.6", "the parameter-count formula", len(_CONFIGS), parameter_count_from_config,
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
split_heads = checker("1.2")
merge_heads = checker("1.3")
block = checker("1.4")
model_forward = checker("1.5")
parameter_count = checker("1.6")

"""The mini transformer: a GPT-style decoder small enough to train on a laptop CPU.

Read it top to bottom: config, attention, MLP, block, model, then a classifier that puts a new
head on top of the model. Module names are part of the course's interface: later chapters find
layers by name ("blocks.0.attn.q_proj"), so they stay stable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .tokenizer import VOCAB
from .guards import require_bool, require_number, require_tensor


@dataclass
class ModelConfig:
    vocab_size: int = len(VOCAB)
    block_size: int = 32  # context length: the longest sequence the model can read
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 4
    mlp_ratio: int = 4  # the MLP's hidden width is mlp_ratio * d_model
    bias: bool = True  # biases everywhere (BitFit needs them)
    dropout: float = 0.0
    fused_attention: bool = False  # use torch's scaled_dot_product_attention instead of ours

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "d_model", "n_layer", "n_head", "mlp_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_head != 0:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_head={self.n_head}; "
                f"valid n_head values for this d_model are "
                f"{[h for h in range(1, self.d_model + 1) if self.d_model % h == 0]}"
            )
        require_number("ModelConfig.dropout", self.dropout, 0, 1, high_open=True)
        require_bool("ModelConfig.bias", self.bias)
        require_bool("ModelConfig.fused_attention", self.fused_attention)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)


def causal_attention(q, k, v):
    """Scaled dot-product attention where position i sees only keys 0..i.

    q: (..., T, head_dim); k, v: (..., S, head_dim) with S >= T. When S > T the first S - T keys
    are extra (prefix) keys that every query may see; the last T keys are the sequence itself.
    Returns (output, attention weights of shape (..., T, S)).
    """
    _require_qkv(q, k, v)
    T, S = q.size(-2), k.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    visible = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
    scores = scores.masked_fill(~visible, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


def _require_qkv(q, k, v) -> None:
    """Refuse q, k, v that attention cannot combine, naming the shapes."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        require_tensor(name, x, kind="float")
        if x.dim() < 2:
            raise ValueError(f"{name} must have shape (..., time, head_dim), at least 2 dimensions, got shape {tuple(x.shape)}")
    T, S = q.size(-2), k.size(-2)
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got k {tuple(k.shape)} and v {tuple(v.shape)}")
    if q.size(-1) != k.size(-1) or q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"q and k must agree on every dimension but time: q {tuple(q.shape)}, k {tuple(k.shape)}")
    if S < T:
        raise ValueError(f"k has {S} positions but q has {T}: every query needs its own key (and any extra prefix "
                         f"keys come first), so k and v need at least {T} positions; with fewer, the last queries "
                         "would see no key at all")


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        d = config.d_model
        self.n_head = config.n_head
        # Separate projections (not one fused qkv matrix) so "LoRA on q and v" targets real modules.
        self.q_proj = nn.Linear(d, d, bias=config.bias)
        self.k_proj = nn.Linear(d, d, bias=config.bias)
        self.v_proj = nn.Linear(d, d, bias=config.bias)
        self.out_proj = nn.Linear(d, d, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.fused = config.fused_attention
        self.record_attention = False  # set True to keep the last attention weights for plotting
        self.attention_weights = None
        self.prefix = None  # prefix tuning puts a module here that returns extra keys and values

    def split_heads(self, x):
        B, T, D = x.shape
        return x.view(B, T, self.n_head, D // self.n_head).transpose(1, 2)  # (B, H, T, hd)

    def forward(self, x):
        B, T, D = x.shape
        q = self.split_heads(self.q_proj(x))
        k = self.split_heads(self.k_proj(x))
        v = self.split_heads(self.v_proj(x))
        prefix = self.prefix(B) if self.prefix is not None else None
        if prefix is not None:  # learned keys/values that every position may attend to
            k = torch.cat([self.split_heads(prefix[0]), k], dim=2)
            v = torch.cat([self.split_heads(prefix[1]), v], dim=2)
        if self.fused and not self.record_attention and prefix is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y, weights = causal_attention(q, k, v)
            if self.record_attention:
                self.attention_weights = weights.detach()
        y = y.transpose(1, 2).reshape(B, T, D)  # put the heads side by side again
        return self.dropout(self.out_proj(y))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        hidden = config.mlp_ratio * config.d_model
        self.fc_in = nn.Linear(config.d_model, hidden, bias=config.bias)
        self.act = nn.GELU()  # a module (not F.gelu) so later chapters can hook or scale it by name
        self.fc_out = nn.Linear(hidden, config.d_model, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.fc_out(self.act(self.fc_in(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: normalise, transform, add back to the residual stream."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return x


class MiniTransformer(nn.Module):
    def __init__(self, config: ModelConfig | None = None):
        if config is not None and not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig (e.g. ModelConfig(n_layer=2)), got a {type(config).__name__}")
        super().__init__()
        self.config = config = config or ModelConfig()
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.block_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.d_model, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.soft_prompt = None  # prompt tuning puts a module here that prepends virtual tokens
        self.apply(self._init_weights)
        # GPT-2's trick: shrink the layers that write into the residual stream, so its variance
        # does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith(("out_proj.weight", "fc_out.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def require_valid_input(self, idx):
        require_tensor("idx (the token ids)", idx, kind="int")
        if idx.dim() != 2:
            raise ValueError(f"expected token ids of shape (batch, time), got shape {tuple(idx.shape)}")
        if idx.size(1) > self.config.block_size:
            raise ValueError(
                f"sequence length {idx.size(1)} exceeds the context length "
                f"block_size={self.config.block_size}"
            )
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.config.vocab_size):
            bad = idx[(idx < 0) | (idx >= self.config.vocab_size)][0].item()
            raise ValueError(f"token id {bad} is outside the vocabulary 0..{self.config.vocab_size - 1}")

    def embed(self, idx):
        """Token embedding + position embedding, shape (B, T, d_model).

        With prompt tuning, P virtual tokens come first: (B, P + T, d_model). By default the input keeps
        the positions it was pretrained with and the virtual tokens carry none; a prompt added with
        positions="shift" takes the first P positions and moves the input along (as GPT-2 in HF PEFT).
        """
        self.require_valid_input(idx)
        x = self.tok_emb(idx)
        prompt = self.soft_prompt
        shift = prompt is not None and prompt.shifts_positions()
        if prompt is not None:
            total = idx.size(1) + prompt.length()
            if total > self.config.block_size:
                raise ValueError(
                    f"{prompt.length()} virtual prompt tokens + {idx.size(1)} input tokens = {total} exceed the "
                    f"context length block_size={self.config.block_size}; use inputs of at most "
                    f"{self.config.block_size - prompt.length()} tokens or a shorter prompt"
                )
        if shift:
            x = prompt(x)  # the virtual tokens take positions 0..P-1, the input P..P+T-1
        x = x + self.pos_emb(torch.arange(x.size(1), device=idx.device))
        if prompt is not None and not shift:
            x = prompt(x)  # the input keeps positions 0..T-1; the virtual tokens carry none
        return self.drop(x)

    def hidden_states(self, idx):
        """The final, normalised hidden state of every input position, shape (B, T, d_model)."""
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        # Drop the virtual prompt positions (if any), so outputs line up with the input tokens.
        return self.ln_f(x)[:, x.size(1) - idx.size(1):]

    def forward(self, idx):
        """Next-token logits for every position, shape (B, T, vocab_size)."""
        return self.lm_head(self.hidden_states(idx))

    def attention_maps(self, idx):
        """Run the model once and return each layer's attention weights, shape (B, H, T, T)."""
        attns = [block.attn for block in self.blocks]
        for attn in attns:
            attn.record_attention = True
        try:
            with torch.no_grad():
                self(idx)
            return [attn.attention_weights for attn in attns]
        finally:
            for attn in attns:
                attn.record_attention = False
                attn.attention_weights = None


class Classifier(nn.Module):
    """A language model with a new task head that reads the hidden state at one position.

    The base model is kept whole as `self.base`, so its language-model head still works and we can
    measure what it forgets while the classifier learns.
    """

    def __init__(self, base: MiniTransformer, num_classes: int = 2):
        super().__init__()
        if not isinstance(base, MiniTransformer):
            raise TypeError(f"base must be a MiniTransformer (e.g. load_base()), got a {type(base).__name__}")
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.base = base
        self.head = nn.Linear(base.config.d_model, num_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, idx, positions):
        """Class logits (B, num_classes) read at `positions` (B,), one position per sequence."""
        self._require_valid_input(idx, positions)
        hidden = self.base.hidden_states(idx)
        rows = torch.arange(idx.size(0), device=idx.device)
        return self.head(hidden[rows, positions])

    def _require_valid_input(self, idx, positions) -> None:
        """Refuse token ids the base cannot read and positions that are not one valid index per sequence."""
        self.base.require_valid_input(idx)
        require_tensor("positions", positions, dims=1, kind="int")
        if positions.size(0) != idx.size(0):
            raise ValueError(f"positions must hold one position per sequence: idx has {idx.size(0)} sequences, "
                             f"positions has {positions.size(0)} entries")
        if positions.numel() and (positions.min() < 0 or positions.max() >= idx.size(1)):
            bad = positions[(positions < 0) | (positions >= idx.size(1))][0].item()
            raise ValueError(f"position {bad} is outside 0..{idx.size(1) - 1} (the input has {idx.size(1)} tokens); "
                             "negative positions are refused: -1 would read the last column, which is padding "
                             "for every shorter sequence. Use the index of '=' (data.encode gives it)")

"""Prefix tuning: learned keys and values, per layer, that every position can attend to.

The hand-written attention concatenates them in front of the sequence's own keys and values. Unlike LoRA,
adapters and IA3, a prefix changes the model's output from the start (the softmax now shares its weight
with the prefix); switching it off gives the base model back exactly.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..guards import require_choice, require_int
from .core import PeftLayer, require_new_adapter, finish_add, remember_base, transactional

INITS = ("tokens", "random")


class PrefixKV(PeftLayer):
    kind = "prefix"
    adapter_dicts = ("keys", "values")

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.keys = nn.ParameterDict()
        self.values = nn.ParameterDict()

    def add(self, name: str, length: int, keys: torch.Tensor, values: torch.Tensor, init: str):
        self.register(name, length=length, init=init)
        self.keys[name] = nn.Parameter(keys.detach().clone())
        self.values[name] = nn.Parameter(values.detach().clone())

    @classmethod
    def attach(cls, lm, layer_name, name, settings, inside=None):
        attn = lm.get_submodule(layer_name.rpartition(".")[0])
        if attn.prefix is None:
            attn.prefix = cls(lm.config.d_model)
        empty = torch.zeros(settings["length"], lm.config.d_model)
        attn.prefix.add(name, settings["length"], empty, empty, settings["init"])

    def forward(self, batch_size: int):
        names = self.active_names()
        if not names:
            return None
        keys = torch.cat([self.keys[n] for n in names]).expand(batch_size, -1, -1)
        values = torch.cat([self.values[n] for n in names]).expand(batch_size, -1, -1)
        return keys, values


@transactional
def add_prefix(model: nn.Module, name: str = "default", length: int = 8, init: str = "tokens", seed: int = 0) -> list[str]:
    """Add a prefix of `length` learned key/value vectors to every attention layer.

    init="tokens" starts each layer's prefix from the keys and values the layer computes for random
    vocabulary tokens (a realistic scale); "random" starts from small Gaussian noise.
    """
    lm = require_new_adapter(model, name)
    require_choice("init", init, INITS)
    block = lm.config.block_size
    require_int("prefix length", length, 1)
    if init == "tokens" and length > block:  # computed from the embeddings of the first `length` positions
        raise ValueError(f"prefix length must be at most block_size={block} with init='tokens', got {length}; "
                         "use init='random' for a longer prefix")
    require_int("seed", seed, None)
    remember_base(model)
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, lm.config.vocab_size, (length,), generator=generator)
    names = []
    for i, block in enumerate(lm.blocks):
        attn = block.attn
        with torch.no_grad():
            if init == "tokens":
                h = block.ln1(lm.tok_emb.weight[tokens] + lm.pos_emb.weight[:length])
                keys, values = attn.k_proj(h), attn.v_proj(h)
            else:
                keys = torch.randn(length, lm.config.d_model, generator=generator) * 0.02
                values = torch.randn(length, lm.config.d_model, generator=generator) * 0.02
        if attn.prefix is None:
            attn.prefix = PrefixKV(lm.config.d_model)
        attn.prefix.add(name, length, keys, values, init)
        names.append(f"{'base.' if lm is not model else ''}blocks.{i}.attn.prefix")
    finish_add(model, name)
    return names

"""Prompt tuning: learned "virtual token" embeddings put in front of every input.

Nothing inside the model changes: the model reads P extra input vectors that training shapes, and a
prompt plus an input must fit in block_size. Where the virtual tokens sit matters for a model with
learned absolute positions: positions="keep" (the default) leaves the input at the positions it was
pretrained with and gives the virtual tokens none; positions="shift" gives the virtual tokens the first P
positions and moves the input along, as Hugging Face PEFT does for GPT-2.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..tokenizer import tokenizer
from ..guards import require_choice, require_int
from .core import PeftLayer, require_new_adapter, finish_add, remember_base, transactional


POSITIONS = ("keep", "shift")


class SoftPrompt(PeftLayer):
    kind = "prompt"
    adapter_dicts = ("prompts",)

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.prompts = nn.ParameterDict()

    def add(self, name: str, embeddings: torch.Tensor, init: str, positions: str = "keep"):
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {list(POSITIONS)}, got {positions!r}")
        self.register(name, length=embeddings.size(0), init=init, positions=positions)
        self.prompts[name] = nn.Parameter(embeddings.detach().clone())

    @classmethod
    def attach(cls, lm, layer_name, name, settings, inside=None):
        if lm.soft_prompt is None:
            lm.soft_prompt = cls(lm.config.d_model)
        lm.soft_prompt.add(name, torch.zeros(settings["length"], lm.config.d_model), settings["init"],
                           settings["positions"])

    def length(self) -> int:
        return sum(self.prompts[n].size(0) for n in self.active_names())

    def shifts_positions(self) -> bool:
        modes = {self.settings[n]["positions"] for n in self.active_names()}
        if len(modes) > 1:
            raise ValueError("the active prompts disagree on positions ('keep' and 'shift'); activate one kind")
        return modes == {"shift"}

    def forward(self, x):
        names = self.active_names()
        if not names:
            return x
        prompt = torch.cat([self.prompts[n] for n in names]).expand(x.size(0), -1, -1)
        return torch.cat([prompt, x], dim=1)


@transactional
def add_prompt(model: nn.Module, name: str = "default", length: int = 8, init: str = "vocab",
               positions: str = "keep", seed: int = 0) -> list[str]:
    """Add a soft prompt of `length` virtual tokens.

    init="vocab" starts from the embeddings of random vocabulary characters (Lester et al.), "random" from
    small Gaussian noise, and any other string from the embeddings of that text's characters.
    positions: "keep" or "shift" (see the module's docstring).
    """
    lm = require_new_adapter(model, name)
    require_choice("positions", positions, POSITIONS)
    require_int("prompt length", length, 1)
    if length >= lm.config.block_size:
        raise ValueError(f"a prompt of {length} tokens leaves no room for input in a context of {lm.config.block_size}")
    require_int("seed", seed, None)
    if not isinstance(init, str) or not init:
        raise ValueError(f"init must be 'vocab', 'random' or a text of `length` characters, got {init!r}")
    if init not in ("vocab", "random"):
        if len(init) != length:
            raise ValueError(f"init text {init!r} has {len(init)} characters but the prompt length is {length}")
        bad = [c for c in init if c not in tokenizer.stoi]
        if bad:
            raise ValueError(f"init text {init!r} has character {bad[0]!r}, which is not in the vocabulary "
                             f"{tokenizer.vocab!r} (init must be 'vocab', 'random' or a text)")
    remember_base(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if init == "vocab":
            embeddings = lm.tok_emb.weight[torch.randint(0, lm.config.vocab_size, (length,), generator=generator)]
        elif init == "random":
            embeddings = torch.randn(length, lm.config.d_model, generator=generator) * 0.02
        else:
            embeddings = lm.tok_emb.weight[torch.tensor(tokenizer.encode(init))]
    if lm.soft_prompt is None:
        lm.soft_prompt = SoftPrompt(lm.config.d_model)
    lm.soft_prompt.add(name, embeddings, init, positions)
    finish_add(model, name)
    return [f"{'base.' if lm is not model else ''}soft_prompt"]

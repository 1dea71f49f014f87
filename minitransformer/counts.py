"""Counting what a model holds: its parameters by component (as a formula and as measured), and how many
directions a weight change uses (its effective rank)."""

from __future__ import annotations

import re

import torch

# Which component a parameter belongs to, by its name: the first rule that matches wins.
COMPONENT_RULES = [
    ("LoRA", r"\.lora_(A|B)\."),
    ("adapters", r"\.adapters\."),
    ("IA3", r"\.scales\."),
    ("prefix", r"\.prefix\."),
    ("soft prompt", r"(^|\.)soft_prompt\."),
    ("token embedding", r"(^|\.)tok_emb\."),
    ("position embedding", r"(^|\.)pos_emb\."),
    ("attention", r"\.attn\."),
    ("MLP", r"\.mlp\."),
    ("LayerNorm", r"(^|\.)(ln1|ln2|ln_f)\."),
    ("LM head", r"(^|\.)lm_head\."),
    ("task head", r"^head\."),
]


def component_of(name: str) -> str:
    for label, pattern in COMPONENT_RULES:
        if re.search(pattern, name):
            return label
    return name.split(".")[0]


def count_parameters(model) -> dict:
    """{"total": all parameters, "trainable": those with requires_grad, "percent": their share}."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "percent": 100.0 * trainable / max(total, 1)}


def parameters_by_component(model, trainable_only: bool = False) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, p in model.named_parameters():
        if trainable_only and not p.requires_grad:
            continue
        label = component_of(name)
        counts[label] = counts.get(label, 0) + p.numel()
    return counts


def parameter_summary(model) -> str:
    """The one-line summary PEFT users know: trainable params || all params || trainable%."""
    c = count_parameters(model)
    return f"trainable params: {c['trainable']:,} || all params: {c['total']:,} || trainable%: {c['percent']:.4f}"


def parameter_count_formula(config) -> dict[str, int]:
    """The parameter count of MiniTransformer(config), component by component, from the config alone."""
    d, V, T, L = config.d_model, config.vocab_size, config.block_size, config.n_layer
    h = config.mlp_ratio * d
    b = 1 if config.bias else 0
    norm = d + b * d  # LayerNorm: a scale per feature (+ a shift per feature with bias)
    return {
        "token embedding": V * d,
        "position embedding": T * d,
        "attention": L * 4 * (d * d + b * d),  # q, k, v and out projections
        "MLP": L * (d * h + b * h + h * d + b * d),
        "LayerNorm": (2 * L + 1) * norm,  # two per block and the final one
        "LM head": d * V,  # no bias, not tied to the token embedding
    }


def parameter_count_from_config(config) -> int:
    """The total of parameter_count_formula: what MiniTransformer(config) holds."""
    return sum(parameter_count_formula(config).values())


def effective_rank(delta: torch.Tensor, energy: float = 0.9) -> int:
    """How many singular values of a matrix hold `energy` of its squared Frobenius norm (its "energy")."""
    if not 0 < energy <= 1:
        raise ValueError(f"energy must be in (0, 1], got {energy!r}")
    s2 = torch.linalg.svdvals(delta.detach().float()) ** 2
    if s2.sum() == 0:
        return 0
    return int((torch.cumsum(s2, 0) / s2.sum() < energy).sum()) + 1


"""Selective fine-tuning: train a chosen subset of the base model's own parameters.

Nothing is added; we only choose what keeps requires_grad=True. A Classifier's task head is always
trainable (it is new and random, so it must learn) and always saved.
"""

from __future__ import annotations

import re

import torch.nn as nn

from .core import TASK_HEAD, language_model, prepare


def freeze_base(model: nn.Module) -> None:
    """Freeze every parameter except a task head."""
    prepare(model)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(TASK_HEAD + "."))


def unfreeze(model: nn.Module, pattern: str) -> list[str]:
    """Make trainable every parameter whose name matches the regex `pattern` (re.search); return them."""
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {error}") from None
    names = [n for n, p in model.named_parameters() if regex.search(n)]
    if not names:
        raise ValueError(
            f"pattern {pattern!r} matches no parameter; the parameters are: "
            + ", ".join(n for n, _ in model.named_parameters())
        )
    for name, p in model.named_parameters():
        if name in names:
            p.requires_grad_(True)
    return names


def unfreeze_blocks(model: nn.Module, last: int | None = None, first: int | None = None) -> list[str]:
    """Make the last (or first) k transformer blocks trainable; k = 0 leaves only the head."""
    if (last is None) == (first is None):
        raise ValueError("give exactly one of last=k or first=k")
    k = last if last is not None else first
    n_layer = len(language_model(model).blocks)
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= n_layer:
        raise ValueError(f"k must be an int in 0..{n_layer} (the model has {n_layer} blocks), got {k!r}")
    chosen = range(n_layer - k, n_layer) if last is not None else range(k)
    names = []
    for i in chosen:
        names += unfreeze(model, rf"(^|\.)blocks\.{i}\.")
    return names


def unfreeze_biases(model: nn.Module) -> list[str]:
    """BitFit: every bias of the base model becomes trainable."""
    return unfreeze(model, r"\.bias$")


def unfreeze_layernorms(model: nn.Module) -> list[str]:
    """Only the LayerNorms' scales and shifts become trainable."""
    return unfreeze(model, r"(^|\.)(ln1|ln2|ln_f)\.")


def select(model: nn.Module, method: str, k: int = 1) -> list[str]:
    """One call for the usual recipes: "head", "last_k", "first_k", "bitfit", "layernorm", "full"."""
    freeze_base(model)
    if method == "head":
        return []
    if method == "last_k":
        return unfreeze_blocks(model, last=k)
    if method == "first_k":
        return unfreeze_blocks(model, first=k)
    if method == "bitfit":
        return unfreeze_biases(model)
    if method == "layernorm":
        return unfreeze_layernorms(model)
    if method == "full":
        return unfreeze(model, ".")
    raise ValueError(f"method must be one of head, last_k, first_k, bitfit, layernorm, full; got {method!r}")

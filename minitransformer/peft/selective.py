"""Selective fine-tuning: train a chosen subset of the base model's own parameters.

Nothing is added; we only choose what keeps requires_grad=True. A Classifier's task head is always
trainable (it is new and random, so it must learn) and always saved.
"""

from __future__ import annotations

import re

import torch.nn as nn

from ..guards import require_int
from .core import TASK_HEAD, language_model, remember_base, transactional

SELECTIONS = ("head", "last_k", "first_k", "bitfit", "layernorm", "full")


@transactional
def freeze_base(model: nn.Module) -> None:
    """Freeze every parameter except a task head."""
    remember_base(model)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(TASK_HEAD + "."))


def _matching(model: nn.Module, pattern) -> list[str]:
    language_model(model)
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a regular expression (a str), got {pattern!r}")
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {error}") from None
    names = [n for n, p in model.named_parameters() if regex.search(n)]
    if not names:
        raise ValueError(
            f"pattern {pattern!r} matches no parameter; the parameters are: "
            + ", ".join(n for n, _ in model.named_parameters())
        )
    return names


def _unfreeze(model: nn.Module, names: list[str]) -> list[str]:
    chosen = set(names)
    for name, p in model.named_parameters():
        if name in chosen:
            p.requires_grad_(True)
    return names


@transactional
def unfreeze(model: nn.Module, pattern: str) -> list[str]:
    """Make trainable every parameter whose name matches the regex `pattern` (re.search); return them."""
    return _unfreeze(model, _matching(model, pattern))


def _block_patterns(model: nn.Module, last, first) -> list[str]:
    if (last is None) == (first is None):
        raise ValueError("give exactly one of last=k or first=k")
    n_layer = len(language_model(model).blocks)
    k = require_int("k", last if last is not None else first, 0, n_layer,
                  hint=f"{'last' if last is not None else 'first'}=k; the model has {n_layer} blocks")
    chosen = range(n_layer - k, n_layer) if last is not None else range(k)
    return [rf"(^|\.)blocks\.{i}\." for i in chosen]


@transactional
def unfreeze_blocks(model: nn.Module, last: int | None = None, first: int | None = None) -> list[str]:
    """Make the last (or first) k transformer blocks trainable; k = 0 leaves only the head."""
    found = [_matching(model, pattern) for pattern in _block_patterns(model, last, first)]
    return [name for names in found for name in _unfreeze(model, names)]


@transactional
def unfreeze_biases(model: nn.Module) -> list[str]:
    """BitFit: every bias of the base model becomes trainable."""
    return unfreeze(model, r"\.bias$")


@transactional
def unfreeze_layernorms(model: nn.Module) -> list[str]:
    """Only the LayerNorms' scales and shifts become trainable."""
    return unfreeze(model, r"(^|\.)(ln1|ln2|ln_f)\.")


@transactional
def select(model: nn.Module, method: str, k: int = 1) -> list[str]:
    """One call for the usual recipes: "head", "last_k", "first_k", "bitfit", "layernorm", "full"."""
    language_model(model)
    if not isinstance(method, str) or method not in SELECTIONS:
        raise ValueError(f"method must be one of {', '.join(SELECTIONS)}; got {method!r}")
    if method in ("last_k", "first_k"):
        _block_patterns(model, k if method == "last_k" else None, k if method == "first_k" else None)
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
    return unfreeze(model, ".")

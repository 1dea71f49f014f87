"""What every additive PEFT method shares: named adapters on one frozen base.

Each method puts `PeftLayer`s into the model. A PeftLayer holds any number of *named* adapters of its
kind; the model-level verbs below act on every PeftLayer at once:

- `set_active(model, names)`: which adapters compute (and train); the others are kept but idle;
- `disable_adapters(model)`: a context manager in which the model is the base model, exactly;
- `delete_adapter(model, name)`: remove an adapter everywhere; a layer left with none is unwrapped;
- `describe(model)`: which adapters exist, where, which are active, merged, trainable.

Adding an adapter (`add_lora`, `add_adapters`, ...) freezes the base, makes the new adapter the only
active one, and leaves only it (and a task head, if the model has one) trainable.

Rules every verb keeps: an adapter name is unique across the model and across kinds; a call that changes
the model checks everything first and, if it raises, leaves the model exactly as it was (`transactional`
is the backstop); methods that cannot compose are refused up front with the order that works.
Imports flow one way: layers <- core <- the methods <- saving <- hf.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import torch
import torch.nn as nn

from ..model import Classifier, MiniTransformer
from ..guards import require_bool
from .layers import (LINEAR_SITES, TASK_HEAD, PeftLayer, WrapperLayer, clean_name, find_targets, innermost,
                     language_model, peft_layers, replace_module, transformer_sites, unwrap)
from .transaction import transactional

__all__ = ["LINEAR_SITES", "TASK_HEAD", "PeftLayer", "WrapperLayer", "clean_name", "find_targets", "innermost",
           "language_model", "peft_layers", "replace_module", "transformer_sites", "unwrap", "transactional",
           "MiniTransformer"]


def adapter_names(model: nn.Module) -> list[str]:
    names: list[str] = []
    language_model(model)
    for _, layer in peft_layers(model):
        names += [n for n in layer.adapter_names() if n not in names]
    return names


def adapter_kind(model: nn.Module, name: str) -> str:
    kinds = {layer.kind for _, layer in peft_layers(model) if name in layer.adapter_names()}
    if not kinds:
        raise ValueError(f"no adapter named {name!r}; the model has {adapter_names(model) or 'no adapters'}")
    return "+".join(sorted(kinds))


def active_adapters(model: nn.Module) -> list[str]:
    names: list[str] = []
    language_model(model)
    for _, layer in peft_layers(model):
        names += [n for n in layer.active if n not in names]
    return names


def merged_adapters(model: nn.Module) -> list[str]:
    names: list[str] = []
    for _, layer in peft_layers(model):
        names += [n for n in getattr(layer, "merged", []) if n not in names]
    return names


def _require_names(model, names, what: str = "names") -> list[str]:
    existing = adapter_names(model)
    if isinstance(names, str):
        names = [names]
    elif not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{what} must be an adapter name or a list of them, got {names!r}; "
                        f"the model has {existing or 'no adapters'}")
    unknown = [n for n in names if n not in existing]
    if unknown:
        raise ValueError(f"no adapter named {unknown[0]!r}; the model has {existing or 'no adapters'}")
    return list(dict.fromkeys(names))


_RESERVED = set(dir(nn.ModuleDict())) | set(dir(nn.ParameterDict()))


def require_new_adapter(model: nn.Module, name) -> MiniTransformer:
    """Everything an add_* checks before it changes anything: the model, a new and valid name, no merged
    adapter (a new adapter becomes the only active one, and a merged one cannot stop computing)."""
    lm = language_model(model)
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"adapter name must be a non-empty str without '.', got {name!r}")
    if name in _RESERVED:
        raise ValueError(f"adapter name {name!r} is the name of a PyTorch attribute; pick another name")
    if name in adapter_names(model):
        raise ValueError(f"the model already has an adapter named {name!r} ({adapter_kind(model, name)}); names are "
                         f"unique across the model and across kinds: pick another name or delete_adapter it first")
    merged = merged_adapters(model)
    if merged:
        raise ValueError(f"adapter {merged[0]!r} is merged into the weights, and adding {name!r} would have to "
                         f"deactivate it; unmerge it first (unmerge_lora / unmerge_ia3), or merge_and_unload to "
                         f"make the merged model a new base, then add")
    return lm


def _require_activation(model, names) -> None:
    for layer_name, layer in peft_layers(model):
        for name in layer.active:
            if name not in names:
                layer.can_deactivate(name)
    positions = {layer.settings[n]["positions"] for _, layer in peft_layers(model) if layer.kind == "prompt"
                 for n in names if n in layer.settings}
    if len(positions) > 1:
        raise ValueError(f"the soft prompts in {names} disagree on positions ('keep' and 'shift'); activate one kind")


def set_trainable(model: nn.Module, names) -> None:
    """Freeze everything except the named adapters and the task head (if any)."""
    names = _require_names(model, names)
    model.requires_grad_(False)
    if isinstance(model, Classifier):
        model.head.requires_grad_(True)
    for _, layer in peft_layers(model):
        for name in names:
            if name in layer.adapter_names():
                for p in layer.adapter_parameters(name):
                    p.requires_grad_(True)


@transactional
def set_active(model: nn.Module, names, trainable: bool = True) -> None:
    """Make exactly `names` (one name or a list) the active adapters; with trainable, only they train."""
    language_model(model)
    names = _require_names(model, names)
    require_bool("trainable", trainable)
    _require_activation(model, names)
    for _, layer in peft_layers(model):
        layer.active = [n for n in names if n in layer.adapter_names()]
    if trainable:
        set_trainable(model, names)


@contextmanager
def disable_adapters(model: nn.Module):
    """Inside this block the model computes exactly what the base model computes."""
    language_model(model)
    layers = [layer for _, layer in peft_layers(model)]
    previous = [layer.disabled for layer in layers]
    for layer in layers:
        layer.disabled = True
    try:
        yield model
    finally:
        for layer, was in zip(layers, previous):
            layer.disabled = was


@transactional
def delete_adapter(model: nn.Module, name: str) -> None:
    """Remove adapter `name` from every layer; a wrapper left empty gives its original module back."""
    language_model(model)
    if not isinstance(name, str):
        raise TypeError(f"name must be an adapter name (a str), got {name!r}")
    _require_names(model, name)
    layers = [(n, l) for n, l in reversed(peft_layers(model)) if name in l.adapter_names()]
    for _, layer in layers:  # check every layer before deleting from any
        layer.can_deactivate(name)
    for layer_name, layer in layers:
        layer.delete(name)
        if not layer.adapter_names():
            replace_module(model, layer_name, layer.base_layer if isinstance(layer, WrapperLayer) else None)


def describe(model: nn.Module) -> str:
    """A readable account of the adapters on a model: where, which kind, active, trainable."""
    from ..counts import parameter_summary

    language_model(model)
    lines = []
    for name in adapter_names(model):
        layers = [(n, l) for n, l in peft_layers(model) if name in l.adapter_names()]
        params = sum(p.numel() for _, l in layers for p in l.adapter_parameters(name))
        trainable = all(p.requires_grad for _, l in layers for p in l.adapter_parameters(name))
        active = any(name in l.active for _, l in layers)
        merged = any(name in getattr(l, "merged", []) for _, l in layers)
        state = ("active" if active else "inactive") + (", merged" if merged else "") + (", trainable" if trainable else ", frozen")
        lines.append(f"adapter {name!r} ({adapter_kind(model, name)}): {len(layers)} layers, {params:,} parameters, {state}")
        settings = layers[0][1].settings[name]
        if settings:
            lines.append("    " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    if any(l.disabled for _, l in peft_layers(model)):
        lines.append("adapters are disabled (inside disable_adapters)")
    lines.append(parameter_summary(model))
    return "\n".join(lines) if lines else "no adapters"


def adapter_parameter_ids(lm) -> set[int]:
    return {id(p) for _, layer in peft_layers(lm) for n in layer.adapter_names() for p in layer.adapter_parameters(n)}


def base_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The base language model's own weights, by their unwrapped names, as they were before any merge."""
    lm = language_model(model)
    adapters = adapter_parameter_ids(lm)
    originals = {f"{n}.base_layer.weight": l.original_weight for n, l in peft_layers(lm)
                 if getattr(l, "merged", None) and getattr(l, "original_weight", None) is not None}
    state = {clean_name(name): originals.get(name, p).detach()
             for name, p in lm.named_parameters() if id(p) not in adapters}
    # A quantized base keeps its weights as buffers (codes and scales): they are part of the base too.
    state.update({clean_name(name): b.detach() for name, b in lm.named_buffers() if b is not None})
    return state


def base_fingerprint(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(base_state(model).items()):
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def remember_base(model: nn.Module) -> MiniTransformer:
    """Record the base model's fingerprint before anything is trained (saving checks it later)."""
    lm = language_model(model)
    if getattr(lm, "_base_fingerprint", None) is None:
        lm._base_fingerprint = base_fingerprint(model)
    return lm


def finish_add(model: nn.Module, name: str) -> None:
    """Every add_* ends here: the new adapter becomes the only active one and the only trainable one."""
    set_active(model, name, trainable=True)

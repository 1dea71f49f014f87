"""What every additive PEFT method shares: named adapters on one frozen base.

Each method puts `PeftLayer`s into the model. A PeftLayer holds any number of *named* adapters of its
kind; the model-level verbs below act on every PeftLayer at once:

- `set_active(model, names)`: which adapters compute (and train); the others are kept but idle;
- `disable_adapters(model)`: a context manager in which the model is the base model, exactly;
- `delete_adapter(model, name)`: remove an adapter everywhere; a layer left with none is unwrapped;
- `describe(model)`: which adapters exist, where, which are active, merged, trainable.

Adding an adapter (`add_lora`, `add_adapters`, ...) freezes the base, makes the new adapter the only
active one, and leaves only it (and a task head, if the model has one) trainable.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch.nn as nn

from ..model import Classifier, MiniTransformer

TASK_HEAD = "head"  # a Classifier's new head: always trainable, always saved with an adapter


def language_model(model: nn.Module) -> MiniTransformer:
    """The MiniTransformer inside `model` (the model itself, or a Classifier's base)."""
    if isinstance(model, Classifier):
        return model.base
    if isinstance(model, MiniTransformer):
        return model
    raise TypeError(f"expected a MiniTransformer or a Classifier, got {type(model).__name__}")


class PeftLayer(nn.Module):
    """A layer holding named adapters of one kind. Subclasses keep their weights in ModuleDicts or
    ParameterDicts keyed by adapter name and list them in `adapter_dicts`."""

    kind = "peft"
    adapter_dicts: tuple[str, ...] = ()

    def __init__(self):
        super().__init__()
        self.active: list[str] = []
        self.disabled = False
        self.settings: dict[str, dict] = {}  # per adapter: its hyper-parameters

    def adapter_names(self) -> list[str]:
        return list(self.settings)

    def active_names(self) -> list[str]:
        return [] if self.disabled else list(self.active)

    def register(self, name: str, **settings):
        if name in self.settings:
            raise ValueError(f"this layer already has an adapter named {name!r}; delete it first or pick another name")
        self.settings[name] = settings

    def delete(self, name: str):
        for attr in self.adapter_dicts:
            entries = getattr(self, attr)
            if name in entries:
                del entries[name]
        self.settings.pop(name)
        self.active = [n for n in self.active if n != name]

    def adapter_parameters(self, name: str):
        for attr in self.adapter_dicts:
            entry = getattr(self, attr)[name]
            if isinstance(entry, nn.Parameter):
                yield entry
            else:
                yield from entry.parameters()

    def can_deactivate(self, name: str):
        """Raise if `name` cannot stop computing (LoRA: a merged adapter lives in the weight)."""


class WrapperLayer(PeftLayer):
    """A PeftLayer that wraps an existing module, kept untouched as `self.base`."""

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base

    @classmethod
    def wrap(cls, module: nn.Module, lm: MiniTransformer, layer_name: str) -> "WrapperLayer":
        return cls(module)

    @classmethod
    def attach(cls, lm: MiniTransformer, layer_name: str, name: str, settings: dict) -> None:
        """Re-create adapter `name` at `layer_name` (weights are filled in by the caller): for loading."""
        module = lm.get_submodule(layer_name)
        if not isinstance(module, cls):
            module = cls.wrap(module, lm, layer_name)
            replace_module(lm, layer_name, module)
        module.add(name, **settings)


def peft_layers(model: nn.Module) -> list[tuple[str, PeftLayer]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, PeftLayer)]


def adapter_names(model: nn.Module) -> list[str]:
    names: list[str] = []
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
    for _, layer in peft_layers(model):
        names += [n for n in layer.active if n not in names]
    return names


def _check_names(model, names) -> list[str]:
    names = [names] if isinstance(names, str) else list(names)
    existing = adapter_names(model)
    unknown = [n for n in names if n not in existing]
    if unknown:
        raise ValueError(f"no adapter named {unknown[0]!r}; the model has {existing or 'no adapters'}")
    return names


def set_trainable(model: nn.Module, names) -> None:
    """Freeze everything except the named adapters and the task head (if any)."""
    names = _check_names(model, names)
    model.requires_grad_(False)
    if isinstance(model, Classifier):
        model.head.requires_grad_(True)
    for _, layer in peft_layers(model):
        for name in names:
            if name in layer.adapter_names():
                for p in layer.adapter_parameters(name):
                    p.requires_grad_(True)


def set_active(model: nn.Module, names, trainable: bool = True) -> None:
    """Make exactly `names` (one name or a list) the active adapters; with trainable, only they train."""
    names = _check_names(model, names)
    for _, layer in peft_layers(model):
        for name in layer.active:
            if name not in names:
                layer.can_deactivate(name)
    for _, layer in peft_layers(model):
        layer.active = [n for n in names if n in layer.adapter_names()]
    if trainable:
        set_trainable(model, names)


@contextmanager
def disable_adapters(model: nn.Module):
    """Inside this block the model computes exactly what the base model computes."""
    layers = [layer for _, layer in peft_layers(model)]
    previous = [layer.disabled for layer in layers]
    for layer in layers:
        layer.disabled = True
    try:
        yield model
    finally:
        for layer, was in zip(layers, previous):
            layer.disabled = was


def replace_module(model: nn.Module, name: str, new: nn.Module | None) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def delete_adapter(model: nn.Module, name: str) -> None:
    """Remove adapter `name` from every layer; a wrapper left empty gives its original module back."""
    _check_names(model, name)
    for layer_name, layer in reversed(peft_layers(model)):
        if name not in layer.adapter_names():
            continue
        layer.can_deactivate(name)
        layer.delete(name)
        if not layer.adapter_names():
            replace_module(model, layer_name, layer.base if isinstance(layer, WrapperLayer) else None)


def describe(model: nn.Module) -> str:
    """A readable account of the adapters on a model: where, which kind, active, trainable."""
    from ..measure import parameter_summary

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


def find_targets(targets, candidates: dict[str, nn.Module], what: str) -> list[str]:
    """Resolve `targets` to module names among `candidates` (name -> module).

    A str is a regular expression that must match a whole name; a list or tuple holds exact names or
    name suffixes ("q_proj" matches "blocks.0.attn.q_proj"). Matching nothing is an error that lists
    what exists.
    """
    import re

    if isinstance(targets, str):
        try:
            pattern = re.compile(targets)
        except re.error as error:
            raise ValueError(f"target pattern {targets!r} is not a valid regular expression: {error}") from None
        found = [n for n in candidates if pattern.fullmatch(n)]
        unmatched = [] if found else [targets]
    else:
        targets = list(targets)
        if not targets or not all(isinstance(t, str) and t for t in targets):
            raise ValueError(f"targets must be a regex string or a non-empty list of names, got {targets!r}")
        found = [n for n in candidates if any(n == t or n.endswith("." + t) for t in targets)]
        unmatched = [t for t in targets if not any(n == t or n.endswith("." + t) for n in candidates)]
    if unmatched:
        raise ValueError(
            f"target {unmatched[0]!r} matches no {what}; the {what}s are: {', '.join(candidates)}"
        )
    return found


def prepare(model: nn.Module) -> MiniTransformer:
    """Record the base model's fingerprint before anything is trained (saving checks it later)."""
    from .checkpoints import base_fingerprint

    lm = language_model(model)
    if getattr(lm, "_base_fingerprint", None) is None:
        lm._base_fingerprint = base_fingerprint(model)
    return lm


def finish_add(model: nn.Module, name: str) -> None:
    """Every add_* ends here: the new adapter becomes the only active one and the only trainable one."""
    set_active(model, name, trainable=True)


LINEAR_SITES = ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj", "mlp.fc_in", "mlp.fc_out")


def transformer_sites(model: nn.Module, extra: tuple[str, ...] = ()) -> dict[str, tuple[nn.Module, int]]:
    """The named places a method can attach to, with the width of their output.

    Per block: the four attention projections, the MLP's two linear layers (and whatever `extra` names,
    e.g. "mlp.act"); then the LM head and a Classifier's task head. Names are relative to `model`.
    """
    lm = language_model(model)
    prefix = "base." if lm is not model else ""
    d, hidden = lm.config.d_model, lm.config.mlp_ratio * lm.config.d_model
    widths = {"attn.q_proj": d, "attn.k_proj": d, "attn.v_proj": d, "attn.out_proj": d,
              "mlp.fc_in": hidden, "mlp.fc_out": d, "mlp.act": hidden}
    sites = {}
    for i in range(len(lm.blocks)):
        for site in LINEAR_SITES + extra:
            name = f"{prefix}blocks.{i}.{site}"
            sites[name] = (model.get_submodule(name), widths[site])
    sites[f"{prefix}lm_head"] = (lm.lm_head, lm.config.vocab_size)
    if isinstance(model, Classifier):
        sites["head"] = (model.head, model.head.out_features)
    return sites

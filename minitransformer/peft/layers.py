"""The layers PEFT methods put into a model, and the places ("sites") they attach to.

A `PeftLayer` holds any number of *named* adapters of one kind. A `WrapperLayer` wraps an existing module
(kept untouched as `.base_layer`, Hugging Face PEFT's name); wrappers of different kinds may wrap one site in turn (LoRA inside IA3, ...).
A site's *clean* name is its name in the unwrapped model ("blocks.0.attn.v_proj"), whatever wraps it.
"""

from __future__ import annotations

import re

import torch.nn as nn

from ..model import Classifier, MiniTransformer

TASK_HEAD = "head"  # a Classifier's new head: always trainable, always saved with an adapter


def language_model(model: nn.Module) -> MiniTransformer:
    """The MiniTransformer inside `model` (the model itself, or a Classifier's base)."""
    if isinstance(model, Classifier):
        return model.base
    if isinstance(model, MiniTransformer):
        return model
    raise TypeError(f"model must be a MiniTransformer or a Classifier, got a {type(model).__name__}")


def clean_name(name: str) -> str:
    """A name as in the unwrapped model: "blocks.0.attn.v_proj.base_layer.weight" -> "blocks.0.attn.v_proj.weight"."""
    while ".base_layer." in name:
        name = name.replace(".base_layer.", ".")
    return name[: -len(".base_layer")] if name.endswith(".base_layer") else name


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
        """Raise if `name` cannot stop computing (a merged adapter lives in the weight)."""
        if name in getattr(self, "merged", []):
            raise ValueError(f"{self.kind} adapter {name!r} is merged into the weight; unmerge it first")


class WrapperLayer(PeftLayer):
    """A PeftLayer that wraps an existing module, kept untouched as `self.base_layer`."""

    innermost = False  # True: always wrap the original module itself, inside any other wrapper (LoRA)

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base_layer = base

    @classmethod
    def wrap(cls, module: nn.Module, lm: MiniTransformer, site: str) -> "WrapperLayer":
        return cls(module)

    @classmethod
    def at_site(cls, model: nn.Module, site: str, make, inside: list[str] | None = None) -> "WrapperLayer":
        """The `cls` layer at `site`, made by `make(module)` if the site has none yet.

        A new layer wraps whatever is at the site (so it runs after the wrappers already there), unless
        `inside` (the kinds of wrapper it had inside it when it was saved) says to go further in: then it
        wraps the first module that is not a wrapper of another kind missing from `inside`. Loading
        adapters in any order thus rebuilds the nesting they were saved with.
        """
        path, module = site, model.get_submodule(site)
        for m in unwrap(module):
            if isinstance(m, cls):
                return m
        if cls.innermost:
            inside = []
        if inside is not None:
            while isinstance(module, WrapperLayer) and module.kind not in inside:
                path, module = path + ".base_layer", module.base_layer
        layer = make(module)
        replace_module(model, path, layer)
        return layer

    @classmethod
    def attach(cls, lm: MiniTransformer, site: str, name: str, settings: dict, inside: list[str] | None = None) -> None:
        """Re-create adapter `name` at `site` (weights are filled in by the caller): for loading."""
        cls.at_site(lm, site, lambda module: cls.wrap(module, lm, site), inside).add(name, **settings)

    def inside_kinds(self) -> list[str]:
        """The kinds of the wrappers between this layer and the module it adapts."""
        return [m.kind for m in unwrap(self.base_layer) if isinstance(m, WrapperLayer)]


def unwrap(module: nn.Module) -> list[nn.Module]:
    """The module and every module it wraps, outermost first."""
    chain = [module]
    while isinstance(chain[-1], WrapperLayer):
        chain.append(chain[-1].base_layer)
    return chain


def innermost(module: nn.Module) -> nn.Module:
    return unwrap(module)[-1]


def peft_layers(model: nn.Module) -> list[tuple[str, PeftLayer]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, PeftLayer)]


def replace_module(model: nn.Module, name: str, new: nn.Module | None) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def find_targets(targets, candidates: dict[str, nn.Module], what: str) -> list[str]:
    """Resolve `targets` to module names among `candidates` (name -> module).

    A str is a regular expression that must match a whole name; a list or tuple holds exact names or
    name suffixes ("q_proj" matches "blocks.0.attn.q_proj"). Matching nothing is an error that lists
    what exists.
    """
    if isinstance(targets, str):
        try:
            pattern = re.compile(targets)
        except re.error as error:
            raise ValueError(f"targets={targets!r} is not a valid regular expression: {error}") from None
        found = [n for n in candidates if pattern.fullmatch(n)]
        if not found:
            hint = " (a str is a regular expression that must match a whole name)"
            if any(n.endswith("." + targets) for n in candidates):
                hint = (f"; a str is a regular expression matched against whole names: for every layer named "
                        f"{targets!r} pass a list, targets=[{targets!r}], or the regex r'.*{targets}'")
            raise ValueError(f"targets={targets!r} matches no {what}{hint}; the {what}s are: {', '.join(candidates)}")
        return found
    if not isinstance(targets, (list, tuple)) or not targets or not all(isinstance(t, str) and t for t in targets):
        raise ValueError(f"targets must be a regex string or a non-empty list of names, got {targets!r}")
    found = [n for n in candidates if any(n == t or n.endswith("." + t) for t in targets)]
    unmatched = [t for t in targets if not any(n == t or n.endswith("." + t) for n in candidates)]
    if unmatched:
        raise ValueError(f"target {unmatched[0]!r} matches no {what}; the {what}s are: {', '.join(candidates)}")
    return found


LINEAR_SITES = ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj", "mlp.fc_in", "mlp.fc_out")


def transformer_sites(model: nn.Module, extra: tuple[str, ...] = ()) -> dict[str, tuple[nn.Module, int]]:
    """The named places a method can attach to, with the width of their output.

    Per block: the four attention projections, the MLP's two linear layers (and whatever `extra` names,
    e.g. "mlp.act"); then the LM head and a Classifier's task head. Names are relative to `model`; the
    module is whatever sits there now (possibly wrapped by PEFT layers).
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

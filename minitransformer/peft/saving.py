"""Adapter-only checkpoints: save what was trained, load it onto the base it was trained on.

A saved adapter is a folder with two files, as in Hugging Face PEFT:
- adapter_model.safetensors: the adapter's tensors, any base parameters that were trained (selective
  fine-tuning), and the task head of a Classifier (a new head not saved is the classic way to reload a
  "fine-tuned" model that answers at random);
- adapter_config.json: the method, its settings per layer, the base model's config and fingerprint, and
  the sha256 of the tensors file.

Loading checks everything first (file intact, same base, same head, every key present and no key extra)
on a copy of the model, so a bad file raises a clear error and leaves the model untouched.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..checkpoint import sha256_of, verify_sha256
from ..model import Classifier
from ..guards import require_bool
from .adapters import AdapterLayer
from .core import (TASK_HEAD, PeftLayer, WrapperLayer, adapter_kind, adapter_names, adapter_parameter_ids,
                   base_fingerprint, clean_name, language_model, peft_layers, remember_base, require_new_adapter,
                   set_active, transactional)
from .ia3 import IA3Layer
from .lora import LoRALinear
from .prefix import PrefixKV
from .prompt import SoftPrompt

FORMAT = "minitransformer-adapter"
WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
LAYER_KINDS: dict[str, type[PeftLayer]] = {
    cls.kind: cls for cls in (LoRALinear, AdapterLayer, IA3Layer, PrefixKV, SoftPrompt)
}
BASE_PREFIX = "base_weights."  # trained parameters of the base model itself


_clean = clean_name
SIGNED = ("name", "method", "layers", "trained_base_parameters", "head", "base_config", "base_fingerprint", "tensors")
REQUIRED = SIGNED + ("format", "sha256")


def settings_digest(config: dict) -> str:
    """A digest of what a saved adapter's config says about its tensors, so a hand-edited config is caught."""
    return hashlib.sha256(json.dumps({k: config.get(k) for k in SIGNED}, sort_keys=True).encode()).hexdigest()


def _adapter_tensors(lm, name: str) -> dict[str, torch.Tensor]:
    """The live tensors of adapter `name`, keyed without the adapter's name (so it can be renamed)."""
    tensors = {}
    for layer_name, layer in peft_layers(lm):
        if name not in layer.adapter_names():
            continue
        for attr in layer.adapter_dicts:
            entry = getattr(layer, attr)[name]
            if isinstance(entry, nn.Parameter):
                tensors[f"{clean_name(layer_name)}.{attr}"] = entry
            else:
                for key, value in entry.named_parameters():
                    tensors[f"{clean_name(layer_name)}.{attr}.{key}"] = value
    return tensors


def _trained_base_parameters(lm) -> dict[str, torch.Tensor]:
    adapters = adapter_parameter_ids(lm)
    return {BASE_PREFIX + _clean(n): p for n, p in lm.named_parameters() if p.requires_grad and id(p) not in adapters}


def save_adapter(model: nn.Module, path, name: str | None = None) -> Path:
    """Save adapter `name` (default: the only one) plus trained base parameters and task head to folder `path`."""
    lm = language_model(model)
    if not isinstance(path, (str, Path)) or not str(path):
        raise TypeError(f"path must be a folder path (str or pathlib.Path), got {path!r}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be an adapter name (a str) or None, got {name!r}")
    names = adapter_names(model)
    if name is None:
        if len(names) > 1:
            raise ValueError(f"the model has several adapters {names}; pass name= to choose one")
        name = names[0] if names else None
    elif name not in names:
        raise ValueError(f"no adapter named {name!r}; the model has {names or 'no adapters'}")
    layers = []
    if name is not None:
        for layer_name, layer in peft_layers(lm):
            if name in layer.adapter_names():
                if name in getattr(layer, "merged", []):
                    raise ValueError(f"adapter {name!r} is merged into {layer_name}; unmerge it before saving")
                entry = {"layer": clean_name(layer_name), "kind": layer.kind, "settings": layer.settings[name]}
                if isinstance(layer, WrapperLayer):  # the wrappers it had inside it, to rebuild the same nesting
                    entry["inside"] = layer.inside_kinds()
                layers.append(entry)
    tensors = {**(_adapter_tensors(lm, name) if name else {}), **_trained_base_parameters(lm)}
    head = None
    if isinstance(model, Classifier):
        head = {"num_classes": model.head.out_features}
        tensors.update({f"{TASK_HEAD}.{k}": v for k, v in model.head.named_parameters()})
    if not tensors:
        raise ValueError("nothing to save: the model has no adapter and no trainable parameter")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"path {str(folder)!r} is a file; save_adapter writes a folder")
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILE
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, str(weights))
    config = {
        "format": FORMAT,
        "method": adapter_kind(model, name) if name else "selective",
        "name": name,
        "layers": layers,
        "trained_base_parameters": sorted(k[len(BASE_PREFIX):] for k in tensors if k.startswith(BASE_PREFIX)),
        "head": head,
        "base_config": lm.config.to_dict(),
        "base_fingerprint": getattr(lm, "_base_fingerprint", None) or base_fingerprint(model),
        "tensors": {k: list(v.shape) for k, v in sorted(tensors.items())},
        "parameters": sum(v.numel() for v in tensors.values()),
        "sha256": sha256_of(weights),
        "bytes": weights.stat().st_size,
    }
    config["settings_sha256"] = settings_digest(config)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return weights


def read_adapter_config(path) -> dict:
    file = Path(path) / CONFIG_FILE
    if not file.exists():
        raise FileNotFoundError(f"no {CONFIG_FILE} in {path}; is this a folder written by save_adapter?")
    try:
        config = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{file} is not valid JSON: {error}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else None
        raise ValueError(f"{file} is not a minitransformer adapter config (format {found!r})")
    missing = [k for k in REQUIRED if k not in config]
    if missing:
        raise ValueError(f"{file} lacks the entries {missing}; it was edited or not written by save_adapter")
    if "settings_sha256" in config and config["settings_sha256"] != settings_digest(config):
        settings = "; ".join(f"{l.get('layer')}: {l.get('settings')}" for l in config["layers"][:2])
        raise ValueError(f"{file} was edited after saving: its settings ({settings}{'; ...' if len(config['layers']) > 2 else ''}) "
                         "are not the ones the adapter was trained and saved with (r, alpha, layers, head and "
                         "tensors are recorded in settings_sha256); loading it would not reproduce the trained "
                         "model. Undo the edit, or save the adapter again with save_adapter")
    return config


def _apply(model, config: dict, tensors: dict, name: str) -> None:
    lm = language_model(model)
    for info in config["layers"]:
        if info["kind"] not in LAYER_KINDS:
            raise ValueError(f"unknown adapter kind {info['kind']!r} in the config; known: {sorted(LAYER_KINDS)}")
        try:
            LAYER_KINDS[info["kind"]].attach(lm, clean_name(info["layer"]), name, info["settings"], info.get("inside"))
        except (AttributeError, TypeError, KeyError) as error:
            raise ValueError(f"the adapter's layer {info['layer']!r} ({info['kind']}) does not fit this model: "
                             f"{error}") from None
    live = dict(_adapter_tensors(lm, name))
    by_clean_name = {_clean(n): p for n, p in lm.named_parameters()}
    for key in config["trained_base_parameters"]:
        if key in by_clean_name:
            live[BASE_PREFIX + key] = by_clean_name[key]
    if isinstance(model, Classifier):
        live.update({f"{TASK_HEAD}.{k}": v for k, v in model.head.named_parameters()})
    missing = sorted(set(live) - set(tensors))
    extra = sorted(set(tensors) - set(live))
    if missing or extra:
        raise ValueError(f"the adapter file does not fit: keys missing {missing[:5]}, unexpected keys {extra[:5]}")
    for key, value in live.items():
        if tuple(value.shape) != tuple(tensors[key].shape):
            raise ValueError(f"{key}: the file holds shape {tuple(tensors[key].shape)}, the model expects {tuple(value.shape)}")
    with torch.no_grad():
        for key, value in live.items():
            value.copy_(tensors[key])


@transactional
def load_adapter(model: nn.Module, path, name: str | None = None, trainable: bool = False) -> str:
    """Load a saved adapter onto `model` (which must be the base it was trained on); return its name.

    The loaded adapter becomes the active one. trainable=False (the default) loads it for inference;
    pass trainable=True to keep training it.
    """
    lm = language_model(model)
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a folder path (str or pathlib.Path), got {path!r}")
    require_bool("trainable", trainable)
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"no adapter folder at {str(folder)!r} (save_adapter writes a folder)")
    config = read_adapter_config(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.exists():
        raise FileNotFoundError(f"no {WEIGHTS_FILE} in {folder}")
    verify_sha256(weights, config["sha256"])
    try:
        tensors = load_file(str(weights))
    except SafetensorError as error:
        raise ValueError(f"{weights} is not a readable safetensors file: {error}") from None
    differences = {k: (v, config["base_config"].get(k)) for k, v in lm.config.to_dict().items()
                   if config["base_config"].get(k) != v and k != "fused_attention"}
    if differences:
        detail = ", ".join(f"{k}: adapter {b!r} vs model {a!r}" for k, (a, b) in differences.items())
        raise ValueError(f"this adapter was trained on a base with a different config ({detail})")
    fingerprint = base_fingerprint(model)
    if fingerprint != config["base_fingerprint"]:
        raise ValueError(
            f"this adapter was trained on a different base model (fingerprint {config['base_fingerprint']}); "
            f"this model's base has fingerprint {fingerprint}"
        )
    head = config["head"]
    if head and not isinstance(model, Classifier):
        raise ValueError(f"this adapter comes with a {head['num_classes']}-class task head; load it into "
                         f"Classifier(base, num_classes={head['num_classes']})")
    if isinstance(model, Classifier):
        if not head:
            raise ValueError("this adapter has no task head, but the model is a Classifier; load it into the base model")
        if head["num_classes"] != model.head.out_features:
            raise ValueError(f"the adapter's task head has {head['num_classes']} classes, the model's has "
                             f"{model.head.out_features}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be an adapter name (a str) or None, got {name!r}")
    name = name or config["name"] or "selective"
    if config["layers"]:
        if name in adapter_names(model):
            raise ValueError(f"the model already has an adapter named {name!r}; pass another name= or delete it")
        require_new_adapter(model, name)
    remember_base(model)
    _apply(model, config, tensors, name)
    if config["layers"]:
        set_active(model, name, trainable=trainable)
    if not trainable:
        model.requires_grad_(False)
    elif not config["layers"]:  # selective: what was trained before trains again
        model.requires_grad_(False)
        trained = set(config["trained_base_parameters"])
        for pname, p in language_model(model).named_parameters():
            p.requires_grad_(_clean(pname) in trained)
        if isinstance(model, Classifier):
            model.head.requires_grad_(True)
    return name


def adapter_file_bytes(model: nn.Module) -> int:
    """Bytes of the weights file `save_adapter` writes for `model`: what one more task costs on disk (the adapter,
    any trained base parameters and the task head; for full fine-tuning, every weight)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return save_adapter(model, Path(folder) / "adapter").stat().st_size

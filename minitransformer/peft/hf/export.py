"""`export_hf`: write a course adapter as Hugging Face PEFT's `save_pretrained` would (see the package's docstring for
what is compatible)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import save_file

from ...model import Classifier
from ..saving import base_fingerprint
from ..core import TASK_HEAD, adapter_kind, adapter_names, language_model, peft_layers
from .names import CONFIG_FILE, FINGERPRINT_KEY, PREFIX, WEIGHTS_FILE, hf_tensor_name, unwrapped
from ..lora import LoRALinear

__all__ = ["export_hf"]


def _shortest_targets(model: nn.Module, wanted: list[str]) -> list[str]:
    """target_modules for HF: the layers' last names if HF's suffix matching picks exactly them, else full names."""
    modules = [n for n, _ in model.named_modules()]

    def picks(targets):
        return {n for n in modules if any(n == t or n.endswith("." + t) for t in targets)}

    short = sorted({n.rsplit(".", 1)[-1] for n in wanted})
    return short if picks(short) == set(wanted) else sorted(wanted)


def export_hf(model: nn.Module, name: str, folder) -> Path:
    """Write course adapter `name` (LoRA or IA3) to `folder` in HF PEFT's format; return the weights file."""
    names = adapter_names(model)
    if name not in names:
        raise ValueError(f"no adapter named {name!r}; the model has {names or 'no adapters'}")
    kind = adapter_kind(model, name)
    if kind not in ("lora", "ia3"):
        raise ValueError(f"adapter {name!r} is {kind}; export_hf writes LoRA and IA3 only (HF PEFT's prompt/prefix "
                         "tuning work on HF transformers models, and it has no bottleneck adapters): use save_adapter")
    lm = language_model(model)
    layers = [(n, l) for n, l in peft_layers(lm) if name in l.adapter_names()]
    merged = [n for n, l in layers if name in getattr(l, "merged", [])]
    if merged:
        raise ValueError(f"adapter {name!r} is merged into {merged[0]}; unmerge it before exporting")
    adapter_ids = {id(p) for _, l in peft_layers(lm) for a in l.adapter_names() for p in l.adapter_parameters(a)}
    trained = [n for n, p in lm.named_parameters() if p.requires_grad and id(p) not in adapter_ids]
    if trained:
        raise ValueError(f"the base parameter {trained[0]} is trainable; HF PEFT files hold the adapter and the "
                         "task head only (use save_adapter for selective fine-tuning)")
    lm_prefix = "base." if isinstance(model, Classifier) else ""
    tensors: dict[str, torch.Tensor] = {}
    if kind == "lora":
        settings = {tuple(sorted(l.settings[name].items())) for _, l in layers}
        if len(settings) > 1:
            raise ValueError(f"adapter {name!r} has different settings per layer ({sorted(settings)}); HF needs "
                             "rank_pattern/alpha_pattern for that, which export_hf does not write")
        s = layers[0][1].settings[name]
        config = {"peft_type": "LORA", "r": s["r"], "lora_alpha": s["alpha"], "lora_dropout": s["dropout"],
                  "use_rslora": s["rslora"], "bias": "none", "use_dora": False, "fan_in_fan_out": False,
                  "init_lora_weights": True}
        targets = [unwrapped(lm_prefix + n) for n, _ in layers]
        for layer_name, layer in layers:
            for attr in ("lora_A", "lora_B"):
                tensors[hf_tensor_name(f"{lm_prefix}{layer_name}.{attr}.{name}.weight")] = getattr(layer, attr)[name].weight
    else:
        targets, feedforward = [], []
        for layer_name, layer in layers:
            scale = layer.scales[name]
            if isinstance(layer.base_layer, (nn.Linear, LoRALinear)):  # output scaling: HF's (out, 1)
                target, value = layer_name, scale[:, None]
            elif layer_name.endswith("mlp.act"):  # the input of fc_out: HF's feedforward (1, in)
                target, value = layer_name[: -len("act")] + "fc_out", scale[None, :]
                feedforward.append(unwrapped(lm_prefix + target))
            else:
                raise ValueError(f"IA3 on {layer_name} ({type(layer.base_layer).__name__}) has no HF PEFT equivalent")
            target = unwrapped(lm_prefix + target)
            if target in targets:
                raise ValueError(f"adapter {name!r} scales both the output and the input of {target}; HF PEFT's IA3 "
                                 "scales one or the other")
            targets.append(target)
            tensors[hf_tensor_name(f"{lm_prefix}{layer_name}.scales.{name}")] = value
        config = {"peft_type": "IA3", "fan_in_fan_out": False, "init_ia3_weights": True}
    config["target_modules"] = _shortest_targets(model, targets)
    if kind == "ia3":  # HF wants these among target_modules, written the same way (short or full names)
        config["feedforward_modules"] = _shortest_targets(model, feedforward) if feedforward else []
        if not set(config["feedforward_modules"]) <= set(config["target_modules"]):
            config["target_modules"], config["feedforward_modules"] = sorted(targets), sorted(feedforward)
    config.update({"modules_to_save": None, "task_type": None, "base_model_name_or_path": None,
                   "inference_mode": True})
    if isinstance(model, Classifier):
        config["modules_to_save"] = [TASK_HEAD]
        for key, value in model.head.named_parameters():
            tensors[f"{PREFIX}{TASK_HEAD}.{key}"] = value
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILE
    fingerprint = getattr(lm, "_base_fingerprint", None) or base_fingerprint(model)
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, str(weights),
              metadata={"format": "pt", FINGERPRINT_KEY: fingerprint})
    (folder / CONFIG_FILE).write_text(json.dumps(dict(sorted(config.items())), indent=2) + "\n")
    return weights


"""`import_hf`: read an adapter folder that Hugging Face PEFT's save_pretrained wrote (see the package's docstring
for what is compatible)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open

from ...model import Classifier
from ..saving import base_fingerprint
from ..core import TASK_HEAD, adapter_names, language_model, remember_base, set_active, transactional
from .names import (CONFIG_FILE, DESCRIPTIVE_OPTIONS, FINGERPRINT_KEY, PLAIN_INITS, PREFIX, SETTINGS,
                       WEIGHTS_FILE, course_name)
from ..ia3 import IA3Layer
from ..layers import innermost, unwrap
from ..lora import LoRALinear, linear_layers


def _read(folder: Path) -> tuple[dict, dict[str, torch.Tensor], dict]:
    config_file, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for file in (config_file, weights):
        if not file.exists():
            hint = " (HF's older adapter_model.bin is not read: re-save with safe_serialization=True)" \
                if file == weights and (folder / "adapter_model.bin").exists() else ""
            raise FileNotFoundError(f"no {file.name} in {folder}; is this a folder written by save_pretrained?{hint}")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_file} is not valid JSON: {error}") from None
    if not isinstance(config, dict) or "peft_type" not in config:
        raise ValueError(f"{config_file} has no peft_type: it is not an HF PEFT adapter config"
                         + (" (it looks like the course's own format: use load_adapter)"
                            if isinstance(config, dict) and config.get("format") else ""))
    try:
        with safe_open(str(weights), "pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as error:
        raise ValueError(f"{weights} is not a readable safetensors file: {error}") from None
    return config, tensors, metadata


def _require_options(config: dict) -> str:
    peft_type = config["peft_type"]
    if peft_type not in SETTINGS:
        raise ValueError(f"peft_type {peft_type!r} is not supported: import_hf reads LORA and IA3 adapters")
    if config.get("use_dora"):
        raise ValueError("use_dora=True (DoRA) is not supported: the course's LoRA has no magnitude vector")
    if config.get("bias", "none") != "none":
        raise ValueError(f"bias={config['bias']!r} is not supported: the course's adapters train no biases (bias='none')")
    init = config.get("init_lora_weights", True)
    if init not in PLAIN_INITS:
        raise ValueError(f"init_lora_weights={init!r} is not supported: that initialisation also rewrites the base "
                         f"weights, so the adapter only fits a changed base (supported: {list(PLAIN_INITS)})")
    for key, value in config.items():
        if key in DESCRIPTIVE_OPTIONS or key in SETTINGS[peft_type]:
            continue
        if value not in (None, False, {}, [], "none", ""):
            raise ValueError(f"the HF option {key}={value!r} is not supported by import_hf; only LoRA/IA3 with "
                             "default values for every option besides r, lora_alpha, lora_dropout and use_rslora")
    return peft_type


def _apply(model: nn.Module, config: dict, tensors: dict[str, torch.Tensor], name: str, trainable: bool) -> None:
    """Add adapter `name` from HF tensors; raise on any mismatch (called on a copy first)."""
    lm = language_model(model)
    peft_type = config["peft_type"]
    adapters: dict[str, dict[str, torch.Tensor]] = {}  # course layer name -> {attr: tensor}
    head: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if not key.startswith(PREFIX):
            raise ValueError(f"tensor {key!r} does not start with {PREFIX!r}: not an HF PEFT adapter file")
        module_key, _, param = key.rpartition(".")
        if peft_type == "LORA" and module_key.endswith((".lora_A", ".lora_B")) and param == "weight":
            module_key, _, attr = module_key.rpartition(".")
        elif peft_type == "IA3" and param == "ia3_l":
            attr = "ia3_l"
        elif peft_type == "LORA" and (module_key.endswith((".lora_A", ".lora_B")) or param in ("lora_magnitude_vector",)):
            raise ValueError(f"tensor {key!r} is not a LoRA A or B weight (DoRA or a LoRA bias?): not supported")
        else:  # a modules_to_save tensor
            course = course_name(model, module_key)
            if course == TASK_HEAD:
                head[param] = value
                continue
            own = lm.get_submodule(course) if course in dict(lm.named_modules()) else None
            current = getattr(own, param, None) if own is not None else None
            if isinstance(current, torch.Tensor) and current.shape == value.shape and torch.equal(current.detach(), value.to(current.dtype)):
                continue  # an untouched copy of a base weight (peft < 0.22's modules_to_save=["head"] also wrapped base.lm_head)
            raise ValueError(f"tensor {key!r} is a trained base parameter ({course}.{param}, from modules_to_save); "
                             "import_hf takes adapters and the task head only")
        adapters.setdefault(course_name(model, module_key), {})[attr] = value
    if not adapters:
        raise ValueError(f"the file holds no {peft_type} tensors")
    if isinstance(model, Classifier):
        if not head:
            raise ValueError("the HF adapter has no task head: it was trained without modules_to_save=['head'], so "
                             "its trained head was not saved and a Classifier would answer with a random head")
        if set(head) != {"weight", "bias"} or tuple(head["weight"].shape) != tuple(model.head.weight.shape):
            raise ValueError(f"the task head in the file has shapes {({k: tuple(v.shape) for k, v in head.items()})}; "
                             f"the model's head is {tuple(model.head.weight.shape)} with a bias")
    elif head:
        raise ValueError(f"the HF adapter comes with a {head['weight'].shape[0]}-class task head; import it into "
                         f"Classifier(base, num_classes={head['weight'].shape[0]})")
    remember_base(model)
    linears = linear_layers(lm)
    for layer_name, parts in sorted(adapters.items()):
        if layer_name == TASK_HEAD and isinstance(model, Classifier):
            raise ValueError(f"the file puts {peft_type} on the task head (HF's all-linear includes it on a custom "
                             "model); the course trains the head whole: target the base's layers only and keep "
                             "the head in modules_to_save=['head']")
        if peft_type == "LORA":
            if set(parts) != {"lora_A", "lora_B"}:
                raise ValueError(f"{layer_name}: the file holds {sorted(parts)}, LoRA needs lora_A and lora_B")
            if layer_name not in linears:
                raise ValueError(f"{layer_name} is not a linear layer of this model; the linear layers are: "
                                 f"{', '.join(linears)}")
            r = parts["lora_A"].shape[0]
            if r != config.get("r", 8):
                raise ValueError(f"{layer_name}: lora_A has rank {r} but the config says r={config.get('r', 8)}")
            LoRALinear.attach(lm, layer_name, name, {"r": r, "alpha": config.get("lora_alpha", 8),
                                                     "dropout": config.get("lora_dropout", 0.0),
                                                     "rslora": bool(config.get("use_rslora", False))})
            layer = next(m for m in unwrap(lm.get_submodule(layer_name)) if isinstance(m, LoRALinear))
            live = {"lora_A": layer.lora_A[name].weight, "lora_B": layer.lora_B[name].weight}
        else:
            value = parts["ia3_l"]
            module = lm.get_submodule(layer_name) if layer_name in dict(lm.named_modules()) else None
            base = innermost(module) if module is not None else None  # through LoRA or IA3 already there
            if not isinstance(base, nn.Linear):
                raise ValueError(f"{layer_name} is not a linear layer of this model")
            if value.shape == (base.out_features, 1):  # HF scales the output
                site = layer_name
            elif value.shape == (1, base.in_features) and layer_name.endswith("mlp.fc_out"):  # its input: mlp.act
                site = layer_name[: -len("fc_out")] + "act"
            else:
                raise ValueError(f"{layer_name}: IA3 vector of shape {tuple(value.shape)}; the course reads output "
                                 f"scaling ({base.out_features}, 1), or input scaling (feedforward) of mlp.fc_out only")
            IA3Layer.attach(lm, site, name, {})
            live = {"ia3_l": next(m for m in unwrap(lm.get_submodule(site)) if isinstance(m, IA3Layer)).scales[name]}
        for attr, target in live.items():
            value = parts[attr] if peft_type == "LORA" else parts[attr].reshape(target.shape)  # IA3: shape checked
            if tuple(target.shape) != tuple(value.shape):
                raise ValueError(f"{layer_name}.{attr}: the file holds shape {tuple(value.shape)}, "
                                 f"the model expects {tuple(target.shape)}")
            with torch.no_grad():
                target.copy_(value)
    if head:
        with torch.no_grad():
            model.head.weight.copy_(head["weight"])
            model.head.bias.copy_(head["bias"])
    set_active(model, name, trainable=trainable)
    if not trainable:
        model.requires_grad_(False)


@transactional
def import_hf(model: nn.Module, folder, name: str = "default", trainable: bool = False) -> str:
    """Add the LoRA or IA3 adapter that HF PEFT's save_pretrained wrote in `folder` to `model` as adapter
    `name`; return the name. The model is the one HF wrapped (a Classifier or a MiniTransformer), without
    that adapter. A file that does not fit raises and changes nothing (`transactional`)."""
    folder = Path(folder)
    config, tensors, metadata = _read(folder)
    _require_options(config)
    if name in adapter_names(model):
        raise ValueError(f"the model already has an adapter named {name!r}; pass another name= or delete it")
    expected = metadata.get(FINGERPRINT_KEY)
    if expected is not None and expected != base_fingerprint(model):
        raise ValueError(f"this adapter was exported from a different base model (fingerprint {expected}); this "
                         f"model's base has fingerprint {base_fingerprint(model)}")
    _apply(model, config, tensors, name, trainable)
    return name

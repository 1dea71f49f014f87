"""Adapter files that Hugging Face PEFT reads and writes: `export_hf` and `import_hf`.

`export_hf(model, name, folder)` writes the course adapter `name` as HF PEFT's `save_pretrained` would, so
`peft.PeftModel.from_pretrained(<the same Classifier or MiniTransformer, without adapters>, folder)` loads it
and computes the same outputs. `import_hf(model, folder)` reads a folder written by HF PEFT's
`save_pretrained` for this model and adds it as a course adapter. Neither needs the `peft` package: the
files are one JSON config and one safetensors file (metadata {"format": "pt"}, as HF writes).

What is compatible (both ways):
- LoRA on any of the transformer's linear layers (q, v, all-linear, ...), with one r, lora_alpha, dropout and
  use_rslora for every layer (HF's r, lora_alpha, lora_dropout, use_rslora);
- IA3 on keys, values and other linear layers (HF scales their outputs) and on mlp.act (the course scales
  the activation; HF scales the input of mlp.fc_out, a "feedforward" module: the same numbers);
- a Classifier's task head, which HF keeps through modules_to_save=["head"]. HF matches that by suffix, so it
  also wraps (and saves a copy of) base.lm_head; export writes that copy, import checks it is untouched.

What is not (refused with an error that names the option): other methods (bottleneck adapters, prompt and
prefix tuning, HF's other PEFT types), DoRA, LoRA biases (bias != "none", lora_bias), fan_in_fan_out,
rank_pattern / alpha_pattern, init variants that change the base weights (PiSSA, OLoRA, LoftQ, ...), any
other HF option set away from its default, trained base parameters besides the task head, merged adapters.

The course's own format (`save_adapter`) stays the default: it records the base model's config and
fingerprint, so loading onto the wrong base is an error. HF's format has neither; `export_hf` puts the
fingerprint into the safetensors metadata (HF ignores it), and `import_hf` checks it when it is there. An
adapter saved by HF carries none, so nothing can tell that it was trained on another base.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..model import Classifier
from .checkpoints import base_fingerprint
from .core import TASK_HEAD, adapter_kind, adapter_names, language_model, peft_layers, prepare, set_active
from .ia3 import IA3Layer
from .layers import innermost, unwrap
from .lora import LoRALinear, linear_layers

WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
PREFIX = "base_model.model."  # HF PEFT names every tensor from the PeftModel down
FINGERPRINT_KEY = "minitransformer_base_fingerprint"

# Options that only say where the adapter came from or how it was set up, not what it computes.
_DESCRIPTIVE = {"peft_type", "peft_version", "task_type", "base_model_name_or_path", "revision", "auto_mapping",
                "inference_mode", "target_modules", "exclude_modules", "layers_to_transform", "layers_pattern",
                "modules_to_save", "init_lora_weights", "init_ia3_weights", "feedforward_modules",
                "megatron_core", "qalora_group_size"}
_SETTINGS = {"LORA": {"r", "lora_alpha", "lora_dropout", "use_rslora"}, "IA3": set()}
# init_lora_weights values that only choose a starting point; the others (pissa, olora, loftq, eva, corda,
# ...) also rewrite the base weights, so the adapter is meaningless on the original base.
_PLAIN_INITS = (True, False, "gaussian")


def _course_name(model: nn.Module, key: str) -> str:
    """An HF module name back to the course's name relative to the MiniTransformer (or `head`)."""
    name = key[len(PREFIX):] if key.startswith(PREFIX) else key
    if isinstance(model, Classifier):
        if name.startswith("base."):
            return name[len("base."):]
        if name.split(".")[0] == TASK_HEAD:
            return name
        raise ValueError(f"{key}: a Classifier's modules are base.* and head, so this tensor does not fit it")
    return name


def _unwrapped(name: str) -> str:
    """A name without the `.base` steps of course wrappers nested in each other (LoRA inside IA3: "k_proj.base");
    a leading "base." (a Classifier's language model) stays."""
    parts = name.split(".")
    return ".".join(parts[:1] + [p for p in parts[1:] if p != "base"])


def hf_tensor_name(name: str) -> str:
    """The name HF PEFT gives a course adapter tensor, from its name in the course model's named_parameters().

    HF prefixes "base_model.model." and drops the adapter's name: "base.blocks.0.attn.q_proj.lora_A.task.weight"
    -> "base_model.model.base.blocks.0.attn.q_proj.lora_A.weight". An IA3 scale on mlp.act becomes the input
    scale of mlp.fc_out: "blocks.1.mlp.act.scales.default" -> "base_model.model.blocks.1.mlp.fc_out.ia3_l".
    The task head (and base.lm_head, which modules_to_save=["head"] also catches) keep their names.
    """
    parts = _unwrapped(name).split(".")
    if len(parts) >= 4 and parts[-3] in ("lora_A", "lora_B") and parts[-1] == "weight":
        return PREFIX + ".".join(parts[:-2] + ["weight"])
    if len(parts) >= 3 and parts[-2] == "scales":
        module = parts[:-2]
        if module[-2:] == ["mlp", "act"]:
            module = module[:-1] + ["fc_out"]
        return PREFIX + ".".join(module + ["ia3_l"])
    if parts[0] == TASK_HEAD or parts[-2:-1] == ["lm_head"]:
        return PREFIX + name
    raise ValueError(f"{name!r} is not a LoRA or IA3 tensor, nor the task head: it has no name in an HF adapter file")


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
        targets = [_unwrapped(lm_prefix + n) for n, _ in layers]
        for layer_name, layer in layers:
            for attr in ("lora_A", "lora_B"):
                tensors[hf_tensor_name(f"{lm_prefix}{layer_name}.{attr}.{name}.weight")] = getattr(layer, attr)[name].weight
    else:
        targets, feedforward = [], []
        for layer_name, layer in layers:
            scale = layer.scales[name]
            if isinstance(layer.base, (nn.Linear, LoRALinear)):  # output scaling: HF's (out, 1)
                target, value = layer_name, scale[:, None]
            elif layer_name.endswith("mlp.act"):  # the input of fc_out: HF's feedforward (1, in)
                target, value = layer_name[: -len("act")] + "fc_out", scale[None, :]
                feedforward.append(_unwrapped(lm_prefix + target))
            else:
                raise ValueError(f"IA3 on {layer_name} ({type(layer.base).__name__}) has no HF PEFT equivalent")
            target = _unwrapped(lm_prefix + target)
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
        # HF matches modules_to_save by suffix, so "head" also wraps base.lm_head and expects its tensor.
        tensors[f"{PREFIX}base.lm_head.weight"] = lm.lm_head.weight
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILE
    fingerprint = getattr(lm, "_base_fingerprint", None) or base_fingerprint(model)
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, str(weights),
              metadata={"format": "pt", FINGERPRINT_KEY: fingerprint})
    (folder / CONFIG_FILE).write_text(json.dumps(dict(sorted(config.items())), indent=2) + "\n")
    return weights


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


def _check_options(config: dict) -> str:
    peft_type = config["peft_type"]
    if peft_type not in _SETTINGS:
        raise ValueError(f"peft_type {peft_type!r} is not supported: import_hf reads LORA and IA3 adapters")
    if config.get("use_dora"):
        raise ValueError("use_dora=True (DoRA) is not supported: the course's LoRA has no magnitude vector")
    if config.get("bias", "none") != "none":
        raise ValueError(f"bias={config['bias']!r} is not supported: the course's adapters train no biases (bias='none')")
    init = config.get("init_lora_weights", True)
    if init not in _PLAIN_INITS:
        raise ValueError(f"init_lora_weights={init!r} is not supported: that initialisation also rewrites the base "
                         f"weights, so the adapter only fits a changed base (supported: {list(_PLAIN_INITS)})")
    for key, value in config.items():
        if key in _DESCRIPTIVE or key in _SETTINGS[peft_type]:
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
            course = _course_name(model, module_key)
            if course == TASK_HEAD:
                head[param] = value
                continue
            own = lm.get_submodule(course) if course in dict(lm.named_modules()) else None
            current = getattr(own, param, None) if own is not None else None
            if isinstance(current, torch.Tensor) and current.shape == value.shape and torch.equal(current.detach(), value.to(current.dtype)):
                continue  # an untouched copy of a base weight (modules_to_save=["head"] also wraps base.lm_head)
            raise ValueError(f"tensor {key!r} is a trained base parameter ({course}.{param}, from modules_to_save); "
                             "import_hf takes adapters and the task head only")
        adapters.setdefault(_course_name(model, module_key), {})[attr] = value
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
    prepare(model)
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


def import_hf(model: nn.Module, folder, name: str = "default", trainable: bool = False) -> str:
    """Add the LoRA or IA3 adapter that HF PEFT's save_pretrained wrote in `folder` to `model` as adapter
    `name`; return the name. The model is the one HF wrapped (a Classifier or a MiniTransformer), without
    that adapter. Every check runs on a copy first: a file that does not fit raises and changes nothing."""
    folder = Path(folder)
    config, tensors, metadata = _read(folder)
    _check_options(config)
    if name in adapter_names(model):
        raise ValueError(f"the model already has an adapter named {name!r}; pass another name= or delete it")
    expected = metadata.get(FINGERPRINT_KEY)
    if expected is not None and expected != base_fingerprint(model):
        raise ValueError(f"this adapter was exported from a different base model (fingerprint {expected}); this "
                         f"model's base has fingerprint {base_fingerprint(model)}")
    _apply(copy.deepcopy(model), config, tensors, name, trainable)  # every check on a copy first
    _apply(model, config, tensors, name, trainable)
    return name

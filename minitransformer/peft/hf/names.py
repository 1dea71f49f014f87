"""How Hugging Face PEFT names things in its adapter files, and the course's names for the same tensors."""

from __future__ import annotations

import torch.nn as nn

from ...model import Classifier
from ..saving import CONFIG_FILE, WEIGHTS_FILE  # noqa: F401 (HF PEFT names its two files as the course does)
from ..core import TASK_HEAD

PREFIX = "base_model.model."  # HF PEFT names every tensor from the PeftModel down
FINGERPRINT_KEY = "minitransformer_base_fingerprint"

# Options that only say where the adapter came from or how it was set up, not what it computes.
DESCRIPTIVE_OPTIONS = {"peft_type", "peft_version", "task_type", "base_model_name_or_path", "revision", "auto_mapping",
                "inference_mode", "target_modules", "exclude_modules", "layers_to_transform", "layers_pattern",
                "modules_to_save", "init_lora_weights", "init_ia3_weights", "feedforward_modules",
                "megatron_core", "qalora_group_size"}
SETTINGS = {"LORA": {"r", "lora_alpha", "lora_dropout", "use_rslora"}, "IA3": set()}
# init_lora_weights values that only choose a starting point; the others (pissa, olora, loftq, eva, corda,
# ...) also rewrite the base weights, so the adapter is meaningless on the original base.
PLAIN_INITS = (True, False, "gaussian")


def course_name(model: nn.Module, key: str) -> str:
    """An HF module name back to the course's name relative to the MiniTransformer (or `head`)."""
    name = key[len(PREFIX):] if key.startswith(PREFIX) else key
    if isinstance(model, Classifier):
        if name.startswith("base."):
            return name[len("base."):]
        if name.split(".")[0] == TASK_HEAD:
            return name
        raise ValueError(f"{key}: a Classifier's modules are base.* and head, so this tensor does not fit it")
    return name



def unwrapped(name: str) -> str:
    """A name without the `.base_layer` steps of course wrappers nested in each other (LoRA inside IA3:
    "k_proj.base_layer")."""
    return ".".join(p for p in name.split(".") if p != "base_layer")


def hf_tensor_name(name: str) -> str:
    """The name HF PEFT gives a course adapter tensor, from its name in the course model's named_parameters().

    HF prefixes "base_model.model." and drops the adapter's name: "base.blocks.0.attn.q_proj.lora_A.task.weight"
    -> "base_model.model.base.blocks.0.attn.q_proj.lora_A.weight". An IA3 scale on mlp.act becomes the input
    scale of mlp.fc_out: "blocks.1.mlp.act.scales.default" -> "base_model.model.blocks.1.mlp.fc_out.ia3_l".
    The task head (and base.lm_head, which modules_to_save=["head"] also caught before peft 0.22) keep their names.
    """
    parts = unwrapped(name).split(".")
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


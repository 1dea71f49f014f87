"""Checkpoints: weights in safetensors (never pickle), config and metadata in a JSON beside them.

A checkpoint named PATH is two files: PATH.safetensors and PATH.json. The JSON records the model
config, free-form metadata (recipe, seed, metrics, ...) and the sha256 of the weights file, which
loading verifies, so a corrupted or swapped file is caught instead of silently used.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .guards import require_same_shapes
from .model import MiniTransformer, ModelConfig

BASE_CHECKPOINT = Path(__file__).parent / "checkpoints" / "base"


def sha256_of(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def verify_sha256(path, expected: str) -> None:
    """Refuse a file whose bytes are not the ones its metadata recorded."""
    digest = sha256_of(path)
    if digest != expected:
        raise ValueError(f"{path} is corrupted or was replaced: its sha256 is {digest}, the metadata expects {expected}")


def _paths(path):
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


def require_writable(path) -> None:
    """Fail now, not after a long training run, if the checkpoint PATH cannot be written (creates its folder)."""
    for file in _paths(path):
        if file.is_dir():
            raise ValueError(f"cannot write a checkpoint at {str(path)!r}: {str(file)!r} is a folder")
    folder = _paths(path)[0].parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ValueError(f"cannot write a checkpoint at {str(path)!r}: {str(existing)!r} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise PermissionError(f"cannot write a checkpoint at {str(path)!r}: {error.strerror or error}") from None


def save_checkpoint(model: MiniTransformer, path, metadata: dict | None = None) -> Path:
    """Write PATH.safetensors and PATH.json; return the weights file's path."""
    if not isinstance(model, MiniTransformer):
        hint = " (save its base: save_checkpoint(model.base, ...))" if hasattr(model, "base") else ""
        raise TypeError(f"model must be a MiniTransformer, got a {type(model).__name__}{hint}")
    extra = [n for n, m in model.named_modules() if hasattr(m, "adapter_dicts") or hasattr(m, "codes")]
    if extra:
        raise ValueError(f"the model has adapters or quantized layers (e.g. {extra[0]}), which a base checkpoint "
                         "cannot hold; save adapters with peft.save_adapter, or peft.merge_and_unload first")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict or None, got a {type(metadata).__name__}")
    try:
        json.dumps(metadata)
    except TypeError as error:
        raise ValueError(f"metadata must be JSON-serialisable: {error}") from None
    weights_path, json_path = _paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights_path))
    record = {
        "config": model.config.to_dict(),
        "metadata": metadata or {},
        "weights_file": weights_path.name,
        "sha256": sha256_of(weights_path),
        "bytes": weights_path.stat().st_size,
    }
    json_path.write_text(json.dumps(record, indent=2) + "\n")
    return weights_path


def read_checkpoint_info(path=BASE_CHECKPOINT) -> dict:
    _, json_path = _paths(path)
    if not json_path.exists():
        raise FileNotFoundError(f"no checkpoint metadata at {json_path}")
    try:
        info = json.loads(json_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{json_path} is not valid JSON: {error}") from None
    missing = [k for k in ("config", "sha256") if not isinstance(info, dict) or k not in info]
    if missing:
        raise ValueError(f"{json_path} is not a checkpoint written by save_checkpoint (missing {missing})")
    return info


def load_checkpoint(path=BASE_CHECKPOINT) -> MiniTransformer:
    """Rebuild the model from PATH.json and fill it with PATH.safetensors (checked by sha256)."""
    weights_path, json_path = _paths(path)
    info = read_checkpoint_info(path)
    if not weights_path.exists():
        raise FileNotFoundError(f"no checkpoint weights at {weights_path}")
    verify_sha256(weights_path, info["sha256"])
    try:
        config = ModelConfig(**info["config"])
    except TypeError as error:
        raise ValueError(f"the checkpoint's config is not a ModelConfig: {error}") from None
    model = MiniTransformer(config)
    weights = load_file(str(weights_path))
    settings = ", ".join(f"{k}={v!r}" for k, v in info["config"].items())
    require_same_shapes(model.state_dict(), weights, "the config", "the weights", where=f"{json_path} and {weights_path}: ",
                      hint=f"the config ({settings}) was edited after saving or belongs to other weights; restore "
                           "the config the weights were saved with")
    model.load_state_dict(weights)
    model.eval()
    return model


SHIPPED_BASES = {2: BASE_CHECKPOINT, 4: BASE_CHECKPOINT.with_name("base_4_layers"),
                 6: BASE_CHECKPOINT.with_name("base_6_layers")}


def load_base(n_layer: int = 2) -> MiniTransformer:
    """The course's pretrained base model, shipped in the repository (deeper variants for chapter 4)."""
    if n_layer not in SHIPPED_BASES:
        raise ValueError(f"no shipped base with n_layer={n_layer!r}; shipped: {sorted(SHIPPED_BASES)}")
    return load_checkpoint(SHIPPED_BASES[n_layer])


def state_sha256(model: torch.nn.Module) -> str:
    """A fingerprint of a model's weights (names, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()

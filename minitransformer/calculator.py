"""A training-memory calculator for decoder transformers, from the tiny model to 70B.

Assumptions (stated once, used everywhere):
- Adam(W): two moments per trainable parameter, kept in fp32.
- "fp32": weights, gradients and moments in fp32 -> 4 + 4 + 8 = 16 bytes per trainable parameter.
- "mixed": 16-bit weights and gradients plus an fp32 master copy and the moments (ZeRO's accounting) ->
  2 + 2 + (4 + 4 + 4) = 16 bytes per trainable parameter; frameworks that also keep fp32 gradients reach 18.
- Frozen parameters cost only their weights (4 bytes in fp32, 2 in 16-bit): no gradient, no optimizer state.
- Activations per layer, 16-bit, no recomputation (Korthikanti et al. 2022): s·b·h·(34 + 5·a·s/h) bytes;
  doubled in fp32. With a fused (flash) attention kernel, the default here, the 5·a·s/h term is gone. PEFT is assumed to keep every activation (backward still passes through the frozen
  layers above the first adapter), so the estimate for PEFT is an upper bound.
- Buffers, fragmentation and the CUDA context are left out: real peaks are higher.
"""

from __future__ import annotations

from dataclasses import dataclass

from .guards import require_bool, require_choice, require_divisor, require_int, require_number

PRECISIONS = ("fp32", "mixed")


@dataclass(frozen=True)
class DecoderShape:
    name: str
    n_layer: int
    d_model: int
    n_head: int
    vocab_size: int
    context: int
    mlp_hidden: int | None = None  # default 4 * d_model
    gated_mlp: bool = False  # SwiGLU (LLaMA): three matrices instead of two
    kv_heads: int | None = None  # grouped-query attention: fewer key/value heads
    tied_embeddings: bool = True
    learned_positions: bool = True
    bias: bool = True

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"DecoderShape.name must be a str, got {self.name!r}")
        for field in ("n_layer", "d_model", "n_head", "vocab_size", "context"):
            require_int(f"DecoderShape.{field}", getattr(self, field), 1)
        for field in ("mlp_hidden", "kv_heads"):
            if getattr(self, field) is not None:
                require_int(f"DecoderShape.{field}", getattr(self, field), 1)
        for field in ("gated_mlp", "tied_embeddings", "learned_positions", "bias"):
            require_bool(f"DecoderShape.{field}", getattr(self, field))
        require_divisor("DecoderShape.n_head", self.n_head, "DecoderShape.d_model", self.d_model,
                      " (each head gets d_model / n_head dimensions)")
        if self.kv_heads is not None:
            require_divisor("DecoderShape.kv_heads", self.kv_heads, "DecoderShape.n_head", self.n_head,
                          " (grouped-query attention shares each key/value head among equally many query heads)")

    def parameters(self) -> int:
        d, L = self.d_model, self.n_layer
        hidden = self.mlp_hidden or 4 * d
        kv = d * (self.kv_heads or self.n_head) // self.n_head
        b = 1 if self.bias else 0
        attention = 2 * (d * d + b * d) + 2 * (d * kv + b * kv)  # q, out; k, v
        mlp = (3 if self.gated_mlp else 2) * d * hidden + b * (hidden + d)
        norms = 2 * (d + b * d)
        embeddings = self.vocab_size * d * (1 if self.tied_embeddings else 2)
        positions = self.context * d if self.learned_positions else 0
        return embeddings + positions + L * (attention + mlp + norms) + (d + b * d)


GPT2 = [
    DecoderShape("GPT-2 124M", 12, 768, 12, 50257, 1024),
    DecoderShape("GPT-2 355M", 24, 1024, 16, 50257, 1024),
    DecoderShape("GPT-2 774M", 36, 1280, 20, 50257, 1024),
    DecoderShape("GPT-2 1.5B", 48, 1600, 25, 50257, 1024),
]
LLAMA = [
    DecoderShape("7B (LLaMA-2 shape)", 32, 4096, 32, 32000, 4096, mlp_hidden=11008, gated_mlp=True,
                 tied_embeddings=False, learned_positions=False, bias=False),
    DecoderShape("70B (LLaMA-2 shape)", 80, 8192, 64, 32000, 4096, mlp_hidden=28672, gated_mlp=True,
                 kv_heads=8, tied_embeddings=False, learned_positions=False, bias=False),
]


def bytes_per_parameter(precision: str = "fp32") -> dict[str, int]:
    """Bytes per *trainable* parameter with Adam: weights, gradients, optimizer states."""
    if precision == "fp32":
        return {"weights": 4, "gradients": 4, "optimizer": 8}
    if precision == "mixed":
        return {"weights": 2, "gradients": 2, "optimizer": 12}  # master copy + two moments, fp32
    raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")


def step_memory(n_params: float, n_trainable: float, precision: str = "fp32", frozen_weight_bytes: float | None = None) -> dict[str, float]:
    """Bytes of weights, gradients and Adam states for n_params parameters of which n_trainable train."""
    require_number("n_params", n_params, 0)
    require_number("n_trainable", n_trainable, 0)
    if frozen_weight_bytes is not None:
        require_number("frozen_weight_bytes", frozen_weight_bytes, 0, low_open=True)
    if not 0 <= n_trainable <= n_params:
        raise ValueError(f"n_trainable must be in 0..n_params={n_params}, got {n_trainable!r}")
    per = bytes_per_parameter(precision)
    frozen_bytes = per["weights"] if frozen_weight_bytes is None else frozen_weight_bytes
    return {
        "weights": (n_params - n_trainable) * frozen_bytes + n_trainable * per["weights"],
        "gradients": n_trainable * per["gradients"],
        "optimizer": n_trainable * per["optimizer"],
    }


def activation_bytes(shape: DecoderShape, batch: int, seq: int, precision: str = "mixed",
                     fused_attention: bool = True, checkpointing: bool = False) -> float:
    """Korthikanti et al.'s estimate. A fused (flash) attention kernel never stores the a·s² attention
    scores and probabilities, which removes the 5·a·s/h term. With activation checkpointing only each
    block's input (2 bytes per value) is kept, and one block's activations are rebuilt at a time."""
    _require_shape(shape)
    require_int("batch", batch, 1)
    require_int("seq", seq, 1)
    require_choice("precision", precision, PRECISIONS)
    require_bool("fused_attention", fused_attention)
    require_bool("checkpointing", checkpointing)
    scores = 0 if fused_attention else 5 * shape.n_head * seq / shape.d_model
    per_layer = seq * batch * shape.d_model * (34 + scores)
    if checkpointing:
        total = shape.n_layer * seq * batch * shape.d_model * 2 + per_layer
    else:
        total = shape.n_layer * per_layer
    return total * (2 if precision == "fp32" else 1)


def training_memory(shape: DecoderShape, batch: int = 1, seq: int | None = None, trainable_fraction: float = 1.0,
                    precision: str = "mixed", weight_bits: float | None = None,
                    fused_attention: bool = True, checkpointing: bool = False) -> dict[str, float]:
    """Estimated bytes of one training step by part.

    trainable_fraction: the share of parameters that train (1.0 full fine-tuning, 0.01 a typical PEFT run;
    the trainable ones are *added*, so the frozen model keeps all its parameters).
    checkpointing: keep only each block's input and recompute the rest in the backward pass.
    weight_bits: store the frozen weights with this many bits each (e.g. 4.25 for a QLoRA-style base: 4-bit
    codes plus a 16-bit scale per 64 weights; see quantized_weight_bits).
    """
    _require_shape(shape)
    require_number("trainable_fraction", trainable_fraction, 0, 1, low_open=True)
    require_int("batch", batch, 1)
    if seq is not None:
        require_int("seq", seq, 1)
    if weight_bits is not None:
        require_number("weight_bits", weight_bits, 0, 32, low_open=True)
    seq = seq or shape.context
    total = shape.parameters()
    added = 0 if trainable_fraction == 1.0 else total * trainable_fraction  # PEFT adds what it trains
    memory = step_memory(total + added, added or total, precision, weight_bits / 8 if weight_bits else None)
    memory["activations"] = activation_bytes(shape, batch, seq, precision, fused_attention, checkpointing)
    return memory


def quantized_weight_bytes(n_params: float, bits: int, group_size: int, scale_bytes: int = 2) -> float:
    """Bytes of n_params weights stored as `bits`-bit codes plus one scale per group of `group_size`."""
    require_number("n_params", n_params, 0)
    require_number("bits", bits, 0, 32, low_open=True)
    require_int("group_size", group_size, 1)
    require_number("scale_bytes", scale_bytes, 0)
    return n_params * bits / 8 + n_params / group_size * scale_bytes


def quantized_weight_bits(bits: int, group_size: int, scale_bytes: int = 2) -> float:
    """Bits per weight, scales included (4-bit codes, 16-bit scale per 64 weights: 4.25)."""
    return 8 * quantized_weight_bytes(1, bits, group_size, scale_bytes)


def _require_shape(shape) -> None:
    if not isinstance(shape, DecoderShape):
        raise TypeError(f"shape must be a DecoderShape (e.g. calculator.GPT2[0]), got a {type(shape).__name__}")


# QLoRA's own configuration (Dettmers et al., 2023), to reproduce "a 65B model fine-tuned on one 48 GB GPU".
LLAMA_65B = DecoderShape("LLaMA-65B", 80, 8192, 64, 32000, 2048, mlp_hidden=22016, gated_mlp=True,
                         tied_embeddings=False, learned_positions=False, bias=False)
NF4_DOUBLE_QUANT_BITS = 4 + 8 / 64 + 32 / (64 * 256)  # NF4 codes, 8-bit block scales, 32-bit scale per 256 scales


def linear_shapes(shape: DecoderShape) -> list[tuple[int, int]]:
    """(in, out) of every linear layer of one block: q, k, v, out; then the MLP's (gate, up, down or in, out)."""
    _require_shape(shape)
    d = shape.d_model
    hidden = shape.mlp_hidden or 4 * d
    kv = d * (shape.kv_heads or shape.n_head) // shape.n_head
    mlp = [(d, hidden), (d, hidden), (hidden, d)] if shape.gated_mlp else [(d, hidden), (hidden, d)]
    return [(d, d), (d, kv), (d, kv), (d, d)] + mlp


def lora_parameters(shape: DecoderShape, r: int) -> int:
    """LoRA of rank r on every linear layer of every block: r·(in + out) per layer."""
    _require_shape(shape)
    require_int("r", r, 1)
    return shape.n_layer * sum(r * (i + o) for i, o in linear_shapes(shape))


def qlora_memory(shape: DecoderShape = LLAMA_65B, r: int = 64, batch: int = 1, seq: int = 512,
                 weight_bits: float = NF4_DOUBLE_QUANT_BITS, checkpointing: bool = True) -> dict[str, float]:
    """Bytes of one QLoRA training step in the paper's configuration.

    - Every linear layer of the blocks frozen in `weight_bits` (NF4 with double quantization: 4.127);
      embeddings and LM head kept in 16 bits. QLoRA's code keeps the norms in float32; they are counted at
      16 bits here too (a few MB at 65B).
    - LoRA r on every linear layer, adapters in bf16 with bf16 gradients and two fp32 Adam moments:
      2 + 2 + 8 = 12 bytes per trainable parameter, no fp32 master copy.
    - Activations: 16-bit, fused attention, with or without checkpointing (`activation_bytes`); the paper
      uses checkpointing, and paged optimizers move Adam states to CPU memory during rare spikes, which this
      steady-state estimate leaves out (as it leaves out buffers and fragmentation).
    Returns {"weights", "gradients", "optimizer", "activations"} (bytes), the keys of `training_memory`.
    """
    _require_shape(shape)
    require_int("r", r, 1)
    require_int("batch", batch, 1)
    require_int("seq", seq, 1)
    require_number("weight_bits", weight_bits, 0, 32, low_open=True)
    require_bool("checkpointing", checkpointing)
    linear = shape.n_layer * sum(i * o for i, o in linear_shapes(shape))
    other = shape.parameters() - linear  # embeddings, LM head, norms
    adapters = lora_parameters(shape, r)
    return {
        "weights": linear * weight_bits / 8 + other * 2 + adapters * 2,
        "gradients": adapters * 2,
        "optimizer": adapters * 8,
        "activations": activation_bytes(shape, batch, seq, "mixed", True, checkpointing),
    }

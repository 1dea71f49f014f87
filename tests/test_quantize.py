"""The hand-written quantized base: error bounds, packing, memory, and LoRA on top."""

import pytest
import torch

import minitransformer as mt
from minitransformer import peft
from minitransformer.calculator import LLAMA, quantized_weight_bits, training_memory
from minitransformer.quantize import (QuantizedLinear, dequantize, linear_weight_bytes, pack_4bit, quantize,
                                      quantize_model, unpack_4bit)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_every_weight_comes_back_within_half_a_step(bits):
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(0))
    codes, scales = quantize(w, bits, 16)
    assert codes.dtype == torch.int8 and int(codes.abs().max()) <= 2 ** (bits - 1) - 1
    error = (dequantize(codes, scales, 16) - w).abs()
    assert bool((error <= scales.repeat_interleave(16, 1) / 2 + 1e-6).all())


def test_4bit_packing_round_trips():
    codes = torch.randint(-7, 8, (5, 6), dtype=torch.int8)
    packed = pack_4bit(codes)
    assert packed.numel() == 15 and torch.equal(unpack_4bit(packed, (5, 6)), codes)


def test_quantized_linear_matches_its_dequantized_weight_and_is_smaller():
    linear = torch.nn.Linear(64, 32)
    q = QuantizedLinear(linear, bits=4, group_size=16)
    x = torch.randn(3, 64)
    assert torch.allclose(q(x), x @ q.weight_float().T + linear.bias, atol=1e-5)
    assert q.stored_bytes() == 32 * 64 // 2 + 32 * 4 * 2 + 32 * 4  # codes, fp16 scales, fp32 bias


def test_bad_quantization_settings_are_errors():
    with pytest.raises(ValueError, match=r"bits must be one of \[2, 3, 4, 8\], got 5"):
        quantize(torch.zeros(2, 8), 5, 4)
    with pytest.raises(ValueError, match="group_size must be a positive divisor of the row length 8, got 3"):
        quantize(torch.zeros(2, 8), 4, 3)


def test_an_int8_base_keeps_the_base_tasks_and_a_4bit_base_is_seven_times_smaller():
    base = mt.load_base()
    int8 = quantize_model(mt.load_base(), 8, 64)
    assert mt.evaluate_base_tasks(int8, 200)["mean"] >= 0.98
    four = quantize_model(mt.load_base(), 4, 64)
    assert linear_weight_bytes(base) / linear_weight_bytes(four) > 6.5


def test_lora_trains_on_a_quantized_base_and_refuses_to_merge():
    model = mt.Classifier(quantize_model(mt.load_base(), 4, 16))
    peft.add_lora(model, r=4)
    codes_before = model.base.blocks[0].attn.q_proj.base_layer.codes.clone()
    batch = mt.data.encode(mt.make_examples("is_sorted", 16, seed=0))
    mt.train(model, lambda: batch, steps=3, lr=1e-2, progress=False)
    assert torch.equal(model.base.blocks[0].attn.q_proj.base_layer.codes, codes_before)
    assert model.base.blocks[0].attn.q_proj.lora_B["default"].weight.abs().sum() > 0
    with pytest.raises(ValueError, match="cannot merge into a quantized weight"):
        peft.merge_lora(model)
    with pytest.raises(ValueError, match="quantized base weight"):
        peft.merge_and_unload(model)


def test_calculator_qlora_and_checkpointing():
    assert quantized_weight_bits(4, 64) == 4.25
    plain = training_memory(LLAMA[1], trainable_fraction=0.01)
    qlora = training_memory(LLAMA[1], trainable_fraction=0.01, weight_bits=4.25)
    checkpointed = training_memory(LLAMA[1], trainable_fraction=0.01, weight_bits=4.25, checkpointing=True)
    assert qlora["weights"] < plain["weights"] / 3
    assert checkpointed["activations"] < qlora["activations"] / 5

"""NF4 quantization and the QLoRA 65B-in-48-GB accounting."""

import pytest
import torch

from minitransformer import calculator
from minitransformer.quantize import dequantize_nf4, double_quantized_bits, nf4_levels, quantize_nf4
from minitransformer.quantize import dequantize, quantize

# The NF4 levels as published with QLoRA (bitsandbytes), rounded to 4 digits.
PUBLISHED = [-1.0, -0.6962, -0.5251, -0.3949, -0.2844, -0.1848, -0.0911, 0.0,
             0.0796, 0.1609, 0.2461, 0.3379, 0.4407, 0.5626, 0.7230, 1.0]


def test_levels_are_the_published_nf4_values():
    assert torch.allclose(nf4_levels(), torch.tensor(PUBLISHED), atol=2e-4)


def test_round_trip_uses_all_16_codes_and_beats_the_even_grid_on_normal_weights():
    torch.manual_seed(0)
    w = torch.randn(64, 256)
    codes, absmax = quantize_nf4(w, 64)
    assert codes.dtype == torch.uint8 and codes.shape == w.shape and absmax.shape == (64, 4)
    assert len(torch.unique(codes)) == 16
    nf4_error = (dequantize_nf4(codes, absmax, 64) - w).norm()
    even_error = (dequantize(*quantize(w, 4, 64), 64) - w).norm()
    assert nf4_error < even_error
    # the largest weight of each block comes back exactly (it maps to level ±1)
    blocks = w.reshape(64, 4, 64)
    restored = dequantize_nf4(codes, absmax, 64).reshape(64, 4, 64)
    i = blocks.abs().argmax(-1, keepdim=True)
    assert torch.allclose(restored.gather(-1, i), blocks.gather(-1, i))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="block_size"):
        quantize_nf4(torch.randn(4, 10), 3)
    with pytest.raises(ValueError, match="NaN"):
        quantize_nf4(torch.full((2, 4), float("nan")), 2)


def test_double_quantization_bits():
    assert double_quantized_bits() == pytest.approx(4.127, abs=1e-3)


def test_qlora_fits_65b_in_48_gb_in_the_papers_configuration():
    shape = calculator.LLAMA_65B
    assert shape.parameters() == pytest.approx(65.2e9, rel=0.01)
    assert calculator.lora_parameters(shape, 64) / shape.parameters() == pytest.approx(0.0122, abs=0.0005)
    memory = calculator.qlora_memory(shape, r=64, batch=1, seq=512)
    without_activations = memory["weights"] + memory["gradients"] + memory["optimizer"]
    assert without_activations < 48e9
    assert memory["optimizer"] == 4 * memory["gradients"]  # 8 bytes of fp32 moments vs 2 of bf16 gradients
    with pytest.raises(ValueError, match="r must be"):
        calculator.lora_parameters(shape, 0)

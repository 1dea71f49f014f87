"""The memory calculator and the forgetting helpers."""

import pytest

from minitransformer.calculator import GPT2, LLAMA, bytes_per_parameter, step_memory, training_memory
from minitransformer.experiments.forgetting import best_step, forgetting


def test_known_model_sizes():
    assert [s.parameters() for s in GPT2] == [124_439_808, 354_823_168, 774_030_080, 1_557_611_200]
    assert [s.parameters() for s in LLAMA] == [6_738_415_616, 68_976_648_192]


@pytest.mark.parametrize("precision", ["fp32", "mixed"])
def test_full_fine_tuning_costs_16_bytes_per_parameter(precision):
    assert sum(bytes_per_parameter(precision).values()) == 16
    memory = training_memory(LLAMA[0], precision=precision)
    assert sum(v for k, v in memory.items() if k != "activations") == 16 * LLAMA[0].parameters()


def test_peft_keeps_weights_and_drops_gradients_and_optimizer_states():
    full = training_memory(LLAMA[0], trainable_fraction=1.0)
    peft = training_memory(LLAMA[0], trainable_fraction=0.01)
    assert peft["gradients"] == pytest.approx(full["gradients"] / 100)
    assert peft["weights"] > full["weights"]  # the adapters are added
    assert peft["activations"] == full["activations"]  # the stated upper-bound assumption
    quantized = training_memory(LLAMA[0], trainable_fraction=0.01, weight_bits=4)
    assert quantized["weights"] < peft["weights"] / 3


def test_activations_grow_linearly_with_batch_and_quadratically_without_fused_attention():
    one = training_memory(GPT2[0], batch=1)["activations"]
    assert training_memory(GPT2[0], batch=4)["activations"] == pytest.approx(4 * one)
    assert training_memory(GPT2[0], batch=1, fused_attention=False)["activations"] > one


def test_bad_calculator_input_is_an_error():
    with pytest.raises(ValueError, match=r"precision must be one of \['fp32', 'mixed'\], got 'fp16'"):
        bytes_per_parameter("fp16")
    with pytest.raises(ValueError, match="trainable_fraction must be in"):
        training_memory(GPT2[0], trainable_fraction=0)
    with pytest.raises(ValueError, match="n_trainable must be in"):
        step_memory(10, 11)


def test_forgetting_and_early_stopping():
    before = {"copy": 1.0, "reverse": 1.0, "sort": 0.5, "mean": 0.8333}
    after = {"copy": 0.5, "reverse": 1.0, "sort": 0.8, "mean": 0.7667}
    assert forgetting(before, after) == pytest.approx({"copy": 0.5, "reverse": 0.0, "sort": -0.3, "mean": 0.0666667})
    assert best_step([5, 10, 15], [0.2, 0.9, 0.9]) == 10
    with pytest.raises(ValueError, match="need as many steps as scores"):
        best_step([1, 2], [0.5])

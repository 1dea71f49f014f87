"""The measurement protocol's building blocks: small-data runs, extra per-run metrics, the effective rank."""

import pytest
import torch

from minitransformer import peft
from minitransformer.counts import effective_rank
from minitransformer.experiments.protocol import Method, run_one

SMALL = dict(steps=4, n_val=20, n_test=20, n_base=10)


def test_a_small_data_run_reports_its_training_accuracy_and_repeats_bit_for_bit():
    first = run_one(peft.freeze_base, 1e-2, seed=3, n_train=8, **SMALL)
    again = run_one(peft.freeze_base, 1e-2, seed=3, n_train=8, **SMALL)
    assert 0 <= first["train_accuracy"] <= 1
    assert {k: v for k, v in first.items() if k != "ms_per_step"} == \
        {k: v for k, v in again.items() if k != "ms_per_step"}
    stream = run_one(peft.freeze_base, 1e-2, seed=3, **SMALL)
    assert "train_accuracy" not in stream


def test_extra_metrics_are_computed_on_the_trained_model_and_recorded():
    seen = {}

    def head_norm(model):
        seen["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return {"head norm": model.head.weight.norm().item()}

    result = run_one(peft.freeze_base, 1e-2, seed=0, extra_metrics=head_norm, **SMALL)
    assert result["head norm"] > 0 and seen["trainable"] == 130


@pytest.mark.parametrize("kwargs, message", [
    (dict(replay=0.25, n_train=32), "either with replay or on a fixed small set"),
    (dict(n_train=0), "n_train must be a positive int or None, got 0"),
    (dict(n_train=2.5), "n_train must be a positive int or None, got 2.5"),
])
def test_a_method_refuses_settings_that_cannot_be_run(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Method(None, (1e-3,), **kwargs)


def test_effective_rank_counts_the_directions_that_hold_the_energy():
    torch.manual_seed(0)
    u, v = torch.randn(16, 3), torch.randn(3, 16)
    assert effective_rank(u @ v, energy=1.0) <= 3
    assert effective_rank(torch.eye(16)) == 15  # 90% of 16 equal directions needs 15 (14.4 rounded up)
    assert effective_rank(torch.diag(torch.tensor([10.0, 1.0, 0.1]))) == 1
    assert effective_rank(torch.zeros(4, 4)) == 0
    with pytest.raises(ValueError, match="energy must be in"):
        effective_rank(torch.eye(3), energy=0)

"""Step timing: one best-of-rounds time per model, measured on copies, bad input named."""

import time

import pytest
import torch

from minitransformer import MiniTransformer, ModelConfig, TaskSampler
from minitransformer.experiments.timing import step_times

TINY = ModelConfig(d_model=16, n_layer=1, n_head=2)  # a step of a few milliseconds


class Slow(MiniTransformer):
    """A model whose forward pass takes at least 50 ms more than the same model's."""

    def forward(self, *args, **kwargs):
        time.sleep(0.05)
        return super().forward(*args, **kwargs)


def test_one_time_per_model_and_the_models_are_untouched():
    models = {"a": MiniTransformer(TINY), "b": MiniTransformer(TINY)}
    models["b"].lm_head.requires_grad_(False)
    before = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in models.items()}
    times = step_times(models, TaskSampler("copy", 8, seed=0)(), rounds=2, steps=1)
    assert list(times) == ["a", "b"] and all(0 < t < 10 for t in times.values())
    for name, model in models.items():
        assert all(torch.equal(v, before[name][k]) for k, v in model.state_dict().items())
        assert all(p.grad is None for p in model.parameters())
    assert not models["b"].lm_head.weight.requires_grad


def test_a_step_that_sleeps_is_measured_at_least_that_long_and_slower_than_the_same_work_without():
    torch.manual_seed(0)
    fast = MiniTransformer(TINY)
    slow = Slow(TINY)  # the same weights and work, plus the sleep
    slow.load_state_dict(fast.state_dict())
    times = step_times({"fast": fast, "slow": slow}, TaskSampler("copy", 8, seed=0)(), rounds=3, steps=2)
    assert times["slow"] >= 0.05
    assert times["slow"] > times["fast"]


def test_on_the_process_clock_a_sleep_is_not_counted():
    torch.manual_seed(0)
    fast = MiniTransformer(TINY)
    slow = Slow(TINY)  # the same work plus 50 ms in which the process waits and uses no CPU
    slow.load_state_dict(fast.state_dict())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the process clock sums every thread's CPU time, idle spinning included
    try:
        times = step_times({"fast": fast, "slow": slow}, TaskSampler("copy", 8, seed=0)(), rounds=3, steps=2,
                           clock=time.process_time)
    finally:
        torch.set_num_threads(threads)
    assert 0 < times["slow"] < 0.05 and 0 < times["fast"] < 0.05


@pytest.mark.parametrize("kwargs, message", [({"models": {}}, "non-empty dict"), ({"rounds": 0}, "rounds"),
                                             ({"steps": 1.5}, "steps"), ({"clock": 0.5}, "clock")])
def test_bad_input_is_named(kwargs, message):
    args = {"models": {"a": MiniTransformer(TINY)}, "batch": TaskSampler("copy", 4, seed=0)()} | kwargs
    with pytest.raises(ValueError, match=message):
        step_times(**args)


def test_a_model_with_nothing_to_train_is_refused():
    model = MiniTransformer(TINY).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        step_times({"frozen": model}, TaskSampler("copy", 4, seed=0)())

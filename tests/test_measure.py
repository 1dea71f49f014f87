"""Measurement helpers: counts, memory by part, activations counted once."""

import torch

from minitransformer import Classifier, MiniTransformer, TaskSampler
from minitransformer.counts import count_parameters, parameter_summary, parameters_by_component
from minitransformer.memory import ActivationMeter, human_bytes, training_step_memory
from minitransformer.train import loss_on_batch


def test_counts_and_summary_follow_requires_grad():
    model = MiniTransformer()
    model.lm_head.requires_grad_(False)
    c = count_parameters(model)
    assert c["total"] - c["trainable"] == model.lm_head.weight.numel()
    assert parameter_summary(model).startswith(f"trainable params: {c['trainable']:,} || all params: {c['total']:,}")
    assert parameters_by_component(model, trainable_only=True).get("LM head") is None


def test_full_fine_tuning_memory_is_16_bytes_per_parameter_plus_activations():
    model = MiniTransformer()
    batch = TaskSampler("copy", 16, seed=0)()
    report = training_step_memory(model, batch, lr=1e-3)
    n = sum(p.numel() for p in model.parameters())
    assert report.weights == 4 * n
    assert report.gradients == 4 * n
    n_tensors = len(list(model.parameters()))
    assert report.optimizer == 8 * n + 4 * n_tensors  # two moments + one step counter per tensor
    assert report.activations > 0
    assert report.total == report.weights + report.gradients + report.optimizer + report.activations


def test_measuring_leaves_the_model_untouched():
    model = MiniTransformer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    training_step_memory(model, TaskSampler("copy", 8, seed=0)())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_frozen_parameters_have_no_gradient_or_optimizer_memory():
    clf = Classifier(MiniTransformer())
    clf.base.requires_grad_(False)
    from minitransformer import make_examples
    from minitransformer.data import encode
    report = training_step_memory(clf, encode(make_examples("is_sorted", 16, seed=0)))
    head = sum(p.numel() for p in clf.head.parameters())
    assert report.gradients == 4 * head
    assert report.optimizer == 8 * head + 4 * 2


def test_activations_scale_with_batch_and_exclude_parameters():
    model = MiniTransformer()
    sizes = []
    for batch_size in (8, 32):
        batch = TaskSampler("reverse", batch_size, seed=0)()
        batch["x"], batch["y"] = batch["x"][:, :12], batch["y"][:, :12]  # same length for both
        with ActivationMeter(model) as meter:
            loss_on_batch(model, batch)
        sizes.append(meter.bytes)
    assert 3.5 < sizes[1] / sizes[0] <= 4.0 + 1e-9
    with ActivationMeter() as meter_with_params:  # no model: parameters counted too
        loss_on_batch(model, batch)
    assert meter_with_params.bytes > sizes[1]


def test_human_bytes():
    assert human_bytes(512) == "512 B"
    assert human_bytes(426_496) == "426.5 KB"
    assert human_bytes(7e9 * 16) == "112.0 GB"


def test_method_profile_is_counts_plus_training_step_memory():
    from minitransformer import peft
    from minitransformer.memory import method_profile
    model = MiniTransformer()
    peft.add_lora(model, r=2, alpha=8)
    batch = TaskSampler("copy", 8, seed=0)()
    profile = method_profile(model, batch)
    counts = count_parameters(model)
    assert (profile["trainable"], profile["total"]) == (counts["trainable"], counts["total"])
    assert profile["percent"] == counts["percent"] < 10
    memory = training_step_memory(model, batch)
    assert profile["memory"] == {"weights": memory.weights, "gradients": memory.gradients,
                                 "optimizer": memory.optimizer, "activations": memory.activations}
    assert profile["memory"]["gradients"] == 4 * counts["trainable"]


def test_the_profiler_sees_what_the_meter_counts():
    from minitransformer.memory import observed_step_memory
    model = MiniTransformer()
    batch = TaskSampler("reverse", 16, seed=0)()
    seen = observed_step_memory(model, batch, lr=1e-3)
    kept = seen["meter_activations"] - seen["saved_preexisting"]
    assert 0 < seen["saved_preexisting"] < 0.01 * seen["meter_activations"]  # the batch's ids and targets
    assert abs(seen["live_after_forward"] - kept) < 0.01 * kept
    assert seen["peak_forward"] >= seen["live_after_forward"]
    assert seen["peak_backward"] > seen["live_after_forward"]  # activation gradients on top
    assert seen["gradients"] <= seen["live_after_backward"] < seen["gradients"] + 1024
    assert seen["optimizer_allocated"] == seen["optimizer"]
    assert all(p.grad is None for p in model.parameters())

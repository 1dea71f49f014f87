"""Memory: what one training step holds, part by part (weights, gradients, optimizer state, activations), as
counted from the tensors and as observed by PyTorch's profiler, and what a method costs in all."""

from __future__ import annotations

import contextlib
import copy
import os
import sys
from dataclasses import asdict, dataclass

import torch

from .counts import count_parameters
from .train import loss_on_batch, trainable_parameters

def tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class ActivationMeter:
    """Counts the bytes autograd saves for the backward pass while it is active.

    Each storage is counted once (several saved tensors often share one), and the parameters,
    which autograd also saves, are left out: they are weights, not activations.
    """

    def __init__(self, model: torch.nn.Module | None = None):
        self.param_storages = set()
        if model is not None:
            self.param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.storages: dict[int, int] = {}

    def _pack(self, t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in self.param_storages:
            self.storages[ptr] = t.untyped_storage().nbytes()
        return t

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)
        return False

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())


@dataclass
class MemoryReport:
    weights: int
    gradients: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def training_copy(model, optimizer_cls, **optimizer_kwargs):
    """A copy of `model` in training mode and an optimizer over its trainable parameters (the model is untouched)."""
    model = copy.deepcopy(model)
    model.train()
    params = trainable_parameters(model)
    if not params:
        raise ValueError("the model has no trainable parameters (every requires_grad is False)")
    return model, optimizer_cls(params, **optimizer_kwargs)


def training_step_memory(model, batch: dict, optimizer_cls=torch.optim.AdamW, **optimizer_kwargs) -> MemoryReport:
    """Measure one training step's memory by part, on a copy of `model` (the model is untouched).

    weights: every parameter and buffer; gradients: the .grad tensors; optimizer: the optimizer's
    state tensors after one step; activations: what autograd saved during the forward pass.
    """
    model, optimizer = training_copy(model, optimizer_cls, **optimizer_kwargs)
    weights = sum(tensor_bytes(p) for p in model.parameters()) + sum(tensor_bytes(b) for b in model.buffers())
    with ActivationMeter(model) as meter:
        loss = loss_on_batch(model, batch)
    loss.backward()
    gradients = sum(tensor_bytes(p.grad) for p in model.parameters() if p.grad is not None)
    optimizer.step()
    states = sum(
        tensor_bytes(v) for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)
    )
    return MemoryReport(weights, gradients, states, meter.bytes)


def method_profile(model, batch: dict, optimizer_cls=torch.optim.AdamW, **optimizer_kwargs) -> dict:
    """What a method costs, for a model already prepared with it (frozen, adapters added, ...).

    {"trainable": int, "total": int, "percent": float,
     "memory": {"weights", "gradients", "optimizer", "activations"} in bytes for one training step on `batch`}.
    The memory comes from training_step_memory, measured on a copy: `model` is untouched. The result is
    the cost part of a cost-card row (course.plotting.cost_card).
    """
    counts = count_parameters(model)
    report = training_step_memory(model, batch, optimizer_cls, **optimizer_kwargs)
    memory = report.as_dict()
    memory.pop("total")
    return {"trainable": counts["trainable"], "total": counts["total"], "percent": counts["percent"], "memory": memory}


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (where C++ libraries log) for the duration of the block."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _allocations(prof) -> list[tuple[int, int, int, int]]:
    """(time ns, bytes (+ allocated, - freed), allocator's total live bytes, address) of every allocator
    event the profiler recorded, in time order."""
    from torch._C._profiler import _EventType

    events, marks = [], {}
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        if event.tag == _EventType.Allocation:
            f = event.extra_fields
            events.append((event.start_time_ns, f.alloc_size, f.total_allocated, f.ptr))
        elif event.name.startswith("step:"):
            marks[event.name] = (event.start_time_ns, event.end_time_ns)
        stack.extend(event.children)
    return sorted(events), marks


def observed_step_memory(model, batch: dict, optimizer_cls=torch.optim.AdamW, **optimizer_kwargs) -> dict:
    """One training step on a copy of `model`, watched by an independent observer: the PyTorch profiler's
    record of every CPU allocation and free (profile_memory=True), next to the activation meter.

    Bytes are live bytes allocated during the step (the weights and the batch existed before it):
      "meter_activations":      what the ActivationMeter counts (tensors kept for the backward pass);
      "saved_preexisting":      the part of those that existed before the step (the batch's ids and targets);
      "live_after_forward":     the allocator's live bytes at the end of the forward pass;
      "peak_forward":           the highest live bytes during the forward pass (temporaries included);
      "peak_backward":          the highest live bytes during the backward pass (activation gradients too);
      "live_after_backward":    live bytes once backward has freed the activations (the gradients, the loss);
      "optimizer_allocated":    live bytes the optimizer step added (its state tensors);
      "gradients", "optimizer": training_step_memory's accounting of the same step, for comparison.
    """
    from torch.profiler import ProfilerActivity, profile, record_function

    model, optimizer = training_copy(model, optimizer_cls, **optimizer_kwargs)
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():  # the profiler's C++ side logs its start and stop to stderr
        prof.start()
    try:
        with record_function("step:forward"), ActivationMeter(model) as meter:
            loss = loss_on_batch(model, batch)
        with record_function("step:backward"):
            loss.backward()
        with record_function("step:optimizer"):
            optimizer.step()
    finally:
        with _quiet_stderr():
            prof.stop()
    events, marks = _allocations(prof)
    if not events or set(marks) != {"step:forward", "step:backward", "step:optimizer"}:
        raise RuntimeError("the profiler recorded no allocations; this PyTorch build cannot observe memory")
    base = events[0][2] - events[0][1]  # live bytes (since profiling began) before the first event

    def live_at(t):  # live bytes just after time t
        before = [e[2] for e in events if e[0] <= t]
        return (before[-1] if before else events[0][2] - events[0][1]) - base

    def peak(phase):
        start, end = marks[phase]
        inside = [e[2] for e in events if start <= e[0] <= end]
        return max([live_at(start)] + inside) - base if inside else live_at(start)

    allocated_in_step = {e[3] for e in events if e[1] > 0}
    preexisting = sum(size for ptr, size in meter.storages.items() if ptr not in allocated_in_step)
    gradients = sum(tensor_bytes(p.grad) for p in model.parameters() if p.grad is not None)
    states = sum(tensor_bytes(v) for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v))
    return {
        "meter_activations": meter.bytes,
        "saved_preexisting": preexisting,
        "live_after_forward": live_at(marks["step:forward"][1]),
        "peak_forward": peak("step:forward"),
        "peak_backward": peak("step:backward"),
        "live_after_backward": live_at(marks["step:backward"][1]),
        "optimizer_allocated": live_at(marks["step:optimizer"][1]) - live_at(marks["step:backward"][1]),
        "gradients": gradients,
        "optimizer": states,
    }


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} TB"


def forward_activation_bytes(model, batch: dict) -> int:
    """Bytes autograd keeps from one forward pass for the backward pass (each storage once, no parameters)."""
    with ActivationMeter(model) as meter:
        loss_on_batch(model, batch)
    return meter.bytes


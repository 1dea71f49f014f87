"""Timing training steps fairly on a machine that other jobs share.

A step time measured while other processes compete for the cores mostly measures that competition: it drifts
with the load and with the order in which runs happen to execute. `step_times` compares methods the way a
benchmark should: every model on the same batch, in interleaved rounds (each round times every model once, in
a rotating order, so a burst of load hits them all alike), keeping each model's best round. With
`clock=time.process_time` it counts the CPU time this process spends on the step, so the time another job holds
the core is not counted at all (what remains of the load, shared caches and memory bandwidth, is left to the
interleaving and the best round).
"""

from __future__ import annotations

import time

import torch

from ..memory import training_copy
from ..train import loss_on_batch
from ..guards import require_int


def step_times(models: dict, batch: dict, rounds: int = 5, steps: int = 2, optimizer_cls=torch.optim.AdamW,
               clock=time.perf_counter, **optimizer_kwargs) -> dict[str, float]:
    """Seconds per training step (forward, backward, optimizer step) for each model, best of `rounds`.

    models: {name: model prepared with its method}; each is timed on a copy, so the models are untouched.
    Each model first takes one untimed step (it allocates the optimizer's state); then, in each round, every
    model takes `steps` timed steps on `batch`, the models in a rotating order. A model's time is the mean
    step time of its fastest round: the least disturbed measurement of the same work. `clock` is the timer, a
    function returning seconds: `time.perf_counter` (wall clock, the default) or `time.process_time` (this
    process's CPU time, which a competing job on the same core does not inflate; it sums every thread's time,
    so use it with one thread, as `minitransformer.setup()` sets).
    """
    if not isinstance(models, dict) or not models:
        raise ValueError(f"models must be a non-empty dict {{name: model}}, got {models!r}")
    rounds = require_int("rounds", rounds, low=1)
    steps = require_int("steps", steps, low=1)
    if not callable(clock):
        raise ValueError(f"clock must be a function returning seconds (e.g. time.process_time), got {clock!r}")
    optimizer_kwargs.setdefault("lr", 1e-3)
    copies = {name: training_copy(model, optimizer_cls, **optimizer_kwargs) for name, model in models.items()}

    def one_step(model, optimizer):
        optimizer.zero_grad(set_to_none=True)
        loss_on_batch(model, batch).backward()
        optimizer.step()

    for model, optimizer in copies.values():
        one_step(model, optimizer)
    names = list(copies)
    best = {name: float("inf") for name in names}
    for i in range(rounds):
        for name in names[i % len(names):] + names[: i % len(names)]:
            model, optimizer = copies[name]
            start = clock()
            for _ in range(steps):
                one_step(model, optimizer)
            best[name] = min(best[name], (clock() - start) / steps)
    return best

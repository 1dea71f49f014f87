"""Training: one loop for every chapter, and the loss it minimises.

One loop serves every chapter: it trains whatever parameters have requires_grad=True, so freezing,
adapters and LoRA all reuse it unchanged.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.std import tqdm

from .data import IGNORE, batch_kind, describe_batch_kind
from .guards import require_bool, require_choice, require_int, require_number
from .model import Classifier


def loss_on_batch(model, batch: dict):
    """Cross-entropy of a model on a batch from data.encode (language-model or classification).

    A batch with a "replay" entry (see data.ReplaySampler) adds the language-model loss on that replayed
    base-task data, read through the classifier's base model.
    """
    if "replay" in batch:
        task_loss = loss_on_batch(model, {k: v for k, v in batch.items() if k != "replay"})
        return task_loss + loss_on_batch(model.base if isinstance(model, Classifier) else model, batch["replay"])
    require_batch(model, batch)
    if "labels" in batch:
        logits = model(batch["x"], batch["positions"])
        return F.cross_entropy(logits, batch["labels"])
    logits = model(batch["x"])
    return F.cross_entropy(logits.flatten(0, 1), batch["y"].flatten(), ignore_index=IGNORE)


def require_batch(model, batch) -> None:
    """Refuse a batch of the kind `model` does not read, before the model sees it: a Classifier reads
    classification batches, a MiniTransformer language-model ones (a replayed part is read by the base model)."""
    got = batch_kind(batch)
    if isinstance(model, Classifier):
        needs, fix = "classification", ("a language-model batch trains the base model: pass model.base, "
                                        "or sample a classification task for the Classifier")
    else:
        needs, fix = "language-model", "a classification batch needs a Classifier (a model with a task head): Classifier(model)"
    if got != needs:
        raise TypeError(f"a {type(model).__name__} needs {describe_batch_kind(needs)}, got {describe_batch_kind(got)}; {fix}")
    if "replay" in batch and batch_kind(batch["replay"]) != "language-model":
        raise TypeError(f"the replayed part of a batch must be {describe_batch_kind('language-model')}, "
                        f"got {describe_batch_kind(batch_kind(batch['replay']))}")


def lr_at(step: int, steps: int, lr: float, warmup: int, min_lr_ratio: float = 0.1) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio * lr."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class History:
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)  # {"step": s, **metrics}
    seconds: float = 0.0

    def eval_series(self, key: str):
        return [e["step"] for e in self.evals], [e[key] for e in self.evals]


def trainable_parameters(model):
    return [p for p in model.parameters() if p.requires_grad]


def train(
    model,
    next_batch: Callable[[], dict],
    steps: int,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    warmup: int = 0,
    schedule: str = "cosine",
    grad_clip: float | None = 1.0,
    eval_every: int = 0,
    eval_fn: Callable[[], dict] | None = None,
    progress: bool = True,
    desc: str = "training",
    optimizer=None,
) -> History:
    """Train `model`'s trainable parameters with AdamW on batches from `next_batch()`.

    eval_fn (called every eval_every steps and at the end) returns a dict of metrics to record.
    """
    params = _require_train_arguments(model, next_batch, steps, lr, weight_decay, warmup, schedule, grad_clip,
                                    eval_every, eval_fn, progress)
    if optimizer is None:
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))
    history, start = History(), time.perf_counter()

    def record_eval(step):
        if eval_fn is not None:
            model.eval()
            history.evals.append({"step": step, **eval_fn()})
            model.train()

    first, restore_modes = _start_training(model, next_batch)
    if eval_every:
        record_eval(0)
    bar = tqdm(range(steps), desc=desc, disable=not progress, mininterval=1.0, ncols=80)
    for step in bar:
        if schedule == "cosine":
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, steps, lr, warmup)
        batch = first if step == 0 else next_batch()
        try:
            loss = loss_on_batch(model, batch)
        except BaseException:
            if step == 0:  # a batch that does not fit the model: nothing has changed yet
                restore_modes()
            raise
        optimizer.zero_grad(set_to_none=True)  # backward() adds into .grad: clear last step's first
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        history.steps.append(step + 1)
        history.losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if eval_every and (step + 1) % eval_every == 0 and step + 1 != steps:
            record_eval(step + 1)
    bar.close()
    if eval_fn is not None:
        record_eval(steps)
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


def _require_train_arguments(model, next_batch, steps, lr, weight_decay, warmup, schedule, grad_clip, eval_every,
                           eval_fn, progress) -> list:
    """Refuse what `train` cannot use, naming it; return the parameters it will train."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a MiniTransformer or a Classifier), got a {type(model).__name__}")
    if not callable(next_batch):
        raise TypeError(f"next_batch must be a function that returns a batch (e.g. TaskSampler('copy')), "
                        f"got a {type(next_batch).__name__}; to train on one fixed batch pass lambda: batch")
    require_int("steps", steps, 1)
    require_number("lr", lr, 0, low_open=True)
    require_number("weight_decay", weight_decay, 0)
    require_int("warmup", warmup, 0)
    require_choice("schedule", schedule, ("cosine", "constant"))
    if grad_clip is not None:
        require_number("grad_clip (the gradient-norm limit; None turns clipping off)", grad_clip, 0, low_open=True)
    require_int("eval_every", eval_every, 0)
    if eval_fn is not None and not callable(eval_fn):
        raise TypeError(f"eval_fn must be a function returning a dict of metrics, got a {type(eval_fn).__name__}")
    if eval_every and eval_fn is None:
        raise ValueError(f"eval_every={eval_every} needs eval_fn, the function that computes the metrics to record")
    require_bool("progress", progress)
    params = trainable_parameters(model)
    if not params:
        raise ValueError(
            "the model has no trainable parameters (every requires_grad is False); after load_adapter, "
            "pass trainable=True to keep training, or use peft.set_active(model, name)"
        )
    return params


def _start_training(model, next_batch):
    """Put the model in training mode and draw the first batch, checked against the model; return the batch and
    a function that puts every module's mode back (called if the first step fails, so nothing has changed)."""
    was_training = [m.training for m in model.modules()]

    def restore_modes():
        for m, mode in zip(model.modules(), was_training):
            m.training = mode

    model.train()
    try:
        first = next_batch()
        if not isinstance(first, dict) or "x" not in first:
            raise TypeError(f"next_batch() must return a batch dict like data.encode(examples) makes (keys 'x' and "
                            f"'y', or 'x', 'positions' and 'labels'), got a {type(first).__name__}")
        require_batch(model, first)
    except BaseException:
        restore_modes()
        raise
    return first, restore_modes

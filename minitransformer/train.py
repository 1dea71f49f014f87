"""Training, evaluation and generation.

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

from .data import BASE_TASKS, IGNORE, TASKS, Example, encode_classification, encode_lm, make_examples
from .model import Classifier
from .tokenizer import END, tokenizer


def loss_on_batch(model, batch: dict):
    """Cross-entropy of a model on a batch from data.encode (language-model or classification).

    A batch with a "replay" entry (see data.ReplaySampler) adds the language-model loss on that replayed
    base-task data, read through the classifier's base model.
    """
    if "replay" in batch:
        task_loss = loss_on_batch(model, {k: v for k, v in batch.items() if k != "replay"})
        return task_loss + loss_on_batch(model.base if isinstance(model, Classifier) else model, batch["replay"])
    if "labels" in batch:
        if not isinstance(model, Classifier):
            raise TypeError("a classification batch needs a Classifier (a model with a task head)")
        logits = model(batch["x"], batch["positions"])
        return F.cross_entropy(logits, batch["labels"])
    logits = model(batch["x"])
    return F.cross_entropy(logits.flatten(0, 1), batch["y"].flatten(), ignore_index=IGNORE)


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
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    params = trainable_parameters(model)
    if not params:
        raise ValueError(
            "the model has no trainable parameters (every requires_grad is False); after load_adapter, "
            "pass trainable=True to keep training, or use peft.set_active(model, name)"
        )
    if optimizer is None:
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))
    history = History()
    start = time.perf_counter()

    def record_eval(step):
        if eval_fn is not None:
            model.eval()
            history.evals.append({"step": step, **eval_fn()})
            model.train()

    model.train()
    if eval_every:
        record_eval(0)
    bar = tqdm(range(steps), desc=desc, disable=not progress, mininterval=1.0, ncols=80)
    for step in bar:
        if schedule == "cosine":
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, steps, lr, warmup)
        loss = loss_on_batch(model, next_batch())
        optimizer.zero_grad(set_to_none=True)
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


@torch.no_grad()
def exact_match(model, examples: list[Example], batch_size: int = 512) -> float:
    """Fraction of generative examples whose whole answer the model gets right.

    Checked with teacher forcing in one pass: the greedy answer equals the target exactly when the
    argmax at every answer position is the target character, so this equals greedy decoding.
    """
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(examples), batch_size):
        x, y = encode_lm(examples[i : i + batch_size])
        predictions = model(x).argmax(dim=-1)
        answer = y != IGNORE
        correct += ((predictions == y) | ~answer).all(dim=1).sum().item()
    model.train(was_training)
    return correct / len(examples)


@torch.no_grad()
def classification_accuracy(model: Classifier, examples: list[Example], batch_size: int = 512) -> float:
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(examples), batch_size):
        x, positions, labels = encode_classification(examples[i : i + batch_size])
        correct += (model(x, positions).argmax(dim=-1) == labels).sum().item()
    model.train(was_training)
    return correct / len(examples)


EVAL_SEED = 12345  # evaluation sets use their own seeds, distinct from any training stream


def eval_set(task: str, n: int = 500, seed: int = EVAL_SEED) -> list[Example]:
    """A fixed evaluation set for one task (the same every time)."""
    return make_examples(task, n, seed + sorted(TASKS).index(task))


def evaluate_base_tasks(model, n: int = 500) -> dict:
    """Exact-match accuracy of a language model on each base task, and their mean."""
    lm = model.base if isinstance(model, Classifier) else model
    scores = {task: exact_match(lm, eval_set(task, n)) for task in BASE_TASKS}
    scores["mean"] = sum(scores.values()) / len(BASE_TASKS)
    return scores


@torch.no_grad()
def generate(model, prompts, max_new_tokens: int | None = None) -> list[str]:
    """Greedy continuation of each prompt until "." (or the context is full)."""
    if isinstance(prompts, str):
        prompts = [prompts]
    lm = model.base if isinstance(model, Classifier) else model
    was_training = lm.training
    lm.eval()
    block = lm.config.block_size
    outputs = []
    for prompt in prompts:
        ids = tokenizer.encode(prompt)
        if len(ids) >= block:
            raise ValueError(f"prompt {prompt!r} has {len(ids)} characters; the context holds {block}")
        budget = block - len(ids) if max_new_tokens is None else min(max_new_tokens, block - len(ids))
        new = []
        for _ in range(budget):
            logits = lm(torch.tensor([ids + new]))[0, -1]
            new.append(int(logits.argmax()))
            if tokenizer.itos[new[-1]] == END:
                break
        outputs.append(tokenizer.decode(new))
    lm.train(was_training)
    return outputs

"""Learning and forgetting: fine-tune a classifier while tracking what the base model still knows."""

from __future__ import annotations

from typing import Callable

from ..checkpoint import load_base
from ..data import BASE_TASKS, TaskSampler
from ..model import Classifier
from ..runtime import seed_all
from ..evaluate import classification_accuracy, eval_set, evaluate_base_tasks
from ..train import History, train


def forgetting(before: dict, after: dict) -> dict:
    """How much base-task exact match was lost, per task and on average (positive = forgotten)."""
    drops = {task: before[task] - after[task] for task in BASE_TASKS}
    drops["mean"] = sum(drops.values()) / len(BASE_TASKS)
    return drops


def best_step(steps: list[int], heldout: list[float]) -> int:
    """The step with the best held-out score (the earliest one on a tie): where early stopping stops."""
    if not steps or len(steps) != len(heldout):
        raise ValueError(f"need as many steps as scores, got {len(steps)} and {len(heldout)}")
    best = max(heldout)
    return steps[heldout.index(best)]


def fine_tune(task: str = "is_sorted", prepare: Callable | None = None, steps: int = 300, lr: float = 1e-3,
              seed: int = 0, batch_size: int = 64, eval_every: int = 0, n_eval: int = 300,
              progress: bool = False, next_batch=None, n_layer: int = 2,
              measure: Callable | None = None) -> tuple[Classifier, History]:
    """Fine-tune the shipped base with a new task head on `task`; return the model and its history.

    prepare(model) chooses what trains (default: everything, i.e. full fine-tuning); n_layer picks the
    shipped base (2, or the deeper 4 and 6). With eval_every, the history records `measure(model)` as it goes
    (default: the new-task accuracy on the held-out set, "new", and the base tasks' mean exact match, "base").
    """
    seed_all(seed)
    model = Classifier(load_base(n_layer))
    if prepare is not None:
        prepare(model)
    heldout = eval_set(task, n_eval)
    base_n = n_eval // len(BASE_TASKS)

    def evaluate():
        return {"new": classification_accuracy(model, heldout), "base": evaluate_base_tasks(model, base_n)["mean"]}

    eval_fn = evaluate if measure is None else (lambda: measure(model))
    history = train(model, next_batch or TaskSampler(task, batch_size, seed=seed + 1), steps=steps, lr=lr,
                    warmup=min(20, steps // 10), eval_every=eval_every, eval_fn=eval_fn, progress=progress,
                    desc=f"fine-tuning on {task}")
    return model, history

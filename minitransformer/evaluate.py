"""Evaluation: how well a model does on a task, and greedy generation.

Exact match scores a generative task (the whole answer right), accuracy a classification task; `eval_set` is
the course's fixed held-out set of a task, the same on every run.
"""

from __future__ import annotations

import torch

from .data import (BASE_TASKS, EVAL_OFFSETS, IGNORE, TASKS, Example, descent_category, encode_classification,
                   encode_lm, make_examples, require_examples)
from .guards import require_int
from .model import Classifier
from .runtime import EVAL_SEED
from .tokenizer import END, tokenizer


@torch.no_grad()
def _answer_counts(model, examples: list[Example], batch_size: int) -> tuple[int, int, int]:
    """(answers entirely right, answer characters right, answer characters) under teacher forcing."""
    was_training = model.training
    model.eval()
    exact = right = total = 0
    for i in range(0, len(examples), batch_size):
        x, y = encode_lm(examples[i : i + batch_size])
        predictions = model(x).argmax(dim=-1)
        answer = y != IGNORE
        exact += ((predictions == y) | ~answer).all(dim=1).sum().item()
        right += ((predictions == y) & answer).sum().item()
        total += answer.sum().item()
    model.train(was_training)
    return exact, right, total


def _language_model_for(scorer: str, model):
    if isinstance(model, Classifier):
        raise TypeError(f"{scorer} needs a language model; for a Classifier use classification_accuracy, "
                        f"or {scorer}(model.base, ...) for its base model")
    return model


def exact_match(model, examples: list[Example], batch_size: int = 512) -> float:
    """Fraction of generative examples whose whole answer the model gets right.

    Checked with teacher forcing in one pass: the greedy answer equals the target exactly when the
    argmax at every answer position is the target character, so this equals greedy decoding.
    """
    require_examples(examples, "generate")
    require_int("batch_size", batch_size, 1)
    exact, _, _ = _answer_counts(_language_model_for("exact_match", model), examples, batch_size)
    return exact / len(examples)


def token_accuracy(model, examples: list[Example], batch_size: int = 512) -> float:
    """Fraction of answer characters the model predicts right when given the correct characters before them
    (teacher forcing), over all the examples' answer characters.

    Bounded in [0, 1] and graded where exact match is not: one wrong character of a 6-character answer costs
    exact match the whole example but token accuracy a sixth of it.
    """
    require_examples(examples, "generate")
    require_int("batch_size", batch_size, 1)
    _, right, total = _answer_counts(_language_model_for("token_accuracy", model), examples, batch_size)
    return right / total


@torch.no_grad()
def classification_accuracy(model: Classifier, examples: list[Example], batch_size: int = 512) -> float:
    if not isinstance(model, Classifier):
        raise TypeError(f"classification_accuracy needs a Classifier (a model with a task head), got a "
                        f"{type(model).__name__}")
    require_examples(examples, "classify")
    require_int("batch_size", batch_size, 1)
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(examples), batch_size):
        x, positions, labels = encode_classification(examples[i : i + batch_size])
        correct += (model(x, positions).argmax(dim=-1) == labels).sum().item()
    model.train(was_training)
    return correct / len(examples)


def accuracy_by_category(model: Classifier, examples: list[Example], category=None) -> dict[str, tuple[float, int]]:
    """Accuracy on each kind of example: {category: (accuracy, how many)}, `category(example)` naming the kind
    (default `data.descent_category`: sorted, one swap at an end, one swap inside, several descents). A score that
    averages over easy and hard examples can hide a shortcut; this shows where the errors are."""
    require_examples(examples, "classify")
    category = category or descent_category
    if not callable(category):
        raise TypeError(f"category must be a function of an example, got {category!r}")
    groups: dict[str, list[Example]] = {}
    for example in examples:
        groups.setdefault(category(example), []).append(example)
    return {name: (classification_accuracy(model, group), len(group)) for name, group in sorted(groups.items(), key=lambda kv: str(kv[0]))}


def eval_set(task: str, n: int = 500, seed: int = EVAL_SEED) -> list[Example]:
    """A fixed evaluation set for one task (the same every time)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks are {sorted(TASKS)}")
    return make_examples(task, n, seed + EVAL_OFFSETS[task])


def evaluate_base_tasks(model, n: int = 500) -> dict:
    """Exact-match accuracy of a language model on each base task, and their mean."""
    return base_task_scores(model, n)["exact_match"]


def base_task_scores(model, n: int = 500) -> dict:
    """Exact match and token accuracy of a language model (or a Classifier's base) on each base task's held-out
    set of `n`, and their means over the tasks: {"exact_match": {...}, "token_accuracy": {...}}, one pass."""
    require_int("n", n, 1)
    lm = model.base if isinstance(model, Classifier) else model
    scores = {"exact_match": {}, "token_accuracy": {}}
    for task in BASE_TASKS:
        exact, right, total = _answer_counts(lm, eval_set(task, n), 512)
        scores["exact_match"][task], scores["token_accuracy"][task] = exact / n, right / total
    for by_task in scores.values():
        by_task["mean"] = sum(by_task.values()) / len(BASE_TASKS)
    return scores


@torch.no_grad()
def generate(model, prompts, max_new_tokens: int | None = None) -> list[str]:
    """Greedy continuation of each prompt until "." (or the context is full).

    With prompt tuning the active virtual tokens share the context: generation stops when the virtual
    tokens, the prompt and the new tokens fill block_size.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"prompts must be a str or a list of str, got {prompts!r}")
    if max_new_tokens is not None:
        require_int("max_new_tokens", max_new_tokens, 1)
    lm = model.base if isinstance(model, Classifier) else model
    was_training = lm.training
    lm.eval()
    block = lm.config.block_size
    virtual = lm.soft_prompt.length() if getattr(lm, "soft_prompt", None) is not None else 0
    room = block - virtual  # what the prompt and its continuation may use
    outputs = []
    for prompt in prompts:
        ids = tokenizer.encode(prompt)
        if len(ids) >= room:
            extra = f" after the {virtual} virtual tokens of the soft prompt" if virtual else ""
            raise ValueError(f"prompt {prompt!r} has {len(ids)} characters; the context holds {room}{extra}, "
                             "and at least one must be left for the answer")
        budget = room - len(ids) if max_new_tokens is None else min(max_new_tokens, room - len(ids))
        new = []
        for _ in range(budget):
            logits = lm(torch.tensor([ids + new]))[0, -1]
            new.append(int(logits.argmax()))
            if tokenizer.itos[new[-1]] == END:
                break
        outputs.append(tokenizer.decode(new))
    lm.train(was_training)
    return outputs

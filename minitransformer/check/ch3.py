"""Checks for chapter 3's exercises: where the head reads, forgetting as a number, early stopping."""

import random

import torch

from ..data import BASE_TASKS, encode_classification, encode_lm, make_examples
from ..forgetting import best_step, forgetting
from ..tokenizer import SEP, tokenizer
from .core import Part, call_learner, checker, pick, register, seed


def separator_positions_reference(x):
    """The index of "=" in each row of a batch of token ids."""
    return (x == tokenizer.stoi[SEP]).int().argmax(dim=1)


@register("3.1", "where the task head reads", 4, separator_positions_reference,
          "minitransformer.check.ch3.separator_positions_reference")
def _check_positions(fn):
    examples = make_examples("is_sorted", pick(1, 40, 17, 33, 52), seed=seed(4))
    x, want, _ = encode_classification(examples)
    cases = [("a batch of prompts of different lengths", x, want),
             ("a single prompt", x[:1], want[:1]),
             ("prompts with padding after them", torch.cat([x, torch.zeros(len(x), pick(2, 3, 1, 5, 8), dtype=torch.long)], 1), want)]
    generative = make_examples(BASE_TASKS, pick(3, 20, 11, 27), seed=seed(5))
    texts = encode_lm(generative)[0]
    cases.append(("texts that go on after the '='", texts, torch.tensor([len(e.prompt) - 1 for e in generative])))
    for label, batch, expected in cases:
        got = call_learner(fn, batch)
        ok = torch.is_tensor(got) and got.shape == expected.shape and torch.equal(got.long(), expected)
        message = "return a tensor of shape (batch,) with one index per row"
        if torch.is_tensor(got) and got.shape == expected.shape:
            wrong = int((got.long() != expected).nonzero()[0]) if not ok else 0
            message = (f"row {wrong} ({tokenizer.decode(batch[wrong]).rstrip('_')!r}): you said {int(got[wrong])}, "
                       f"the '=' is at {int(expected[wrong])}")
            if torch.equal(got.long(), expected + 1):
                message += " — off by one: positions count from 0"
            elif torch.equal(got.long(), (batch != tokenizer.pad_id).sum(1) - 1) and not ok:
                message += " — that is the last non-padding token, which is '=' only if nothing follows it"
        yield Part(f"correct for {label}", ok, message)


@register("3.2", "forgetting as a number", 3, forgetting, "minitransformer.forgetting.forgetting")
def _check_forgetting(fn):
    cases = [
        ("a model that forgot some of everything", {"copy": 1.0, "reverse": 0.9, "sort": 0.8, "mean": 0.9},
         {"copy": 0.5, "reverse": 0.6, "sort": 0.8, "mean": 0.6333}),
        ("a model that forgot nothing", {"copy": 0.9, "reverse": 0.9, "sort": 0.9, "mean": 0.9},
         {"copy": 0.9, "reverse": 0.9, "sort": 0.9, "mean": 0.9}),
        ("a model that got better at one task", {"copy": 0.5, "reverse": 1.0, "sort": 1.0, "mean": 0.8333},
         {"copy": 0.8, "reverse": 0.4, "sort": 1.0, "mean": 0.7333}),
    ]
    if HIDDEN := pick(1, None, random.Random(seed(32))):  # grading: the same three situations, hidden numbers
        tasks = ["copy", "reverse", "sort"]
        cases = []
        for label, low, high in (("a model that forgot some of everything", -0.4, -0.01),
                                 ("a model that forgot nothing", 0.0, 0.0), ("a model that got better at one task", -0.3, 0.3)):
            before = {t: round(HIDDEN.uniform(0.5, 1.0), 4) for t in tasks}
            after = {t: round(min(1.0, max(0.0, before[t] + HIDDEN.uniform(low, high))), 4) for t in tasks}
            before["mean"], after["mean"] = (round(sum(d[t] for t in tasks) / 3, 4) for d in (before, after))
            cases.append((label, before, after))
    for label, before, after in cases:
        got = call_learner(fn, before, after)
        want = forgetting(before, after)
        if not isinstance(got, dict) or set(got) != set(want):
            yield Part(f"correct for {label}", False, f"return a dict with keys {sorted(want)}; got {got!r}")
            continue
        bad = [k for k in want if abs(got[k] - want[k]) > 1e-6]
        message = ""
        if bad:
            k = bad[0]
            message = f"{k}: you said {got[k]:.3f}, expected {want[k]:.3f}"
            if abs(got[k] + want[k]) < 1e-6:
                message += " — the sign is flipped: forgetting is before minus after, positive when the model lost"
            elif k == "mean":
                message += " — the mean of the per-task drops (a gain on one task offsets a loss on another)"
        yield Part(f"correct for {label}", not bad, message)


@register("3.3", "early stopping", 3, best_step, "minitransformer.forgetting.best_step")
def _check_best_step(fn):
    cases = [
        ("a held-out curve that peaks and falls", [0, 50, 100, 150, 200], [0.5, 0.7, 0.8, 0.75, 0.7], 100),
        ("a curve that keeps rising", [0, 50, 100], [0.5, 0.6, 0.9], 100),
        ("a tie (stop at the earlier step)", [10, 20, 30, 40], [0.6, 0.8, 0.8, 0.7], 20),
    ]
    if HIDDEN := pick(1, None, random.Random(seed(33))):  # grading: hidden curves of the same three kinds
        cases = []
        for label, kind in (("a held-out curve that peaks and falls", "peak"), ("a curve that keeps rising", "rise"),
                            ("a tie (stop at the earlier step)", "tie")):
            n = HIDDEN.randint(4, 9)
            every = HIDDEN.choice([10, 25, 50, 100])
            steps = [every * (i + HIDDEN.randint(0, 1)) for i in range(n)]
            steps = sorted(set(steps)) if len(set(steps)) == n else [every * i for i in range(n)]
            scores = sorted(round(HIDDEN.uniform(0.3, 0.95), 3) for _ in range(n))
            if kind == "peak":
                top = HIDDEN.randint(1, n - 2)
                scores = scores[:top] + [0.99] + [round(0.99 - 0.01 * (i + 1), 3) for i in range(n - top - 1)]
            elif kind == "tie":
                top = HIDDEN.randint(1, n - 3)
                scores = scores[:top] + [0.99, 0.99] + [round(0.5 - 0.01 * i, 3) for i in range(n - top - 2)]
            scores = scores[:n]
            cases.append((label, steps, scores, steps[scores.index(max(scores))]))
    for label, steps, scores, want in cases:
        got = call_learner(fn, list(steps), list(scores))
        message = f"you said {got!r}, expected step {want}"
        if got == scores.index(max(scores)):
            message += " — that is the index in the list; return the step number itself"
        elif got == steps[len(scores) - 1 - scores[::-1].index(max(scores))]:
            message += " — on a tie, take the earliest step: it reached the same score with less training"
        yield Part(f"correct for {label}", got == want, message)

separator_positions = checker("3.1")
forgetting_score = checker("3.2")
early_stopping = checker("3.3")

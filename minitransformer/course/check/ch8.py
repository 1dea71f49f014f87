"""Checks for chapter 8's exercises: tuning a learning rate on validation over seeds, summarising seeds, the Pareto front."""

import numbers
import random

import numpy as np

from .core import Part, call_learner, checker, pick, register, seed
from . import core


def tuned_lr_reference(runs: list[dict], method: str, key: str = "val_accuracy") -> float:
    """The learning rate with the best *mean validation* accuracy over seeds for `method` (smaller on a tie)."""
    lrs = sorted({r["lr"] for r in runs if r["method"] == method})
    mean = {lr: np.mean([r[key] for r in runs if r["method"] == method and r["lr"] == lr]) for lr in lrs}
    return max(lrs, key=lambda lr: mean[lr])


def seed_summary_reference(runs: list[dict], method: str, lr: float) -> dict:
    """Mean and sample standard deviation (ddof=1, as the t-interval uses) of test accuracy and exact-match
    forgetting over the seeds of one setting."""
    chosen = [r for r in runs if r["method"] == method and r["lr"] == lr]
    accuracy = np.array([r["test_accuracy"] for r in chosen])
    forgot = np.array([r["forgetting_em"] for r in chosen])
    return {"accuracy": float(accuracy.mean()), "accuracy_std": float(accuracy.std(ddof=1)),
            "forgetting": float(forgot.mean()), "forgetting_std": float(forgot.std(ddof=1))}


def pareto_front_reference(points: dict) -> list[str]:
    """Names whose (accuracy, forgetting) no other point beats on both (higher accuracy, lower forgetting)."""
    front = []
    for name, (accuracy, forgot) in points.items():
        dominated = any(a >= accuracy and f <= forgot and (a, f) != (accuracy, forgot) for a, f in points.values())
        if not dominated:
            front.append(name)
    return front


_RULES = {  # other rules a learner might use instead of the mean: the tables make each pick a different lr
    "the single best run": max, "the median": lambda a: float(np.median(a)), "the worst seed": min,
    "the first seed": lambda a: a[0], "the last seed": lambda a: a[-1]}


def _best_by(table: dict, rule) -> list:
    scores = {lr: rule(accuracies) for lr, accuracies in table.items()}
    return [lr for lr in table if scores[lr] == max(scores.values())]


def _hidden_table(rng) -> dict:
    """A table where the best mean is unique and every other rule picks another learning rate."""
    for _ in range(10_000):
        lrs = sorted(rng.sample([1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3], rng.randint(3, 5)))
        table = {lr: [round(rng.uniform(0.4, 0.95), 3) for _ in range(rng.choice([3, 4, 5]) if lr == lrs[0] else 0)] for lr in lrs}
        n = len(table[lrs[0]])
        table = {lr: [round(rng.uniform(0.4, 0.95), 3) for _ in range(n)] for lr in lrs}
        mean = _best_by(table, lambda a: round(float(np.mean(a)), 9))
        if len(mean) == 1 and all(mean[0] not in _best_by(table, rule) for rule in _RULES.values()):
            return table
    raise RuntimeError("no table found")  # pragma: no cover


def _runs():
    tables = {"A": {0.03: [0.71, 0.71, 0.71], 0.1: [0.9, 0.5, 0.6], 0.3: [0.7, 0.76, 0.7], 1.0: [0.75, 0.75, 0.55]},
              "B": {0.01: [0.8, 0.8, 0.8], 0.03: [0.82, 0.6, 0.9]}}
    if core.HIDDEN_SEED is not None:
        rng = random.Random(seed(80))
        tables = {"A": _hidden_table(rng), "B": _hidden_table(rng)}
    rows = []
    for method, table in tables.items():
        # test accuracy: worst at the rate validation prefers, best at another one, so choosing on test shows
        best_val = _best_by(table, lambda a: round(float(np.mean(a)), 9))[0]
        lrs = list(table)
        best_test = lrs[(lrs.index(best_val) + 1) % len(lrs)]
        for lr, accuracies in table.items():
            test = 0.6 if lr == best_val else 0.9 if lr == best_test else 0.75
            for s, accuracy in enumerate(accuracies):
                rows.append({"method": method, "lr": lr, "seed": s, "val_accuracy": accuracy,
                             "test_accuracy": round(test - 0.01 * s, 3),
                             "forgetting_em": round(0.1 * (s + 1) if core.HIDDEN_SEED is None else random.Random(f"{lr}/{s}").random(), 3),
                             "forgetting_loss": round(0.05 * (s + 1), 3)})
    return rows


def _tie_runs() -> list[dict]:
    """Runs of one method, "C", where two learning rates share the best mean validation accuracy exactly.

    The accuracies are multiples of 1/64, so every way of averaging them (np.mean, sum / n, float32, any
    order) gives the same mean: the tie is a tie for any correct answer, and only the tie rule decides."""
    # means 0.625, 0.625, 0.5, 0.604: 0.01 and 0.03 tie; the best run, the median and the first seed pick 0.3
    table = {0.01: [0.75, 0.5, 0.625], 0.03: [0.625, 0.75, 0.5], 0.1: [0.5, 0.5, 0.5], 0.3: [0.875, 0.6875, 0.25]}
    if core.HIDDEN_SEED is not None:
        rng = random.Random(seed(81))
        lrs = sorted(rng.sample([1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3], rng.randint(3, 5)))
        n = rng.choice([3, 4, 5])
        tied = rng.sample(lrs, 2)
        best = [rng.randint(40, 60) / 64 for _ in range(n)]
        table = {lr: (rng.sample(best, n) if lr in tied else [rng.randint(20, 38) / 64 for _ in range(n)]) for lr in lrs}
    tied = _best_by(table, lambda a: float(np.mean(a)))
    best_test = max(lr for lr in table if lr not in tied)  # choosing on test picks neither tied rate
    rows = []
    for lr, accuracies in table.items():
        for s, accuracy in enumerate(accuracies):
            rows.append({"method": "C", "lr": lr, "seed": s, "val_accuracy": accuracy,
                         "test_accuracy": round((0.9 if lr == best_test else 0.7) - 0.01 * s, 3),
                         "forgetting_em": round(0.1 * (s + 1), 3), "forgetting_loss": round(0.05 * (s + 1), 3)})
    return rows


@register("8.1", "tuning the learning rate over seeds", 3, tuned_lr_reference, "minitransformer.course.check.ch8.tuned_lr_reference")
def _check_tuned(fn):
    runs = _runs()
    for method in ("A", "B"):
        got = call_learner(fn, runs, method)
        want = tuned_lr_reference(runs, method)
        message = f"for method {method} you chose {got!r}, expected {want}"
        table = {}
        for r in runs:
            if r["method"] == method:
                table.setdefault(r["lr"], []).append(r["val_accuracy"])
        other = [name for name, rule in _RULES.items() if got in _best_by(table, rule)]
        if got != want and got == tuned_lr_reference(runs, method, key="test_accuracy"):
            message += (": that lr is best on the test set; choose on validation (val_accuracy) and keep the "
                        "test set for reporting")
        elif other and got != want:
            message += f": that lr is best by {other[0]}; choose by the mean over seeds, which luck moves less"
        elif isinstance(got, float) and 0.5 < got <= 1:
            message += ": that looks like an accuracy; return the learning rate"
        yield Part(f"picks the best mean validation accuracy for method {method}", got == want, message)
    runs = _tie_runs()
    got = call_learner(fn, runs, "C")
    want = tuned_lr_reference(runs, "C")  # the smaller of the two tied rates
    table = {}
    for r in runs:
        table.setdefault(r["lr"], []).append(r["val_accuracy"])
    tied = _best_by(table, lambda a: float(np.mean(a)))
    message = f"for method C you chose {got!r}, expected {want}"
    if got in tied and got != want:
        message += (f": learning rates {' and '.join(f'{lr:g}' for lr in tied)} tie on mean validation accuracy "
                    f"({float(np.mean(table[want])):.4f}); the rule is that on a tie the smaller learning rate wins")
    elif got != want and got == tuned_lr_reference(runs, "C", key="test_accuracy"):
        message += ": that lr is best on the test set; choose on validation (val_accuracy)"
    elif got != want and (other := [name for name, rule in _RULES.items() if got in _best_by(table, rule)]):
        message += f": that lr is best by {other[0]}; choose by the mean over seeds"
    yield Part("on a tie, picks the smaller learning rate (method C)", got == want, message)


# The accuracies have 3 decimals: float32 (torch's default) or another summation order moves a mean or a
# standard deviation by ~1e-8, which is the same answer; 1e-6 still tells ddof=0 from ddof=1 and every other slip.
_SUMMARY_TOL = 1e-6


def _as_float(value) -> float | None:
    """A Python, NumPy or one-element torch number as a float; None for anything else."""
    import torch

    if torch.is_tensor(value):
        return float(value) if value.numel() == 1 else None
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else None


@register("8.2", "summarising seeds", 2, seed_summary_reference, "minitransformer.course.check.ch8.seed_summary_reference")
def _check_summary(fn):
    runs = _runs()
    for method in ("A", "B"):
        lrs = sorted({r["lr"] for r in runs if r["method"] == method})
        lr = pick(1, {"A": 0.1, "B": 0.03}[method], *lrs)
        got = call_learner(fn, runs, method, lr)
        want = seed_summary_reference(runs, method, lr)
        if not isinstance(got, dict) or set(got) != set(want):
            yield Part(f"correct for {method} at lr {lr}", False, f"return a dict with keys {sorted(want)}; got {got!r}")
            continue
        numeric = {k: _as_float(got[k]) for k in want}
        bad = [k for k in want if numeric[k] is None or not abs(numeric[k] - want[k]) <= _SUMMARY_TOL]
        message = ""
        if bad and numeric[bad[0]] is None:
            message = f"{bad[0]}: return a number, not {type(got[bad[0]]).__name__}"
        elif bad:
            k = bad[0]
            digits = next((d for d in range(4, 10) if f"{numeric[k]:.{d}f}" != f"{want[k]:.{d}f}"), 10)
            message = f"{k}: you said {numeric[k]:.{digits}f}, expected {want[k]:.{digits}f}"
        if bad and numeric[bad[0]] is not None and bad[0].endswith("_std"):
            key = {"accuracy_std": "test_accuracy", "forgetting_std": "forgetting_em"}[bad[0]]
            values = np.array([r[key] for r in runs if r["method"] == method and r["lr"] == lr])
            if abs(numeric[bad[0]] - values.std()) <= _SUMMARY_TOL:
                message += (" — use the sample standard deviation (ddof=1), the one the t-interval uses; "
                            "numpy's default is ddof=0")
        yield Part(f"correct for {method} at lr {lr}", not bad, message)


@register("8.3", "the learning-vs-forgetting Pareto front", 3, pareto_front_reference,
          "minitransformer.course.check.ch8.pareto_front_reference")
def _check_pareto(fn):
    cases = [
        ("a clear winner", {"a": (0.9, 0.1), "b": (0.8, 0.2), "c": (0.7, 0.5)}),
        ("a trade-off", {"a": (0.95, 0.9), "b": (0.85, 0.3), "c": (0.8, 0.4), "d": (0.7, 0.0)}),
        ("ties", {"a": (0.9, 0.2), "b": (0.9, 0.2), "c": (0.9, 0.3)}),
    ]
    if core.HIDDEN_SEED is not None:
        rng = random.Random(seed(83))
        cases = []
        for label, n, tie in (("a clear winner", 4, False), ("a trade-off", 7, False), ("ties", 5, True)):
            points = {f"m{i}": (round(rng.uniform(0.5, 1), 2), round(rng.uniform(0, 0.5), 2)) for i in range(n)}
            if tie:
                points["twin"] = max(points.values())
            cases.append((label, points))
    for label, points in cases:
        got = call_learner(fn, dict(points))
        want = pareto_front_reference(points)
        message = f"you returned {got!r}, expected {want}"
        reversed_front = pareto_front_reference({k: (a, -f) for k, (a, f) in points.items()})
        if isinstance(got, list) and sorted(got) == sorted(reversed_front) and sorted(got) != sorted(want):
            message += ": lower forgetting is better — a point is beaten by one with more accuracy and less forgetting"
        ok = isinstance(got, list) and sorted(got) == sorted(want)
        yield Part(f"correct for {label}", ok, message)


tuned_lr = checker("8.1")
seed_summary = checker("8.2")
pareto_front = checker("8.3")

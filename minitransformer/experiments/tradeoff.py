"""Learning versus forgetting, read off a study's curves: each run's points along training (validation accuracy on
the new task, forgetting of the base tasks), forgetting at a matched accuracy, and the Pareto front.

A study run with `curve_every` records, for every run, a `curve`: one point every `curve_every` steps (step 0,
before any training, included). "Forgets less" then means "forgets less at the same learning": for each seed, the
forgetting at the first point of training where validation accuracy reaches a target, linearly interpolated
between the two evaluations around it, at the method's best learning rate for that (the lowest over its grid).
Taking the lowest over rates reads the method's frontier, as the trade-off plots show it; it flatters a method
with more rates a little, so every method here has a grid of the same length.
"""

from __future__ import annotations

import math

from .stats import mean_ci, paired_difference

FORGETTING = "forgetting_tokens"  # the bounded score every trade-off reads unless told otherwise


def curve(run: dict, metric: str = FORGETTING) -> list[tuple[int, float, float]]:
    """(step, validation accuracy, forgetting) at each evaluation of one stored run, in step order."""
    if "curve" not in run:
        raise ValueError(f"this run of {run.get('method')!r} records no curve: its study ran without curve_every")
    return [(p["step"], p["val_accuracy"], p[metric]) for p in sorted(run["curve"], key=lambda p: p["step"])]


def forgetting_at_accuracy(points: list[tuple[int, float, float]], target: float) -> float | None:
    """The forgetting at the first moment validation accuracy reaches `target` along one run, interpolated
    linearly between the evaluation before and the one that reached it; None if the run never reaches it."""
    previous = None
    for step, accuracy, forgetting in points:
        if accuracy >= target:
            if previous is None or previous[1] >= target:
                return forgetting
            _, a0, f0 = previous
            share = (target - a0) / (accuracy - a0)
            return f0 + share * (forgetting - f0)
        previous = (step, accuracy, forgetting)
    return None


def matched_forgetting(results: dict, method: str, target: float, metric: str = FORGETTING) -> dict[int, float]:
    """Per seed, the lowest forgetting at which `method` reaches validation accuracy `target` over its learning
    rates (see the module docstring); seeds where no rate reaches it are left out."""
    runs = [r for r in results["runs"] if r["method"] == method]
    if not runs:
        raise ValueError(f"study {results['study']!r} has no runs of {method!r}; it has {sorted(results['methods'])}")
    best: dict[int, float] = {}
    for run in runs:
        value = forgetting_at_accuracy(curve(run, metric), target)
        if value is not None and (run["seed"] not in best or value < best[run["seed"]]):
            best[run["seed"]] = value
    return dict(sorted(best.items()))


def compare_at_accuracy(results: dict, a: str, b: str, target: float, metric: str = FORGETTING) -> dict:
    """Forgetting of methods a and b at the same validation accuracy, seed by seed: both means and intervals, and
    the paired difference a - b over the seeds where both reach `target` (negative: a forgets less)."""
    fa, fb = matched_forgetting(results, a, target, metric), matched_forgetting(results, b, target, metric)
    shared = sorted(set(fa) & set(fb))
    out = {"target": target, "seeds": shared, a: fa, b: fb}
    if len(shared) >= 2:
        out["difference"] = paired_difference([fa[s] for s in shared], [fb[s] for s in shared])
        out["means"] = {a: mean_ci([fa[s] for s in shared]), b: mean_ci([fb[s] for s in shared])}
    return out


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (accuracy, forgetting) points no other point beats: none has accuracy at least as high and
    forgetting at least as low, with one of the two strictly better. In order of accuracy."""
    for p in points:
        if len(p) != 2 or any(not isinstance(v, (int, float)) or math.isnan(v) for v in p):
            raise ValueError(f"a point is (accuracy, forgetting), two numbers; got {p!r}")
    front = [i for i, (acc, forg) in enumerate(points)
             if not any((a >= acc and f <= forg) and (a > acc or f < forg) for a, f in points)]
    return sorted(front, key=lambda i: points[i][0])


def at_chosen_rate(results: dict, method: str, metric: str) -> dict[int, float]:
    """Per seed, `metric` of `method` at the learning rate chosen for it on validation."""
    entry = results["methods"].get(method)
    if entry is None or "chosen_lr" not in entry:
        raise ValueError(f"study {results['study']!r} chose no rate for {method!r}; tuned methods: "
                         f"{sorted(m for m, e in results['methods'].items() if 'chosen_lr' in e)}")
    return {r["seed"]: r[metric] for r in results["runs"] if r["method"] == method and r["lr"] == entry["chosen_lr"]}


def separated_pairs(results: dict, metric: str, methods: list[str] | None = None) -> list[dict]:
    """Every pair of methods (at their chosen rates) with the paired difference of `metric` over their shared seeds,
    and whether its 95% interval excludes zero: how many pairs a score tells apart."""
    methods = methods or [m for m, e in results["methods"].items() if "chosen_lr" in e]
    values = {m: at_chosen_rate(results, m, metric) for m in methods}
    pairs = []
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            seeds = sorted(set(values[a]) & set(values[b]))
            mean, low, high = paired_difference([values[a][s] for s in seeds], [values[b][s] for s in seeds])
            pairs.append({"a": a, "b": b, "difference": (mean, low, high), "apart": low > 0 or high < 0})
    return pairs


def mean_curve(results: dict, method: str, lr: float, metric: str = FORGETTING) -> list[tuple[int, float, float]]:
    """(step, validation accuracy, forgetting) along training at one rate, each the mean over the seeds."""
    runs = [r for r in results["runs"] if r["method"] == method and r["lr"] == lr]
    if not runs:
        raise ValueError(f"study {results['study']!r} has no runs of {method!r} at lr {lr:g}")
    curves = [curve(r, metric) for r in runs]
    return [(points[0][0], sum(p[1] for p in points) / len(points), sum(p[2] for p in points) / len(points))
            for points in zip(*curves)]


def method_points(results: dict, method: str, metric: str = FORGETTING) -> list[dict]:
    """Every (rate, step) of a method as one seed-mean point: {"lr", "step", "accuracy", "forgetting"}."""
    return [{"lr": lr, "step": step, "accuracy": accuracy, "forgetting": forgetting}
            for lr in results["methods"][method]["lr_grid"]
            for step, accuracy, forgetting in mean_curve(results, method, lr, metric)]


def frontier(points: list[dict]) -> list[dict]:
    """The points of `method_points` that no other beats on both learning and forgetting, by accuracy."""
    front = pareto_front([(p["accuracy"], p["forgetting"]) for p in points])
    return [points[i] for i in front]

"""Learning versus forgetting, read off a study's curves: each run's points along training (validation accuracy on
the new task, forgetting of the base tasks), forgetting at a matched accuracy, and the Pareto front.

A study run with `curve_every` records, for every run, a `curve`: one point every `curve_every` steps (step 0,
before any training, included) with validation accuracy and two forgetting scores, `forgetting_tokens` (bounded,
the default) and `forgetting_em` (the loss is measured at the end of training only). "Forgets less" then means
"forgets less at the same learning": for each seed, the forgetting at the first point of training where validation
accuracy reaches a target, linearly interpolated between the two evaluations around it, at the method's best
learning rate for that (the lowest over its grid). Taking the lowest over rates reads the method's frontier, as the
trade-off plots show it; it flatters a method with more rates a little, so the shared study gives every method five
(a grid extended at an edge gets more: the study records it).
"""

from __future__ import annotations

import math
import numbers

from .results import reported_metrics
from .stats import mean_ci, paired_difference

FORGETTING = "forgetting_tokens"  # the bounded score every trade-off reads unless told otherwise
CURVE_METRICS = ("forgetting_tokens", "forgetting_em")  # the forgetting scores recorded along training


def require_results(results) -> dict:
    if not isinstance(results, dict) or "runs" not in results or "methods" not in results:
        raise TypeError(f"pass a study's results (experiments.load_study(name)), got {type(results).__name__}")
    return results


def require_method(results: dict, method) -> str:
    if not isinstance(method, str) or method not in results["methods"]:
        raise ValueError(f"study {results.get('study')!r} has no runs of {method!r}; it has {sorted(results['methods'])}")
    return method


def require_methods(results: dict, methods) -> list[str]:
    if isinstance(methods, str) or not isinstance(methods, (list, tuple)) or not methods:
        raise TypeError(f"methods must be a non-empty list of method names (e.g. ['full', 'LoRA q,v r=8']), got {methods!r}")
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods must not repeat a name, got {methods!r}")
    return [require_method(results, m) for m in methods]


def require_curve_metric(metric) -> str:
    if metric not in CURVE_METRICS:
        raise ValueError(f"a curve records the forgetting scores {CURVE_METRICS}, got {metric!r}"
                         + (" (the loss is measured at the end of training only)" if metric == "forgetting_loss" else ""))
    return metric


def require_target(target) -> float:
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not 0 <= target <= 1:
        hint = f"; {target!r} looks like a percentage: use {target / 100:g}" if isinstance(target, numbers.Real) \
            and not isinstance(target, bool) and 1 < target <= 100 else ""
        raise ValueError(f"target must be a validation accuracy, a fraction in [0, 1], got {target!r}{hint}")
    return float(target)


def curve(run: dict, metric: str = FORGETTING) -> list[tuple[int, float, float]]:
    """(step, validation accuracy, forgetting) at each evaluation of one stored run, in step order."""
    if not isinstance(run, dict) or "method" not in run:
        raise TypeError(f"pass one run of a study (an entry of results['runs']), got {type(run).__name__}")
    require_curve_metric(metric)
    if "curve" not in run:
        raise ValueError(f"this run of {run['method']!r} records no curve: its study ran without curve_every")
    return [(p["step"], p["val_accuracy"], p[metric]) for p in sorted(run["curve"], key=lambda p: p["step"])]


def forgetting_at_accuracy(points: list[tuple[int, float, float]], target: float) -> float | None:
    """The forgetting at the first moment validation accuracy reaches `target` along one run (`curve`'s points),
    interpolated linearly between the evaluation before and the one that reached it; None if it never does."""
    target = require_target(target)
    points = list(points)
    if not all(isinstance(p, tuple) and len(p) == 3 for p in points):
        raise TypeError("points are (step, validation accuracy, forgetting) tuples, as curve(run) returns them")
    if any(math.isnan(p[1]) or math.isnan(p[2]) for p in points):
        raise ValueError("a point holds NaN: no forgetting can be read at a matched accuracy")
    points.sort(key=lambda p: p[0])
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
    method = require_method(require_results(results), method)
    target, metric = require_target(target), require_curve_metric(metric)
    best: dict[int, float] = {}
    for run in (r for r in results["runs"] if r["method"] == method):
        value = forgetting_at_accuracy(curve(run, metric), target)
        if value is not None and (run["seed"] not in best or value < best[run["seed"]]):
            best[run["seed"]] = value
    return dict(sorted(best.items()))


def compare_at_accuracy(results: dict, a: str, b: str, target: float, metric: str = FORGETTING) -> dict:
    """Forgetting of methods a and b at the same validation accuracy, seed by seed: {"target", "seeds" (where both
    reach it), "a", "b" (their {seed: forgetting}), "means", "difference" (paired a - b: negative, a forgets less)};
    means and difference are None, with the reason in "why", when fewer than two seeds reach the target on both."""
    if a == b:
        raise ValueError(f"compare two different methods, got {a!r} twice")
    fa, fb = matched_forgetting(results, a, target, metric), matched_forgetting(results, b, target, metric)
    shared = sorted(set(fa) & set(fb))
    out = {"target": float(target), "seeds": shared, "a": fa, "b": fb, "means": None, "difference": None}
    if len(shared) < 2:
        out["why"] = (f"only {len(shared)} seed(s) reach validation accuracy {target:g} with both methods "
                      f"({a}: {len(fa)}, {b}: {len(fb)}); a paired interval needs two")
        return out
    out["means"] = {a: mean_ci([fa[s] for s in shared]), b: mean_ci([fb[s] for s in shared])}
    out["difference"] = paired_difference({s: fa[s] for s in shared}, {s: fb[s] for s in shared})
    return out


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (accuracy, forgetting) points no other point beats: none has accuracy at least as high and
    forgetting at least as low, with one of the two strictly better. In order of accuracy."""
    points = list(points)
    for p in points:
        if not isinstance(p, (tuple, list)) or len(p) != 2 or any(
                isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) for v in p):
            raise ValueError(f"a point is (accuracy, forgetting), two finite numbers; got {p!r}")
    front = [i for i, (acc, forg) in enumerate(points)
             if not any((a >= acc and f <= forg) and (a > acc or f < forg) for a, f in points)]
    return sorted(front, key=lambda i: points[i][0])


def at_chosen_rate(results: dict, method: str, metric: str) -> dict[int, float]:
    """Per seed, `metric` (one the study reports) of `method` at the learning rate chosen for it on validation."""
    method = require_method(require_results(results), method)
    reported = reported_metrics(results)
    if metric not in reported:
        raise ValueError(f"study {results['study']!r} reports {reported}, not {metric!r}")
    entry = results["methods"][method]
    if "chosen_lr" not in entry:
        raise ValueError(f"study {results['study']!r} chose no rate for {method!r}; tuned methods: "
                         f"{sorted(m for m, e in results['methods'].items() if 'chosen_lr' in e)}")
    return {r["seed"]: r[metric] for r in results["runs"] if r["method"] == method and r["lr"] == entry["chosen_lr"]}


def separated_pairs(results: dict, metric: str, methods: list[str] | None = None) -> list[dict]:
    """Every pair of methods (at their chosen rates) with the paired difference of `metric` over their shared seeds,
    and whether its 95% interval excludes zero: how many pairs a score tells apart. Default: every tuned method."""
    require_results(results)
    if methods is None:
        methods = [m for m, e in results["methods"].items() if "chosen_lr" in e]
    methods = require_methods(results, methods)
    values = {m: at_chosen_rate(results, m, metric) for m in methods}
    pairs = []
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            mean, low, high = paired_difference(values[a], values[b])
            pairs.append({"a": a, "b": b, "difference": (mean, low, high), "apart": low > 0 or high < 0})
    return pairs


def mean_curve(results: dict, method: str, lr: float, metric: str = FORGETTING) -> list[tuple[int, float, float]]:
    """(step, validation accuracy, forgetting) along training at one rate, each the mean over the seeds."""
    method, metric = require_method(require_results(results), method), require_curve_metric(metric)
    grid = results["methods"][method]["lr_grid"]
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise TypeError(f"lr must be a number, one of {method}'s rates {grid}, got {lr!r}")
    stored = next((g for g in grid if math.isclose(g, lr, rel_tol=1e-3)), None)
    if stored is None:
        raise ValueError(f"study {results['study']!r} has no runs of {method!r} at lr {lr:g}; its rates: {grid}")
    curves = [curve(r, metric) for r in results["runs"] if r["method"] == method and r["lr"] == stored]
    steps = [[p[0] for p in c] for c in curves]
    if any(s != steps[0] for s in steps):
        raise ValueError(f"the seeds of {method!r} at lr {stored:g} were evaluated at different steps: {steps}")
    return [(points[0][0], sum(p[1] for p in points) / len(points), sum(p[2] for p in points) / len(points))
            for points in zip(*curves)]


def method_points(results: dict, method: str, metric: str = FORGETTING) -> list[dict]:
    """Every (rate, step) of a method as one seed-mean point: {"lr", "step", "accuracy", "forgetting"}."""
    method = require_method(require_results(results), method)
    return [{"lr": lr, "step": step, "accuracy": accuracy, "forgetting": forgetting}
            for lr in results["methods"][method]["lr_grid"]
            for step, accuracy, forgetting in mean_curve(results, method, lr, metric)]


def frontier(points: list[dict]) -> list[dict]:
    """The points of `method_points` that no other beats on both learning and forgetting, by accuracy (a point
    that several rates share, such as step 0, appears once)."""
    points = list(points)
    if not all(isinstance(p, dict) and {"accuracy", "forgetting"} <= set(p) for p in points):
        raise TypeError("frontier takes method_points' dicts ({'lr', 'step', 'accuracy', 'forgetting'})")
    front, seen = [], set()
    for i in pareto_front([(p["accuracy"], p["forgetting"]) for p in points]):
        key = (points[i]["accuracy"], points[i]["forgetting"])
        if key not in seen:
            seen.add(key)
            front.append(points[i])
    return front

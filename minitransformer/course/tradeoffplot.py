"""The trade-off figure of chapters 3-8: new-task learning against base-task forgetting, per method, over its
learning rates and along training, with the method's frontier (the points nothing of its own beats)."""

from __future__ import annotations

from ..experiments import tradeoff
from .style import legend_outside, method_style

XLABELS = {"forgetting_tokens": "forgetting: share of base-task answer characters lost (fraction)",
           "forgetting_em": "forgetting: drop in base-task exact match (fraction)"}


def plot_tradeoff(ax, results: dict, methods: list[str], metric: str = tradeoff.FORGETTING, rates: bool = True,
                  title: str | None = None):
    """For each method: its frontier over every rate and evaluation step (a bold line, seed means), and, with
    `rates`, each rate's path along training (thin lines from step 0, a marker at the end of training)."""
    methods = tradeoff.require_methods(tradeoff.require_results(results), methods)
    if not isinstance(rates, bool):
        raise TypeError(f"rates must be True or False, got {rates!r}")
    for name in methods:
        style = method_style(name)
        points = tradeoff.method_points(results, name, metric)
        if rates:
            for lr in results["methods"][name]["lr_grid"]:
                path = [p for p in points if p["lr"] == lr]
                ax.plot([p["forgetting"] for p in path], [p["accuracy"] for p in path], color=style["color"],
                        lw=0.7, alpha=0.35)
                ax.plot(path[-1]["forgetting"], path[-1]["accuracy"], marker=style["marker"], color=style["color"],
                        alpha=0.5, ls="none", markersize=4)
        front = tradeoff.frontier(points)
        ax.plot([p["forgetting"] for p in front], [p["accuracy"] for p in front], color=style["color"],
                marker=style["marker"], lw=2, markersize=5, label=name, drawstyle="steps-post")
    ax.set_xlabel(XLABELS[tradeoff.require_curve_metric(metric)])
    ax.set_ylabel("new-task validation accuracy (fraction)")
    ax.set_xlim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"Learning vs forgetting, {results['steps']} steps: frontier over rates and steps")
    legend_outside(ax)
    return ax

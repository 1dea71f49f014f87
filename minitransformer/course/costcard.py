"""The cost card: for each method, what it trains, what a training step holds in memory, and what it learns
and forgets, in aligned panels that share the method order (drawn by plotting.cost_card)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import LogLocator, NullFormatter

from .style import draw_mean, legend_outside, styles_for

MEMORY_PARTS = [  # key, legend label, colour
    ("weights", "weights", "#9ecae1"),
    ("gradients", "gradients", "#fdae6b"),
    ("optimizer", "optimizer states", "#a1d99b"),
    ("activations", "tensors kept for the backward pass", "#bcbddc"),
]
REQUIRED = ("method", "chapter", "trainable", "total", "memory", "accuracy", "forgetting_em", "forgetting_loss")


def _require_rows(rows):
    rows = list(rows)
    if not rows:
        raise ValueError("cost_card needs at least one row (one per method)")
    seen = set()
    for row in rows:
        name = row.get("method", "?") if isinstance(row, dict) else "?"
        if not isinstance(row, dict):
            raise ValueError(f"each row must be a dict, got {type(row).__name__}")
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise ValueError(f"row {name!r} misses {missing}; a row needs {list(REQUIRED)}")
        if name in seen:
            raise ValueError(f"method {name!r} appears twice; each method is one row")
        seen.add(name)
        parts = [k for k, _, _ in MEMORY_PARTS if k not in row["memory"]]
        if parts:
            raise ValueError(f"row {name!r}: memory misses {parts}; it needs {[k for k, _, _ in MEMORY_PARTS]}")
        if not 0 < row["trainable"] <= row["total"]:
            raise ValueError(f"row {name!r}: trainable={row['trainable']} must be in 1..total={row['total']}")
        for key in ("accuracy", "forgetting_em", "forgetting_loss"):
            if len(list(row[key])) == 0:
                raise ValueError(f"row {name!r}: {key} is empty; give one value per seed")
        if not all(0.0 <= a <= 1.0 for a in row["accuracy"]):
            raise ValueError(f"row {name!r}: accuracy must be fractions in [0, 1], got {list(row['accuracy'])}")
        if not all(-1.0 <= f <= 1.0 for f in row["forgetting_em"]):
            raise ValueError(f"row {name!r}: forgetting_em is a drop in exact match, in [-1, 1], "
                             f"got {list(row['forgetting_em'])}")
    return rows


def _byte_unit(largest: float):
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if largest >= size:
            return unit, size
    return "B", 1.0


def cost_card(rows, axes=None, title=None, current_chapter: int | None = None):
    """Three aligned panels, one row per method (same order in every panel):

    1. trainable parameters (log scale), with the share of the model printed on each bar;
    2. one training step's memory by part (stacked: weights, gradients, optimizer states, tensors kept for
       the backward pass), in readable units;
    3. new-task test accuracy and exact-match forgetting on the base tasks (mean, 95% t-interval, seeds as
       dots), with the loss forgetting (nats per token) on its own axis beside it.

    rows: dicts {"method", "chapter", "trainable", "total", "memory": {weights, gradients, optimizer,
    activations} in bytes, "accuracy": [per seed], "forgetting_em": [per seed], "forgetting_loss": [per seed]}
    (extra keys, e.g. "percent" from memory.method_profile, are ignored). Methods introduced before
    `current_chapter` are drawn muted; the current chapter's are highlighted (None: all highlighted).
    axes: four axes to draw into (panel 3 uses two: accuracy/exact match, then loss), or None for a new figure.
    Returns the figure.
    """
    rows = _require_rows(rows)
    later = [r["method"] for r in rows if current_chapter is not None and r["chapter"] > current_chapter]
    if later:
        raise ValueError(f"{later} are introduced after chapter {current_chapter}; a chapter's card shows its own "
                         "methods and earlier ones")
    own_figure = axes is None
    if own_figure:
        fig, axes = plt.subplots(1, 4, figsize=(17, 3.4 + 0.45 * len(rows)), sharey=True,
                                 gridspec_kw={"width_ratios": [1, 1.2, 1.2, 0.8]})
    else:
        axes = list(np.ravel(axes))
        if len(axes) != 4:
            raise ValueError(f"cost_card draws into 4 axes (panel 3 has two), got {len(axes)}")
        fig = axes[0].figure
    ax_params, ax_mem, ax_score, ax_loss = axes
    names = [r["method"] for r in rows]
    styles = styles_for(names)
    positions = np.arange(len(rows))
    muted = [current_chapter is not None and r["chapter"] < current_chapter for r in rows]
    labels = [f"{r['method']} (ch {r['chapter']})" for r in rows]

    # 1. trainable parameters
    for y, row, mute in zip(positions, rows, muted):
        share = 100.0 * row["trainable"] / row["total"]
        ax_params.barh(y, row["trainable"], color=styles[row["method"]]["color"], alpha=0.35 if mute else 0.9,
                       edgecolor="black" if not mute else "none")
        ax_params.text(row["trainable"], y, f" {share:.3g}%", va="center", fontsize=8)
    ax_params.set_xscale("log")
    low = 10 ** math.floor(math.log10(min(r["trainable"] for r in rows)))
    high = 10 ** math.ceil(math.log10(3 * max(r["trainable"] for r in rows)))
    ax_params.set_xlim(low, high * 3)  # whole decades, room for the % labels
    ax_params.xaxis.set_major_locator(LogLocator(base=10))
    ax_params.xaxis.set_minor_formatter(NullFormatter())
    ax_params.set_xlabel("trainable parameters (log scale)")
    ax_params.set_title("1. Trainable parameters\n(% of the model on each bar)")

    # 2. memory by part
    largest = max(sum(r["memory"][k] for k, _, _ in MEMORY_PARTS) for r in rows)
    unit, size = _byte_unit(largest)
    for y, row, mute in zip(positions, rows, muted):
        left = 0.0
        for key, label, colour in MEMORY_PARTS:
            width = row["memory"][key] / size
            ax_mem.barh(y, width, left=left, color=colour, alpha=0.45 if mute else 1.0,
                        edgecolor="black" if not mute else "none", linewidth=0.5)
            left += width
        ax_mem.text(left, y, f" {left:,.3g} {unit}", va="center", fontsize=8)
    ax_mem.set_xlabel(f"bytes in one training step ({unit})")
    ax_mem.set_title("2. Training-step memory by part")
    ax_mem.margins(x=0.25)
    parts = [Patch(facecolor=colour, edgecolor="black", linewidth=0.5, label=label)
             for _, label, colour in MEMORY_PARTS]
    legends = [(ax_mem, parts, 2)]

    # 3. learning and forgetting
    for y, row, mute in zip(positions, rows, muted):
        style = styles[row["method"]]
        draw_mean(ax_score, y, row["accuracy"], style, horizontal=True, muted=mute, offset=-0.17, jitter=0.06)
        em = {"color": style["color"], "marker": "x"}
        draw_mean(ax_score, y, row["forgetting_em"], em, horizontal=True, muted=mute, offset=0.17, jitter=0.06)
        draw_mean(ax_loss, y, row["forgetting_loss"], style, horizontal=True, muted=mute, jitter=0.1)
    ax_score.axvline(0.0, color="gray", lw=0.8)
    ax_score.set_xlabel("fraction (0 to 1)")
    ax_score.set_title("3a. New-task test accuracy (upper) and\nexact-match drop on base tasks (lower, x)")
    key = [Line2D([], [], marker="o", ls="", color="gray", label="new-task test accuracy"),
           Line2D([], [], marker="x", ls="", color="gray", label="base exact-match drop (forgetting)"),
           Line2D([], [], marker=".", ls="", color="gray", label="one seed")]
    legends.append((ax_score, key, 1))
    ax_loss.axvline(0.0, color="gray", lw=0.8)
    ax_loss.set_xlabel("base-task loss increase\n(nats per token)")
    ax_loss.set_title("3b. Forgetting, loss measure")

    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
    ax_params.set_yticks(positions, labels)
    ax_params.set_ylim(len(rows) - 0.5, -0.5)
    ax_params.set_ylabel("method (chapter introduced)")
    for tick, mute in zip(ax_params.get_yticklabels(), muted):
        tick.set_fontweight("normal" if mute else "bold")
        tick.set_alpha(0.6 if mute else 1.0)
    if title:
        fig.suptitle(title)
    if not own_figure:  # the caller owns the layout: legends just below their axes
        for ax, handles, ncol in legends:
            legend_outside(ax, ncol=ncol, handles=handles, labels=[h.get_label() for h in handles])
        return fig
    bottom = 1.0 / fig.get_figheight()  # one inch under the axes for the legends
    fig.tight_layout(rect=(0, bottom, 1, 1))
    for ax, handles, ncol in legends:
        box = ax.get_position()
        fig.legend(handles, [h.get_label() for h in handles], loc="upper center", ncol=ncol, frameon=False,
                   bbox_to_anchor=(box.x0 + box.width / 2, bottom), bbox_transform=fig.transFigure)
    return fig

"""Plotting helpers for the figures that recur across chapters (matplotlib, PNG in notebooks).

Rules every course figure follows (the helpers here apply them; new figures should call them):
- Every series has its own colour AND marker: `series_style(i)` for up to 16 series, `method_style(name)` for
  a PEFT method, the same in every chapter. The default colour cycle is the same 16 colours.
- A title, and every axis labelled with its unit ("bytes (MB)", "nats per answer token", "fraction").
- Scale: linear where growth is linear (whatever its range) or the values span less than two decades; log
  where they span two decades or more. The caller decides; `axis_scale(values, linear_growth)` states the
  rule in code.
- Legends never cover data: `legend_outside(ax)` puts them below the axes.
- Tick labels never overlap: `tidy_ticks(ax)` rotates x labels that would collide.
- A mean is drawn with its 95% Student-t interval and the individual seeds as dots: `plot_means`.
- Heat maps have a colour bar (`plot_attention`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler

from .costcard import MEMORY_PARTS, cost_card
from .style import (MARKERS, METHOD_STYLES, PALETTE, axis_scale, legend_outside, method_style, draw_mean, plot_means,
                    series_style, styles_for, tidy_ticks)


def use_course_style() -> None:
    """Give every figure made from now on the course's colour cycle (the 16 colours of `style.PALETTE`).

    Each notebook calls it once, after its imports: importing a module does not change matplotlib's settings."""
    plt.rcParams["axes.prop_cycle"] = cycler(color=PALETTE)


def new_axes(ax=None, figsize=(6, 3.5)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def smooth(values, window: int = 25):
    """Moving average (shorter window at the start), so noisy loss curves become readable."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) < 2:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values)
    for i in range(len(values)):
        lo = max(0, i + 1 - window)
        out[i] = (cumulative[i + 1] - cumulative[lo]) / (i + 1 - lo)
    return out


def plot_loss(steps, losses, ax=None, label=None, window: int = 25, title="Training loss", log=True):
    ax = new_axes(ax)
    ax.plot(steps, smooth(losses, window), label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy loss (nats per answer token)")
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if label:
        ax.legend()
    return ax


def plot_attention(weights, tokens, ax=None, title="Attention weights", colorbar=True):
    """A heat map of one head's attention: row = query position, column = key position, with a colour bar
    (weights run from 0 to 1 on every map, so one bar can serve a grid: pass colorbar=False and add it once)."""
    ax = new_axes(ax, figsize=(4, 4))
    image = ax.imshow(np.asarray(weights), cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(tokens)), list(tokens))
    ax.set_yticks(range(len(tokens)), list(tokens))
    ax.set_xlabel("key (attended-to character)")
    ax.set_ylabel("query (current character)")
    ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight (0 to 1)")
    return ax, image


def plot_bars(values: dict, ax=None, title="", xlabel="", ylabel="", log=False, fmt="{:,}"):
    """Horizontal bars, one per key, each labelled with its value."""
    ax = new_axes(ax)
    labels, numbers = list(values), list(values.values())
    bars = ax.barh(labels, numbers, color="tab:blue")
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    for bar, number in zip(bars, numbers):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + fmt.format(number), va="center")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.margins(x=0.25)
    return ax


def draw_block(ax, placement: str = "none", title: str | None = None):
    """Draw a pre-LayerNorm transformer block, bottom to top, with bottleneck adapters where they sit.

    placement: "none", "houlsby" (after attention and after the MLP) or "pfeiffer" (after the MLP).
    """
    from matplotlib.patches import FancyBboxPatch

    if placement not in ("none", "houlsby", "pfeiffer"):
        raise ValueError(f"placement must be 'none', 'houlsby' or 'pfeiffer', got {placement!r}")
    boxes = [("LayerNorm", "#dddddd"), ("attention", "#9ecae1")]
    if placement == "houlsby":
        boxes.append(("adapter", "#fdae6b"))
    boxes.append(("+", None))
    boxes += [("LayerNorm", "#dddddd"), ("MLP", "#a1d99b")]
    if placement in ("houlsby", "pfeiffer"):
        boxes.append(("adapter", "#fdae6b"))
    boxes.append(("+", None))
    y = 0.0
    centres = []
    branch = -0.2  # where the residual stream leaves the main path (just below the sub-layer)
    for label, colour in boxes:
        if colour is None:  # a residual addition: the stream skips the sub-layer and is added back here
            centre = y + 0.25
            ax.add_patch(plt.Circle((0.5, centre), 0.18, fill=False, lw=1.5))
            ax.text(0.5, centre, "+", ha="center", va="center", fontsize=14)
            ax.plot([0.5, -0.35, -0.35], [branch, branch, centre], color="gray", lw=1.2)
            ax.annotate("", xy=(0.32, centre), xytext=(-0.35, centre), arrowprops=dict(arrowstyle="->", color="gray"))
            centres.append(centre)
            branch = centre + 0.3
            y += 0.7
            continue
        ax.add_patch(FancyBboxPatch((0.0, y), 1.0, 0.5, boxstyle="round,pad=0.05", fc=colour, ec="black"))
        text = label if label != "adapter" else "adapter (+ skip)\ndown → ReLU → up"
        ax.text(0.5, y + 0.25, text, ha="center", va="center", fontsize=8 if label == "adapter" else 10)
        centres.append(y + 0.25)
        y += 0.8
    for lower, upper in zip(centres, centres[1:]):
        ax.annotate("", xy=(0.5, upper - 0.3), xytext=(0.5, lower + 0.3), arrowprops=dict(arrowstyle="->"))
    ax.text(0.5, -0.55, "input x", ha="center")
    ax.annotate("", xy=(0.5, -0.02), xytext=(0.5, -0.4), arrowprops=dict(arrowstyle="->"))
    ax.text(-0.4, 0.1, "residual", rotation=90, color="gray", fontsize=8, ha="right")
    ax.text(0.5, y + 0.1, "output", ha="center")
    ax.set_xlim(-0.8, 1.4)
    ax.set_ylim(-0.8, y + 0.4)
    ax.axis("off")
    ax.set_title(title or {"none": "block", "houlsby": "Houlsby adapters", "pfeiffer": "Pfeiffer adapter"}[placement])
    return ax

"""Plotting helpers for the figures that recur across chapters (matplotlib, PNG in notebooks)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


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


def plot_attention(weights, tokens, ax=None, title="Attention weights"):
    """A heat map of one head's attention: row = query position, column = key position."""
    ax = new_axes(ax, figsize=(4, 4))
    image = ax.imshow(np.asarray(weights), cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(tokens)), list(tokens))
    ax.set_yticks(range(len(tokens)), list(tokens))
    ax.set_xlabel("key (attended-to character)")
    ax.set_ylabel("query (current character)")
    ax.set_title(title)
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

"""The course's figure style: distinct colour and marker per series, stable method colours, and the helpers
that keep figures readable (scale rule, legends outside the data, non-overlapping ticks, means with seeds).

plotting.py re-exports everything here; notebooks use `plotting.method_style(...)` and friends.
"""

from __future__ import annotations

import math

import numpy as np

from ..experiments.stats import mean_ci
from ..peft.methods import METHODS

# 16 colours that stay apart from each other (tab10 first, then darker/other hues), and 16 markers.
PALETTE = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#843c39", "#7b4173", "#e7ba52", "#000000",
]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p", "d", "8", "H", "1"]

# Each method the course teaches keeps one slot (colour + marker) in every chapter: its place in the course's one
# list of methods (peft.methods.METHODS). A few common spellings map to the same slot.
METHOD_STYLES = {name: slot for slot, name in enumerate(METHODS)}
ALIASES = {
    "full fine-tuning": "full",
    "last block only": "last block",
    "first block only": "first block",
    "bitfit": "BitFit",
    "ia3": "IA3",
    "(IA)3": "IA3",
    "Houlsby m=8": "Houlsby adapters m=8",
    "Pfeiffer m=8": "Pfeiffer adapter m=8",
}

# A variant of a method (the same method with something added to its training) keeps the method's colour and
# marker, drawn hollow: {"color", "marker", "hollow": True}.
VARIANT_SUFFIXES = (" + replay",)


def _variant_of(name: str) -> str | None:
    """The known method `name` is a variant of ("full + replay" -> "full"), or None."""
    for suffix in VARIANT_SUFFIXES:
        plain = ALIASES.get(name[: -len(suffix)], name[: -len(suffix)])
        if name.endswith(suffix) and plain in METHOD_STYLES:
            return plain
    return None


def series_style(i: int) -> dict:
    """Colour and marker of the i-th series in a figure: {"color", "marker"}, distinct for i < 16."""
    if not isinstance(i, (int, np.integer)) or i < 0:
        raise ValueError(f"series index must be a non-negative integer, got {i!r}")
    return {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)]}


def method_style(name: str) -> dict:
    """The colour and marker a method has in every chapter: {"color", "marker"}.

    Known method names (METHOD_STYLES, ALIASES) have fixed slots; a variant of one ("full + replay") has its
    slot, drawn hollow ("hollow": True). Any other name gets a slot from a stable
    hash of its name, so it is the same in every chapter; use styles_for() to keep a figure's series
    distinct when unknown names could collide.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"method name must be a non-empty string, got {name!r}")
    name = ALIASES.get(name, name)
    if name in METHOD_STYLES:
        return series_style(METHOD_STYLES[name])
    if _variant_of(name):
        return {**series_style(METHOD_STYLES[_variant_of(name)]), "hollow": True}
    import zlib

    return series_style(zlib.crc32(name.encode()) % len(PALETTE))


def styles_for(names) -> dict[str, dict]:
    """A distinct style for each name in one figure: known methods keep their slot, a variant of one keeps its
    slot drawn hollow, other names get the first free slots (up to 16 distinct names; more raise)."""
    names = list(dict.fromkeys(names))
    if len(names) > len(PALETTE):
        raise ValueError(f"at most {len(PALETTE)} distinct series fit one figure, got {len(names)}")
    styles, used = {}, set()
    for name in names:
        key = ALIASES.get(name, name)
        if key in METHOD_STYLES and METHOD_STYLES[key] not in used:
            styles[name] = series_style(METHOD_STYLES[key])
            used.add(METHOD_STYLES[key])
    for name in names:
        if name not in styles and _variant_of(name):  # the plain method's slot, hollow
            styles[name] = method_style(name)
            used.add(METHOD_STYLES[_variant_of(name)])
    free = (i for i in range(len(PALETTE)) if i not in used)
    for name in names:
        if name not in styles:
            i = next(free)
            used.add(i)
            styles[name] = series_style(i)
    return styles


def axis_scale(values, linear_growth: bool = False, decades: float = 2.0) -> str:
    """The course's scale rule: "log" if the positive values span `decades` decades or more, else "linear" —
    except that a quantity known to grow linearly (storage of N copies, memory vs prompt length) always gets
    a linear axis, where its straight line is the message. Parameter counts from a thousand to a million go
    on a log axis.
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("axis_scale needs at least one value")
    if linear_growth or min(values) <= 0:
        return "linear"
    return "log" if math.log10(max(values) / min(values)) >= decades else "linear"


def legend_outside(ax, ncol: int | None = None, title: str | None = None, handles=None, labels=None,
                   below_inches: float = 0.6):
    """Put the legend below the axes, where it cannot cover data: `below_inches` under the axes' bottom edge
    (enough for tick labels and a one-line axis label; pass more for rotated tick labels)."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        raise ValueError("the axes have no labelled series to put in a legend")
    ncol = ncol or min(len(handles), 4)
    height = max(ax.get_position().height * ax.figure.get_figheight(), 0.5)  # the axes' height in inches
    return ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -below_inches / height), ncol=ncol,
                     frameon=False, title=title)


def tidy_ticks(ax, rotation: int = 35):
    """Rotate the x tick labels if any two of them overlap once drawn (and right-align them)."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
    boxes.sort(key=lambda b: b.x0)
    if any(a.x1 > b.x0 for a, b in zip(boxes, boxes[1:])):
        for label in ax.get_xticklabels():
            label.set_rotation(rotation)
            label.set_horizontalalignment("right")
    return ax


def draw_mean(ax, position: float, values, style: dict, horizontal: bool = False, label=None,
              muted: bool = False, seed_dots: bool = True, jitter: float = 0.08, offset: float = 0.0):
    """One mean with its 95% t-interval as an error bar, and each seed as a small dot beside it."""
    values = [float(v) for v in values]
    mean, low, high = mean_ci(values)
    alpha = 0.35 if muted else 1.0
    error = [[mean - low], [high - mean]]
    where = position + offset
    face = "white" if style.get("hollow") else style["color"]
    if horizontal:
        ax.errorbar([mean], [where], xerr=error, fmt=style["marker"], color=style["color"], capsize=3,
                    alpha=alpha, label=label, markersize=7, zorder=3, markerfacecolor=face)
    else:
        ax.errorbar([where], [mean], yerr=error, fmt=style["marker"], color=style["color"], capsize=3,
                    alpha=alpha, label=label, markersize=7, zorder=3, markerfacecolor=face)
    if seed_dots and len(values) > 1:
        spread = np.linspace(-jitter, jitter, len(values)) + where
        if horizontal:
            ax.scatter(values, spread, s=10, color=style["color"], alpha=0.6 * alpha, zorder=2, linewidths=0)
        else:
            ax.scatter(spread, values, s=10, color=style["color"], alpha=0.6 * alpha, zorder=2, linewidths=0)
    return mean, low, high


def plot_means(ax, groups: dict, title: str | None = None, ylabel: str | None = None, xlabel: str = "",
               styles: dict | None = None):
    """For each label, the mean over its values (seeds) with a 95% Student-t interval and the seeds as dots.

    groups: {label: [value per seed]}. Returns {label: (mean, low, high)}.
    """
    if not groups:
        raise ValueError("plot_means needs at least one group")
    for label, values in groups.items():
        if len(list(values)) == 0:
            raise ValueError(f"group {label!r} has no values")
    styles = styles or styles_for(groups)
    out = {}
    for i, (label, values) in enumerate(groups.items()):
        out[label] = draw_mean(ax, i, values, styles[label], label=label)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_xlim(-0.6, len(groups) - 0.4)
    if title:
        ax.set_title(title)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", alpha=0.3)
    tidy_ticks(ax)
    return out

"""Every public plotting function renders on small data with a title, labelled axes, and a legend where
there are several series; series get distinct colours and markers; bad input is refused clearly."""

import inspect

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from minitransformer.course import plotting  # noqa: E402


def rows(chapters=(3, 4, 5)):
    out = []
    for i, chapter in enumerate(chapters):
        out.append({"method": ["full", "BitFit", "LoRA q,v r=8", "IA3", "custom"][i], "chapter": chapter,
                    "trainable": 10 ** (5 - i), "total": 10 ** 5,
                    "memory": {"weights": 400_000, "gradients": 4 * 10 ** (5 - i), "optimizer": 8 * 10 ** (5 - i),
                               "activations": 3_000_000},
                    "accuracy": [0.8, 0.85, 0.9], "forgetting_em": [0.1, 0.0, 0.2],
                    "forgetting_loss": [0.3, 0.2, 0.4]})
    return out


def labelled(ax):
    return bool(ax.get_title()) and bool(ax.get_xlabel() or ax.get_xticklabels()) and bool(ax.get_ylabel())


def render_plot_loss():
    ax = plotting.plot_loss([0, 1, 2, 3], [3.0, 2.0, 1.5, 1.2], label="a")
    plotting.plot_loss([0, 1, 2, 3], [3.1, 2.5, 2.0, 1.9], ax=ax, label="b")
    assert len(ax.get_legend().get_texts()) == 2
    colours = [line.get_color() for line in ax.get_lines()]
    assert len(set(colours)) == 2
    return [ax]


def render_plot_attention():
    ax, image = plotting.plot_attention([[1.0, 0.0], [0.4, 0.6]], "ab")
    assert image.colorbar is not None and image.colorbar.ax.get_ylabel()
    return [ax]


def render_plot_bars():
    return [plotting.plot_bars({"a": 1, "b": 2}, title="t", xlabel="count", ylabel="part")]


def render_draw_block():
    _, ax = plt.subplots()
    plotting.draw_block(ax, "houlsby")
    assert ax.get_title()
    return []  # a diagram: no axes to label


def render_plot_means():
    _, ax = plt.subplots()
    out = plotting.plot_means(ax, {"full": [0.8, 0.9, 0.85], "LoRA q,v r=8": [0.7, 0.75, 0.72]},
                              title="accuracy", ylabel="fraction (0 to 1)", xlabel="method")
    assert out["full"][1] < out["full"][0] < out["full"][2]
    return [ax]


def render_cost_card():
    fig = plotting.cost_card(rows(), title="card", current_chapter=5)
    ax_params, ax_mem, ax_score, ax_loss = fig.axes[:4]
    assert ax_params.get_xscale() == "log"
    legend_texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "tensors kept for the backward pass" in legend_texts and "new-task test accuracy" in legend_texts
    assert "nats" in ax_loss.get_xlabel()
    assert [t.get_text().strip() for t in ax_params.texts] == ["100%", "10%", "1%"]
    assert ax_params.get_ylabel()  # the other panels share its method axis
    return [ax_params, ax_mem, ax_score, ax_loss]


def render_smooth():
    assert list(plotting.smooth([1.0, 3.0], window=2)) == [1.0, 2.0]
    return []


RENDERERS = {name[len("render_"):]: f for name, f in globals().items() if name.startswith("render_")}
STYLE_HELPERS = {"new_axes", "series_style", "method_style", "styles_for", "axis_scale", "legend_outside",
                 "tidy_ticks", "draw_mean", "cycler", "use_course_style"}


def public_functions():
    return sorted(name for name, f in inspect.getmembers(plotting, inspect.isfunction) if not name.startswith("_"))


def test_every_public_plotting_function_is_rendered_here():
    missing = [name for name in public_functions() if name not in RENDERERS and name not in STYLE_HELPERS]
    assert not missing, f"add a render_ test for {missing}"


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_renders_with_title_and_labelled_axes(name):
    try:
        for ax in RENDERERS[name]():
            assert ax.get_title(), f"{name}: no title"
            assert ax.get_xlabel(), f"{name}: no x label"
            assert ax.get_ylabel() or name == "cost_card", f"{name}: no y label"
    finally:
        plt.close("all")


def test_sixteen_series_have_distinct_colours_and_markers():
    styles = [plotting.series_style(i) for i in range(16)]
    assert len({s["color"] for s in styles}) == 16 and len({s["marker"] for s in styles}) == 16
    shown = plotting.styles_for(list(plotting.METHOD_STYLES)[:15] + ["a method without a slot"])
    assert len({s["color"] for s in shown.values()}) == len(shown) == 16
    with pytest.raises(ValueError, match="at most 16"):
        plotting.styles_for([f"series {i}" for i in range(17)])
    assert plotting.method_style("full") == plotting.method_style("full fine-tuning")
    assert plotting.method_style("full") != plotting.method_style("prompt tuning, 8")
    assert plotting.method_style("last block") != plotting.method_style("IA3")


def test_a_variant_of_a_method_keeps_its_colour_and_marker_drawn_hollow():
    full, replay = plotting.method_style("full"), plotting.method_style("full + replay")
    assert replay == {**full, "hollow": True} and "hollow" not in full
    assert plotting.method_style("full fine-tuning + replay") == replay
    assert "hollow" not in plotting.method_style("no such method + replay")
    shown = plotting.styles_for(["full", "full + replay", "LoRA q,v r=8 + replay", "a method without a slot"])
    assert shown["full"] == full and shown["full + replay"] == replay
    assert shown["LoRA q,v r=8 + replay"] == {**plotting.method_style("LoRA q,v r=8"), "hollow": True}
    assert shown["a method without a slot"]["color"] not in {full["color"], shown["LoRA q,v r=8 + replay"]["color"]}
    fig, ax = plt.subplots()
    try:
        plotting.plot_means(ax, {"full": [1, 2], "full + replay": [1, 2]}, styles=shown)
        faces = [line.get_markerfacecolor() for line in ax.get_lines() if line.get_marker() == full["marker"]]
        assert faces == [full["color"], "white"]
    finally:
        plt.close(fig)


def test_scale_rule():
    assert plotting.axis_scale([1, 2, 3, 50]) == "linear"
    assert plotting.axis_scale([1_000, 100_000]) == "log"
    assert plotting.axis_scale(range(1, 101), linear_growth=True) == "linear"


def test_overlapping_tick_labels_are_rotated():
    _, ax = plt.subplots(figsize=(2, 2))
    ax.set_xticks(range(6), [f"a long label {i}" for i in range(6)])
    plotting.tidy_ticks(ax)
    assert all(t.get_rotation() != 0 for t in ax.get_xticklabels())
    plt.close("all")


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("forgetting_loss"), "misses"),
    (lambda r: r["memory"].pop("activations"), "memory misses"),
    (lambda r: r.update(accuracy=[85.0]), "accuracy must be fractions"),
    (lambda r: r.update(trainable=0), "trainable"),
    (lambda r: r.update(accuracy=[]), "accuracy is empty"),
])
def test_cost_card_refuses_bad_rows(change, message):
    bad = rows()
    change(bad[1])
    with pytest.raises(ValueError, match=message):
        plotting.cost_card(bad)
    plt.close("all")


def test_cost_card_draws_into_the_callers_axes():
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    assert plotting.cost_card(rows((3,)), axes=axes) is fig
    assert axes[1].get_legend() is not None and axes[0].get_xlabel()
    with pytest.raises(ValueError, match="introduced after chapter 3"):
        plotting.cost_card(rows((3, 4)), current_chapter=3)
    with pytest.raises(ValueError, match="4 axes"):
        plotting.cost_card(rows((3,)), axes=axes[:3])
    plt.close("all")


def test_importing_plotting_changes_no_matplotlib_setting_and_use_course_style_does():
    import os
    import subprocess
    import sys

    code = ("import matplotlib; default = matplotlib.rcParams['axes.prop_cycle']; "
            "from minitransformer.course import plotting; "
            "assert matplotlib.rcParams['axes.prop_cycle'] == default, 'importing plotting changed the colour cycle'; "
            "plotting.use_course_style(); "
            "assert matplotlib.rcParams['axes.prop_cycle'].by_key()['color'] == plotting.PALETTE")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"MPLBACKEND": "Agg", **os.environ})
    assert result.returncode == 0, result.stderr[-500:]

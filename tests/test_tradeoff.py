"""Learning against forgetting: a task without a shortcut, a bounded forgetting score, curves along training that do
not change training, paired statistics, forgetting at matched accuracy and the Pareto front."""

import math

import pytest

import minitransformer as mt
from minitransformer import data
from minitransformer.evaluate import base_task_scores, eval_set, evaluate_base_tasks, exact_match, token_accuracy
from minitransformer.experiments import tradeoff
from minitransformer.experiments.protocol import TRADEOFF_METRICS, Method, Study, run_one
from minitransformer.experiments.stats import expected_false_alarms, mean_ci, paired_difference
from minitransformer.peft.methods import METHODS
from minitransformer.runtime import EVAL_SEED


def rule_accuracy(examples, read):
    """Accuracy of "sorted iff the digits `read` picks are sorted" (it never calls a sorted string unsorted)."""
    right = 0
    for e in examples:
        digits = read(e.prompt[1:-1])
        right += (list(digits) == sorted(digits)) == bool(e.label)
    return right / len(examples)


FIRST_3, LAST_3 = (lambda s: s[:3]), (lambda s: s[-3:])


# --- the task ------------------------------------------------------------------------------------------------


def test_is_sorted_hard_has_no_three_digit_shortcut_where_is_sorted_has_one():
    hard = data.make_examples("is_sorted_hard", 4000, seed=2024)
    old = data.make_examples("is_sorted", 4000, seed=2024)
    assert abs(sum(e.label for e in hard) / len(hard) - 0.5) < 0.03
    for read in (FIRST_3, LAST_3):
        assert rule_accuracy(hard, read) < 0.72  # about 0.69: (k - 1) / (n - 1) of the swaps are seen
        assert rule_accuracy(old, read) > 0.8  # the shortcut the old negatives leave
    assert rule_accuracy(hard, lambda s: s) == 1.0  # reading the whole string solves it


def test_every_negative_of_is_sorted_hard_is_one_adjacent_swap_of_a_sorted_string():
    for e in data.make_examples("is_sorted_hard", 2000, seed=7):
        digits = e.prompt[1:-1]
        assert e.prompt[0] == "?" and data.MIN_LEN <= len(digits) <= data.MAX_LEN
        if e.label:
            assert data.descent_category(e) == "sorted"
        else:
            assert data.descent_category(e) in ("one swap at an end", "one swap inside")
            assert sorted(digits) != list(digits)


def test_descent_categories_name_where_a_string_breaks_order():
    def example(digits):
        return data.Example("is_sorted", "?" + digits + "=", label=int(list(digits) == sorted(digits)))

    assert data.descent_category(example("1234")) == "sorted"
    assert data.descent_category(example("2134")) == "one swap at an end"
    assert data.descent_category(example("1243")) == "one swap at an end"
    assert data.descent_category(example("13245")) == "one swap inside"
    assert data.descent_category(example("3121")) == "several descents"


def test_a_new_task_leaves_every_other_held_out_set_as_it_was():
    old_order = sorted(["copy", "is_palindrome", "is_sorted", "reverse", "shift", "sort"])
    for task in old_order:
        assert eval_set(task, 50) == data.make_examples(task, 50, EVAL_SEED + old_order.index(task))
    assert sorted(data.EVAL_OFFSETS) == sorted(data.TASKS)
    assert len(set(data.EVAL_OFFSETS.values())) == len(data.EVAL_OFFSETS)


# --- the forgetting score --------------------------------------------------------------------------------------


def test_token_accuracy_is_bounded_graded_and_at_least_exact_match():
    base = mt.load_base()
    examples = eval_set("reverse", 100)
    tokens, exact = token_accuracy(base, examples), exact_match(base, examples)
    assert 0.0 <= exact <= tokens <= 1.0
    scores = base_task_scores(base, 100)
    assert scores["exact_match"] == evaluate_base_tasks(base, 100)
    assert scores["token_accuracy"]["reverse"] == tokens
    assert scores["token_accuracy"]["mean"] == pytest.approx(sum(scores["token_accuracy"][t] for t in data.BASE_TASKS) / 3)


def test_token_accuracy_names_what_it_needs():
    with pytest.raises(TypeError, match=r"token_accuracy needs a language model.*token_accuracy\(model.base"):
        token_accuracy(mt.Classifier(mt.load_base()), eval_set("copy", 5))
    with pytest.raises(ValueError, match="examples must be generative examples; 'is_sorted' is not one"):
        token_accuracy(mt.load_base(), eval_set("is_sorted", 5))


# --- runs and studies -------------------------------------------------------------------------------------------


SMALL = dict(steps=20, n_val=20, n_test=20, n_base=10, task="is_sorted_hard")


def test_a_curve_along_training_leaves_the_run_exactly_as_without_it():
    lora = METHODS["LoRA q,v r=8"]
    plain = run_one(lora, 3e-2, seed=1, **SMALL)
    traced = run_one(lora, 3e-2, seed=1, curve_every=10, **SMALL)
    assert all(traced[k] == plain[k] for k in plain if k != "ms_per_step")
    assert [p["step"] for p in traced["curve"]] == [0, 10, 20]
    assert traced["curve"][0]["forgetting_tokens"] == 0.0  # LoRA starts as the base: nothing lost yet
    assert traced["curve"][-1]["val_accuracy"] == traced["val_accuracy"]
    assert traced["curve"][-1]["forgetting_tokens"] == traced["forgetting_tokens"]


def test_a_study_names_its_metrics_and_a_curve_step_that_divides_its_budget():
    method = {"full": Method(None, (1e-3,))}
    assert Study("s", method, metrics=TRADEOFF_METRICS, curve_every=25).curve_every == 25
    with pytest.raises(ValueError, match=r"unknown metrics \['forgetting'\]"):
        Study("s", method, metrics=("test_accuracy", "forgetting"))
    with pytest.raises(ValueError, match=r"curve_every must be 0 or an int that divides steps \(150\), got 40"):
        Study("s", method, curve_every=40)


# --- statistics --------------------------------------------------------------------------------------------------


def test_a_paired_difference_sees_what_overlapping_intervals_hide():
    a = [0.50, 0.60, 0.70, 0.80, 0.90]  # seeds differ a lot ...
    b = [0.45, 0.56, 0.64, 0.75, 0.86]  # ... and b is below a on every one of them
    mean, low, high = paired_difference(a, b)
    assert mean == pytest.approx(0.048) and low > 0
    assert mean_ci(a)[1] < mean_ci(b)[2]  # the unpaired intervals overlap
    with pytest.raises(ValueError, match="one value per seed on both sides, got 5 and 4"):
        paired_difference(a, b[:4])


def test_many_comparisons_bring_false_alarms():
    assert expected_false_alarms(20) == pytest.approx(1.0)
    assert expected_false_alarms(91, level=0.99) == pytest.approx(0.91)
    with pytest.raises(ValueError, match="comparisons must be a count"):
        expected_false_alarms(-1)


# --- reading trade-offs -----------------------------------------------------------------------------------------


def test_forgetting_at_an_accuracy_is_read_where_the_curve_first_reaches_it():
    points = [(0, 0.5, 0.0), (25, 0.7, 0.2), (50, 0.9, 0.6), (75, 0.8, 0.7)]
    assert tradeoff.forgetting_at_accuracy(points, 0.8) == pytest.approx(0.4)  # halfway from 0.7 to 0.9
    assert tradeoff.forgetting_at_accuracy(points, 0.9) == pytest.approx(0.6)
    assert tradeoff.forgetting_at_accuracy(points, 0.5) == 0.0
    assert tradeoff.forgetting_at_accuracy(points, 0.95) is None


def _results(curves):
    runs = [{"method": m, "lr": lr, "seed": s, "curve": [{"step": i * 25, "val_accuracy": a, "forgetting_tokens": f}
                                                        for i, (a, f) in enumerate(points)]}
            for (m, lr, s), points in curves.items()]
    return {"study": "toy", "methods": {m: {} for m, _, _ in curves}, "runs": runs}


def test_matched_forgetting_takes_each_seeds_best_rate_and_pairs_the_seeds():
    results = _results({
        ("A", 0.1, 0): [(0.5, 0.0), (0.9, 0.4)], ("A", 0.3, 0): [(0.5, 0.0), (0.9, 0.8)],
        ("A", 0.1, 1): [(0.5, 0.0), (0.9, 0.5)], ("A", 0.3, 1): [(0.5, 0.0), (0.7, 0.9)],
        ("B", 0.1, 0): [(0.5, 0.0), (0.9, 0.6)], ("B", 0.1, 1): [(0.5, 0.0), (0.9, 0.7)],
    })
    assert tradeoff.matched_forgetting(results, "A", 0.9) == {0: 0.4, 1: 0.5}
    compared = tradeoff.compare_at_accuracy(results, "A", "B", 0.9)
    assert compared["seeds"] == [0, 1] and compared["difference"][0] == pytest.approx(-0.2)
    with pytest.raises(ValueError, match=r"no runs of 'C'; it has \['A', 'B'\]"):
        tradeoff.matched_forgetting(results, "C", 0.9)


def test_the_pareto_front_keeps_the_points_nothing_beats():
    points = [(0.9, 0.8), (0.8, 0.3), (0.85, 0.9), (0.6, 0.1), (0.6, 0.2), (0.95, 0.95)]
    assert tradeoff.pareto_front(points) == [3, 1, 0, 5]
    with pytest.raises(ValueError, match=r"a point is \(accuracy, forgetting\), two finite numbers; got \(0.5, nan\)"):
        tradeoff.pareto_front([(0.5, math.nan)])


def test_a_run_without_a_curve_says_so():
    with pytest.raises(ValueError, match="records no curve"):
        tradeoff.curve({"method": "full", "lr": 1e-3, "seed": 0})


# --- the shipped shared study: what the bounded score buys -------------------------------------------------------


def test_on_the_shared_study_the_bounded_score_is_in_range_and_tells_more_methods_apart():
    from minitransformer.experiments import load_study

    results = load_study("tradeoff")
    methods = [m for m, e in results["methods"].items() if "replay" not in m and m != "head only"]  # 13 methods
    summary = {m: results["methods"][m]["summary"] for m in methods}
    saturated = {metric: [m for m in methods if summary[m][metric][0] >= 0.9]
                 for metric in ("forgetting_tokens", "forgetting_em")}
    assert not saturated["forgetting_tokens"] and len(saturated["forgetting_em"]) >= 6
    assert sum(summary[m]["forgetting_loss"][0] > math.log(35) for m in methods) >= 6  # past a uniform guess
    apart = {metric: sum(p["apart"] for p in tradeoff.separated_pairs(results, metric, methods))
             for metric in ("forgetting_tokens", "forgetting_em", "forgetting_loss")}
    assert apart["forgetting_tokens"] > apart["forgetting_loss"] > apart["forgetting_em"], apart


def test_the_trade_off_figure_draws_one_labelled_frontier_per_method():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minitransformer.course.tradeoffplot import plot_tradeoff
    from minitransformer.experiments import load_study

    results = load_study("tradeoff")
    fig, ax = plt.subplots()
    plot_tradeoff(ax, results, ["full", "LoRA q,v r=8"])
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["full", "LoRA q,v r=8"]
    front = tradeoff.frontier(tradeoff.method_points(results, "full"))
    assert [p["accuracy"] for p in front] == sorted(p["accuracy"] for p in front)
    assert [p["forgetting"] for p in front] == sorted(p["forgetting"] for p in front)  # more learning costs more
    plt.close(fig)


def test_accuracy_by_category_splits_the_accuracy_without_changing_it():
    from minitransformer.evaluate import accuracy_by_category, classification_accuracy

    model = mt.Classifier(mt.load_base())
    examples = eval_set("is_sorted", 200)
    parts = accuracy_by_category(model, examples)
    assert set(parts) <= {"sorted", "one swap at an end", "one swap inside", "several descents"}
    assert sum(n for _, n in parts.values()) == 200
    assert sum(a * n for a, n in parts.values()) / 200 == pytest.approx(classification_accuracy(model, examples))


# --- careless inputs get named errors ------------------------------------------------------------------------------


def test_per_seed_dicts_pair_on_their_seeds_and_one_seed_is_not_an_interval():
    assert paired_difference({0: 0.9, 1: 0.8, 2: 0.7}, {2: 0.6, 0: 0.8, 1: 0.7})[0] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="at least two shared seeds, got 1"):
        paired_difference({0: 0.9, 1: 0.8}, {1: 0.5, 2: 0.4})
    with pytest.raises(TypeError, match="both sides as .seed: value. dicts"):
        paired_difference({0: 0.9, 1: 0.8}, [0.5, 0.4])
    with pytest.raises(ValueError, match="finite numbers, got inf"):
        paired_difference([1.0, math.inf], [0.0, 0.0])


def test_trade_off_readers_name_a_percentage_a_typo_and_a_score_not_on_the_curve():
    from minitransformer.experiments import load_study

    results = load_study("tradeoff")
    with pytest.raises(ValueError, match="looks like a percentage: use 0.9"):
        tradeoff.matched_forgetting(results, "full", 90)
    with pytest.raises(ValueError, match=r"no runs of 'ful'; it has \["):
        tradeoff.method_points(results, "ful")
    with pytest.raises(ValueError, match="the loss is measured at the end of training only"):
        tradeoff.mean_curve(results, "full", 3e-3, "forgetting_loss")
    with pytest.raises(ValueError, match=r"reports .* not 'forgetting_tokens'"):
        tradeoff.at_chosen_rate(load_study("showdown"), "full", "forgetting_tokens")
    with pytest.raises(ValueError, match=r"no runs of 'full' at lr 0.005; its rates: \["):
        tradeoff.mean_curve(results, "full", 0.005)
    with pytest.raises(TypeError, match="methods must be a non-empty list"):
        tradeoff.separated_pairs(results, "test_accuracy", "full")
    far = tradeoff.compare_at_accuracy(results, "head only", "IA3", 0.95)
    assert far["difference"] is None and "a paired interval needs two" in far["why"]


def test_a_study_refuses_metric_names_given_as_one_string_or_an_empty_recheck():
    method = {"full": Method(None, (1e-3,))}
    with pytest.raises(TypeError, match="metrics must be a tuple of metric names"):
        Study("s", method, metrics="test_accuracy")
    assert Study("s", method, metrics=["test_accuracy"]).metrics == ("test_accuracy",)  # a list is kept as a tuple
    with pytest.raises(ValueError, match=r"unknown live_rechecked \['val_acc'\]"):
        Study("s", method, live_rechecked=("val_acc",))
    with pytest.raises(ValueError, match="curve_every must be 0 or an int"):
        Study("s", method, curve_every=True)


def test_descent_categories_are_for_is_sorted_only():
    with pytest.raises(ValueError, match="reads is_sorted and is_sorted_hard examples, got 'is_palindrome'"):
        data.descent_category(data.make_examples("is_palindrome", 1, seed=0)[0])


def test_a_study_whose_seeds_cannot_bound_a_new_seed_refuses_a_live_recheck():
    from minitransformer.experiments import load_study, recheck, rechecked

    results = load_study("tradeoff_long")
    assert rechecked(results) == ()
    with pytest.raises(ValueError, match="'tradeoff_long' is not re-checked live"):
        recheck(results)
    assert rechecked(load_study("tradeoff")) == ("val_accuracy", "test_accuracy")

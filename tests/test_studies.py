"""Every shipped study result: complete under the protocol (tuned on validation, rate inside its grid, >= 5
seeds, test intervals) and consistent with the study module that made it; the command refuses bad arguments;
replay works."""

import importlib

import pytest

from minitransformer import experiments
from minitransformer.experiments.__main__ import main as run_command
from minitransformer.data import ReplaySampler
from minitransformer.experiments.stats import mean_ci

SHIPPED = sorted(p.stem for p in experiments.RESULTS.glob("*.json"))


def study_of(name):
    return importlib.import_module(f"minitransformer.experiments.studies.{name}").STUDY


@pytest.fixture(scope="module", params=SHIPPED)
def shipped(request):
    return experiments.load_study(request.param), study_of(request.param)


def test_every_study_module_has_shipped_results_and_back():
    modules = sorted(p.stem for p in experiments.RESULTS.parent.glob("*.py") if p.stem != "__init__")  # studies/ holds results/
    assert SHIPPED == modules and "showdown" in SHIPPED


def test_every_method_of_the_study_is_in_the_file_with_its_grid_and_seeds(shipped):
    results, study = shipped
    assert results["study"] == study.name
    assert results["command"] == f"python -m minitransformer.experiments {study.name}"
    assert set(results["methods"]) == set(study.methods)
    assert results["seeds"] == list(study.seeds) and len(results["seeds"]) >= 5
    for name, entry in results["methods"].items():
        grid = entry["lr_grid"]
        assert grid == sorted(grid), name
        assert set(study.methods[name].lrs) <= set(grid), f"{name}: the study's grid is not all in the file"
        assert set(grid) - set(study.methods[name].lrs) == set(entry["extended"]), name
        assert set(map(float, entry["val_by_lr"])) == set(grid), name


def test_every_chosen_rate_is_inside_its_grid(shipped):
    results, study = shipped
    if not study.tune:
        assert all("chosen_lr" not in e for e in results["methods"].values())
        return
    at_edge = {name: (e["chosen_lr"], e["lr_grid"]) for name, e in results["methods"].items()
               if e["at_edge"] or e["chosen_lr"] in (e["lr_grid"][0], e["lr_grid"][-1]) or len(e["lr_grid"]) < 3}
    assert not at_edge, f"chosen learning rate at an end of its grid: {at_edge}"


def test_each_run_of_every_grid_point_and_seed_is_there_once(shipped):
    results, _ = shipped
    done = [(r["method"], r["lr"], r["seed"]) for r in results["runs"]]
    wanted = {(m, lr, s) for m, e in results["methods"].items() for lr in e["lr_grid"] for s in results["seeds"]}
    assert len(done) == len(set(done)) and set(done) == wanted


def test_the_chosen_rate_is_the_best_mean_validation_accuracy(shipped):
    results, study = shipped
    if not study.tune:
        return
    for name, entry in results["methods"].items():
        mine = [r for r in results["runs"] if r["method"] == name]
        assert entry["chosen_lr"] == experiments.choose_lr(mine, "val_accuracy"), name


def test_summaries_are_test_means_with_intervals_over_the_seeds(shipped):
    results, study = shipped
    if not study.tune:
        return
    for name, entry in results["methods"].items():
        chosen = sorted((r for r in results["runs"] if r["method"] == name and r["lr"] == entry["chosen_lr"]),
                        key=lambda r: r["seed"])
        for metric in results.get("metrics", experiments.METRICS):
            values = entry["test"][metric]
            assert values == [r[metric] for r in chosen] and len(values) == len(results["seeds"]), (name, metric)
            mean, low, high = entry["summary"][metric]
            assert low <= mean <= high, (name, metric)
            assert (mean, low, high) == pytest.approx(mean_ci(values)), (name, metric)


def test_the_command_names_a_bad_process_count_and_an_unknown_study(capsys):
    with pytest.raises(SystemExit):
        run_command(["showdown", "--processes", "0"])
    assert "--processes must be at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_command(["shwdown"])
    assert "unknown study 'shwdown'; known studies:" in capsys.readouterr().err


def test_a_profile_counts_what_is_trained_and_what_is_saved():
    profile = experiments.method_costs(experiments.load_study("showdown"), "LoRA q,v r=8")
    assert 0 < profile["trainable"] < profile["total"]
    assert set(profile["memory"]) == {"weights", "gradients", "optimizer", "activations"}
    # the saved file holds the trainable fp32 numbers (LoRA and the head) plus a small header
    assert 4 * profile["trainable"] <= profile["adapter_bytes"] < 4 * profile["trainable"] + 4096


def test_replay_batches_mix_in_base_task_data():
    batch = ReplaySampler("is_sorted", 0.25, batch_size=64, seed=0)()
    assert batch["x"].shape[0] == 48 and batch["replay"]["x"].shape[0] == 16
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\), got 1.5"):
        ReplaySampler("is_sorted", 1.5)


def test_a_recheck_samples_the_runs_the_chapter_reports(shipped):
    results, study = shipped
    sample = experiments.sample_runs(results, n=3)
    assert len(sample) == min(3, len(results["runs"]))
    for run in sample:
        if study.tune:
            assert run["lr"] == results["methods"][run["method"]]["chosen_lr"], run
    assert sample == experiments.sample_runs(results, n=3)  # a fixed rule: the same runs every time
    with pytest.raises(ValueError, match="n must be a positive int, got 0"):
        experiments.sample_runs(results, n=0)


def _others_allowed(results, method, lr, metric, runs, left_out):
    others = [r[metric] for r in runs if r is not left_out]
    low, high = experiments.allowed_range(results, method, lr, metric, others)
    margin = (high - max(others) + (min(others) - low)) / 2 / experiments.SPREAD  # one range (or floor)
    value = experiments.comparable(metric, left_out[metric])
    others = [experiments.comparable(metric, v) for v in others]
    return max(min(others) - value, value - max(others), 0.0) / margin


def test_the_recheck_margin_is_justified_by_the_studies_own_seeds():
    # Leave one seed out at a time: how many of its method's ranges (at its rate) does it lie beyond the other
    # seeds? A live run on another machine is another seed, so the margin must cover every such case.
    worst, checked = 0.0, 0
    for name in SHIPPED:
        results = experiments.load_study(name)
        for run in experiments.reported_runs(results):
            runs = [r for r in results["runs"] if r["method"] == run["method"] and r["lr"] == run["lr"]]
            for metric in experiments.rechecked(results):
                worst = max(worst, _others_allowed(results, run["method"], run["lr"], metric, runs, run))
                checked += 1
    assert checked > 1000
    assert worst <= experiments.SPREAD, f"a shipped run lies {worst:.2f} ranges beyond its method's other seeds"


def test_a_live_value_is_judged_against_the_stored_seeds_spread():
    results = experiments.load_study("showdown")
    method, lr = "full", results["methods"]["full"]["chosen_lr"]
    values = experiments.seed_values(results, method, lr, "test_accuracy")
    low, high = experiments.allowed_range(results, method, lr, "test_accuracy")
    assert low < min(values) <= max(values) < high
    rows = experiments.check_consistent(results, method, lr, {"test_accuracy": max(values) + 0.01}, seed=99)
    assert rows[0]["same_seed"] is None and rows[0]["seeds"] == (min(values), max(values))
    with pytest.raises(AssertionError, match=r"full at lr .* gives test_accuracy 0\.3.*outside"):
        experiments.check_consistent(results, method, lr, {"test_accuracy": 0.3}, seed=0)
    bitfit_lr = results["methods"]["BitFit"]["chosen_lr"]  # seeds that agree closely: a tight range
    with pytest.raises(AssertionError, match="BitFit"):
        experiments.check_consistent(results, "BitFit", bitfit_lr, {"test_accuracy": 0.6})
    # a loss rise past a uniform guess is compared capped: 20 nats is "everything lost", like the seeds' 5-7
    assert experiments.LOSS_CEILING < min(experiments.seed_values(results, method, lr, "forgetting_loss"))
    experiments.check_consistent(results, method, lr, {"forgetting_loss": 20.0})
    with pytest.raises(AssertionError, match="capped at 3.56 nats"):
        experiments.check_consistent(results, method, lr, {"forgetting_loss": 0.5})
    with pytest.raises(ValueError, match="no method 'ful'"):
        experiments.seed_values(results, "ful", lr, "test_accuracy")
    with pytest.raises(ValueError, match="no runs of 'full' at lr 0.123"):
        experiments.seed_values(results, "full", 0.123, "test_accuracy")


def test_live_reruns_take_their_seed_offset_from_the_environment(monkeypatch):
    monkeypatch.delenv(experiments.LIVE_SEED_OFFSET, raising=False)
    assert experiments.live_seed(3) == 3
    monkeypatch.setenv(experiments.LIVE_SEED_OFFSET, "1000")
    assert experiments.live_seed(3) == 1003
    monkeypatch.setenv(experiments.LIVE_SEED_OFFSET, "ten")
    with pytest.raises(ValueError, match="must be a whole number .* got 'ten'"):
        experiments.live_seed(3)

"""The shipped showdown results: complete under the protocol (tuned on validation, rate inside its grid, >= 5
seeds, test intervals), consistent with the study that made them; the old command is an alias; replay works."""

import pytest

from minitransformer import experiment, showdown
from minitransformer.data import ReplaySampler
from minitransformer.stats import mean_ci
from minitransformer.studies.showdown import STUDY


@pytest.fixture(scope="module")
def results():
    return experiment.load_study("showdown")


def test_every_method_of_the_study_is_in_the_file_with_its_grid_and_seeds(results):
    assert results["study"] == "showdown" and results["command"] == "python -m minitransformer.experiment showdown"
    assert set(results["methods"]) == set(STUDY.methods)
    assert len(results["seeds"]) >= 5
    for name, entry in results["methods"].items():
        grid = entry["lr_grid"]
        assert grid == sorted(grid) and len(grid) >= 3, name
        assert set(STUDY.methods[name].lrs) <= set(grid), f"{name}: the study's grid is not all in the file"
        assert set(grid) - set(STUDY.methods[name].lrs) == set(entry["extended"]), name
        assert set(map(float, entry["val_by_lr"])) == set(grid), name


def test_every_chosen_rate_is_inside_its_grid(results):
    at_edge = {name: (e["chosen_lr"], e["lr_grid"]) for name, e in results["methods"].items()
               if e["at_edge"] or e["chosen_lr"] in (e["lr_grid"][0], e["lr_grid"][-1])}
    assert not at_edge, f"chosen learning rate at an end of its grid: {at_edge}"


def test_each_run_of_every_grid_point_and_seed_is_there_once(results):
    done = [(r["method"], r["lr"], r["seed"]) for r in results["runs"]]
    wanted = {(m, lr, s) for m, e in results["methods"].items() for lr in e["lr_grid"] for s in results["seeds"]}
    assert len(done) == len(set(done)) and set(done) == wanted


def test_the_chosen_rate_is_the_best_mean_validation_accuracy(results):
    for name, entry in results["methods"].items():
        mine = [r for r in results["runs"] if r["method"] == name]
        assert entry["chosen_lr"] == experiment.choose_lr(mine, "val_accuracy"), name


def test_summaries_are_test_means_with_intervals_over_the_seeds(results):
    for name, entry in results["methods"].items():
        chosen = sorted((r for r in results["runs"] if r["method"] == name and r["lr"] == entry["chosen_lr"]),
                        key=lambda r: r["seed"])
        for metric in experiment.METRICS:
            values = entry["test"][metric]
            assert values == [r[metric] for r in chosen] and len(values) == len(results["seeds"]), (name, metric)
            mean, low, high = entry["summary"][metric]
            assert low <= mean <= high, (name, metric)
            assert (mean, low, high) == pytest.approx(mean_ci(values)), (name, metric)


def test_the_old_command_is_an_alias_of_the_study(capsys):
    assert set(showdown.METHODS) == {n for n, m in STUDY.methods.items() if not m.replay}
    assert showdown.RESULTS == experiment.results_path("showdown")
    with pytest.raises(SystemExit):
        showdown.main(["--processes", "0"])
    assert "--processes must be at least 1, got 0" in capsys.readouterr().err


def test_a_profile_counts_what_is_trained_and_what_is_saved():
    profile = showdown.profile("LoRA q,v r=8")
    assert 0 < profile["trainable"] < profile["total"]
    assert set(profile["memory"]) == {"weights", "gradients", "optimizer", "activations"}
    # the saved file holds the trainable fp32 numbers (LoRA and the head) plus a small header
    assert 4 * profile["trainable"] <= profile["adapter_bytes"] < 4 * profile["trainable"] + 4096


def test_replay_batches_mix_in_base_task_data():
    batch = ReplaySampler("is_sorted", 0.25, batch_size=64, seed=0)()
    assert batch["x"].shape[0] == 48 and batch["replay"]["x"].shape[0] == 16
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\), got 1.5"):
        ReplaySampler("is_sorted", 1.5)

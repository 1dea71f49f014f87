"""The shipped showdown results: complete, consistent with the code that made them, and replay works."""

import json

import pytest

from minitransformer import showdown
from minitransformer.data import ReplaySampler


@pytest.fixture(scope="module")
def results():
    return json.loads(showdown.RESULTS.read_text())


def test_every_method_lr_and_seed_was_run(results):
    done = {(r["method"], r["lr"], r["seed"]) for r in results["runs"]}
    wanted = {(m, lr, s) for m, (_, lrs) in showdown.METHODS.items() for lr in lrs for s in showdown.SEEDS}
    assert done == wanted and len(results["seeds"]) >= 3
    assert set(results["tuned_lr"]) == set(showdown.METHODS)


def test_profiles_match_the_code(results):
    for method in ("LoRA q,v r=8", "IA3", "full"):
        assert showdown.profile(method) == results["profiles"][method]


def test_a_shipped_run_is_reproduced_within_tolerance(results):
    method = "Pfeiffer adapter m=8"
    lr = results["tuned_lr"][method]
    live = showdown.run(method, lr, seed=1)
    shipped = next(r for r in results["runs"] if r["method"] == method and r["lr"] == lr and r["seed"] == 1)
    assert abs(live["accuracy"] - shipped["accuracy"]) < 0.05
    assert abs(live["forgetting"] - shipped["forgetting"]) < 0.25


def test_replay_batches_mix_in_base_task_data():
    batch = ReplaySampler("is_sorted", 0.25, batch_size=64, seed=0)()
    assert batch["x"].shape[0] == 48 and batch["replay"]["x"].shape[0] == 16
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\), got 1.5"):
        ReplaySampler("is_sorted", 1.5)

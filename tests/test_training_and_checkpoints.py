"""Training, evaluation, checkpoints and the shipped base model."""

import json
import shutil

import pytest
import torch

from minitransformer import BASE_TASKS, MiniTransformer, ModelConfig, TaskSampler, generate, make_examples, train
from minitransformer.checkpoint import (BASE_CHECKPOINT, load_base, load_checkpoint, read_checkpoint_info,
                                        save_checkpoint, sha256_of, state_sha256)
from minitransformer.pretrain import Recipe, pretrain
from minitransformer.evaluate import evaluate_base_tasks, exact_match


def test_loss_decreases():
    torch.manual_seed(0)
    model = MiniTransformer()
    history = train(model, TaskSampler(BASE_TASKS, 32, seed=0), steps=60, lr=3e-3, progress=False)
    assert sum(history.losses[-10:]) / 10 < 0.75 * sum(history.losses[:5]) / 5


def test_only_trainable_parameters_change():
    torch.manual_seed(0)
    model = MiniTransformer()
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("blocks.1.")
    before = {n: p.clone() for n, p in model.named_parameters()}
    train(model, TaskSampler("copy", 16, seed=0), steps=3, progress=False)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) != p.requires_grad, name


def test_training_nothing_is_an_error():
    model = MiniTransformer()
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(model, TaskSampler("copy", 4), steps=1, progress=False)
    with pytest.raises(ValueError, match="steps must be a positive int, got 0"):
        train(MiniTransformer(), TaskSampler("copy", 4), steps=0, progress=False)


def test_eval_callback_is_recorded():
    history = train(MiniTransformer(), TaskSampler("copy", 8), steps=4, eval_every=2, progress=False,
                    eval_fn=lambda: {"answer": 42})
    assert [e["step"] for e in history.evals] == [0, 2, 4]


def test_teacher_forced_exact_match_equals_greedy_generation():
    base = load_base()
    examples = make_examples(BASE_TASKS, 60, seed=99)
    greedy = [a == e.answer for a, e in zip(generate(base, [e.prompt for e in examples]), examples)]
    assert exact_match(base, examples) == sum(greedy) / len(greedy)


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = MiniTransformer(ModelConfig(n_layer=1, d_model=32))
    path = save_checkpoint(model, tmp_path / "tiny", {"note": "test"})
    assert path.suffix == ".safetensors" and path.with_suffix(".json").exists()
    loaded = load_checkpoint(tmp_path / "tiny")
    ids = torch.randint(0, 35, (2, 10))
    assert torch.equal(loaded(ids), model.eval()(ids))
    assert loaded.config == model.config
    assert read_checkpoint_info(tmp_path / "tiny")["metadata"] == {"note": "test"}


def test_corrupted_checkpoint_is_refused(tmp_path):
    save_checkpoint(MiniTransformer(ModelConfig(n_layer=1)), tmp_path / "m")
    weights = tmp_path / "m.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted or was replaced: its sha256 is"):
        load_checkpoint(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="no checkpoint metadata"):
        load_checkpoint(tmp_path / "missing")


def test_shipped_base_matches_its_metadata():
    info = read_checkpoint_info()
    weights = BASE_CHECKPOINT.with_suffix(".safetensors")
    assert sha256_of(weights) == info["sha256"]
    assert weights.stat().st_size == info["bytes"]
    meta = info["metadata"]
    for key in ("recipe", "exact_match", "train_seconds", "loss_curve", "parameters"):
        assert key in meta
    assert meta["recipe"]["seed"] == 0 and meta["recipe"]["threads"] == 1
    assert meta["parameters"] == sum(p.numel() for p in load_base().parameters())


def test_shipped_base_solves_the_base_tasks():
    scores = evaluate_base_tasks(load_base())
    assert all(scores[task] >= 0.98 for task in BASE_TASKS), scores


def test_pretraining_is_deterministic():
    recipe = Recipe(steps=25, batch_size=16, warmup=5)
    config = ModelConfig(n_layer=1, d_model=32)
    first, meta = pretrain(recipe, config, progress=False)
    second, _ = pretrain(recipe, config, progress=False)
    assert state_sha256(first) == state_sha256(second)
    assert meta["recipe"]["steps"] == 25 and set(meta["exact_match"]) == {*BASE_TASKS, "mean"}


def test_pretrain_command_writes_a_loadable_checkpoint(tmp_path):
    from minitransformer.pretrain import main

    main(["--out", str(tmp_path / "b"), "--steps", "5", "--batch-size", "8", "--warmup", "1", "--n-layer", "1",
          "--no-progress"])
    info = json.loads((tmp_path / "b.json").read_text())
    assert info["config"]["n_layer"] == 1 and info["metadata"]["recipe"]["steps"] == 5
    load_checkpoint(tmp_path / "b")


@pytest.mark.parametrize("n_layer", [4, 6])
def test_deeper_shipped_bases_load_and_know_the_base_tasks(n_layer):
    model = load_base(n_layer)
    assert model.config.n_layer == n_layer
    assert evaluate_base_tasks(model, 300)["mean"] >= 0.98


def test_unknown_base_depth_is_an_error():
    with pytest.raises(ValueError, match=r"no shipped base with n_layer=3; shipped: \[2, 4, 6\]"):
        load_base(3)

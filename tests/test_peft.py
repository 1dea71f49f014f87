"""The PEFT methods: identity at init, exact disable, gradients only where trainable, formulas, merging,
named adapters, adapter-only checkpoints, and errors on bad input."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import minitransformer as mt
from minitransformer import Classifier, peft
from minitransformer.counts import count_parameters
from minitransformer.memory import training_step_memory
from minitransformer.data import encode
from minitransformer.train import loss_on_batch

D, L, HIDDEN = 64, 2, 256
ADDITIVE = {
    "lora": lambda m, name="t": peft.add_lora(m, name, r=4),
    "lora_all": lambda m, name="t": peft.add_lora(m, name, targets="all-linear", r=2),
    "adapter": lambda m, name="t": peft.add_adapters(m, name, bottleneck=8),
    "pfeiffer": lambda m, name="t": peft.add_adapters(m, name, placement="pfeiffer", bottleneck=8),
    "ia3": lambda m, name="t": peft.add_ia3(m, name),
    "prefix": lambda m, name="t": peft.add_prefix(m, name, length=4),
    "prompt": lambda m, name="t": peft.add_prompt(m, name, length=4),
    "prompt_shift": lambda m, name="t": peft.add_prompt(m, name, length=4, positions="shift"),
}
IDENTITY_AT_INIT = ("lora", "lora_all", "adapter", "pfeiffer", "ia3")


@pytest.fixture(scope="module")
def base():
    return mt.load_base()


@pytest.fixture
def ids():
    return torch.randint(0, 35, (4, 14), generator=torch.Generator().manual_seed(0))


def fresh_classifier():
    torch.manual_seed(0)
    return Classifier(mt.load_base())


def cls_batch(n=32, seed=0):
    return encode(mt.make_examples("is_sorted", n, seed=seed))


def train_steps(model, steps=3, lr=1e-2):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for step in range(steps):
        optimizer.zero_grad()
        loss_on_batch(model, cls_batch(seed=step)).backward()
        optimizer.step()


def perturb_adapters(model):
    """Give every adapter non-trivial weights, as training would."""
    with torch.no_grad():
        for _, layer in peft.peft_layers(model):
            for name in layer.adapter_names():
                for p in layer.adapter_parameters(name):
                    p.add_(torch.randn_like(p) * 0.05)


@pytest.mark.parametrize("method", IDENTITY_AT_INIT)
def test_a_new_adapter_leaves_the_output_unchanged(method, base, ids):
    model = mt.load_base()
    ADDITIVE[method](model)
    assert torch.equal(model(ids), base(ids))


def test_houlsby_init_is_near_identity(base, ids):
    model = mt.load_base()
    peft.add_adapters(model, init="houlsby")
    difference = (model(ids) - base(ids)).abs().max().item()
    assert 0 < difference < 0.01 * base(ids).abs().max().item()  # under 1% of the logits' scale


@pytest.mark.parametrize("method", ["prefix", "prompt", "prompt_shift"])
def test_prefix_and_prompt_change_the_output_from_the_start(method, base, ids):
    model = mt.load_base()
    ADDITIVE[method](model)
    assert not torch.allclose(model(ids), base(ids), atol=1e-3)


@pytest.mark.parametrize("method", ADDITIVE)
def test_disabling_adapters_gives_back_the_base_exactly(method, base, ids):
    model = mt.load_base()
    ADDITIVE[method](model)
    perturb_adapters(model)
    assert not torch.equal(model(ids), base(ids))
    with peft.disable_adapters(model):
        assert torch.equal(model(ids), base(ids))
    assert not torch.equal(model(ids), base(ids))  # back on after the block


@pytest.mark.parametrize("method", list(ADDITIVE) + ["bitfit", "last_k", "layernorm", "head"])
def test_gradients_reach_only_trainable_parameters(method):
    clf = fresh_classifier()
    if method in ADDITIVE:
        ADDITIVE[method](clf)
    else:
        peft.select(clf, method, k=1)
    before = {n: p.detach().clone() for n, p in clf.named_parameters()}
    train_steps(clf)
    for name, p in clf.named_parameters():
        if p.requires_grad:
            assert not torch.equal(p, before[name]), f"{name} is trainable but did not change"
        else:
            assert p.grad is None and torch.equal(p, before[name]), f"{name} is frozen but changed"
    assert clf.head.weight.requires_grad  # the task head always trains


def trainable(model):
    return count_parameters(model)["trainable"]


def test_parameter_counts_match_their_formulas():
    head = D * 2 + 2
    counts = {}
    for method in ADDITIVE:
        clf = fresh_classifier()
        ADDITIVE[method](clf)
        counts[method] = trainable(clf) - head
    assert counts["lora"] == L * 2 * 4 * (D + D)  # r (in + out) on q and v
    assert counts["lora_all"] == L * 2 * (4 * (D + D) + (D + HIDDEN) + (HIDDEN + D))
    assert counts["adapter"] == L * 2 * (D * 8 + 8 + 8 * D + D)  # down + up, with biases, at two sites
    assert counts["pfeiffer"] == L * (D * 8 + 8 + 8 * D + D)
    assert counts["ia3"] == L * (D + D + HIDDEN)  # keys, values, MLP activations
    assert counts["prefix"] == L * 2 * 4 * D  # keys and values, 4 vectors each, per layer
    assert counts["prompt"] == 4 * D
    for method, expected in {
        "bitfit": sum(p.numel() for n, p in mt.load_base().named_parameters() if n.endswith("bias")),
        "last_k": sum(p.numel() for p in mt.load_base().blocks[1].parameters()),
        "layernorm": (2 * L + 1) * 2 * D,
        "full": sum(p.numel() for p in mt.load_base().parameters()),
    }.items():
        clf = fresh_classifier()
        peft.select(clf, method, k=1)
        assert trainable(clf) - head == expected, method


def test_rank_stabilised_scaling():
    model = mt.load_base()
    peft.add_lora(model, "plain", r=16, alpha=8)
    peft.add_lora(model, "rs", r=16, alpha=8, rslora=True)
    layer = model.blocks[0].attn.q_proj
    assert layer.scaling["plain"] == 8 / 16 and layer.scaling["rs"] == 8 / 4


def test_merge_is_exact_and_unmerge_restores_the_weight(ids):
    model = mt.load_base()
    original = model.blocks[0].attn.q_proj.weight.detach().clone()
    peft.add_lora(model, r=4)
    perturb_adapters(model)
    unmerged = model(ids).detach()
    peft.merge_lora(model)
    assert torch.allclose(model(ids), unmerged, atol=1e-5)
    assert not torch.equal(model.blocks[0].attn.q_proj.base_layer.weight, original)
    with pytest.raises(ValueError, match="already merged"):
        peft.merge_lora(model)
    with pytest.raises(ValueError, match="merged into the weight; unmerge it first"):
        peft.delete_adapter(model, "default")
    with peft.disable_adapters(model):  # even merged, disabling gives the base
        assert torch.equal(model(ids), mt.load_base()(ids))
    peft.unmerge_lora(model)
    assert torch.equal(model.blocks[0].attn.q_proj.base_layer.weight, original)
    assert torch.equal(model(ids), unmerged)
    with pytest.raises(ValueError, match="nothing to unmerge"):
        peft.unmerge_lora(model)


def test_merge_and_unload_gives_a_plain_model_with_the_same_outputs(ids):
    model = mt.load_base()
    peft.add_lora(model, targets="all-linear", r=4)
    perturb_adapters(model)
    adapted = model(ids).detach()
    plain = peft.merge_and_unload(model)
    assert peft.peft_layers(plain) == []
    assert all(type(m) is torch.nn.Linear for n, m in plain.named_modules() if n.endswith(("_proj", "fc_in", "fc_out")))
    assert torch.allclose(plain(ids), adapted, atol=1e-5)


def test_named_adapters_switch_without_reloading_the_base(base, ids):
    model = mt.load_base()
    peft.add_lora(model, "task_a", r=4)
    perturb_adapters(model)
    only_a = model(ids).detach()
    peft.add_lora(model, "task_b", r=4)
    assert peft.active_adapters(model) == ["task_b"]
    assert torch.equal(model(ids), base(ids))  # b is new (B = 0) and a is inactive
    peft.set_active(model, "task_a")
    assert torch.equal(model(ids), only_a)
    assert "adapter 'task_a' (lora): 4 layers, 2,048 parameters, active, trainable" in peft.describe(model)
    assert "adapter 'task_b' (lora): 4 layers, 2,048 parameters, inactive, frozen" in peft.describe(model)
    peft.delete_adapter(model, "task_a")
    peft.delete_adapter(model, "task_b")
    assert peft.peft_layers(model) == [] and set(model.state_dict()) == set(base.state_dict())
    with pytest.raises(ValueError, match=r"no adapter named 'task_a'; the model has no adapters"):
        peft.set_active(model, "task_a")


def test_different_kinds_stack(base, ids):
    model = mt.load_base()
    peft.add_lora(model, "lora", r=4)
    peft.add_ia3(model, "ia3")
    perturb_adapters(model)
    peft.set_active(model, ["lora", "ia3"])
    assert {n for n, p in model.named_parameters() if p.requires_grad} >= {"blocks.0.attn.k_proj.scales.ia3"}
    with peft.disable_adapters(model):
        assert torch.equal(model(ids), base(ids))


def test_target_matching_nothing_lists_what_exists():
    with pytest.raises(ValueError, match=r"target 'query' matches no linear layer; the linear layers are: blocks\.0\.attn\.q_proj"):
        peft.add_lora(mt.load_base(), targets=["query"])
    with pytest.raises(ValueError, match="not a valid regular expression"):
        peft.add_lora(mt.load_base(), targets="blocks.(")
    assert len(peft.add_lora(mt.load_base(), targets=r"blocks\.1\.mlp\..*")) == 2
    with pytest.raises(ValueError, match="LoRA rank r must be a positive int, got 0"):
        peft.add_lora(mt.load_base(), r=0)
    with pytest.raises(ValueError, match=r"placement must be one of \['houlsby', 'pfeiffer'\], got 'after'"):
        peft.add_adapters(mt.load_base(), placement="after")
    with pytest.raises(ValueError, match="pattern 'nothing' matches no parameter"):
        peft.unfreeze(mt.load_base(), "nothing")
    with pytest.raises(ValueError, match="k must be an int in 0..2"):
        peft.unfreeze_blocks(mt.load_base(), last=3)


def test_prompt_must_fit_in_the_context():
    model = mt.load_base()
    peft.add_prompt(model, length=20)
    model(torch.zeros(1, 12, dtype=torch.long))
    with pytest.raises(ValueError, match=r"20 virtual prompt tokens \+ 13 input tokens = 33 exceed the context length"):
        model(torch.zeros(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match="leaves no room for input"):
        peft.add_prompt(mt.load_base(), length=32)


def test_memory_helpers_work_on_every_method():
    for method in ADDITIVE:
        clf = fresh_classifier()
        ADDITIVE[method](clf)
        report = training_step_memory(clf, cls_batch())
        n, tensors = trainable(clf), sum(1 for p in clf.parameters() if p.requires_grad)
        assert report.gradients == 4 * n and report.optimizer == 8 * n + 4 * tensors, method
        assert report.activations > 0


# --- adapter-only checkpoints ---------------------------------------------------------------------

@pytest.mark.parametrize("method", list(ADDITIVE) + ["bitfit"])
def test_save_then_load_gives_identical_outputs(method, tmp_path):
    clf = fresh_classifier()
    ADDITIVE[method](clf) if method in ADDITIVE else peft.select(clf, method)
    train_steps(clf, steps=2)
    weights = peft.save_adapter(clf, tmp_path / method)
    batch = cls_batch(seed=9)
    expected = clf(batch["x"], batch["positions"])
    fresh = Classifier(mt.load_base())
    peft.load_adapter(fresh, tmp_path / method)
    assert torch.equal(fresh(batch["x"], batch["positions"]), expected)
    config = json.loads((tmp_path / method / "adapter_config.json").read_text())
    assert config["head"] == {"num_classes": 2} and "head.weight" in config["tensors"]
    assert weights.stat().st_size < 60_000  # the full model is 430 KB


def test_lora_checkpoint_holds_only_the_adapter(tmp_path):
    model = mt.load_base()
    peft.add_lora(model, r=8)
    weights = peft.save_adapter(model, tmp_path / "a")
    assert set(load_file(str(weights))) == {f"blocks.{i}.attn.{p}_proj.lora_{m}.weight"
                                           for i in range(2) for p in "qv" for m in "AB"}
    assert 16_000 < weights.stat().st_size < 20_000  # 4,096 floats plus a header


@pytest.fixture
def saved(tmp_path):
    clf = fresh_classifier()
    peft.add_lora(clf, "task", r=4)
    train_steps(clf, steps=1)
    peft.save_adapter(clf, tmp_path / "saved")
    return tmp_path / "saved"


def assert_untouched(model, reference_state):
    assert peft.peft_layers(model) == []
    state = model.state_dict()
    assert set(state) == set(reference_state) and all(torch.equal(state[k], reference_state[k]) for k in state)


def rewrite(folder, mutate):
    """Change the tensors of a saved adapter and keep its sha256 valid, to test the key checks."""
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    mutate(tensors)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = json.loads((folder / "adapter_config.json").read_text())
    import hashlib
    config["sha256"] = hashlib.sha256((folder / "adapter_model.safetensors").read_bytes()).hexdigest()
    (folder / "adapter_config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("problem, words", [
    ("other_base", "trained on a different base model"),
    ("other_config", "different config"),
    ("missing_key", "keys missing ['blocks.0.attn.q_proj.lora_A.weight']"),
    ("extra_key", "unexpected keys ['blocks.9.extra']"),
    ("bad_shape", "the file holds shape (3, 64), the model expects (4, 64)"),
    ("corrupted", "corrupted or was replaced"),
    ("no_head", "comes with a 2-class task head"),
    ("other_head", "task head has 2 classes, the model's has 3"),
])
def test_bad_loads_raise_clear_errors_and_leave_the_model_untouched(problem, words, saved):
    base = mt.load_base()
    model = Classifier(base)
    if problem == "other_base":
        with torch.no_grad():
            base.blocks[0].mlp.fc_in.bias.add_(1e-3)
    elif problem == "other_config":
        model = Classifier(mt.MiniTransformer(mt.ModelConfig(n_layer=1)))
    elif problem == "missing_key":
        rewrite(saved, lambda t: t.pop("blocks.0.attn.q_proj.lora_A.weight"))
    elif problem == "extra_key":
        rewrite(saved, lambda t: t.update({"blocks.9.extra": torch.zeros(2)}))
    elif problem == "bad_shape":
        rewrite(saved, lambda t: t.update({"blocks.0.attn.q_proj.lora_A.weight": torch.zeros(3, 64)}))
    elif problem == "corrupted":
        data = bytearray((saved / "adapter_model.safetensors").read_bytes())
        data[-3] ^= 0xFF
        (saved / "adapter_model.safetensors").write_bytes(bytes(data))
    elif problem == "no_head":
        model = base
    elif problem == "other_head":
        model = Classifier(base, num_classes=3)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=__import__("re").escape(words)):
        peft.load_adapter(model, saved)
    assert_untouched(model, reference)


def test_loading_for_inference_or_for_more_training(saved):
    model = Classifier(mt.load_base())
    peft.load_adapter(model, saved)
    assert count_parameters(model)["trainable"] == 0
    with pytest.raises(ValueError, match="pass trainable=True to keep training"):
        mt.train(model, lambda: cls_batch(), steps=1, progress=False)
    again = Classifier(mt.load_base())
    peft.load_adapter(again, saved, trainable=True)
    assert count_parameters(again)["trainable"] > 0
    with pytest.raises(ValueError, match="already has an adapter named 'task'"):
        peft.load_adapter(again, saved)


def test_saving_asks_which_adapter_when_there_are_several(tmp_path):
    model = mt.load_base()
    peft.add_lora(model, "a")
    peft.add_ia3(model, "b")
    with pytest.raises(ValueError, match=r"several adapters \['a', 'b'\]; pass name="):
        peft.save_adapter(model, tmp_path / "x")
    peft.save_adapter(model, tmp_path / "x", name="b")
    assert json.loads((tmp_path / "x" / "adapter_config.json").read_text())["method"] == "ia3"


# --- every method learns the new task better than a frozen-model probe -----------------------------

PROBE_METHODS = {
    "full": (lambda m: None, 1e-3),
    "last block": (lambda m: peft.select(m, "last_k", k=1), 1e-3),
    "bitfit": (lambda m: peft.select(m, "bitfit"), 1e-2),
    "layernorm": (lambda m: peft.select(m, "layernorm"), 1e-2),
    "houlsby adapters": (lambda m: peft.add_adapters(m, bottleneck=8), 3e-3),
    "pfeiffer adapters": (lambda m: peft.add_adapters(m, placement="pfeiffer", bottleneck=8), 3e-3),
    "lora q,v": (lambda m: peft.add_lora(m, r=4, alpha=4), 3e-3),
    "lora all-linear": (lambda m: peft.add_lora(m, targets="all-linear", r=4, alpha=4), 3e-3),
    "prompt": (lambda m: peft.add_prompt(m, length=8), 1e-2),
    "prefix": (lambda m: peft.add_prefix(m, length=8), 1e-2),
    "ia3": (lambda m: peft.add_ia3(m), 1e-2),
}


def fine_tune(prepare, lr, steps=150):
    from minitransformer.evaluate import classification_accuracy, eval_set

    mt.setup()
    clf = Classifier(mt.load_base())
    prepare(clf)
    mt.train(clf, mt.TaskSampler("is_sorted", 64, seed=1), steps=steps, lr=lr, warmup=10, progress=False)
    return classification_accuracy(clf, eval_set("is_sorted", 500))


@pytest.fixture(scope="module")
def probe_accuracy():
    return fine_tune(peft.freeze_base, 1e-2)


@pytest.mark.parametrize("method", PROBE_METHODS)
def test_each_method_beats_the_frozen_model_probe(method, probe_accuracy):
    accuracy = fine_tune(*PROBE_METHODS[method])
    assert accuracy >= probe_accuracy + 0.05, f"{method}: {accuracy:.3f} vs probe {probe_accuracy:.3f}"

"""Interop with Hugging Face PEFT: HF loads an exported course adapter, the course imports an HF-saved adapter,
with the same outputs; unsupported HF options are refused by name; a failed import changes nothing."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # HF wraps the course's own model: nothing to download

import peft as hf  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import minitransformer as mt  # noqa: E402
from minitransformer import Classifier, peft  # noqa: E402
from minitransformer.peft.hf import export_hf, hf_tensor_name, import_hf  # noqa: E402

TOL = 1e-5  # float rounding; in practice the outputs agree exactly

COURSE = {
    "lora_qv": lambda m: peft.add_lora(m, "a", r=8, alpha=16),
    "lora_all_linear": lambda m: peft.add_lora(m, "a", targets="all-linear", r=4, alpha=8),
    "rslora": lambda m: peft.add_lora(m, "a", r=8, alpha=8, rslora=True),
    "ia3": lambda m: peft.add_ia3(m, "a"),
}
LINEARS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out"]  # the course's all-linear, by name
HF = {
    "lora_qv": lambda: hf.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], modules_to_save=["head"]),
    "lora_all_linear": lambda: hf.LoraConfig(r=4, lora_alpha=8, target_modules=LINEARS, modules_to_save=["head"]),
    "rslora": lambda: hf.LoraConfig(r=8, lora_alpha=8, use_rslora=True, target_modules=["q_proj", "v_proj"],
                                    modules_to_save=["head"]),
    "ia3": lambda: hf.IA3Config(target_modules=["k_proj", "v_proj", "fc_out"], feedforward_modules=["fc_out"],
                                modules_to_save=["head"]),
}


@pytest.fixture
def ids():
    return torch.randint(0, 35, (6, 14), generator=torch.Generator().manual_seed(0))


def classifier():
    mt.setup()
    return Classifier(mt.load_base(), num_classes=2)


def like_trained(model):
    """Give every trainable tensor values far from its init (B = 0, scales = 1 would hide mistakes)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and "lm_head" not in name:  # HF's lm_head copy gets no gradient in a Classifier
                p.copy_(torch.randn(p.shape, generator=g) * 0.2 + (1.0 if ("scales" in name or "ia3" in name) else 0.0))
    return model


def outputs(model, ids):
    with torch.no_grad():
        if isinstance(model, hf.PeftModel):
            model = model.get_base_model()
        if isinstance(model, Classifier):
            return model(ids, torch.full((ids.shape[0],), ids.shape[1] - 1))
        return model(ids)


def hf_saved(tmp_path, kind, model=None):
    """An adapter trained (here: randomised) and saved by HF PEFT itself; returns (folder, its outputs)."""
    model = model if model is not None else classifier()
    wrapped = hf.get_peft_model(model, HF[kind]() if isinstance(kind, str) else kind)
    like_trained(wrapped)
    wrapped.save_pretrained(tmp_path / "hf")
    return tmp_path / "hf", wrapped


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", list(COURSE))
def test_hf_loads_an_exported_course_adapter_with_the_same_outputs(tmp_path, ids, kind):
    course = classifier()
    COURSE[kind](course)
    like_trained(course)
    export_hf(course, "a", tmp_path / "x")
    loaded = hf.PeftModel.from_pretrained(classifier(), tmp_path / "x")
    assert (outputs(loaded, ids) - outputs(course, ids)).abs().max() < TOL
    with safe_open(str(tmp_path / "x" / "adapter_model.safetensors"), "pt") as f:
        assert f.metadata()["format"] == "pt"


@pytest.mark.parametrize("kind", list(HF))
def test_the_course_imports_an_hf_saved_adapter_with_the_same_outputs(tmp_path, ids, kind):
    folder, wrapped = hf_saved(tmp_path, kind)
    course = classifier()
    assert import_hf(course, folder) == "default"
    assert (outputs(course, ids) - outputs(wrapped, ids)).abs().max() < TOL
    assert peft.active_adapters(course) == ["default"]


def test_hf_all_linear_on_the_language_model_includes_lm_head_and_imports(tmp_path, ids):
    mt.setup()
    folder, wrapped = hf_saved(tmp_path, hf.LoraConfig(r=4, target_modules="all-linear"), mt.load_base())
    lm = mt.load_base()
    import_hf(lm, folder, name="hf")
    assert "lm_head" in {n.rsplit(".", 1)[0] for n, _ in lm.named_modules() if n.endswith(".lora_A")}
    assert (outputs(lm, ids) - outputs(wrapped, ids)).abs().max() < TOL


def test_a_round_trip_through_hf_keeps_every_number(tmp_path):
    course = classifier()
    peft.add_lora(course, "a", r=4)
    like_trained(course)
    export_hf(course, "a", tmp_path / "x")
    loaded = hf.PeftModel.from_pretrained(classifier(), tmp_path / "x")
    loaded.save_pretrained(tmp_path / "back")
    again = classifier()
    import_hf(again, tmp_path / "back", name="a")
    mine = {k: v for k, v in course.state_dict().items()}
    assert same_state(mine, again.state_dict())


def test_hf_merge_of_ia3_matches_the_course_merge(tmp_path, ids):
    course = classifier()
    peft.add_ia3(course, "a")
    like_trained(course)
    export_hf(course, "a", tmp_path / "x")
    merged_hf = hf.PeftModel.from_pretrained(classifier(), tmp_path / "x").merge_and_unload()
    peft.merge_ia3(course, "a")
    hf_weights = dict(merged_hf.named_parameters())
    for name in ("base.blocks.0.attn.k_proj.weight", "base.blocks.1.mlp.fc_out.weight"):
        ours = course.get_parameter(name.replace("k_proj.", "k_proj.base_layer."))
        assert (hf_weights[name] - ours).abs().max() < TOL
    assert (outputs(merged_hf, ids) - outputs(course, ids)).abs().max() < TOL


def test_tensor_names_map_as_hf_writes_them():
    assert hf_tensor_name("base.blocks.0.attn.q_proj.lora_A.task.weight") == \
        "base_model.model.base.blocks.0.attn.q_proj.lora_A.weight"
    assert hf_tensor_name("blocks.1.mlp.act.scales.default") == "base_model.model.blocks.1.mlp.fc_out.ia3_l"
    assert hf_tensor_name("head.bias") == "base_model.model.head.bias"


# --- refusals ------------------------------------------------------------------------------------------------

def rewrite_config(folder, **changes):
    file = folder / "adapter_config.json"
    config = json.loads(file.read_text())
    config.update(changes)
    file.write_text(json.dumps(config))


@pytest.mark.parametrize("changes, named", [
    ({"use_dora": True}, "use_dora"),
    ({"peft_type": "LOHA"}, "LOHA"),
    ({"init_lora_weights": "pissa"}, "pissa"),
    ({"bias": "all"}, "bias"),
    ({"rank_pattern": {"q_proj": 4}}, "rank_pattern"),
    ({"fan_in_fan_out": True}, "fan_in_fan_out"),
    ({"layer_replication": [[0, 2]]}, "layer_replication"),
])
def test_unsupported_hf_options_are_refused_by_name_and_change_nothing(tmp_path, changes, named):
    folder, _ = hf_saved(tmp_path, "lora_qv")
    rewrite_config(folder, **changes)
    course = classifier()
    before = state(course)
    with pytest.raises(ValueError, match=named):
        import_hf(course, folder)
    assert same_state(before, state(course)) and peft.adapter_names(course) == []


def test_dora_saved_by_hf_is_refused(tmp_path):
    folder, _ = hf_saved(tmp_path, hf.LoraConfig(r=4, target_modules=["q_proj"], use_dora=True, modules_to_save=["head"]))
    with pytest.raises(ValueError, match="DoRA"):
        import_hf(classifier(), folder)


def test_a_copy_of_a_base_weight_imports_only_untouched(tmp_path):
    # peft < 0.22 matched modules_to_save=["head"] as a string suffix and also saved a copy of base.lm_head
    folder, wrapped = hf_saved(tmp_path, "lora_qv")
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    assert "base_model.model.base.lm_head.weight" not in tensors  # peft 0.22 copies the task head alone
    tensors["base_model.model.base.lm_head.weight"] = mt.load_base().lm_head.weight.detach().clone()
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    imported = classifier()
    import_hf(imported, folder)
    assert peft.adapter_names(imported) == ["default"]
    tensors["base_model.model.base.lm_head.weight"] += 1.0
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="lm_head"):
        import_hf(classifier(), folder)


def test_an_adapter_saved_without_its_head_is_refused(tmp_path):
    folder, _ = hf_saved(tmp_path, hf.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with pytest.raises(ValueError, match="modules_to_save"):
        import_hf(classifier(), folder)


def test_hf_all_linear_on_a_classifier_puts_lora_on_the_head_which_is_refused(tmp_path):
    folder, _ = hf_saved(tmp_path, hf.LoraConfig(r=4, target_modules="all-linear"))
    with pytest.raises(ValueError, match="task head"):
        import_hf(classifier(), folder)


def test_a_failed_import_leaves_the_model_exactly_as_it_was(tmp_path):
    folder, _ = hf_saved(tmp_path, "lora_qv")
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    key = "base_model.model.base.blocks.1.attn.v_proj.lora_B.weight"  # the last layer: earlier ones would fit
    tensors[key] = torch.zeros(63, 8)
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    course = classifier()
    peft.add_lora(course, "mine", r=2)
    before, structure = state(course), [(n, type(m)) for n, m in course.named_modules()]
    with pytest.raises(ValueError, match="v_proj"):
        import_hf(course, folder)
    assert same_state(before, state(course))
    assert [(n, type(m)) for n, m in course.named_modules()] == structure
    assert peft.adapter_names(course) == ["mine"] and peft.active_adapters(course) == ["mine"]


def test_an_exported_adapter_is_refused_on_another_base(tmp_path):
    course = classifier()
    peft.add_lora(course, "a")
    export_hf(course, "a", tmp_path / "x")
    other = classifier()
    with torch.no_grad():
        other.base.blocks[0].attn.q_proj.weight.add_(0.01)
    with pytest.raises(ValueError, match="different base"):
        import_hf(other, tmp_path / "x")


def test_import_refuses_a_course_format_folder_and_missing_files(tmp_path):
    course = classifier()
    peft.add_lora(course, "a")
    peft.save_adapter(course, tmp_path / "ours", "a")
    with pytest.raises(ValueError, match="load_adapter"):
        import_hf(classifier(), tmp_path / "ours")
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        import_hf(classifier(), tmp_path / "nothing")


def test_export_refuses_what_hf_cannot_express(tmp_path):
    course = classifier()
    peft.add_adapters(course, "b", bottleneck=4)
    with pytest.raises(ValueError, match="LoRA and IA3 only"):
        export_hf(course, "b", tmp_path / "x")
    course = classifier()
    peft.add_lora(course, "a")
    peft.merge_lora(course, "a")
    with pytest.raises(ValueError, match="unmerge"):
        export_hf(course, "a", tmp_path / "x")
    course = classifier()
    peft.add_lora(course, "a", targets=["q_proj"], r=4)
    peft.add_lora(course, "b", targets=["v_proj"], r=2)
    with pytest.raises(ValueError, match="'zzz'"):
        export_hf(course, "zzz", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_an_adapter_on_the_language_model_exports_and_loads_in_hf(tmp_path, ids):
    mt.setup()
    lm = mt.load_base()
    peft.add_lora(lm, "a", targets=["q_proj", "fc_in"], r=2, alpha=4)
    like_trained(lm)
    export_hf(lm, "a", tmp_path / "x")
    config = json.loads((tmp_path / "x" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["modules_to_save"] is None
    loaded = hf.PeftModel.from_pretrained(mt.load_base(), tmp_path / "x")
    assert (outputs(loaded, ids) - outputs(lm, ids)).abs().max() < TOL


def test_export_refuses_settings_that_differ_per_layer(tmp_path):
    course = classifier()
    peft.add_lora(course, "a", targets=["q_proj"], r=4)
    peft.LoRALinear.attach(course.base, "blocks.0.attn.v_proj", "a", {"r": 2, "alpha": 8, "dropout": 0.0, "rslora": False})
    with pytest.raises(ValueError, match="rank_pattern"):
        export_hf(course, "a", tmp_path / "x")


# --- chapter 10's exercise checks ----------------------------------------------------------------------------

@pytest.mark.parametrize("hidden_seed", [None, 5])
def test_chapter_10_references_pass_and_common_mistakes_are_named(hidden_seed, monkeypatch):
    from minitransformer.course import check
    from minitransformer.course.check import core

    monkeypatch.setattr(core, "HIDDEN_SEED", hidden_seed)
    for exercise_id in ("10.1", "10.2", "10.3"):
        assert core.run(exercise_id, core.EXERCISES[exercise_id].reference).passed
    no_head = lambda c: {k: v for k, v in core.EXERCISES["10.1"].reference(c).items() if k != "modules_to_save"}
    assert "modules_to_save" in check.run("10.1", no_head).report()
    keeps_name = lambda n: "base_model.model." + n
    assert "leaves its name out" in check.run("10.3", keeps_name).report()

    def counted_lm_head(config, r, k):  # right for peft < 0.22, which also copied base.lm_head
        trainable, total = core.EXERCISES["10.2"].reference(config, r, k)
        lm_head = config["vocab_size"] * config["d_model"]
        return trainable + lm_head, total + lm_head

    assert "copies the task head only (releases before 0.22 also copied base.lm_head)" in check.run("10.2", counted_lm_head).report()


def test_lora_nested_inside_ia3_exports_under_the_layer_name_hf_uses(tmp_path, ids):
    course = classifier()
    peft.add_ia3(course, "i")
    peft.add_lora(course, "a", targets=["k_proj", "q_proj"], r=2)
    like_trained(course)
    export_hf(course, "a", tmp_path / "lora")
    keys = set(load_file(str(tmp_path / "lora" / "adapter_model.safetensors")))
    assert "base_model.model.base.blocks.0.attn.k_proj.lora_A.weight" in keys and not any(".base.lora" in k for k in keys)
    export_hf(course, "i", tmp_path / "ia3")
    reference = classifier()
    import_hf(reference, tmp_path / "lora", name="a")
    import_hf(reference, tmp_path / "ia3", name="i")
    peft.set_active(reference, ["i", "a"])
    peft.set_active(course, ["i", "a"])
    assert (outputs(reference, ids) - outputs(course, ids)).abs().max() < TOL

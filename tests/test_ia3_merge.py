"""IA3 merging: folding the learned scales into the linear weights changes no output, unmerging restores
the weights exactly, and misuse is refused without changing the model."""

import pytest
import torch

import minitransformer as mt
from minitransformer import Classifier, peft


@pytest.fixture
def model():
    mt.setup()
    model = Classifier(mt.load_base(), num_classes=2)
    peft.add_ia3(model, "a")
    with torch.no_grad():  # trained-looking scales, far from one
        for _, p in model.named_parameters():
            if ".scales." in _:
                p.copy_(torch.rand(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 2)
    return model


@pytest.fixture
def ids():
    return torch.randint(0, 35, (4, 14), generator=torch.Generator().manual_seed(0))


def logits(model, ids):
    with torch.no_grad():
        return model(ids, torch.full((ids.shape[0],), ids.shape[1] - 1))


def weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_merged_computes_what_unmerged_computes(model, ids):
    before = logits(model, ids)
    peft.merge_ia3(model, "a")
    assert (logits(model, ids) - before).abs().max() < 1e-5
    assert "merged" in peft.describe(model)


def test_merge_folds_keys_into_rows_and_mlp_act_into_fc_out_columns(model):
    k_weight = model.base.blocks[0].attn.k_proj.base_layer.weight.detach().clone()
    fc_out = model.base.blocks[0].mlp.fc_out.weight.detach().clone()
    k_scale = model.base.blocks[0].attn.k_proj.scales["a"].detach()
    act_scale = model.base.blocks[0].mlp.act.scales["a"].detach()
    peft.merge_ia3(model)
    torch.testing.assert_close(model.base.blocks[0].attn.k_proj.base_layer.weight, k_weight * k_scale[:, None])
    torch.testing.assert_close(model.base.blocks[0].mlp.fc_out.weight, fc_out * act_scale[None, :])


def test_unmerge_restores_the_weights_exactly(model, ids):
    before, out = weights(model), logits(model, ids)
    peft.merge_ia3(model, "a")
    peft.unmerge_ia3(model, "a")
    after = weights(model)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert torch.equal(logits(model, ids), out)


def test_merging_twice_is_refused_and_changes_nothing(model):
    peft.merge_ia3(model, "a")
    merged = weights(model)
    with pytest.raises(ValueError, match="already merged"):
        peft.merge_ia3(model, "a")
    assert all(torch.equal(merged[n], p) for n, p in weights(model).items())


def test_unmerge_without_merge_and_unknown_names_are_refused(model):
    with pytest.raises(ValueError, match="not merged|nothing to unmerge"):
        peft.unmerge_ia3(model, "a")
    with pytest.raises(ValueError, match="nothing to unmerge"):
        peft.unmerge_ia3(model)
    with pytest.raises(ValueError, match="'zzz'"):
        peft.merge_ia3(model, "zzz")


def test_a_merged_adapter_cannot_be_deactivated_deleted_or_saved(model, tmp_path):
    peft.merge_ia3(model, "a")
    with pytest.raises(ValueError, match="unmerge"):
        peft.delete_adapter(model, "a")
    with pytest.raises(ValueError, match="unmerge"):
        peft.save_adapter(model, tmp_path / "x", "a")


def test_disable_adapters_while_merged_is_an_error_not_a_wrong_answer(model, ids):
    peft.merge_ia3(model, "a")
    with pytest.raises(RuntimeError, match="unmerge_ia3"):
        with peft.disable_adapters(model):
            logits(model, ids)


def test_merge_refuses_when_fc_out_is_wrapped_and_leaves_the_model_unchanged(model, ids):
    peft.add_lora(model, "l", targets=["mlp.fc_out"], r=2)
    peft.set_active(model, ["a", "l"])
    before, out = weights(model), logits(model, ids)
    with pytest.raises(ValueError, match="fc_out"):
        peft.merge_ia3(model, "a")
    assert all(torch.equal(before[n], p) for n, p in weights(model).items())
    assert torch.equal(logits(model, ids), out)

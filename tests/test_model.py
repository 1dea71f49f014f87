"""The model: shapes, causality, the fused switch, the parameter formula, and errors on bad input."""

import math

import pytest
import torch

from minitransformer import Classifier, MiniTransformer, ModelConfig, causal_attention
from minitransformer.counts import parameter_count_formula, parameter_count_from_config, parameters_by_component


@pytest.fixture
def model():
    torch.manual_seed(0)
    return MiniTransformer(ModelConfig()).eval()


def test_logits_have_one_score_per_vocabulary_entry(model):
    ids = torch.randint(0, model.config.vocab_size, (3, 11))
    assert model(ids).shape == (3, 11, model.config.vocab_size)
    assert model.hidden_states(ids).shape == (3, 11, model.config.d_model)


def test_changing_a_future_token_never_changes_earlier_logits(model):
    torch.manual_seed(1)
    ids = torch.randint(0, model.config.vocab_size, (4, model.config.block_size))
    with torch.no_grad():
        reference = model(ids)
        for t in range(ids.size(1)):
            changed = ids.clone()
            changed[:, t] = (changed[:, t] + 1) % model.config.vocab_size
            logits = model(changed)
            assert torch.equal(logits[:, :t], reference[:, :t]), f"position < {t} changed"
            assert not torch.equal(logits[:, t], reference[:, t])


def test_attention_weights_are_causal_and_normalised():
    q, k, v = torch.randn(3, 2, 4, 7, 8).unbind(0)
    out, weights = causal_attention(q, k, v)
    assert out.shape == (2, 4, 7, 8)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 7))
    assert torch.all(weights.triu(diagonal=1) == 0)


def test_prefix_keys_are_visible_to_every_query():
    q = torch.randn(1, 1, 3, 4)
    k, v = torch.randn(2, 1, 1, 5, 4).unbind(0)  # 2 prefix keys + 3 sequence keys
    _, weights = causal_attention(q, k, v)
    assert torch.all(weights[..., :, :2] > 0)
    assert torch.all(weights[..., 0, 3:] == 0) and torch.all(weights[..., 1, 4:] == 0)


def test_fused_attention_computes_the_same_function(model):
    fused = MiniTransformer(ModelConfig(fused_attention=True))
    fused.load_state_dict(model.state_dict())
    ids = torch.randint(0, model.config.vocab_size, (4, 20))
    with torch.no_grad():
        assert torch.allclose(fused(ids), model(ids), atol=1e-5)


def test_attention_maps_are_recorded_and_released(model):
    maps = model.attention_maps(torch.randint(0, 35, (2, 9)))
    assert [m.shape for m in maps] == [(2, 4, 9, 9)] * model.config.n_layer
    assert all(b.attn.attention_weights is None and not b.attn.record_attention for b in model.blocks)


@pytest.mark.parametrize("config", [
    ModelConfig(), ModelConfig(n_layer=4), ModelConfig(d_model=32, n_head=2, mlp_ratio=2),
    ModelConfig(bias=False), ModelConfig(vocab_size=50, block_size=8),
])
def test_parameter_count_formula_matches_the_model(config):
    model = MiniTransformer(config)
    assert parameter_count_from_config(config) == sum(p.numel() for p in model.parameters())
    assert parameters_by_component(model) == parameter_count_formula(config)


def test_an_untrained_model_guesses_uniformly(model):
    ids = torch.randint(0, model.config.vocab_size, (8, 16))
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
    assert abs(loss.item() - math.log(model.config.vocab_size)) < 0.1


def test_module_names_later_chapters_target_are_stable(model):
    names = {name for name, _ in model.named_modules()}
    for layer in range(model.config.n_layer):
        for part in ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj", "mlp.fc_in", "mlp.act",
                     "mlp.fc_out", "ln1", "ln2"):
            assert f"blocks.{layer}.{part}" in names
    assert {"tok_emb", "pos_emb", "ln_f", "lm_head"} <= names


@pytest.mark.parametrize("kwargs, words", [
    ({"d_model": 64, "n_head": 5}, "not divisible by n_head=5"),
    ({"n_layer": 0}, "n_layer must be a positive int, got 0"),
    ({"block_size": 2.5}, "block_size must be a positive int, got 2.5"),
    ({"dropout": 1.5}, "dropout must be in [0, 1), got 1.5"),
])
def test_bad_config_names_the_bad_value(kwargs, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        ModelConfig(**kwargs)


def test_too_long_input_is_an_error_naming_the_context_length(model):
    with pytest.raises(ValueError, match="sequence length 33 exceeds the context length block_size=32"):
        model(torch.zeros(1, 33, dtype=torch.long))


def test_out_of_vocabulary_id_is_an_error(model):
    with pytest.raises(ValueError, match="token id 35 is outside the vocabulary 0..34"):
        model(torch.tensor([[1, 35]]))
    with pytest.raises(ValueError, match=r"shape \(batch, time\)"):
        model(torch.tensor([1, 2]))


def test_classifier_reads_the_requested_position(model):
    clf = Classifier(model, num_classes=3)
    ids = torch.randint(0, 35, (2, 10))
    logits = clf(ids, torch.tensor([4, 9]))
    assert logits.shape == (2, 3)
    changed = ids.clone()
    changed[0, 5:] = 0  # after the read position of row 0: must not matter
    assert torch.allclose(clf(changed, torch.tensor([4, 9]))[0], logits[0])
    with pytest.raises(ValueError, match="num_classes must be an int >= 2, got 1"):
        Classifier(model, num_classes=1)

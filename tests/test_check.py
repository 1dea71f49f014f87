"""The exercise checks: right answers pass, stubs fall back, wrong answers get specific feedback."""

import math

import pytest
import torch

from minitransformer import Block, causal_attention
from minitransformer.course import check
from minitransformer.counts import parameter_count_from_config


def stub(*args):
    raise NotImplementedError()


def test_reference_answers_pass_with_full_points(capsys):
    from minitransformer.course.check.ch1 import forward_reference, merge_heads_reference, split_heads_reference

    for exercise, answer in (("1.1", causal_attention), ("1.2", split_heads_reference), ("1.3", merge_heads_reference),
                             ("1.4", Block), ("1.5", forward_reference), ("1.6", parameter_count_from_config)):
        result = check.run(exercise, answer)
        assert result.passed and result.points == result.max_points, result.report()
    assert check.causal_attention(causal_attention) is causal_attention
    assert "4/4 points ✅" in capsys.readouterr().out


def test_a_stub_scores_zero_and_hands_back_the_reference(capsys):
    assert check.causal_attention(stub) is causal_attention
    out = capsys.readouterr().out
    assert "0/4 points" in out and "not attempted yet" in out and "reference" in out
    assert check.RESULTS["1.1"].status == "stub"


def test_missing_mask_is_reported_as_not_causal():
    def no_mask(q, k, v):
        w = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).softmax(-1)
        return w @ v, w

    result = check.run("1.1", no_mask)
    assert result.status == "failed" and 0 < result.points < result.max_points
    assert any("changed when token 5 changed: your attention is not causal" in p.message for p in result.parts)


def test_missing_scaling_is_named():
    def unscaled(q, k, v):
        T = q.size(-2)
        s = (q @ k.transpose(-2, -1)).masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        return s.softmax(-1) @ v, s.softmax(-1)

    result = check.run("1.1", unscaled)
    assert result.points == 3 and "not scaled: divide q·k by sqrt(head_dim)" in result.report()


def test_crash_is_reported_with_the_error():
    result = check.run("1.1", lambda q, k, v: q @ k)
    assert result.status == "error" and result.points == 0
    assert "RuntimeError" in result.detail


def test_post_layernorm_block_is_recognised():
    class PostLN(Block):
        def forward(self, x):
            x = self.ln1(x + self.attn(x))
            return self.ln2(x + self.mlp(x))

    result = check.run("1.4", PostLN)
    assert result.points == 3 and "post-LayerNorm" in result.report()


def test_missing_residual_is_recognised():
    class NoResidual(Block):
        def forward(self, x):
            return self.mlp(self.ln2(self.attn(self.ln1(x))))

    assert "residual connections are missing" in check.run("1.4", NoResidual).report()


def test_forgotten_component_is_named_in_the_count_feedback():
    result = check.run("1.6", lambda c: parameter_count_from_config(c) - c.block_size * c.d_model)
    assert result.points == 0 and "exactly the position embedding" in result.report()
    result = check.run("1.6", lambda c: parameter_count_from_config(c) + (c.d_model if c.n_layer == 4 else 0))
    assert result.points == result.max_points - 1  # partial credit: one config wrong


def test_unknown_exercise_is_an_error():
    with pytest.raises(ValueError, match=r"unknown exercise '9.9'; valid ids are \["):
        check.run("9.9", stub)


def test_chapter_2_and_3_references_pass_and_common_mistakes_are_named():
    from minitransformer.calculator import step_memory
    from minitransformer.course.check.ch2 import _gpt2_reference, _saved_bytes
    from minitransformer.course.check.ch3 import separator_positions_reference
    from minitransformer.experiments.forgetting import best_step, forgetting
    from minitransformer.memory import forward_activation_bytes

    for exercise, answer in (("2.1", forward_activation_bytes), ("2.2", step_memory), ("2.3", _gpt2_reference),
                             ("3.1", separator_positions_reference), ("3.2", forgetting), ("3.3", best_step)):
        result = check.run(exercise, answer)
        assert result.passed and result.points == result.max_points, result.report()
    assert "count each storage once" in check.run("2.1", lambda m, b: _saved_bytes(m, b, False, True)).report()
    assert "counted the parameters too" in check.run("2.1", lambda m, b: _saved_bytes(m, b, True, False)).report()
    mixed_without_master = lambda n, t, p: {**step_memory(n, t, p), "optimizer": 8 * t}
    assert "fp32 master copy" in check.run("2.2", mixed_without_master).report()
    assert "ties its output layer" in check.run("2.3", lambda L, d, V, c: _gpt2_reference(L, d, V, c) + V * d).report()
    assert "last non-padding token" in check.run("3.1", lambda x: (x != 0).sum(1) - 1).report()
    flipped = lambda b, a: {k: -v for k, v in forgetting(b, a).items()}
    assert "sign is flipped" in check.run("3.2", flipped).report()
    assert "index in the list" in check.run("3.3", lambda s, h: h.index(max(h))).report()


def test_chapter_4_references_pass_and_common_mistakes_are_named():
    from minitransformer.course.check.ch4 import bitfit_reference, train_last_blocks_reference
    from minitransformer.counts import count_parameters
    from minitransformer.peft import select

    for exercise, answer in (("4.1", train_last_blocks_reference), ("4.2", bitfit_reference), ("4.3", count_parameters)):
        result = check.run(exercise, answer)
        assert result.passed and result.points == result.max_points, result.report()
    assert "first blocks" in check.run("4.1", lambda m, k: select(m, "first_k", k=k)).report()

    def no_layernorm_bias(model):
        for name, p in model.named_parameters():
            p.requires_grad_((name.endswith("bias") and ".ln" not in name) or name.startswith("head."))

    assert "a LayerNorm's shift is a bias too" in check.run("4.2", no_layernorm_bias).report()
    counts_tensors = lambda m: {"trainable": sum(1 for p in m.parameters() if p.requires_grad), "total": 0}
    assert "that counts tensors" in check.run("4.3", counts_tensors).report()


def test_chapter_5_references_pass_and_common_mistakes_are_named():
    from minitransformer.course.check.ch5 import ResidualAdapter, init_near_identity_reference, insert_adapters_reference

    for exercise, answer in (("5.1", ResidualAdapter), ("5.2", init_near_identity_reference), ("5.3", insert_adapters_reference)):
        result = check.run(exercise, answer)
        assert result.passed and result.points == result.max_points, result.report()

    class ChangeOnly(ResidualAdapter):
        def forward(self, h):
            return self.up(self.act(self.down(h)))

    assert "you returned only the change: add h back" in check.run("5.1", ChangeOnly).report()
    assert "start `up` at zero" in check.run("5.2", lambda adapter: None).report()

    def not_on_the_path(model, make_adapter):
        for block in model.blocks:
            block.extra = torch.nn.ModuleList([make_adapter(), make_adapter()])

    assert "never called" in check.run("5.3", not_on_the_path).report()


def test_chapter_6_references_pass_and_common_mistakes_are_named():
    from minitransformer.course.check.ch6 import LoRALinearReference, lora_targets_reference, merge_reference

    for exercise, answer in (("6.1", LoRALinearReference), ("6.2", merge_reference), ("6.3", lora_targets_reference)):
        result = check.run(exercise, answer)
        assert result.passed and result.points == result.max_points, result.report()

    class ScaledByAlpha(LoRALinearReference):
        def __init__(self, base, r=8, alpha=8):
            super().__init__(base, r, alpha)
            self.scaling = alpha

    assert "scaled by alpha instead of alpha / r" in check.run("6.1", ScaledByAlpha).report()
    silent = lambda model, suffixes: [n for n, _ in model.named_modules() if n.split(".")[-1] in suffixes]
    assert "raise a ValueError instead" in check.run("6.3", silent).report()


def test_chapter_7_references_pass_and_common_mistakes_are_named():
    from minitransformer.course.check.ch7 import IA3ScaleReference, SoftPromptReference, attention_with_prefix_reference

    for exercise, answer in (("7.1", SoftPromptReference), ("7.2", IA3ScaleReference), ("7.3", attention_with_prefix_reference)):
        result = check.run(exercise, answer)
        assert result.passed and result.points == result.max_points, result.report()

    class PromptAfter(SoftPromptReference):
        def forward(self, embeddings):
            return torch.cat([embeddings, self.prompt.expand(embeddings.size(0), -1, -1)], dim=1)

    assert "in front of the input, not after it" in check.run("7.1", PromptAfter).report()

    class ZeroScale(IA3ScaleReference):
        def __init__(self, features):
            super().__init__(features)
            self.scale = torch.nn.Parameter(torch.zeros(features))

    assert "zeros would switch the layer off" in check.run("7.2", ZeroScale).report()
    ignores_prefix = lambda q, k, v, pk, pv: causal_attention(q, k, v)[0]
    assert "the prefix keys and values are not used" in check.run("7.3", ignores_prefix).report()


def test_chapter_9_references_pass_and_common_mistakes_are_named():
    from minitransformer.calculator import quantized_weight_bytes
    from minitransformer.quantize import dequantize, quantize

    for exercise, answer in (("9.1", quantize), ("9.2", dequantize), ("9.4", quantized_weight_bytes)):
        result = check.run(exercise, answer)
        assert result.passed and result.points == result.max_points, result.report()

    def per_tensor(w, bits, group_size):
        scale = w.abs().max() / 7
        codes = torch.round(w / scale).clamp(-7, 7).to(torch.int8)
        return codes, torch.full((w.shape[0], w.shape[1] // group_size), float(scale))

    assert "one scale for the whole tensor" in check.run("9.1", per_tensor).report()
    assert "the scales are missing" in check.run("9.4", lambda n, bits, group: n * bits / 8).report()


def test_chapter_8_references_pass_and_common_mistakes_are_named():
    from minitransformer.course.check.ch8 import pareto_front_reference, seed_summary_reference, tuned_lr_reference

    for exercise, answer in (("8.1", tuned_lr_reference), ("8.2", seed_summary_reference), ("8.3", pareto_front_reference)):
        result = check.run(exercise, answer)
        assert result.passed and result.points == result.max_points, result.report()
    best_single_run = lambda runs, m: max((r for r in runs if r["method"] == m), key=lambda r: r["val_accuracy"])["lr"]
    assert "choose by the mean over seeds" in check.run("8.1", best_single_run).report()
    higher_forgetting_wins = lambda points: pareto_front_reference({k: (a, -f) for k, (a, f) in points.items()})
    assert "lower forgetting is better" in check.run("8.3", higher_forgetting_wins).report()


def test_weak_checks_now_catch_what_they_used_to_accept():
    import torch.nn as nn

    from minitransformer.course.check.ch5 import ResidualAdapter, insert_adapters_reference
    from minitransformer.course.check.ch6 import LoRALinearReference, lora_targets_reference
    from minitransformer.course.check.ch8 import _RULES, tuned_lr_reference
    from minitransformer.quantize import quantize

    def returns_nothing(model, factory):
        insert_adapters_reference(model, factory)

    assert "return the list of the adapters" in check.run("5.3", returns_nothing).report()

    def after_queries(model, factory):  # two per block, on the forward path, after the wrong attention layer
        added = []
        for block in model.blocks:
            for parent, child in ((block.attn, "q_proj"), (block.mlp, "fc_out")):
                adapter = factory()
                setattr(parent, child, nn.Sequential(getattr(parent, child), adapter))
                added.append(adapter)
        return added

    result = check.run("5.3", after_queries)
    assert result.points == 2 and "not as adapters applied to the attention output" in result.report()

    class BothZero(LoRALinearReference):
        def __init__(self, base, r=8, alpha=8):
            super().__init__(base, r, alpha)
            nn.init.zeros_(self.A)

    assert "A is all zero" in check.run("6.1", BothZero).report()
    typo_ok = lambda model, suffixes: [n for n, m in model.named_modules() if isinstance(m, nn.Linear)
                                       and n.split(".")[-1] in suffixes] or lora_targets_reference(model, suffixes)
    assert "a typo in one of two targets" in check.run("6.3", typo_ok).report()

    def terse_error(model, suffixes):
        try:
            return lora_targets_reference(model, suffixes)
        except ValueError:
            raise ValueError("bad target") from None

    assert "must list the linear layers that exist" in check.run("6.3", terse_error).report()
    by_median = lambda runs, m: max({r["lr"] for r in runs if r["method"] == m},
                                    key=lambda lr: _RULES["the median"]([r["val_accuracy"] for r in runs if r["method"] == m and r["lr"] == lr]))
    assert check.run("8.1", by_median).points == 0  # another rule than the mean: no point for either method

    def always_seven(w, bits, group_size):
        groups = w.reshape(w.shape[0], -1, group_size)
        scales = groups.abs().amax(-1, keepdim=True) / 7
        return torch.round(groups / scales).clamp(-7, 7).to(torch.int8).reshape(w.shape), scales.squeeze(-1)

    assert "right at 4 bits, wrong at" in check.run("9.1", always_seven).report()
    assert tuned_lr_reference and quantize and ResidualAdapter


@pytest.mark.parametrize("hidden_seed", [11, 12])
def test_every_reference_passes_on_hidden_inputs_and_memorised_answers_do_not(hidden_seed, monkeypatch):
    from minitransformer.course.check import core

    monkeypatch.setattr(core, "HIDDEN_SEED", hidden_seed)
    for exercise_id, exercise in core.EXERCISES.items():
        result = core.run(exercise_id, exercise.reference)
        assert result.passed, result.report()
    memorised = {106624, 206592}  # the notebook's answers for two of its configs
    assert check.run("1.6", lambda config: 106624).points == 0 and memorised


def test_exercise_2_2_text_says_where_the_master_copy_counts():
    import nbformat

    from minitransformer.course.grade import SOLUTIONS

    nb = nbformat.read(next(SOLUTIONS.glob("02_*.ipynb")), as_version=4)
    text = next(c.source for c in nb.cells if c.cell_type == "markdown" and "### Exercise 2.2" in c.source)
    assert 'master copy of each trainable weight counts under `"optimizer"`' in text.replace("\n", " ")
    half = lambda p: 2 if p == "mixed" else 4
    mixed = check.run("2.2", lambda n, t, p: {"weights": half(p) * n, "gradients": half(p) * t,
                                              "optimizer": (12 if p == "mixed" else 8) * t})
    assert mixed.passed

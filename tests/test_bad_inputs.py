"""Bad input, as learners type it, gets a clear error and never half-changes a model.

Each row of the tables below is one plausible mistake: the call, the error type, and words the message must
contain (the argument's name, the valid range or what to do instead). For calls that change a model, a
fingerprint of the model (its state dict: names and values; its module tree; its trainable set; each PEFT
layer's active and merged adapters) is taken before and compared after the error.
"""

import copy
import dataclasses
import json
import math
import re
import shutil

import pytest
import torch

import minitransformer as mt
from minitransformer import calculator, data, peft, pretrain, quantize
from minitransformer.evaluate import classification_accuracy, eval_set, evaluate_base_tasks, exact_match
from minitransformer.train import loss_on_batch
from minitransformer.checkpoint import load_checkpoint, save_checkpoint
from minitransformer.model import causal_attention
from minitransformer.tokenizer import CharTokenizer, tokenizer

BASE = mt.load_base()
NAN, INF = math.nan, math.inf


def fingerprint(model):
    """What "the model is exactly as before" means: weights by name, module tree, trainable set, adapter state."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "tree": [(n, type(m).__name__, m.training) for n, m in model.named_modules()],
        "trainable": sorted(n for n, p in model.named_parameters() if p.requires_grad),
        "adapters": [(n, list(l.active), list(getattr(l, "merged", [])), dict(l.settings))
                     for n, l in peft.peft_layers(model)],
    }


def assert_same(before, after):
    assert after["tree"] == before["tree"]
    assert after["trainable"] == before["trainable"]
    assert after["adapters"] == before["adapters"]
    assert list(after["state"]) == list(before["state"])
    changed = [k for k in before["state"] if not torch.equal(before["state"][k], after["state"][k])]
    assert not changed, f"values changed: {changed[:3]}"


def perturb(model, seed=0):
    """Give adapters trained-looking values, so merging and saving are not trivially exact."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or ".scales." in name or ".up." in name:
                p.add_(torch.randn(p.shape, generator=generator) * 0.1)


# Model states the bad calls start from.
def base():
    return copy.deepcopy(BASE)


def clf():
    torch.manual_seed(0)
    return mt.Classifier(base())


def lora():
    m = clf()
    peft.add_lora(m, "a", r=4)
    perturb(m)
    return m


def two_loras():
    m = lora()
    peft.add_lora(m, "b", r=2)  # "a" is kept but inactive
    return m


def merged():
    m = lora()
    peft.merge_lora(m)
    return m


def lora_ia3():
    m = lora()
    peft.add_ia3(m, "i")
    perturb(m, 1)
    peft.set_active(m, ["a", "i"])
    return m


def ia3_merged():
    m = clf()
    peft.add_ia3(m, "i")
    perturb(m)
    peft.merge_ia3(m)
    return m


def quantized_lora():
    m = mt.Classifier(quantize.quantize_model(base(), 4, 16))
    peft.add_lora(m, "a", r=4)
    return m


def quantized():
    return mt.Classifier(quantize.quantize_model(base(), 4, 16))


def prompted():
    m = base()
    peft.add_prompt(m, "p", length=8)
    return m


def two_prompts():
    m = prompted()
    peft.add_prompt(m, "s", length=4, positions="shift")
    return m


STATES = {f.__name__: f for f in (two_prompts, base, clf, lora, two_loras, merged, lora_ia3, ia3_merged, quantized, quantized_lora, prompted)}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved LoRA adapter (with its 2-class head), trained on BASE."""
    folder = tmp_path_factory.mktemp("adapters") / "a"
    peft.save_adapter(lora(), folder)
    return folder


def edited(saved, tmp_path, change):
    folder = tmp_path / "edited"
    shutil.copytree(saved, folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    change(config)
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def set_setting(key, value):
    def change(config):
        for layer in config["layers"]:
            layer["settings"][key] = value
    return change


# (module, state, call(model, ctx), error type, words the message contains)
MUTATING = [
    # add_lora: the issue's example first (it used to leave q_proj/v_proj wrapped in empty LoRALinears)
    ("peft.add_lora", "base", lambda m, c: peft.add_lora(m, "x", r=0), ValueError, "r must be a positive int, got 0"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", r=-4), ValueError, "r must be a positive int"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", r=2.5), ValueError, "r must be a positive int, got 2.5"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", r="8"), ValueError, "r must be a positive int, got '8'"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", r=True), ValueError, "r must be a positive int"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", alpha=0), ValueError, "alpha must be a finite number > 0"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", alpha=-8), ValueError, "alpha"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", alpha=NAN), ValueError, "alpha must be a finite number > 0, got nan"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", alpha=INF), ValueError, "alpha"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", dropout=1.0), ValueError, "dropout must be in [0, 1), got 1.0"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", dropout=-0.1), ValueError, "dropout must be in [0, 1)"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", dropout=NAN), ValueError, "dropout must be in [0, 1), got nan"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", rslora="yes"), TypeError, "rslora must be True or False"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", targets="q_proj"), ValueError, "pass a list, targets=['q_proj']"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", targets="q_proj|v_proj"), ValueError, "targets='q_proj|v_proj' matches no linear layer"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", targets="blocks.("), ValueError, "not a valid regular expression"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", targets=[]), ValueError, "targets must be a regex string or a non-empty list"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", targets=None), ValueError, "targets must be"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", targets=["q_proj", "query"]), ValueError, "target 'query' matches no linear layer; the linear layers are"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "x", targets=["head"]), ValueError, "target 'head' matches no linear layer"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, ""), ValueError, "adapter name must be a non-empty str"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "task.a"), ValueError, "without '.'"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, 3), ValueError, "adapter name must be a non-empty str"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora(m, "keys"), ValueError, "is the name of a PyTorch attribute"),
    ("peft.add_lora", "clf", lambda m, c: peft.add_lora("model", "x"), TypeError, "model must be a MiniTransformer or a Classifier, got a str"),
    ("peft.add_lora", "lora", lambda m, c: peft.add_lora(m, "a", r=8), ValueError, "already has an adapter named 'a' (lora)"),
    ("peft.add_lora", "lora", lambda m, c: peft.add_lora(m, "a", targets="all-linear"), ValueError, "names are unique across the model"),
    # the issue's second example: add_lora after a merge used to raise with the new adapter already in place
    ("peft.add_lora", "merged", lambda m, c: peft.add_lora(m, "b"), ValueError, "adapter 'a' is merged into the weights"),
    ("peft.add_lora", "ia3_merged", lambda m, c: peft.add_lora(m, "b"), ValueError, "unmerge it first"),
    # names are model-wide, across kinds
    ("peft.add_ia3", "lora", lambda m, c: peft.add_ia3(m, "a"), ValueError, "already has an adapter named 'a' (lora)"),
    ("peft.add_adapters", "lora", lambda m, c: peft.add_adapters(m, "a"), ValueError, "already has an adapter named 'a'"),
    ("peft.add_prefix", "lora", lambda m, c: peft.add_prefix(m, "a"), ValueError, "already has an adapter named 'a'"),
    ("peft.add_prompt", "lora", lambda m, c: peft.add_prompt(m, "a"), ValueError, "already has an adapter named 'a'"),
    ("peft.add_ia3", "clf", lambda m, c: peft.add_ia3(m, "x", targets=["q_proj", "gate"]), ValueError, "target 'gate' matches no layer IA3 can scale"),
    ("peft.add_ia3", "clf", lambda m, c: peft.add_ia3(m, "x", targets="k_proj"), ValueError, "pass a list"),
    ("peft.add_ia3", "merged", lambda m, c: peft.add_ia3(m, "i"), ValueError, "merged into the weights"),
    ("peft.add_adapters", "clf", lambda m, c: peft.add_adapters(m, "x", bottleneck=0), ValueError, "bottleneck must be a positive int, got 0"),
    ("peft.add_adapters", "clf", lambda m, c: peft.add_adapters(m, "x", bottleneck=8.0), ValueError, "bottleneck must be a positive int"),
    ("peft.add_adapters", "clf", lambda m, c: peft.add_adapters(m, "x", placement="after"), ValueError, "placement must be one of ['houlsby', 'pfeiffer'], got 'after'"),
    ("peft.add_adapters", "clf", lambda m, c: peft.add_adapters(m, "x", activation="swish"), ValueError, "activation must be one of"),
    ("peft.add_adapters", "clf", lambda m, c: peft.add_adapters(m, "x", init="ones"), ValueError, "init must be one of ['zeros', 'houlsby']"),
    ("peft.add_adapters", "clf", lambda m, c: peft.add_adapters(m, "x", reduction_factor=0), ValueError, "reduction_factor must be an int in 1..64"),
    ("peft.add_adapters", "clf", lambda m, c: peft.add_adapters(m, "x", reduction_factor=100), ValueError, "reduction_factor must be an int in 1..64, got 100"),
    ("peft.add_prompt", "clf", lambda m, c: peft.add_prompt(m, "x", length=0), ValueError, "prompt length must be a positive int, got 0"),
    ("peft.add_prompt", "clf", lambda m, c: peft.add_prompt(m, "x", length=32), ValueError, "leaves no room for input in a context of 32"),
    ("peft.add_prompt", "clf", lambda m, c: peft.add_prompt(m, "x", length=4.0), ValueError, "prompt length must be a positive int"),
    ("peft.add_prompt", "clf", lambda m, c: peft.add_prompt(m, "x", positions="front"), ValueError, "positions must be one of ['keep', 'shift']"),
    ("peft.add_prompt", "clf", lambda m, c: peft.add_prompt(m, "x", length=4, init="abc"), ValueError, "init text 'abc' has 3 characters but the prompt length is 4"),
    ("peft.add_prompt", "clf", lambda m, c: peft.add_prompt(m, "x", length=4, init="wxyz"), ValueError, "init text 'wxyz' has character 'w', which is not in the vocabulary"),
    ("peft.add_prompt", "clf", lambda m, c: peft.add_prompt(m, "x", init=5), ValueError, "init must be 'vocab', 'random' or a text"),
    ("peft.add_prompt", "clf", lambda m, c: peft.add_prompt(m, "x", seed=None), ValueError, "seed must be an int"),
    ("peft.add_prefix", "clf", lambda m, c: peft.add_prefix(m, "x", length=0), ValueError, "prefix length must be a positive int, got 0"),
    ("peft.add_prefix", "clf", lambda m, c: peft.add_prefix(m, "x", length=100), ValueError, "at most block_size=32"),
    ("peft.add_prefix", "clf", lambda m, c: peft.add_prefix(m, "x", init="zeros"), ValueError, "init must be one of ['tokens', 'random']"),
    # the shared verbs
    ("peft.set_active", "lora", lambda m, c: peft.set_active(m, "b"), ValueError, "no adapter named 'b'; the model has ['a']"),
    ("peft.set_active", "lora", lambda m, c: peft.set_active(m, ["a", "b"]), ValueError, "no adapter named 'b'"),
    ("peft.set_active", "lora", lambda m, c: peft.set_active(m, 0), TypeError, "names must be an adapter name or a list of them"),
    ("peft.set_active", "lora", lambda m, c: peft.set_active(m, "a", trainable="yes"), TypeError, "trainable must be True or False"),
    ("peft.set_active", "lora_ia3", lambda m, c: peft.set_active(m, "x"), ValueError, "no adapter named 'x'"),
    ("peft.set_active", "two_prompts", lambda m, c: peft.set_active(m, ["p", "s"]), ValueError, "disagree on positions ('keep' and 'shift')"),
    ("peft.set_active", "merged", lambda m, c: peft.set_active(m, []), ValueError, "merged into the weight; unmerge it first"),
    ("peft.delete_adapter", "lora", lambda m, c: peft.delete_adapter(m, "b"), ValueError, "no adapter named 'b'"),
    ("peft.delete_adapter", "lora", lambda m, c: peft.delete_adapter(m, None), TypeError, "name must be an adapter name"),
    ("peft.delete_adapter", "merged", lambda m, c: peft.delete_adapter(m, "a"), ValueError, "merged into the weight; unmerge it first"),
    ("peft.delete_adapter", "ia3_merged", lambda m, c: peft.delete_adapter(m, "i"), ValueError, "unmerge it first"),
    # merging
    ("peft.merge_lora", "lora", lambda m, c: peft.merge_lora(m, "b"), ValueError, "no LoRA adapter named 'b' in the model; its LoRA adapters are ['a']"),
    ("peft.merge_lora", "lora_ia3", lambda m, c: peft.merge_lora(m, "i"), ValueError, "no LoRA adapter named 'i'"),
    ("peft.merge_lora", "merged", lambda m, c: peft.merge_lora(m, "a"), ValueError, "already merged"),
    ("peft.merge_lora", "clf", lambda m, c: peft.merge_lora(m), ValueError, "no active LoRA adapter to merge"),
    ("peft.merge_lora", "quantized_lora", lambda m, c: peft.merge_lora(m), ValueError, "cannot merge into a quantized weight"),
    ("peft.merge_lora", "two_loras", lambda m, c: peft.merge_lora(m, "a"), ValueError, "'a' is not active"),
    ("peft.merge_lora", "two_loras", lambda m, c: peft.merge_lora(m, ["a", "b"]), TypeError, "name must be an adapter name"),
    ("peft.merge_lora", "lora", lambda m, c: peft.merge_lora(m, 1), TypeError, "name must be an adapter name"),
    ("peft.unmerge_lora", "lora", lambda m, c: peft.unmerge_lora(m), ValueError, "no LoRA adapter is merged"),
    ("peft.unmerge_lora", "lora", lambda m, c: peft.unmerge_lora(m, "a"), ValueError, "'a' is not merged"),
    ("peft.unmerge_lora", "merged", lambda m, c: peft.unmerge_lora(m, "b"), ValueError, "no LoRA adapter named 'b'"),
    ("peft.merge_and_unload", "clf", lambda m, c: peft.merge_and_unload(m), ValueError, "no LoRA adapter to merge and unload"),
    ("peft.merge_and_unload", "lora_ia3", lambda m, c: peft.merge_and_unload(m), ValueError, "other adapters remain"),
    ("peft.merge_and_unload", "quantized_lora", lambda m, c: peft.merge_and_unload(m), ValueError, "quantized base weight"),
    ("peft.merge_ia3", "lora", lambda m, c: peft.merge_ia3(m, "a"), ValueError, "no IA3 adapter named 'a'"),
    ("peft.merge_ia3", "ia3_merged", lambda m, c: peft.merge_ia3(m, "i"), ValueError, "already merged"),
    ("peft.merge_ia3", "lora_ia3", lambda m, c: peft.merge_ia3(m, "i"), ValueError, "cannot merge the IA3 scale"),
    ("peft.merge_ia3", "lora", lambda m, c: peft.merge_ia3(m, 2), TypeError, "name must be an adapter name"),
    ("peft.unmerge_ia3", "lora_ia3", lambda m, c: peft.unmerge_ia3(m), ValueError, "no IA3 adapter is merged"),
    # selective
    ("peft.select", "clf", lambda m, c: peft.select(m, "bitfitt"), ValueError, "method must be one of head, last_k"),
    ("peft.select", "clf", lambda m, c: peft.select(m, "last_k", k=5), ValueError, "k must be an int in 0..2, got 5"),
    ("peft.select", "clf", lambda m, c: peft.select(m, "first_k", k=-1), ValueError, "k must be an int in 0..2"),
    ("peft.select", "clf", lambda m, c: peft.select(m, "last_k", k=1.0), ValueError, "k must be an int in 0..2, got 1.0"),
    ("peft.unfreeze", "clf", lambda m, c: peft.unfreeze(m, "nothing"), ValueError, "pattern 'nothing' matches no parameter"),
    ("peft.unfreeze", "clf", lambda m, c: peft.unfreeze(m, "blocks.("), ValueError, "not a valid regular expression"),
    ("peft.unfreeze", "clf", lambda m, c: peft.unfreeze(m, 0), TypeError, "pattern must be a regular expression"),
    ("peft.unfreeze_blocks", "clf", lambda m, c: peft.unfreeze_blocks(m), ValueError, "give exactly one of last=k or first=k"),
    ("peft.unfreeze_blocks", "clf", lambda m, c: peft.unfreeze_blocks(m, last=1, first=1), ValueError, "give exactly one"),
    ("peft.unfreeze_blocks", "clf", lambda m, c: peft.unfreeze_blocks(m, last=3), ValueError, "the model has 2 blocks"),
    ("peft.freeze_base", "clf", lambda m, c: peft.freeze_base(m.head), TypeError, "model must be a MiniTransformer or a Classifier"),
    # loading
    ("peft.load_adapter", "clf", lambda m, c: peft.load_adapter(m, c["tmp"] / "nothing"), FileNotFoundError, "no adapter folder at"),
    ("peft.load_adapter", "clf", lambda m, c: peft.load_adapter(m, 5), TypeError, "path must be a folder path"),
    ("peft.load_adapter", "clf", lambda m, c: peft.load_adapter(m, c["saved"], trainable="yes"), TypeError, "trainable must be True or False"),
    ("peft.load_adapter", "clf", lambda m, c: peft.load_adapter(m, c["saved"], name=7), TypeError, "name must be an adapter name"),
    ("peft.load_adapter", "lora", lambda m, c: peft.load_adapter(m, c["saved"]), ValueError, "already has an adapter named 'a'"),
    ("peft.load_adapter", "merged", lambda m, c: peft.load_adapter(m, c["saved"], name="b"), ValueError, "merged into the weights"),
    ("peft.load_adapter", "clf", lambda m, c: peft.load_adapter(m, edited(c["saved"], c["tmp"], set_setting("alpha", 16))), ValueError, "was edited after saving"),
    ("peft.load_adapter", "clf", lambda m, c: peft.load_adapter(m, edited(c["saved"], c["tmp"], set_setting("r", 8))), ValueError, "was edited after saving"),
    ("peft.load_adapter", "clf", lambda m, c: peft.load_adapter(m, edited(c["saved"], c["tmp"], lambda d: d.pop("layers"))), ValueError, "lacks the entries ['layers']"),
    ("peft.load_adapter", "clf", lambda m, c: peft.load_adapter(m, edited(c["saved"], c["tmp"], lambda d: d.update(format="x"))), ValueError, "is not a minitransformer adapter config"),
    ("peft.load_adapter", "base", lambda m, c: peft.load_adapter(m, c["saved"]), ValueError, "comes with a 2-class task head"),
    ("peft.save_adapter", "lora", lambda m, c: peft.save_adapter(m, c["tmp"] / "s", name="b"), ValueError, "no adapter named 'b'"),
    ("peft.save_adapter", "merged", lambda m, c: peft.save_adapter(m, c["tmp"] / "s"), ValueError, "unmerge it before saving"),
    ("peft.save_adapter", "lora", lambda m, c: peft.save_adapter(m, c["saved"] / "adapter_config.json"), ValueError, "is a file"),
    ("peft.save_adapter", "lora", lambda m, c: peft.save_adapter(m, None), TypeError, "path must be a folder path"),
    ("peft.describe", "lora", lambda m, c: peft.describe(m.head), TypeError, "model must be a MiniTransformer or a Classifier"),
    # quantization: QLoRA's order, or a clear refusal
    ("quantize.quantize_model", "lora", lambda m, c: quantize.quantize_model(m), ValueError, "Quantize the base first, then add adapters"),
    ("quantize.quantize_model", "prompted", lambda m, c: quantize.quantize_model(m), ValueError, "already has adapters"),
    ("quantize.quantize_model", "quantized", lambda m, c: quantize.quantize_model(m), ValueError, "already quantized"),
    ("quantize.quantize_model", "base", lambda m, c: quantize.quantize_model(m, bits=5), ValueError, "bits must be one of [2, 3, 4, 8], got 5"),
    ("quantize.quantize_model", "base", lambda m, c: quantize.quantize_model(m, bits=4.0), ValueError, "bits must be one of"),
    ("quantize.quantize_model", "base", lambda m, c: quantize.quantize_model(m, group_size=48), ValueError, "group_size must be a positive divisor of the row length 64, got 48"),
    ("quantize.quantize_model", "base", lambda m, c: quantize.quantize_model(m, group_size=0), ValueError, "group_size must be a positive divisor"),
    ("quantize.quantize_model", "clf", lambda m, c: quantize.quantize_model(m.head), ValueError, "no linear layer inside transformer blocks"),
    # training changes nothing when its arguments are wrong
    ("train.train", "lora", lambda m, c: mt.train(m, c["batches"], steps=5, lr=0), ValueError, "lr must be a finite number > 0, got 0"),
    ("train.train", "lora", lambda m, c: mt.train(m, c["batches"], steps=5, lr=-1e-3), ValueError, "lr must be a finite number > 0"),
    ("train.train", "lora", lambda m, c: mt.train(m, c["batches"], steps=5, lr=NAN), ValueError, "lr must be a finite number > 0, got nan"),
    ("train.train", "lora", lambda m, c: mt.train(m, c["batches"], steps=5, grad_clip=-1.0), ValueError, "grad_clip"),
    ("train.train", "lora", lambda m, c: mt.train(m, c["batches"], steps=5, grad_clip=0), ValueError, "None turns clipping off"),
    ("train.train", "lora", lambda m, c: mt.train(m, c["batches"], steps=0), ValueError, "steps must be a positive int, got 0"),
    ("train.train", "lora", lambda m, c: mt.train(m, c["batches"], steps=10.0), ValueError, "steps must be a positive int, got 10.0"),
    ("train.train", "lora", lambda m, c: mt.train(m, c["batches"], steps=5, weight_decay=-0.1), ValueError, "weight_decay must be a finite number >= 0"),
    ("train.train", "lora", lambda m, c: mt.train(m, c["batches"], steps=5, warmup=-1), ValueError, "warmup must be an int >= 0"),
    ("train.train", "lora", lambda m, c: mt.train(m, c["batches"], steps=5, schedule="linear"), ValueError, "schedule must be one of ['cosine', 'constant']"),
    ("train.train", "lora", lambda m, c: mt.train(m, c["batches"], steps=5, eval_every=2), ValueError, "eval_every=2 needs eval_fn"),
    ("train.train", "lora", lambda m, c: mt.train(m, c["batches"](), steps=5), TypeError, "next_batch must be a function"),
    ("train.train", "lora", lambda m, c: mt.train(m, lambda: [1, 2], steps=5), TypeError, "next_batch() must return a batch dict"),
    ("train.train", "lora", lambda m, c: mt.train(m, c["batches"], steps=5, progress="no"), TypeError, "progress must be True or False"),
    ("train.train", "lora", lambda m, c: mt.train(m.state_dict(), c["batches"], steps=5), TypeError, "model must be a torch.nn.Module"),
    ("train.train", "lora", lambda m, c: mt.train(m.base, c["batches"], steps=5), TypeError, "a classification batch needs a Classifier"),
    # a batch of the other kind used to fail inside the model ("forward() missing 1 required positional argument: 'positions'")
    ("train.train", "clf", lambda m, c: mt.train(m, data.TaskSampler("copy", batch_size=8), steps=5), TypeError, "a Classifier needs a classification batch (keys 'x', 'positions', 'labels', e.g. from TaskSampler('is_sorted')), got a language-model batch (keys 'x', 'y', e.g. from TaskSampler('copy'))"),
    ("train.train", "lora", lambda m, c: mt.train(m, data.TaskSampler("shift", batch_size=8), steps=5), TypeError, "pass model.base"),
    ("train.train", "lora", lambda m, c: mt.train(m, data.ReplaySampler("shift", batch_size=8), steps=5), TypeError, "a Classifier needs a classification batch"),
    ("train.train", "base", lambda m, c: mt.train(m, c["batches"], steps=5), TypeError, "a MiniTransformer needs a language-model batch (keys 'x', 'y', e.g. from TaskSampler('copy')), got a classification batch (keys 'x', 'positions', 'labels', e.g. from TaskSampler('is_sorted')); a classification batch needs a Classifier"),
    ("train.train", "prompted", lambda m, c: mt.train(m, data.TaskSampler("is_palindrome", batch_size=8), steps=5), TypeError, "a MiniTransformer needs a language-model batch"),
    ("train.train", "clf", lambda m, c: mt.train(m, lambda: {"x": IDS, "labels": torch.tensor([1])}, steps=5), TypeError, "got keys ['labels', 'x']"),
    ("checkpoint.save_checkpoint", "lora", lambda m, c: save_checkpoint(m.base, c["tmp"] / "x"), ValueError, "peft.save_adapter"),
    ("checkpoint.save_checkpoint", "clf", lambda m, c: save_checkpoint(m, c["tmp"] / "x"), TypeError, "save_checkpoint(model.base, ...)"),
]


def _id(row):
    return f"{row[0]}-{row[1]}-{MUTATING.index(row)}"


@pytest.mark.parametrize("row", MUTATING, ids=_id)
def test_a_bad_call_raises_a_clear_error_and_leaves_the_model_exactly_as_it_was(row, saved, tmp_path):
    _, state, call, error, words = row
    model = STATES[state]()
    batch = data.encode(mt.make_examples("is_sorted", 8, seed=0))
    context = {"saved": saved, "tmp": tmp_path, "batches": lambda: batch}
    before = fingerprint(model)
    with pytest.raises(error, match=re.escape(words)):
        call(model, context)
    assert_same(before, fingerprint(model))


def test_a_failed_add_leaves_a_base_that_saves_and_loads(tmp_path):
    model = base()
    with pytest.raises(ValueError):
        peft.add_lora(model, "x", r=0)
    save_checkpoint(model, tmp_path / "after")  # it used to hold empty LoRALinears that no base can load
    assert torch.equal(load_checkpoint(tmp_path / "after")(torch.tensor([[3, 4]])), BASE(torch.tensor([[3, 4]])))


def test_a_failed_call_keeps_the_very_same_parameter_objects():
    model = lora()
    params = list(model.parameters())
    optimizer = torch.optim.AdamW([p for p in params if p.requires_grad], lr=1e-3)
    with pytest.raises(ValueError):
        peft.add_adapters(model, "b", bottleneck=0)
    live = {id(p) for p in model.parameters()}
    assert [id(p) for p in params] == [id(p) for p in model.parameters()]
    assert all(id(p) in live for p in optimizer.param_groups[0]["params"])


# Calls that change no model: the error must name the argument and what is valid.
IDS = torch.tensor([[4, 10, 11, 2]])
NON_MUTATING = [
    ("model", lambda: BASE([[4, 10, 11, 2]]), TypeError, "idx (the token ids) must be a torch.Tensor, got a list; wrap it with torch.tensor"),
    ("model", lambda: BASE(IDS.float()), TypeError, "must hold integer ids (torch.long), got dtype torch.float32"),
    ("model", lambda: BASE(IDS[0]), ValueError, "expected token ids of shape (batch, time), got shape (4,)"),
    ("model", lambda: BASE(torch.zeros(1, 40, dtype=torch.long)), ValueError, "exceeds the context length block_size=32"),
    ("model", lambda: BASE(torch.tensor([[3, 35]])), ValueError, "token id 35 is outside the vocabulary 0..34"),
    ("model", lambda: BASE(torch.tensor([[3, -1]])), ValueError, "token id -1 is outside the vocabulary"),
    ("model", lambda: causal_attention(torch.randn(1, 5, 8), torch.randn(1, 3, 8), torch.randn(1, 3, 8)), ValueError, "k has 3 positions but q has 5"),
    ("model", lambda: causal_attention(torch.randn(8), torch.randn(8), torch.randn(8)), ValueError, "q must have shape (..., time, head_dim)"),
    ("model", lambda: causal_attention([[1.0]], torch.randn(1, 1), torch.randn(1, 1)), TypeError, "q must be a torch.Tensor, got a list"),
    ("model", lambda: causal_attention(torch.ones(1, 2, 4, dtype=torch.long), torch.randn(1, 2, 4), torch.randn(1, 2, 4)), TypeError, "q must be a floating-point tensor"),
    ("model", lambda: causal_attention(torch.randn(1, 2, 4), torch.randn(1, 2, 8), torch.randn(1, 2, 8)), ValueError, "q and k must agree on every dimension but time"),
    ("model", lambda: causal_attention(torch.randn(1, 2, 4), torch.randn(1, 2, 4), torch.randn(1, 3, 4)), ValueError, "k and v must have the same shape"),
    ("model", lambda: mt.Classifier(BASE)(IDS, torch.tensor([-1])), ValueError, "position -1 is outside 0..3"),
    ("model", lambda: mt.Classifier(BASE)(IDS, torch.tensor([4])), ValueError, "position 4 is outside 0..3"),
    ("model", lambda: mt.Classifier(BASE)(IDS, [3]), TypeError, "positions must be a torch.Tensor, got a list"),
    ("model", lambda: mt.Classifier(BASE)(IDS, torch.tensor([3.0])), TypeError, "positions must hold integer ids"),
    ("model", lambda: mt.Classifier(BASE)(IDS, torch.tensor([3, 3])), ValueError, "one position per sequence"),
    ("model", lambda: mt.Classifier(BASE, num_classes=1), ValueError, "num_classes must be an int >= 2, got 1"),
    ("model", lambda: mt.Classifier(BASE, num_classes=2.0), ValueError, "num_classes must be an int >= 2"),
    ("model", lambda: mt.Classifier(BASE.state_dict()), TypeError, "base must be a MiniTransformer"),
    ("model", lambda: mt.MiniTransformer({"n_layer": 2}), TypeError, "config must be a ModelConfig"),
    ("model", lambda: mt.ModelConfig(dropout=NAN), ValueError, "ModelConfig.dropout must be in [0, 1), got nan"),
    ("model", lambda: mt.ModelConfig(dropout="0.1"), ValueError, "ModelConfig.dropout must be in [0, 1)"),
    ("model", lambda: mt.ModelConfig(n_head=3), ValueError, "d_model=64 is not divisible by n_head=3"),
    ("model", lambda: mt.ModelConfig(n_layer=0), ValueError, "ModelConfig.n_layer must be a positive int, got 0"),
    ("model", lambda: mt.ModelConfig(bias="yes"), TypeError, "ModelConfig.bias must be True or False"),
    ("train", lambda: loss_on_batch(mt.Classifier(BASE), data.encode(mt.make_examples("copy", 4, seed=0))), TypeError, "a Classifier needs a classification batch"),
    ("train", lambda: loss_on_batch(BASE, data.encode(mt.make_examples("is_sorted", 4, seed=0))), TypeError, "a MiniTransformer needs a language-model batch"),
    ("train", lambda: loss_on_batch(BASE, {"x": IDS}), TypeError, "a batch must be a language-model batch (keys 'x', 'y', e.g. from TaskSampler('copy')) or a classification batch (keys 'x', 'positions', 'labels', e.g. from TaskSampler('is_sorted')), got keys ['x']"),
    ("evaluate", lambda: exact_match(BASE, []), TypeError, "examples must be a non-empty list of Example"),
    ("train", lambda: exact_match(BASE, mt.make_examples("is_sorted", 4, seed=0)), ValueError, "examples must be generative examples"),
    ("train", lambda: exact_match(BASE, mt.make_examples("copy", 4, seed=0), batch_size=0), ValueError, "batch_size must be a positive int"),
    ("train", lambda: exact_match(mt.Classifier(BASE), mt.make_examples("copy", 4, seed=0)), TypeError, "for a Classifier use classification_accuracy"),
    ("train", lambda: classification_accuracy(BASE, mt.make_examples("is_sorted", 4, seed=0)), TypeError, "classification_accuracy needs a Classifier"),
    ("train", lambda: classification_accuracy(mt.Classifier(BASE), mt.make_examples("copy", 4, seed=0)), ValueError, "must be classification examples"),
    ("train", lambda: eval_set("sorting"), ValueError, "unknown task 'sorting'; valid tasks are"),
    ("train", lambda: evaluate_base_tasks(BASE, n=0), ValueError, "n must be a positive int, got 0"),
    ("train", lambda: mt.generate(BASE, 5), TypeError, "prompts must be a str or a list of str"),
    ("train", lambda: mt.generate(BASE, "Cab=", max_new_tokens=0), ValueError, "max_new_tokens must be a positive int, got 0"),
    ("train", lambda: mt.generate(BASE, "Cab=", max_new_tokens=-1), ValueError, "max_new_tokens must be a positive int"),
    ("train", lambda: mt.generate(BASE, "C" + "a" * 31), ValueError, "has 32 characters; the context holds 32"),
    ("train", lambda: mt.generate(prompted(), "C" + "a" * 23 + "="), ValueError, "the context holds 24 after the 8 virtual tokens"),
    ("tokenizer", lambda: tokenizer.encode(5), TypeError, "encode expects a str, got int"),
    ("tokenizer", lambda: tokenizer.encode("Cabz="), ValueError, "character 'z' at position 3"),
    ("tokenizer", lambda: tokenizer.decode(5), TypeError, "decode expects a list (or 1-D tensor) of token ids"),
    ("tokenizer", lambda: tokenizer.decode("abc"), TypeError, "decode expects a list"),
    ("tokenizer", lambda: tokenizer.decode([[3, 4]]), ValueError, "decode one sequence at a time"),
    ("tokenizer", lambda: tokenizer.decode(torch.tensor([[3, 4]])), ValueError, "decode one sequence at a time"),
    ("tokenizer", lambda: tokenizer.decode([3.0]), ValueError, "token id 3.0 at position 0 is not in the vocabulary"),
    ("tokenizer", lambda: tokenizer.decode([40]), ValueError, "valid ids are 0..34"),
    ("tokenizer", lambda: CharTokenizer("aab"), ValueError, "duplicated characters: ['a']"),
    ("tokenizer", lambda: CharTokenizer(["a", "b"]), TypeError, "vocab must be a non-empty str"),
    ("data", lambda: mt.make_examples("copy", 0, seed=0), ValueError, "n must be a positive int, got 0"),
    ("data", lambda: mt.make_examples("copy", 5.0, seed=0), ValueError, "n must be a positive int, got 5.0"),
    ("data", lambda: mt.make_examples("copy", 5, seed=None), ValueError, "seed must be an int"),
    ("data", lambda: mt.make_examples("copy", 5, seed="0"), ValueError, "seed must be an int"),
    ("data", lambda: mt.make_examples("sorting", 5, seed=0), ValueError, "unknown task 'sorting'"),
    ("data", lambda: mt.make_examples([], 5, seed=0), ValueError, "no tasks given"),
    ("data", lambda: mt.make_examples(["copy", "is_sorted"], 5, seed=0), ValueError, "cannot mix generative and classification"),
    ("data", lambda: data.TaskSampler("copy", batch_size=0), ValueError, "batch_size must be a positive int, got 0"),
    ("data", lambda: data.TaskSampler("copy", seed=1.5), ValueError, "seed must be an int"),
    ("data", lambda: data.FixedSampler([]), ValueError, "needs at least one example"),
    ("data", lambda: data.FixedSampler(["Cab=ab."]), TypeError, "examples must be a non-empty list of Example"),
    ("data", lambda: data.FixedSampler(mt.make_examples("copy", 4, seed=0), batch_size=-2), ValueError, "batch_size must be a positive int, got -2"),
    ("data", lambda: data.ReplaySampler("is_sorted", fraction=0), ValueError, "fraction must be in (0, 1), got 0"),
    ("data", lambda: data.ReplaySampler("is_sorted", fraction=NAN), ValueError, "fraction must be in (0, 1)"),
    ("data", lambda: data.ReplaySampler("is_sorted", batch_size=1), ValueError, "batch_size must be an int >= 2"),
    ("data", lambda: data.ReplaySampler("is_sorted", fraction=0.9, batch_size=2), ValueError, "leaves no new-task example"),
    ("data", lambda: data.encode([]), TypeError, "examples must be a non-empty list of Example"),
    ("data", lambda: data.encode_lm(mt.make_examples("is_sorted", 2, seed=0)), ValueError, "encode_lm needs generative examples"),
    ("data", lambda: data.encode_classification(mt.make_examples("copy", 2, seed=0)), ValueError, "needs classification examples"),
    ("data", lambda: data.get_task("palindrome"), ValueError, "unknown task 'palindrome'; valid tasks are"),
    ("calculator", lambda: calculator.DecoderShape("x", 0, 64, 4, 100, 32), ValueError, "DecoderShape.n_layer must be a positive int, got 0"),
    ("calculator", lambda: calculator.DecoderShape("x", 2, 64.0, 4, 100, 32), ValueError, "DecoderShape.d_model must be a positive int"),
    ("calculator", lambda: calculator.DecoderShape("x", 2, 64, 4, 100, 32, kv_heads=0), ValueError, "DecoderShape.kv_heads"),
    ("calculator", lambda: calculator.DecoderShape("x", 2, 64, 4, 100, 32, bias="no"), TypeError, "DecoderShape.bias must be True or False"),
    ("calculator", lambda: calculator.step_memory(-10, 0), ValueError, "n_params must be a finite number >= 0, got -10"),
    ("calculator", lambda: calculator.step_memory(10, 20), ValueError, "n_trainable must be in 0..n_params=10"),
    ("calculator", lambda: calculator.step_memory(NAN, 0), ValueError, "n_params must be a finite number"),
    ("calculator", lambda: calculator.step_memory(10, 5, precision="fp16"), ValueError, "precision must be one of ['fp32', 'mixed']"),
    ("calculator", lambda: calculator.activation_bytes(calculator.GPT2[0], batch=0, seq=1024), ValueError, "batch must be a positive int, got 0"),
    ("calculator", lambda: calculator.activation_bytes(calculator.GPT2[0], batch=1, seq=-5), ValueError, "seq must be a positive int"),
    ("calculator", lambda: calculator.activation_bytes("gpt2", batch=1, seq=8), TypeError, "shape must be a DecoderShape"),
    ("calculator", lambda: calculator.training_memory(calculator.GPT2[0], trainable_fraction=0), ValueError, "trainable_fraction must be in (0, 1], got 0"),
    ("calculator", lambda: calculator.training_memory(calculator.GPT2[0], trainable_fraction=1.5), ValueError, "trainable_fraction must be in (0, 1]"),
    ("calculator", lambda: calculator.training_memory(calculator.GPT2[0], trainable_fraction=NAN), ValueError, "trainable_fraction"),
    ("calculator", lambda: calculator.training_memory(calculator.GPT2[0], batch=2.5), ValueError, "batch must be a positive int, got 2.5"),
    ("calculator", lambda: calculator.training_memory(calculator.GPT2[0], weight_bits=0), ValueError, "weight_bits must be in (0, 32]"),
    ("calculator", lambda: calculator.training_memory(calculator.GPT2[0], precision="bf16"), ValueError, "precision must be one of"),
    ("calculator", lambda: calculator.quantized_weight_bytes(1e6, bits=4, group_size=0), ValueError, "group_size must be a positive int"),
    ("calculator", lambda: calculator.quantized_weight_bits(0, 64), ValueError, "bits must be in (0, 32]"),
    ("calculator", lambda: calculator.bytes_per_parameter("fp16"), ValueError, "precision must be one of ['fp32', 'mixed']"),
    # impossible shapes: every head gets d_model / n_head dimensions, key/value heads are shared in equal groups
    ("calculator", lambda: calculator.DecoderShape("x", 12, 770, 12, 50257, 1024), ValueError, "DecoderShape.n_head must divide DecoderShape.d_model=770 (each head gets d_model / n_head dimensions), got 12 (valid: [1, 2, 5, 7, 10, 11, 14, 22, 35, 55, 70, 77, 110, 154, 385, 770])"),
    ("calculator", lambda: dataclasses.replace(calculator.GPT2[0], d_model=770), ValueError, "DecoderShape.d_model=770"),
    ("calculator", lambda: calculator.DecoderShape("x", 2, 64, 128, 100, 32), ValueError, "DecoderShape.n_head must divide DecoderShape.d_model=64"),
    ("calculator", lambda: calculator.DecoderShape("x", 2, 768, 12, 100, 32, kv_heads=5), ValueError, "DecoderShape.kv_heads must divide DecoderShape.n_head=12"),
    ("calculator", lambda: calculator.DecoderShape("x", 2, 768, 12, 100, 32, kv_heads=24), ValueError, "got 24 (valid: [1, 2, 3, 4, 6, 12])"),
    ("calculator", lambda: calculator.lora_parameters("gpt2", 8), TypeError, "shape must be a DecoderShape"),
    ("calculator", lambda: calculator.linear_shapes(None), TypeError, "shape must be a DecoderShape"),
    ("calculator", lambda: calculator.qlora_memory("65B"), TypeError, "shape must be a DecoderShape"),
    ("calculator", lambda: calculator.qlora_memory(r=0), ValueError, "r must be a positive int, got 0"),
    ("calculator", lambda: calculator.qlora_memory(checkpointing="yes"), TypeError, "checkpointing must be True or False"),
    ("calculator", lambda: calculator.qlora_memory(weight_bits=NAN), ValueError, "weight_bits must be in (0, 32], got nan"),
    ("quantize", lambda: quantize.quantize(torch.zeros(8), 4, 4), ValueError, "weight must have 2 dimensions"),
    ("quantize", lambda: quantize.quantize(torch.zeros(2, 8, dtype=torch.long), 4, 4), TypeError, "weight must be a floating-point tensor"),
    ("quantize", lambda: quantize.quantize(torch.full((2, 8), NAN), 4, 4), ValueError, "NaN or infinite"),
    ("quantize", lambda: quantize.quantize([[1.0]], 4, 1), TypeError, "weight must be a torch.Tensor"),
    ("quantize", lambda: quantize.quantize(torch.zeros(2, 8), 5, 4), ValueError, "bits must be one of [2, 3, 4, 8], got 5"),
    ("quantize", lambda: quantize.quantize(torch.zeros(2, 8), 4, 3), ValueError, "group_size must be a positive divisor of the row length 8, got 3 (valid: [1, 2, 4, 8])"),
    ("quantize", lambda: quantize.QuantizedLinear(BASE.blocks[0].ln1), TypeError, "linear must be an nn.Linear, got a LayerNorm"),
    ("checkpoint", lambda: mt.load_base(3), ValueError, "no shipped base with n_layer=3"),
    ("checkpoint", lambda: load_checkpoint("/nonexistent/base"), FileNotFoundError, "no checkpoint metadata"),
    ("checkpoint", lambda: pretrain.pretrain(pretrain.Recipe(steps=0)), ValueError, "recipe.steps (--steps) must be a positive int, got 0"),
    ("checkpoint", lambda: pretrain.pretrain(pretrain.Recipe(lr=NAN)), ValueError, "recipe.lr (--lr) must be a finite number > 0"),
]


@pytest.mark.parametrize("row", NON_MUTATING, ids=lambda row: f"{row[0]}-{NON_MUTATING.index(row)}")
def test_bad_input_gets_an_error_naming_the_argument(row):
    _, call, error, words = row
    with pytest.raises(error, match=re.escape(words)):
        call()


CLI_CASES = [
    (["--out", "/proc/no/such/folder/base"], "cannot write a checkpoint at '/proc/no/such/folder/base'"),
    (["--out", __file__ + "/base"], "is a file, not a folder"),
    (["--lr", "0"], "--lr) must be a finite number > 0"),
    (["--lr", "nan"], "--lr) must be a finite number > 0, got nan"),
    (["--steps", "0"], "--steps) must be a positive int"),
    (["--batch-size", "-1"], "--batch-size) must be a positive int"),
    (["--threads", "0"], "--threads) must be a positive int"),
    (["--n-layer", "0"], "--n-layer must be a positive int, got 0"),
    (["--d-model", "30"], "valid --n-head values for this d_model"),
    (["--d-model", "30", "--n-head", "7"], "valid --n-head values"),
    (["--layers", "4"], "unrecognized arguments: --layers 4"),
]


@pytest.mark.parametrize("argv, words", CLI_CASES)
def test_the_pretrain_command_checks_everything_before_training(argv, words, capsys, monkeypatch):
    monkeypatch.setattr(pretrain, "pretrain", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(SystemExit) as exit_:
        pretrain.main(argv)
    assert exit_.value.code == 2
    assert words in capsys.readouterr().err


def test_the_pretrain_command_s_recommended_option_exists(tmp_path, monkeypatch):
    """The --d-model error recommends --n-head values: the option exists and is used."""
    seen = {}

    def record(recipe, config, progress):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(pretrain, "pretrain", record)
    with pytest.raises(SystemExit):
        pretrain.main(["--d-model", "30", "--n-head", "5", "--out", str(tmp_path / "b")])
    assert seen["config"].n_head == 5


def test_the_peft_survey_command_refuses_unknown_arguments(capsys):
    from minitransformer.peft.survey import main

    with pytest.raises(SystemExit) as exit_:
        main(["--method", "lora"])
    assert exit_.value.code == 2 and "unrecognized arguments: --method lora" in capsys.readouterr().err


NOTEBOOK_CASES = [
    # `check` used to ignore its arguments and report "in sync" for whatever it was given
    (["check", "chapters/01_mini_transformer.ipynb"], "check takes no arguments (it works on every notebook in solutions/ and chapters/), got 'chapters/01_mini_transformer.ipynb'"),
    (["check", "chapters", "solutions"], "check takes no arguments"),
    (["generate", "solutions/01_mini_transformer.ipynb"], "generate takes no arguments"),
    (["execute", "chapters/01_mini_transformer.ipynb"], "got 'chapters/01_mini_transformer.ipynb', which is a student chapter"),
    (["execute", "solutions"], "execute runs solution notebooks (solutions/*.ipynb, e.g. solutions/01_mini_transformer.ipynb; none means all of them), got 'solutions', which is a folder"),
    (["execute", "solutions/99_missing.ipynb"], "got 'solutions/99_missing.ipynb', which does not exist"),
    (["execute", "README.md"], "got 'README.md', which is not a solution notebook"),
    (["execute", "solutions/01_mini_transformer.ipynb", "chapters/01_mini_transformer.ipynb"], "which is a student chapter"),
]


@pytest.mark.parametrize("argv, words", NOTEBOOK_CASES)
def test_the_notebooks_command_refuses_arguments_it_cannot_use(argv, words, capsys, monkeypatch):
    from minitransformer.course import notebooks

    monkeypatch.chdir(notebooks.ROOT)  # paths as typed in the repository
    for verb in ("generate", "out_of_date", "execute"):
        monkeypatch.setattr(notebooks, verb, lambda *a, **k: pytest.fail("the command ran"))
    with pytest.raises(SystemExit) as exit_:
        notebooks.main(argv)
    assert exit_.value.code == 2
    assert words in capsys.readouterr().err


def test_the_notebooks_command_runs_the_solution_notebooks_it_is_given(monkeypatch):
    from minitransformer.course import notebooks

    monkeypatch.chdir(notebooks.ROOT)
    ran = []
    monkeypatch.setattr(notebooks, "execute", lambda path: ran.append(path) or 0.0)
    assert notebooks.main(["execute", "solutions/01_mini_transformer.ipynb"]) == 0
    assert ran == [notebooks.Path("solutions/01_mini_transformer.ipynb")]


# Methods compose (train, save, load back to the same outputs) or refuse up front.
def outputs(model, ids=torch.tensor([[10, 11, 12, 13, 2], [10, 12, 13, 13, 2]])):
    with torch.no_grad():
        return model(ids, torch.tensor([4, 4])) if isinstance(model, mt.Classifier) else model(ids)


COMBOS = {
    "lora+ia3": lambda m: (peft.add_lora(m, "one", r=4), peft.add_ia3(m, "two")),
    "ia3+lora": lambda m: (peft.add_ia3(m, "one"), peft.add_lora(m, "two", r=4)),
    "adapters+lora_all": lambda m: (peft.add_adapters(m, "one", bottleneck=4), peft.add_lora(m, "two", targets="all-linear", r=2)),
    "lora_all+adapters": lambda m: (peft.add_lora(m, "one", targets="all-linear", r=2), peft.add_adapters(m, "two", bottleneck=4)),
    "ia3_all+adapters": lambda m: (peft.add_ia3(m, "one", targets=["out_proj", "fc_out"]), peft.add_adapters(m, "two", bottleneck=4)),
    "prefix+prompt": lambda m: (peft.add_prefix(m, "one", length=2), peft.add_prompt(m, "two", length=2)),
    "lora+prefix": lambda m: (peft.add_lora(m, "one", r=4), peft.add_prefix(m, "two", length=2)),
}


@pytest.mark.parametrize("combo", COMBOS)
@pytest.mark.parametrize("load_order", ["same", "reversed"])
def test_two_methods_on_one_model_train_save_and_load_back_to_the_same_outputs(combo, load_order, tmp_path):
    model = clf()
    COMBOS[combo](model)
    peft.set_active(model, ["one", "two"])
    batch = data.encode(mt.make_examples("is_sorted", 16, seed=0))
    mt.train(model, lambda: batch, steps=2, lr=1e-2, progress=False)
    perturb(model)
    expected = outputs(model)
    for name in ("one", "two"):
        peft.save_adapter(model, tmp_path / name, name=name)
    fresh = clf()
    for name in (("one", "two") if load_order == "same" else ("two", "one")):
        peft.load_adapter(fresh, tmp_path / name)
    peft.set_active(fresh, ["one", "two"], trainable=False)
    assert torch.allclose(outputs(fresh), expected, atol=1e-6)
    with peft.disable_adapters(fresh):
        assert torch.equal(outputs(fresh.base), outputs(BASE))


def folded(model, active):
    """A plain Classifier whose weights hold what `model`'s IA3 "i" and LoRA "l" adapters compute (those in
    `active`): W + (alpha / r) B A first, since LoRA sits on the linear layer, then IA3's scales on top."""
    from minitransformer.peft.layers import clean_name

    plain = mt.Classifier(base())
    plain.head.load_state_dict(model.head.state_dict())
    layers = [(clean_name(n), l) for n, l in peft.peft_layers(model)]
    with torch.no_grad():
        for site, layer in layers:
            if layer.kind == "lora" and "l" in active:
                plain.get_submodule(site).weight += layer.delta_weight("l")
        for site, layer in layers:
            if layer.kind == "ia3" and "i" in active:
                scale = layer.scales["i"]
                if site.endswith("mlp.act"):  # scales fc_out's input: its columns
                    plain.get_submodule(site[: -len("act")] + "fc_out").weight *= scale[None, :]
                else:  # scales the projection's output: its rows and bias
                    target = plain.get_submodule(site)
                    target.weight *= scale[:, None]
                    target.bias *= scale
    return plain


def test_lora_added_on_a_layer_that_carries_ia3_stacks_inside_it(tmp_path):
    """add_lora on a layer IA3 already wraps (v_proj: in IA3's and LoRA's default targets) stacks as the README
    says: LoRA goes onto the linear layer itself, inside IA3; both compute, each switches alone, both save and load."""
    model = clf()
    peft.add_ia3(model, "i")
    peft.add_lora(model, "l", r=4)
    perturb(model)
    v_proj = model.base.blocks[0].attn.v_proj
    assert [type(m).__name__ for m in (v_proj, v_proj.base_layer, v_proj.base_layer.base_layer)] == ["IA3Layer", "LoRALinear", "Linear"]
    expected = {}
    for active in (["i", "l"], ["i"], ["l"]):
        peft.set_active(model, active)
        expected[tuple(active)] = outputs(model)
        assert torch.allclose(expected[tuple(active)], outputs(folded(model, active)), atol=1e-5), active
    assert not torch.allclose(expected[("i", "l")], expected[("i",)]) and not torch.allclose(expected[("i", "l")], expected[("l",)])
    with peft.disable_adapters(model):
        assert torch.allclose(outputs(model), outputs(folded(model, [])), atol=1e-6)
    for name in ("i", "l"):
        peft.save_adapter(model, tmp_path / name, name=name)
    fresh = clf()
    for name in ("l", "i"):  # the other order: the nesting is rebuilt as saved
        peft.load_adapter(fresh, tmp_path / name)
    v_proj = fresh.base.blocks[0].attn.v_proj
    assert [type(m).__name__ for m in (v_proj, v_proj.base_layer)] == ["IA3Layer", "LoRALinear"]
    peft.set_active(fresh, ["i", "l"], trainable=False)
    assert torch.allclose(outputs(fresh), expected[("i", "l")], atol=1e-6)


def test_one_of_two_stacked_adapters_loads_alone_onto_a_fresh_base(tmp_path):
    """The issue's example: a LoRA adapter saved while IA3 wrapped the same layer used to be unloadable."""
    model = lora_ia3()
    peft.set_active(model, "a")
    expected = outputs(model)
    peft.save_adapter(model, tmp_path / "a", name="a")
    fresh = clf()
    peft.load_adapter(fresh, tmp_path / "a")
    assert torch.allclose(outputs(fresh), expected, atol=1e-6)


def test_lora_with_trained_biases_saves_and_loads(tmp_path):
    model = lora()
    peft.unfreeze_biases(model)
    with torch.no_grad():
        model.base.blocks[0].mlp.fc_in.bias.add_(0.1)
    expected = outputs(model)
    peft.save_adapter(model, tmp_path / "a")
    fresh = clf()
    peft.load_adapter(fresh, tmp_path / "a")
    assert torch.allclose(outputs(fresh), expected, atol=1e-6)


def test_an_adapter_trained_on_a_4bit_base_is_refused_on_an_8bit_base(tmp_path):
    peft.save_adapter(quantized_lora(), tmp_path / "a")
    other = mt.Classifier(quantize.quantize_model(base(), 8, 16))
    before = fingerprint(other)
    with pytest.raises(ValueError, match="trained on a different base model"):
        peft.load_adapter(other, tmp_path / "a")
    assert_same(before, fingerprint(other))
    peft.load_adapter(quantized(), tmp_path / "a")  # the same 4-bit base takes it


def test_quantize_first_then_lora_is_the_order_that_works():
    model = mt.Classifier(quantize.quantize_model(base(), 4, 16))
    peft.add_lora(model, "a", r=4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)


def test_generate_with_a_soft_prompt_stops_when_the_context_is_full():
    model = prompted()  # 8 virtual tokens: 24 positions left for the prompt and its answer
    text = "C" + "abcdefghijklmnop"[:15] + "="
    answer = mt.generate(model, text)[0]
    assert len(text) + len(answer) <= 24
    assert mt.generate(model, text, max_new_tokens=3)[0] == answer[:3]


def test_a_hand_edited_config_is_named_in_the_error(saved, tmp_path):
    folder = edited(saved, tmp_path, set_setting("alpha", 32))
    with pytest.raises(ValueError, match="alpha': 32"):
        peft.load_adapter(clf(), folder)


CONFIG_EDITS = [  # (setting, edited value, words): the shipped base has d_model=64, n_layer=2, mlp_ratio=4, block_size=32
    ("d_model", 128, "the config and the weights disagree: tensor 'tok_emb.weight' has shape (35, 128) by the config but (35, 64) in the weights"),
    ("n_layer", 4, "the config and the weights disagree: the config needs a tensor 'blocks.2.ln1.weight' of shape (64,), which the weights lack"),
    ("n_layer", 1, "the weights hold a tensor 'blocks.1.attn.k_proj.bias' of shape (64,), for which the config has no place"),
    ("mlp_ratio", 2, "tensor 'blocks.0.mlp.fc_in.weight' has shape (128, 64) by the config but (256, 64) in the weights"),
    ("block_size", 64, "tensor 'pos_emb.weight' has shape (64, 64) by the config but (32, 64) in the weights"),
]


@pytest.mark.parametrize("key, value, words", CONFIG_EDITS)
def test_a_checkpoint_whose_config_was_edited_is_refused_naming_the_first_tensor_that_differs(key, value, words, tmp_path):
    """It used to fail inside load_state_dict ("size mismatch for ..." or "Missing key(s)")."""
    from minitransformer.checkpoint import BASE_CHECKPOINT

    for suffix in (".json", ".safetensors"):
        shutil.copy(BASE_CHECKPOINT.with_suffix(suffix), (tmp_path / "base").with_suffix(suffix))
    assert torch.equal(load_checkpoint(tmp_path / "base")(IDS), BASE(IDS))  # the copy itself loads
    info = json.loads((tmp_path / "base.json").read_text())
    info["config"][key] = value
    (tmp_path / "base.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=re.escape(words)) as error:
        load_checkpoint(tmp_path / "base")
    assert str(tmp_path / "base.json") in str(error.value) and f"{key}={value}" in str(error.value)
    assert "edited after saving" in str(error.value)


def test_merging_an_inactive_lora_adapter_is_refused_so_merged_adapters_always_compute():
    model = two_loras()
    before = fingerprint(model)
    with pytest.raises(ValueError, match="'a' is not active"):
        peft.merge_lora(model, "a")
    assert_same(before, fingerprint(model))


def test_a_data_generator_that_cannot_find_an_example_says_so(monkeypatch):
    import random

    monkeypatch.setattr(data, "_random_string", lambda rng, alphabet: "aba")  # only palindromes come out
    state = next(s for s in range(100) if random.Random(s).randint(0, 1) == 0)
    with pytest.raises(RuntimeError, match="could not generate an is_palindrome example in 1,000 tries"):
        data._make_is_palindrome(random.Random(state))


# data.MIN_LEN and data.MAX_LEN (module settings: the shortest and longest input the generators draw)
LENGTH_CASES = [
    # min > max used to fail inside random.randint ("empty range for randrange")
    ((9, 8), lambda: mt.make_examples("copy", 5, seed=0), "data.MIN_LEN must be <= data.MAX_LEN (the shortest and the longest input the generators draw), got data.MIN_LEN=9 and data.MAX_LEN=8"),
    ((9, 8), lambda: data.TaskSampler("is_sorted"), "got data.MIN_LEN=9 and data.MAX_LEN=8"),
    ((5, 4), lambda: data.ReplaySampler("is_palindrome"), "got data.MIN_LEN=5 and data.MAX_LEN=4"),
    # length 1 used to fail after 1,000 tries: a 1-digit string is always sorted, a 1-letter string a palindrome
    ((1, 1), lambda: mt.make_examples("is_sorted", 5, seed=0), "data.MIN_LEN must be an int >= 2, got 1 (is_sorted needs inputs of length >= 2: every 1-digit string is sorted"),
    ((1, 8), lambda: mt.make_examples("is_sorted", 5, seed=0), "data.MIN_LEN must be an int >= 2, got 1"),
    ((1, 1), lambda: data.TaskSampler("is_palindrome"), "is_palindrome needs inputs of length >= 2: every 1-letter string reads the same backwards"),
    ((0, 8), lambda: mt.make_examples("copy", 5, seed=0), "data.MIN_LEN must be a positive int, got 0"),
    ((3, 8.5), lambda: mt.make_examples("copy", 5, seed=0), "data.MAX_LEN must be a positive int, got 8.5"),
]


@pytest.mark.parametrize("lengths, call, words", LENGTH_CASES)
def test_impossible_input_lengths_are_refused_before_any_example_is_drawn(lengths, call, words, monkeypatch):
    monkeypatch.setattr(data, "MIN_LEN", lengths[0])
    monkeypatch.setattr(data, "MAX_LEN", lengths[1])
    with pytest.raises(ValueError, match=re.escape(words)):
        call()


def test_a_sampler_refuses_lengths_changed_after_it_was_made(monkeypatch):
    sampler = data.TaskSampler("is_sorted", batch_size=4)
    monkeypatch.setattr(data, "MIN_LEN", 1)
    with pytest.raises(ValueError, match=re.escape("data.MIN_LEN must be an int >= 2, got 1")):
        sampler()


@pytest.mark.parametrize("task", ["is_sorted", "is_palindrome"])
def test_the_smallest_length_the_error_names_gives_both_classes(task, monkeypatch):
    monkeypatch.setattr(data, "MIN_LEN", 2)
    monkeypatch.setattr(data, "MAX_LEN", 2)
    examples = mt.make_examples(task, 200, seed=0)
    assert {len(e.prompt) for e in examples} == {4} and {e.label for e in examples} == {0, 1}


def count_by_module() -> dict[str, int]:
    """Bad inputs covered here, by the module they exercise (printed in the project's notes)."""
    counts: dict[str, int] = {}
    for row in MUTATING:
        key = row[0].split(".")[0]
        counts[key] = counts.get(key, 0) + 1
    for row in NON_MUTATING:
        counts[row[0]] = counts.get(row[0], 0) + 1
    counts["cli"] = len(CLI_CASES) + 1
    return counts

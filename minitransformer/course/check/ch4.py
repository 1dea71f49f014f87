"""Checks for chapter 4's exercises: freezing all but the last k blocks, BitFit, counting what trains."""

import copy

import torch

from ... import counts
from ...checkpoint import load_base
from ...counts import count_parameters
from ...model import Classifier, MiniTransformer, ModelConfig
from ...peft import selective
from ...peft.selective import select
from .core import Part, call_learner, checker, pick, register, seed


def _base():
    """The course's base model in a notebook; when grading, a deeper random one (hard-coded names fail)."""
    if pick(0, True, False):
        return load_base()
    torch.manual_seed(seed(40))
    return MiniTransformer(ModelConfig(n_layer=pick(1, 3, 4, 5)))


def train_last_blocks_reference(model, k):
    select(model, "last_k", k=k)


def bitfit_reference(model):
    select(model, "bitfit")


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def _describe_difference(got: set[str], want: set[str]) -> str:
    missing, extra = sorted(want - got), sorted(got - want)
    if any(n.startswith("head.") for n in missing):
        return "the task head is frozen: it is new and random, so it must always train"
    if missing and extra and all(".blocks.0." in n for n in extra):
        return "you unfroze the first blocks; the last blocks are the ones nearest the head"
    parts = []
    if missing:
        parts.append(f"should train but is frozen: {missing[:3]}" + (" …" if len(missing) > 3 else ""))
    if extra:
        parts.append(f"should be frozen but trains: {extra[:3]}" + (" …" if len(extra) > 3 else ""))
    return "; ".join(parts)


@register("4.1", "freeze all but the last k blocks", 3, train_last_blocks_reference,
          "minitransformer.peft.select(model, 'last_k', k=k)", forbidden=(select, selective.unfreeze_blocks))
def _check_last_blocks(fn):
    base = _base()
    for k in pick(2, (0, 1, 2), (0, 1, 3), (1, 2, 3), (0, 2, 3)):
        model, reference = Classifier(copy.deepcopy(base)), Classifier(copy.deepcopy(base))
        train_last_blocks_reference(reference, k)
        call_learner(fn, model, k)
        got, want = _trainable(model), _trainable(reference)
        yield Part(f"correct for k = {k}", got == want, _describe_difference(got, want))


@register("4.2", "BitFit: train only the biases", 2, bitfit_reference, "minitransformer.peft.select(model, 'bitfit')",
          forbidden=(select, selective.unfreeze_biases))
def _check_bitfit(fn):
    base = _base()
    model, reference = Classifier(copy.deepcopy(base)), Classifier(copy.deepcopy(base))
    bitfit_reference(reference)
    call_learner(fn, model)
    got, want = _trainable(model), _trainable(reference)
    frozen_biases = sorted(n for n in want if n.endswith("bias") and n not in got)
    message = f"these biases are frozen: {frozen_biases[:3]}" + (" …" if len(frozen_biases) > 3 else "")
    if any(".ln" in n for n in frozen_biases):
        message += " — a LayerNorm's shift is a bias too"
    yield Part("every bias trains (attention, MLP and LayerNorm)", not frozen_biases, message)
    message = _describe_difference(got, want)
    yield Part("nothing else trains, except the task head", got == want, message)


def _models():
    base = _base()
    a = Classifier(copy.deepcopy(base))
    b = Classifier(copy.deepcopy(base))
    select(b, "bitfit")
    c = copy.deepcopy(base)
    c.requires_grad_(False)
    c.lm_head.requires_grad_(True)
    return [("a classifier, everything trainable", a), ("a classifier with BitFit", b),
            ("a language model with only its LM head trainable", c)]


@register("4.3", "count what is trainable", 3, count_parameters, "minitransformer.counts.count_parameters",
          forbidden=(counts.parameters_by_component,))
def _check_count(fn):
    for label, model in _models():
        got = call_learner(fn, model)
        want = count_parameters(model)
        if not isinstance(got, dict) or not {"trainable", "total"} <= set(got):
            yield Part(f"correct for {label}", False, f"return a dict with keys 'trainable' and 'total', got {got!r}")
            continue
        ok = got["trainable"] == want["trainable"] and got["total"] == want["total"]
        message = f"you said {got['trainable']!r} of {got['total']!r}, expected {want['trainable']:,} of {want['total']:,}"
        tensors = sum(1 for p in model.parameters() if p.requires_grad)
        if got["trainable"] == tensors:
            message += " — that counts tensors; count their elements with p.numel()"
        elif got["trainable"] == want["total"] and want["trainable"] != want["total"]:
            message += " — only parameters with p.requires_grad count as trainable"
        yield Part(f"correct for {label}", ok, message)

train_last_blocks = checker("4.1")
bitfit = checker("4.2")
count_trainable = checker("4.3")

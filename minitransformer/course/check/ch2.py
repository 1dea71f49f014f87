"""Checks for chapter 2's exercises: activation bytes, the bytes-per-parameter formula, GPT-2's size."""

import numbers
import random

import torch

from ... import calculator
from ...calculator import GPT2, DecoderShape, step_memory
from ...data import BASE_TASKS, TaskSampler, encode, make_examples
from ...memory import ActivationMeter, forward_activation_bytes
from ...model import Classifier, MiniTransformer, ModelConfig
from ...train import loss_on_batch
from .core import Part, call_learner, checker, pick, register, seed


def _fmt(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else repr(value)


def _saved_bytes(model, batch, dedupe: bool, skip_parameters: bool) -> int:
    """What a meter with a common mistake would count."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen, total = set(), 0

    def pack(t):
        nonlocal total
        ptr = t.untyped_storage().data_ptr()
        if not (skip_parameters and ptr in params) and not (dedupe and ptr in seen):
            total += t.untyped_storage().nbytes() if dedupe else t.numel() * t.element_size()
        seen.add(ptr)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss_on_batch(model, batch)
    return total


def _cases():
    torch.manual_seed(seed(0))
    lm = MiniTransformer(pick(1, ModelConfig(), ModelConfig(n_layer=3), ModelConfig(d_model=32, n_head=2)))
    clf = Classifier(MiniTransformer(ModelConfig(n_layer=1)))
    clf.base.requires_grad_(False)
    small, large = pick(2, (16, 32), (8, 24), (12, 40), (20, 28))
    return [
        (f"the language model on a batch of {small}", lm, TaskSampler(BASE_TASKS, small, seed=seed(0))()),
        (f"the language model on a batch of {large}", lm, TaskSampler(BASE_TASKS, large, seed=seed(1))()),
        ("a classifier with a frozen base", clf, encode(make_examples("is_sorted", small, seed=seed(0)))),
    ]


@register("2.1", "activation bytes with saved-tensor hooks", 3, forward_activation_bytes,
          "minitransformer.memory.forward_activation_bytes", forbidden=(ActivationMeter,))
def _check_activation_bytes(fn):
    for label, model, batch in _cases():
        got = call_learner(fn, model, batch)
        want = forward_activation_bytes(model, batch)
        message = f"for {label} you counted {_fmt(got)} bytes, the reference counts {want:,}"
        if got == 0:
            message += ": nothing was counted; run the forward pass (and the loss) inside the hooks' `with` block"
        elif got == _saved_bytes(model, batch, dedupe=True, skip_parameters=False):
            message += ": you counted the parameters too; skip tensors whose storage is a parameter's"
        elif got == _saved_bytes(model, batch, dedupe=False, skip_parameters=True):
            message += ": several saved tensors share one storage; count each storage once (by its data_ptr)"
        elif got == _saved_bytes(model, batch, dedupe=False, skip_parameters=False):
            message += ": count each storage once, and leave the parameters out"
        yield Part(f"correct for {label}", isinstance(got, numbers.Integral) and not isinstance(got, bool) and got == want,
                   message)


_TRAINING_CASES = [(1_000_000, 1_000_000, "fp32"), (1_000_000, 10_000, "fp32"),
                   (1_000_000, 1_000_000, "mixed"), (1_000_000, 10_000, "mixed")]


def _hidden_training_cases():
    rng = random.Random(seed(21))
    cases = []
    for precision in ("fp32", "fp32", "mixed", "mixed"):
        n = rng.randint(1_000, 10**10)
        cases.append((n, rng.choice([n, rng.randint(0, n), rng.randint(0, n // 100)]), precision))
    return cases


def _diagnose_bytes(got, n, t, precision) -> str:
    want = step_memory(n, t, precision)
    wrong = [k for k in want if got.get(k) != want[k]]
    key = wrong[0]
    hint = {
        "gradients": "only trainable parameters get a gradient",
        "optimizer": "Adam keeps two moments per trainable parameter" + (
            ", plus an fp32 master copy of its weight in mixed precision (4 + 4 + 4 bytes)" if precision == "mixed" else " (4 + 4 bytes)"),
        "weights": "every parameter is stored once, frozen or not" + (
            ", in 16 bits (2 bytes) for mixed precision" if precision == "mixed" else ", in 4 bytes"),
    }[key]
    return f"{key}: you said {_fmt(got.get(key))}, expected {want[key]:,.0f} — {hint}"


@register("2.2", "bytes per parameter with Adam", len(_TRAINING_CASES), step_memory,
          "minitransformer.calculator.step_memory",
          forbidden=(calculator.bytes_per_parameter, calculator.training_memory))
def _check_training_bytes(fn):
    for n, t, precision in pick(1, _TRAINING_CASES, _hidden_training_cases()):
        got = call_learner(fn, n, t, precision)
        label = f"{t:,} of {n:,} parameters trainable, {precision}"
        if not isinstance(got, dict) or set(got) != {"weights", "gradients", "optimizer"}:
            yield Part(label, False, f"return a dict with keys weights, gradients, optimizer; got {_fmt(got)}")
            continue
        ok = all(got[k] == v for k, v in step_memory(n, t, precision).items())
        yield Part(label, ok, "" if ok else _diagnose_bytes(got, n, t, precision))


def _gpt2_reference(n_layer, d_model, vocab_size, context):
    return DecoderShape("gpt2", n_layer, d_model, max(1, d_model // 64), vocab_size, context).parameters()


def _hidden_shapes():
    rng = random.Random(seed(23))
    shapes = []
    for i in range(len(GPT2)):
        n_head = rng.randint(1, 32)
        shapes.append(DecoderShape(f"a hidden GPT-2-style shape #{i + 1}", rng.randint(1, 60), 64 * n_head, n_head,
                                   rng.randint(100, 100_000), rng.choice([128, 512, 1024, 2048])))
    return shapes


@register("2.3", "GPT-2's parameter count", len(GPT2), _gpt2_reference, "minitransformer.calculator.DecoderShape.parameters",
          forbidden=(DecoderShape,))
def _check_gpt2(fn):
    for shape in pick(1, GPT2, _hidden_shapes()):
        got = call_learner(fn, shape.n_layer, shape.d_model, shape.vocab_size, shape.context)
        want = shape.parameters()
        message = f"for {shape.name} you said {_fmt(got)}, expected {want:,}"
        if isinstance(got, int):
            diff = got - want
            d, L = shape.d_model, shape.n_layer
            if diff == shape.vocab_size * d:
                message += f": GPT-2 ties its output layer to the token embedding, so count it once (off by {diff:,})"
            elif diff == -shape.context * d:
                message += ": the learned position embedding is missing"
            elif diff == -L * 2 * 2 * d:
                message += ": each block has two LayerNorms with a scale and a shift"
            elif diff == -2 * d:
                message += ": the final LayerNorm is missing"
            elif diff < 0 and diff % L == 0:
                message += f": {-diff // L:,} parameters per block are missing (biases? 4·d·d + 4·d for attention, 8·d·d + 5·d for the MLP)"
        yield Part(f"correct for {shape.name}", got == want, message)

activation_bytes = checker("2.1")
training_bytes = checker("2.2")
gpt2_parameters = checker("2.3")

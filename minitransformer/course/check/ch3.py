"""Checks for chapter 3's exercises: where the head reads, forgetting as a number, early stopping, one training step."""

import numbers
import random

import torch

import torch.nn.functional as F

from ...data import BASE_TASKS, IGNORE, encode, encode_classification, encode_lm, make_examples
from ...model import MiniTransformer, ModelConfig
from ...train import loss_on_batch, train
from ...experiments.forgetting import best_step, forgetting
from ...tokenizer import SEP, tokenizer
from .core import Part, call_learner, call_probe, checker, pick, register, seed


def separator_positions_reference(x):
    """The index of "=" in each row of a batch of token ids."""
    return (x == tokenizer.stoi[SEP]).int().argmax(dim=1)


@register("3.1", "where the task head reads", 4, separator_positions_reference,
          "minitransformer.course.check.ch3.separator_positions_reference")
def _check_positions(fn):
    examples = make_examples("is_sorted", pick(1, 40, 17, 33, 52), seed=seed(4))
    x, want, _ = encode_classification(examples)
    cases = [("a batch of prompts of different lengths", x, want),
             ("a single prompt", x[:1], want[:1]),
             ("prompts with padding after them", torch.cat([x, torch.zeros(len(x), pick(2, 3, 1, 5, 8), dtype=torch.long)], 1), want)]
    generative = make_examples(BASE_TASKS, pick(3, 20, 11, 27), seed=seed(5))
    texts = encode_lm(generative)[0]
    cases.append(("texts that go on after the '='", texts, torch.tensor([len(e.prompt) - 1 for e in generative])))
    for label, batch, expected in cases:
        got = call_learner(fn, batch)
        ok = torch.is_tensor(got) and got.shape == expected.shape and torch.equal(got.long(), expected)
        message = "return a tensor of shape (batch,) with one index per row"
        if torch.is_tensor(got) and got.shape == expected.shape:
            wrong = int((got.long() != expected).nonzero()[0]) if not ok else 0
            message = (f"row {wrong} ({tokenizer.decode(batch[wrong]).rstrip('_')!r}): you said {int(got[wrong])}, "
                       f"the '=' is at {int(expected[wrong])}")
            if torch.equal(got.long(), expected + 1):
                message += " — off by one: positions count from 0"
            elif torch.equal(got.long(), (batch != tokenizer.pad_id).sum(1) - 1) and not ok:
                message += " — that is the last non-padding token, which is '=' only if nothing follows it"
        yield Part(f"correct for {label}", ok, message)


# Accuracies are 4-decimal numbers. Equivalent answers differ from the reference by float rounding (another
# order of operations, float32 or float64: ~1e-7), or, computed from inputs rounded to 4 decimals as a notebook
# prints them, by up to 1e-4 (before["mean"] - after["mean"]: two roundings of 5e-5), plus 5e-5 if the answer
# itself is rounded to 4 decimals. A wrong answer (sign, a missing division, another mean) is off by far more.
_FORGETTING_TOL = 1.5e-4


def _number(value) -> bool:
    """A Python, NumPy or one-element torch number (not a bool)."""
    if torch.is_tensor(value):
        return value.numel() == 1 and value.dtype != torch.bool
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _distinct(got: float, want: float) -> tuple[str, str]:
    """The two numbers with as many decimals as it takes to tell them apart (at least 3)."""
    for digits in range(3, 10):
        if f"{got:.{digits}f}" != f"{want:.{digits}f}":
            break
    return f"{got:.{digits}f}", f"{want:.{digits}f}"


@register("3.2", "forgetting as a number", 3, forgetting, "minitransformer.experiments.forgetting.forgetting")
def _check_forgetting(fn):
    cases = [
        ("a model that forgot some of everything", {"copy": 1.0, "reverse": 0.9, "sort": 0.8},
         {"copy": 0.5, "reverse": 0.6, "sort": 0.8}),
        ("a model that forgot nothing", {"copy": 0.9, "reverse": 0.9, "sort": 0.9},
         {"copy": 0.9, "reverse": 0.9, "sort": 0.9}),
        ("a model that got better at one task", {"copy": 0.5, "reverse": 1.0, "sort": 1.0},
         {"copy": 0.8, "reverse": 0.4, "sort": 1.0}),
    ]
    if HIDDEN := pick(1, None, random.Random(seed(32))):  # grading: the same three situations, hidden numbers
        tasks = ["copy", "reverse", "sort"]
        cases = []
        for label, low, high in (("a model that forgot some of everything", -0.4, -0.01),
                                 ("a model that forgot nothing", 0.0, 0.0), ("a model that got better at one task", -0.3, 0.3)):
            before = {t: round(HIDDEN.uniform(0.5, 1.0), 4) for t in tasks}
            after = {t: round(min(1.0, max(0.0, before[t] + HIDDEN.uniform(low, high))), 4) for t in tasks}
            cases.append((label, before, after))
    for label, before, after in cases:
        # "mean" is the exact mean of the tasks, as evaluate_base_tasks stores it: a rounded mean (0.6333 for
        # 1.9 / 3) made `before["mean"] - after["mean"]`, an equivalent answer, miss by 3e-5
        before, after = ({**d, "mean": sum(d[t] for t in BASE_TASKS) / len(BASE_TASKS)} for d in (before, after))
        got = call_learner(fn, dict(before), dict(after))
        want = forgetting(before, after)
        if not isinstance(got, dict) or set(got) != set(want):
            yield Part(f"correct for {label}", False, f"return a dict with keys {sorted(want)}; got {got!r}")
            continue
        bad = [k for k in want if not _number(got[k]) or abs(float(got[k]) - want[k]) > _FORGETTING_TOL]
        message = ""
        if bad:
            k = bad[0]
            if not _number(got[k]):
                yield Part(f"correct for {label}", False, f"{k}: return a number, not {type(got[k]).__name__}")
                continue
            mine, theirs = _distinct(float(got[k]), want[k])
            message = f"{k}: you said {mine}, expected {theirs}"
            if abs(float(got[k]) + want[k]) <= _FORGETTING_TOL:
                message += " — the sign is flipped: forgetting is before minus after, positive when the model lost"
            elif k == "mean":
                message += " — the mean of the per-task drops (a gain on one task offsets a loss on another)"
        yield Part(f"correct for {label}", not bad, message)


@register("3.3", "early stopping", 3, best_step, "minitransformer.experiments.forgetting.best_step")
def _check_best_step(fn):
    cases = [
        ("a held-out curve that peaks and falls", [0, 50, 100, 150, 200], [0.5, 0.7, 0.8, 0.75, 0.7], 100),
        ("a curve that keeps rising", [0, 50, 100], [0.5, 0.6, 0.9], 100),
        ("a tie (stop at the earlier step)", [10, 20, 30, 40], [0.6, 0.8, 0.8, 0.7], 20),
    ]
    if HIDDEN := pick(1, None, random.Random(seed(33))):  # grading: hidden curves of the same three kinds
        cases = []
        for label, kind in (("a held-out curve that peaks and falls", "peak"), ("a curve that keeps rising", "rise"),
                            ("a tie (stop at the earlier step)", "tie")):
            n = HIDDEN.randint(4, 9)
            every = HIDDEN.choice([10, 25, 50, 100])
            steps = [every * (i + HIDDEN.randint(0, 1)) for i in range(n)]
            steps = sorted(set(steps)) if len(set(steps)) == n else [every * i for i in range(n)]
            scores = sorted(round(HIDDEN.uniform(0.3, 0.95), 3) for _ in range(n))
            if kind == "peak":
                top = HIDDEN.randint(1, n - 2)
                scores = scores[:top] + [0.99] + [round(0.99 - 0.01 * (i + 1), 3) for i in range(n - top - 1)]
            elif kind == "tie":
                top = HIDDEN.randint(1, n - 3)
                scores = scores[:top] + [0.99, 0.99] + [round(0.5 - 0.01 * i, 3) for i in range(n - top - 2)]
            scores = scores[:n]
            cases.append((label, steps, scores, steps[scores.index(max(scores))]))
    for label, steps, scores, want in cases:
        got = call_learner(fn, list(steps), list(scores))
        message = f"you said {got!r}, expected step {want}"
        if got == scores.index(max(scores)):
            message += " — that is the index in the list; return the step number itself"
        elif got == steps[len(scores) - 1 - scores[::-1].index(max(scores))]:
            message += " — on a tie, take the earliest step: it reached the same score with less training"
        yield Part(f"correct for {label}", got == want, message)

def training_step_reference(model, batch, optimizer, max_norm=1.0):
    """One training step on a language-model batch: masked next-token loss, backward, clip, step; the loss."""
    logits = model(batch["x"])
    loss = F.cross_entropy(logits.flatten(0, 1), batch["y"].flatten(), ignore_index=IGNORE)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_norm)
    optimizer.step()
    return loss.item()


class _RecordingAdamW(torch.optim.AdamW):
    """AdamW that remembers, at every step(), the gradients it was given (None where there was none)."""

    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        self.seen = []

    def step(self, closure=None):
        self.seen.append([None if p.grad is None else p.grad.detach().clone()
                          for group in self.param_groups for p in group["params"]])
        return super().step(closure)


def _probe_training_step(step_fn, config, state, batches, lr, max_norm):
    """Runs where the learner's code is: two calls of their step on the judge's model and batches."""
    model = MiniTransformer(ModelConfig(**config))
    model.load_state_dict(state)
    optimizer = _RecordingAdamW(model.parameters(), lr=lr)
    seen = {"losses": [], "params": [], "grads": [], "inplace": False}
    for batch in batches:
        before = len(optimizer.seen)
        try:
            loss = step_fn(model, batch, optimizer, max_norm)
        except RuntimeError as error:  # step() between forward and backward: autograd refuses the changed weights
            if "inplace operation" not in str(error):
                raise
            seen["inplace"] = True
            break
        seen["losses"].append(float(loss.detach()) if torch.is_tensor(loss) and loss.numel() == 1
                              else float(loss) if isinstance(loss, (int, float)) else None)
        seen["grads"].append(optimizer.seen[-1] if len(optimizer.seen) > before else "no step")
        seen["params"].append([p.detach().clone() for p in model.parameters()])
    return seen


def _total_norm(grads):
    return float(torch.sqrt(sum(((g.double() ** 2).sum() for g in grads if g is not None), torch.zeros((), dtype=torch.float64))))


def _direction(grads):
    norm = _total_norm(grads) or 1.0
    return [None if g is None else g / norm for g in grads]


@register("3.4", "one training step", 5, training_step_reference, "minitransformer.course.check.ch3.training_step_reference",
          forbidden=(loss_on_batch, train))
def _check_training_step(step_fn):
    config = pick(1, {"n_layer": 1, "d_model": 32, "n_head": 4}, {"n_layer": 2, "d_model": 24, "n_head": 4},
                  {"n_layer": 1, "d_model": 48, "n_head": 4}, {"n_layer": 2, "d_model": 32, "n_head": 2})
    torch.manual_seed(seed(40))
    model = MiniTransformer(ModelConfig(**config))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [encode(make_examples(BASE_TASKS, pick(2, 16, 12, 20), seed=seed(41 + i))) for i in range(2)]
    lr = 1e-3
    # the reference: the library's loss, backward, clip, one AdamW step; twice. Clipping always bites (half the norm).
    params = list(model.parameters())
    loss0 = loss_on_batch(model, batches[0])
    raw0 = torch.autograd.grad(loss0, params)
    max_norm = round(0.5 * _total_norm(raw0), 4)
    optimizer = torch.optim.AdamW(params, lr=lr)
    want_losses, want_grads, want_params, accumulated = [], [], [], None
    for i, batch in enumerate(batches):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_on_batch(model, batch)
        loss.backward()
        if i == 1:  # what step() would see if the first step's gradients were never cleared
            accumulated = [p.grad + g for p, g in zip(params, want_grads[0])]
            scale = min(1.0, max_norm / (_total_norm(accumulated) + 1e-6))
            accumulated = [g * scale for g in accumulated]
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        want_grads.append([p.grad.clone() for p in params])
        optimizer.step()
        want_losses.append(loss.item())
        want_params.append([p.detach().clone() for p in params])
    seen = call_probe(_probe_training_step, step_fn, config, state, batches, lr, max_norm)

    if seen["inplace"]:
        yield Part("calls optimizer.step() after loss.backward()", False,
                   "autograd refused the backward pass because optimizer.step() changed the weights in place after "
                   "the forward pass: compute the loss, then backward(), clip, and only then step()")
        return

    def same(a, b, tol=1e-5):
        return all(x is not None and y is not None and x.shape == y.shape and torch.allclose(x, y, atol=tol, rtol=1e-4)
                   for x, y in zip(a, b))

    got = seen["losses"][0]
    y = batches[0]["y"]
    graded, positions = int((y != IGNORE).sum()), y.numel()
    message = f"you returned {got!r}; the masked mean cross-entropy at the start is {want_losses[0]:.4f}"
    if got is not None and abs(got - want_losses[0] * graded / positions) < 1e-4:
        message += (f" — you averaged over all {positions} positions; only the {graded} answer positions (y != IGNORE) "
                    "count: divide by their number, not by every position")
    elif got is None:
        message = f"return the loss as a number (loss.item()); you returned {seen['losses'][0]!r}"
    yield Part("returns the loss: next-token cross-entropy averaged over the answer tokens only",
               got is not None and abs(got - want_losses[0]) < 1e-4, message)
    first = seen["grads"][0]
    stepped = first != "no step" and any(g is not None and g.abs().sum() > 0 for g in first)
    message = "optimizer.step() was never called on the optimizer you were given"
    if first != "no step" and not stepped:
        message = ("optimizer.step() ran before there was a gradient: call loss.backward() first, then step() "
                   "(a step before backward applies no gradient, or the previous batch's)")
    yield Part("calls optimizer.step() after loss.backward()", stepped, message)
    norms = [_total_norm(g) for g in seen["grads"] if g != "no step"]
    clipped = stepped and all(n <= max_norm * 1.001 for n in norms)
    yield Part(f"clips the gradient's total norm to max_norm ({max_norm:g} here) before the step", clipped,
               f"the step saw a gradient of norm {max(norms, default=float('nan')):.4g}: call "
               "torch.nn.utils.clip_grad_norm_(trainable parameters, max_norm) between backward() and step()"
               if stepped else "no gradient reached step() (see above), so there was nothing to clip")
    second = seen["grads"][1]
    # compared by direction, so that a missing clip or a wrong loss scale is not blamed here again
    fresh = second != "no step" and same(_direction(second), _direction(want_grads[1]), 1e-4)
    message = "the second call's step did not use the second batch's gradient"
    if second != "no step" and same(_direction(second), _direction(accumulated), 1e-4):
        message = ("the second step used the first batch's gradient plus the second's: gradients add up until "
                   "they are cleared; call optimizer.zero_grad() in every step")
    elif second != "no step" and same(_direction(second), _direction(want_grads[0]), 1e-4):
        message = "the second step applied the first batch's gradient: step() must come after this batch's backward()"
    yield Part("clears the gradients every step (a second call gives a fresh step)", fresh, message)
    yield Part("two calls update the parameters exactly as the library's step does (loss_on_batch + clip + AdamW)",
               same(seen["params"][1], want_params[1]),
               "after two calls the parameters differ from the reference; fix the parts above first")


separator_positions = checker("3.1")
forgetting_score = checker("3.2")
early_stopping = checker("3.3")
training_step = checker("3.4")

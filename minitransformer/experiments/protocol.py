"""The measurement protocol: how one run is made and measured, and how a study tunes and reports.

1. Three splits. A run trains on a stream of generated examples (`TaskSampler`, seeded by the run's seed) or,
   for small-data studies, on a fixed set of `n_train` examples; it is *chosen* on a validation set (`val_set`)
   and *reported* on a test set (`test_set`, the course's fixed held-out set). They are independent draws from
   the same generator with their own seeds, so a short sorted string can occur in more than one: they measure
   "new draws from the same distribution".
2. Each method's learning rate is tuned on a grid: the rate with the best mean validation accuracy over the
   seeds is chosen; if it sits at an end of the grid, the grid is extended one step beyond it (up to
   `MAX_EXTENSIONS` times) and the extension is recorded.
3. Several seeds (5 by default); results are reported as the mean with a 95% t-interval (`stats.mean_ci`).
4. Forgetting, always measured with the method switched on, three ways: the drop in the base tasks' per-character
   accuracy under teacher forcing (`forgetting_tokens`, bounded in [0, 1] and graded: the score the trade-off
   studies read), the drop in their exact match (all or nothing per example: it reaches its bound once about 40%
   of the characters are wrong) and the rise of their mean per-token loss in nats (unbounded: past ln 35, a
   uniform guess over the vocabulary, it measures how confidently wrong a model is, not what it kept).
5. Along training (a study's `curve_every`): every run also records validation accuracy and forgetting every
   `curve_every` steps, so learning can be read against forgetting at any point (`tradeoff`).

`results` loads what `run_study` wrote and re-checks it live; `python -m minitransformer.experiments STUDY` runs a study.
"""

from __future__ import annotations

import importlib
import platform
import time
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import get_context
from typing import Callable

import torch

from ..checkpoint import load_base
from ..data import BASE_TASKS, IGNORE, FixedSampler, ReplaySampler, encode_lm, make_examples
from .forgetting import fine_tune
from ..runtime import SMALL_DATA_SEED, VAL_SEED, setup
from .stats import mean_ci
from ..evaluate import base_task_scores, classification_accuracy, eval_set
from ..train import loss_on_batch

MAX_EXTENSIONS = 3
METRICS = ("test_accuracy", "forgetting_em", "forgetting_loss")  # reported by a study unless it names its own
TRADEOFF_METRICS = ("test_accuracy", "forgetting_tokens", "forgetting_em", "forgetting_loss")


def val_set(task: str, n: int = 300):
    """The validation set of a task: what is *chosen* on (learning rate, stopping step, width)."""
    return eval_set(task, n, seed=VAL_SEED)


def test_set(task: str, n: int = 500):
    """The test set of a task: what is *reported*. It is the course's fixed held-out set."""
    return eval_set(task, n)


@torch.no_grad()
def base_loss(model, n: int = 100) -> float:
    """The base tasks' mean per-token loss (nats) on their answers: a continuous measure of what is known."""
    lm = model.base if hasattr(model, "base") else model
    was_training = lm.training
    lm.eval()
    total = count = 0.0
    for task in BASE_TASKS:
        x, y = encode_lm(eval_set(task, n))
        tokens = int((y != IGNORE).sum())
        total += loss_on_batch(lm, {"x": x, "y": y}).item() * tokens
        count += tokens
    lm.train(was_training)
    return total / count


@lru_cache(maxsize=4)
def base_scores(n_layer: int = 2, n_base: int = 100) -> dict:
    """The shipped base's exact match, token accuracy and loss on the base tasks: the "before" of every forgetting
    figure."""
    model = load_base(n_layer)
    scores = base_task_scores(model, n_base)
    return {"exact_match": scores["exact_match"]["mean"], "token_accuracy": scores["token_accuracy"]["mean"],
            "loss": base_loss(model, n_base)}


def forgetting_now(model, n_layer: int = 2, n_base: int = 100) -> dict:
    """How much of the base tasks a model has lost so far, by exact match and by token accuracy."""
    before, after = base_scores(n_layer, n_base), base_task_scores(model, n_base)
    return {"forgetting_tokens": before["token_accuracy"] - after["token_accuracy"]["mean"],
            "forgetting_em": before["exact_match"] - after["exact_match"]["mean"]}


def score_run(model, task: str = "is_sorted", n_layer: int = 2, n_val: int = 300, n_test: int = 500,
            n_base: int = 100) -> dict:
    """Validation and test accuracy on the new task, and forgetting three ways, of a fine-tuned classifier."""
    before = base_scores(n_layer, n_base)
    return {
        "val_accuracy": classification_accuracy(model, val_set(task, n_val)),
        "test_accuracy": classification_accuracy(model, test_set(task, n_test)),
        **forgetting_now(model, n_layer, n_base),
        "forgetting_loss": base_loss(model, n_base) - before["loss"],
    }


@dataclass
class Method:
    """How to prepare a Classifier for one method (None: full fine-tuning) and the learning rates to try."""
    prepare: Callable | None
    lrs: tuple[float, ...]
    chapter: int = 0  # the chapter that introduces the method (for the progressive cost card)
    n_layer: int = 2
    replay: float = 0.0
    n_train: int | None = None  # train on a fixed set of this many examples (default: an endless fresh stream)

    def __post_init__(self):
        if self.replay and self.n_train:
            raise ValueError("a method trains either with replay or on a fixed small set, not both: "
                             f"got replay={self.replay!r} and n_train={self.n_train!r}")
        if self.n_train is not None and (not isinstance(self.n_train, int) or self.n_train < 1):
            raise ValueError(f"n_train must be a positive int or None, got {self.n_train!r}")


@dataclass
class Study:
    name: str
    methods: dict[str, Method]
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    task: str = "is_sorted"
    steps: int = 150
    n_val: int = 300
    n_test: int = 500
    n_base: int = 100
    tune: bool = True  # False: report every learning rate (e.g. forgetting *versus* learning rate)
    description: str = ""
    extra: dict = field(default_factory=dict)
    # extra_metrics(model) -> {name: float}: more numbers recorded per run (e.g. the rank of a weight change)
    extra_metrics: Callable | None = None
    metrics: tuple[str, ...] = METRICS  # what is summarised and reported at the chosen rate
    curve_every: int = 0  # > 0: record validation accuracy and forgetting along training, every this many steps
    # What a live re-run is compared on (`results.recheck`); None: validation accuracy and every reported metric;
    # (): nothing, `recheck` refuses the study. A study narrows it only where its own seeds show that five of them
    # cannot bound a sixth (the reason stated in the study).
    live_rechecked: tuple[str, ...] | None = None

    def __post_init__(self):
        self.metrics = _names("metrics", self.metrics, TRADEOFF_METRICS)
        if not self.metrics or len(set(self.metrics)) != len(self.metrics):
            raise ValueError(f"metrics must name each reported metric once, at least one, got {self.metrics}")
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ValueError(f"steps must be a positive int, got {self.steps!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {self.seeds!r}")
        if isinstance(self.curve_every, bool) or not isinstance(self.curve_every, int) or self.curve_every < 0 or \
                (self.curve_every and self.steps % self.curve_every):
            raise ValueError(f"curve_every must be 0 or an int that divides steps ({self.steps}), "
                             f"got {self.curve_every!r}")
        if self.live_rechecked is not None:
            self.live_rechecked = _names("live_rechecked", self.live_rechecked, ("val_accuracy",) + self.metrics)


def _names(what: str, names, valid: tuple[str, ...]) -> tuple[str, ...]:
    """`names` as a tuple of names from `valid` (a single string is refused: it would be read letter by letter)."""
    if isinstance(names, str) or not isinstance(names, (tuple, list)):
        raise TypeError(f"{what} must be a tuple of metric names, e.g. {valid[:2]}, got {names!r}")
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; valid here: {valid}")
    return tuple(names)


def run_one(prepare: Callable | None, lr: float, seed: int, task: str = "is_sorted", steps: int = 150,
            n_layer: int = 2, replay: float = 0.0, n_val: int = 300, n_test: int = 500, n_base: int = 100,
            n_train: int | None = None, extra_metrics: Callable | None = None, curve_every: int = 0) -> dict:
    """One fine-tuning run under the protocol: its validation/test accuracy, forgetting and time per step.

    With `n_train`, the run trains on a fixed set of that many examples (drawn with seed SMALL_DATA_SEED + seed,
    batches of up to 64) and also reports its accuracy on them (`train_accuracy`). With `curve_every`, it also
    records a `curve`: validation accuracy and forgetting every `curve_every` steps, step 0 included. Evaluating
    draws no random numbers, so the run trains exactly as it would without; its time is left out of ms_per_step.
    """
    setup(seed)
    small = make_examples(task, n_train, seed=SMALL_DATA_SEED + seed) if n_train else None
    if replay:
        sampler = ReplaySampler(task, replay, seed=seed + 1)
    elif small:
        sampler = FixedSampler(small, batch_size=min(64, n_train), seed=seed)
    else:
        sampler = None  # fine_tune's own endless stream
    evaluating = [0.0]  # seconds spent on the curve, kept out of the step time

    def along_training(model) -> dict:
        start = time.perf_counter()
        point = {"val_accuracy": classification_accuracy(model, val_set(task, n_val)),
                 **forgetting_now(model, n_layer, n_base)}
        evaluating[0] += time.perf_counter() - start
        return point

    model, history = fine_tune(task, prepare=prepare, steps=steps, lr=lr, seed=seed, next_batch=sampler,
                               n_layer=n_layer, eval_every=curve_every,
                               measure=along_training if curve_every else None)
    result = {"lr": lr, "seed": seed, **score_run(model, task, n_layer, n_val, n_test, n_base),
              "ms_per_step": 1000 * (history.seconds - evaluating[0]) / steps}
    if curve_every:
        result["curve"] = history.evals
    if small:
        result["train_accuracy"] = classification_accuracy(model, small)
    if extra_metrics is not None:
        result.update(extra_metrics(model))
    setup()
    return result


def study_definition(name: str) -> Study:
    """The `Study` that `minitransformer/experiments/studies/NAME.py` defines."""
    return importlib.import_module(f"minitransformer.experiments.studies.{name}").STUDY


@dataclass(frozen=True)
class Run:
    """One run of a study: which study, which of its methods, at which learning rate and seed. This small object
    is what travels to a worker process; `study_run` turns it into a result."""
    study: str
    method: str
    lr: float
    seed: int


def study_run(run: Run) -> dict:
    """One run of a study's method at one rate and seed, exactly as `run_study` makes it."""
    study = study_definition(run.study)
    m = study.methods[run.method]
    result = run_one(m.prepare, lr=run.lr, seed=run.seed, task=study.task, steps=study.steps, n_layer=m.n_layer,
                     replay=m.replay, n_val=study.n_val, n_test=study.n_test, n_base=study.n_base,
                     n_train=m.n_train, extra_metrics=study.extra_metrics, curve_every=study.curve_every)
    return {"method": run.method, **result}


def _run_all(runs: list[Run], processes: int) -> list[dict]:
    if processes <= 1:
        return [study_run(r) for r in runs]
    with get_context("spawn").Pool(processes) as pool:
        return pool.map(study_run, runs, chunksize=1)


def _mean(values) -> float:
    return sum(values) / len(values)


def choose_lr(runs: list[dict], key: str = "val_accuracy") -> float:
    """The learning rate with the best mean `key` over seeds (the smaller rate on a tie)."""
    by_lr: dict[float, list[float]] = {}
    for r in runs:
        by_lr.setdefault(r["lr"], []).append(r[key])
    if not by_lr:
        raise ValueError("no runs to choose a learning rate from")
    return max(sorted(by_lr), key=lambda lr: _mean(by_lr[lr]))


def _extend(grid: list[float], chosen: float) -> float | None:
    """The next rate beyond the end of the grid where `chosen` sits, one grid step further (None if inside)."""
    grid = sorted(grid)
    if len(grid) < 2:
        return None
    if chosen == grid[-1]:
        return grid[-1] * grid[-1] / grid[-2]
    if chosen == grid[0]:
        return grid[0] * grid[0] / grid[1]
    return None


def summarise(runs: list[dict], metrics: tuple[str, ...] = METRICS) -> dict:
    """Mean and 95% t-interval of each reported metric over a list of runs (one per seed)."""
    return {k: list(mean_ci([r[k] for r in runs])) for k in metrics}


def run_study(study: Study, processes: int = 2) -> dict:
    """Run a study under the protocol; returns the JSON-ready results (see the module docstring)."""
    start = time.perf_counter()
    grids = {name: sorted(m.lrs) for name, m in study.methods.items()}
    runs = _run_all([Run(study.name, name, lr, s) for name, lrs in grids.items() for lr in lrs for s in study.seeds],
                    processes)
    extended: dict[str, list[float]] = {name: [] for name in grids}
    for _ in range(MAX_EXTENSIONS if study.tune else 0):
        new_runs = []
        for name in grids:
            nxt = _extend(grids[name], choose_lr([r for r in runs if r["method"] == name]))
            if nxt is not None:
                nxt = float(f"{nxt:.3g}")
                grids[name] = sorted(grids[name] + [nxt])
                extended[name].append(nxt)
                new_runs += [Run(study.name, name, nxt, s) for s in study.seeds]
        if not new_runs:
            break
        runs += _run_all(new_runs, processes)
    methods = {}
    for name, m in study.methods.items():
        mine = [r for r in runs if r["method"] == name]
        entry = {"chapter": m.chapter, "n_layer": m.n_layer, "replay": m.replay, "n_train": m.n_train,
                 "lr_grid": grids[name],
                 "extended": extended[name],
                 "val_by_lr": {str(lr): _mean([r["val_accuracy"] for r in mine if r["lr"] == lr]) for lr in grids[name]}}
        if study.tune:
            chosen = choose_lr(mine)
            at_chosen = sorted((r for r in mine if r["lr"] == chosen), key=lambda r: r["seed"])
            entry.update({"chosen_lr": chosen, "at_edge": chosen in (grids[name][0], grids[name][-1]),
                          "test": {k: [r[k] for r in at_chosen] for k in study.metrics + ("ms_per_step",)},
                          "summary": summarise(at_chosen, study.metrics)})
        methods[name] = entry
    return {
        "study": study.name, "description": study.description,
        "command": f"python -m minitransformer.experiments {study.name}",
        "task": study.task, "steps": study.steps, "seeds": list(study.seeds),
        "n_val": study.n_val, "n_test": study.n_test, "n_base": study.n_base,
        **({"metrics": list(study.metrics)} if study.metrics != METRICS else {}),
        **({"curve_every": study.curve_every} if study.curve_every else {}),
        "selection": ("learning rate with the highest mean validation accuracy over the seeds (smaller on a tie); "
                      "a grid whose best rate is at an end is extended one step beyond it, at most "
                      f"{MAX_EXTENSIONS} times; reported: test set") if study.tune else "none: every rate reported",
        "library_version": _version(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "threads_per_process": 1, "processes": processes},
        "seconds": round(time.perf_counter() - start, 1),
        "extra": study.extra,
        "methods": methods,
        "runs": sorted(runs, key=lambda r: (list(study.methods).index(r["method"]), r["lr"], r["seed"])),
    }


def _version() -> str:
    from .. import __version__
    return __version__

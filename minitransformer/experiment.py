"""The measurement protocol every comparison in the course goes through.

1. Three splits. A run trains on a stream of generated examples (`TaskSampler`, seeded by the run's seed), is
   *chosen* on a validation set (`val_set`) and *reported* on a test set (`eval_set`, the course's fixed
   held-out set). The two are independent draws from the same generator with their own seeds, so a short
   sorted string can occur in both and in training: they measure "new draws from the same distribution".
2. Each method's learning rate is tuned on a grid: the rate with the best mean validation accuracy over the
   seeds is chosen; if it sits at an end of the grid, the grid is extended one step beyond it (up to
   `MAX_EXTENSIONS` times) and the extension is recorded.
3. Several seeds (5 by default); results are reported as the mean with a 95% t-interval (`stats.mean_ci`).
4. Forgetting two ways, always measured with the method switched on: the drop in the base tasks' exact match
   (all or nothing per example, saturates) and the rise of their mean per-token loss in nats (continuous).

A `Study` names methods and grids; `run_study` runs it on several processes and returns a JSON-ready dict
that records the command, seeds, grids, selection rule and library version. Heavy studies are run once by

    python -m minitransformer.experiment STUDY          # e.g. showdown; writes minitransformer/results/STUDY.json

and notebooks load the shipped file with `load_study` and re-run a fixed sample of it live with `recheck`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import time
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import torch

from .checkpoint import load_base
from .data import BASE_TASKS, IGNORE, ReplaySampler, encode_lm
from .forgetting import fine_tune
from .runtime import setup
from .stats import mean_ci
from .train import classification_accuracy, eval_set, evaluate_base_tasks, loss_on_batch

RESULTS = Path(__file__).parent / "results"
VAL_SEED = 54321  # validation sets: their own seed, distinct from the test sets' (train.EVAL_SEED)
MAX_EXTENSIONS = 3
# Live re-checks on the same machine and thread count reproduce a run bit for bit; another CPU drifts a little.
# These are the differences a re-check tolerates (absolute; loss in nats).
TOLERANCE = {"val_accuracy": 0.03, "test_accuracy": 0.03, "forgetting_em": 0.10, "forgetting_loss": 0.10}
METRICS = ("test_accuracy", "forgetting_em", "forgetting_loss")


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
    """The shipped base's exact match and loss on the base tasks: the "before" of every forgetting figure."""
    model = load_base(n_layer)
    return {"exact_match": evaluate_base_tasks(model, n_base)["mean"], "loss": base_loss(model, n_base)}


def measure(model, task: str = "is_sorted", n_layer: int = 2, n_val: int = 300, n_test: int = 500,
            n_base: int = 100) -> dict:
    """Validation and test accuracy on the new task, and forgetting both ways, of a fine-tuned classifier."""
    before = base_scores(n_layer, n_base)
    return {
        "val_accuracy": classification_accuracy(model, val_set(task, n_val)),
        "test_accuracy": classification_accuracy(model, test_set(task, n_test)),
        "forgetting_em": before["exact_match"] - evaluate_base_tasks(model, n_base)["mean"],
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


def run_one(prepare: Callable | None, lr: float, seed: int, task: str = "is_sorted", steps: int = 150,
            n_layer: int = 2, replay: float = 0.0, n_val: int = 300, n_test: int = 500, n_base: int = 100) -> dict:
    """One fine-tuning run under the protocol: its validation/test accuracy, forgetting and time per step."""
    setup(seed)
    sampler = ReplaySampler(task, replay, seed=seed + 1) if replay else None  # None: fine_tune's own stream
    model, history = fine_tune(task, prepare=prepare, steps=steps, lr=lr, seed=seed, next_batch=sampler,
                               n_layer=n_layer)
    result = {"lr": lr, "seed": seed, **measure(model, task, n_layer, n_val, n_test, n_base),
              "ms_per_step": 1000 * history.seconds / steps}
    setup()
    return result


def _study(name: str) -> Study:
    return importlib.import_module(f"minitransformer.studies.{name}").STUDY


def _job(args) -> dict:
    study_name, method, lr, seed = args
    study = _study(study_name)
    m = study.methods[method]
    result = run_one(m.prepare, lr, seed, study.task, study.steps, m.n_layer, m.replay, study.n_val,
                     study.n_test, study.n_base)
    return {"method": method, **result}


def _run_jobs(jobs: list, processes: int) -> list[dict]:
    if processes <= 1:
        return [_job(j) for j in jobs]
    with get_context("spawn").Pool(processes) as pool:
        return pool.map(_job, jobs, chunksize=1)


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


def summarise(runs: list[dict]) -> dict:
    """Mean and 95% t-interval of each reported metric over a list of runs (one per seed)."""
    return {k: list(mean_ci([r[k] for r in runs])) for k in METRICS}


def run_study(study: Study, processes: int = 2) -> dict:
    """Run a study under the protocol; returns the JSON-ready results (see the module docstring)."""
    start = time.perf_counter()
    grids = {name: sorted(m.lrs) for name, m in study.methods.items()}
    jobs = [(study.name, name, lr, s) for name, lrs in grids.items() for lr in lrs for s in study.seeds]
    runs = _run_jobs(jobs, processes)
    extended: dict[str, list[float]] = {name: [] for name in grids}
    for _ in range(MAX_EXTENSIONS if study.tune else 0):
        new_jobs = []
        for name in grids:
            nxt = _extend(grids[name], choose_lr([r for r in runs if r["method"] == name]))
            if nxt is not None:
                nxt = float(f"{nxt:.3g}")
                grids[name] = sorted(grids[name] + [nxt])
                extended[name].append(nxt)
                new_jobs += [(study.name, name, nxt, s) for s in study.seeds]
        if not new_jobs:
            break
        runs += _run_jobs(new_jobs, processes)
    methods = {}
    for name, m in study.methods.items():
        mine = [r for r in runs if r["method"] == name]
        entry = {"chapter": m.chapter, "n_layer": m.n_layer, "replay": m.replay, "lr_grid": grids[name],
                 "extended": extended[name],
                 "val_by_lr": {str(lr): _mean([r["val_accuracy"] for r in mine if r["lr"] == lr]) for lr in grids[name]}}
        if study.tune:
            chosen = choose_lr(mine)
            at_chosen = sorted((r for r in mine if r["lr"] == chosen), key=lambda r: r["seed"])
            entry.update({"chosen_lr": chosen, "at_edge": chosen in (grids[name][0], grids[name][-1]),
                          "test": {k: [r[k] for r in at_chosen] for k in METRICS + ("ms_per_step",)},
                          "summary": summarise(at_chosen)})
        methods[name] = entry
    return {
        "study": study.name, "description": study.description,
        "command": f"python -m minitransformer.experiment {study.name}",
        "task": study.task, "steps": study.steps, "seeds": list(study.seeds),
        "n_val": study.n_val, "n_test": study.n_test, "n_base": study.n_base,
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
    from . import __version__
    return __version__


def results_path(name: str) -> Path:
    return RESULTS / f"{name}.json"


def load_study(name: str) -> dict:
    """The shipped results of a study (run `python -m minitransformer.experiment NAME` to recompute them)."""
    path = results_path(name)
    if not path.exists():
        known = sorted(p.stem for p in RESULTS.glob("*.json"))
        raise FileNotFoundError(f"no results for study {name!r} at {path}; shipped studies: {known}")
    return json.loads(path.read_text())


def sample_runs(results: dict, n: int = 3) -> list[dict]:
    """A fixed, spread-out sample of a study's runs to re-check live: runs i*len/n of the sorted list."""
    runs = results["runs"]
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    n = min(n, len(runs))
    return [runs[i * len(runs) // n] for i in range(n)]


def recheck(results: dict, n: int = 3) -> list[dict]:
    """Re-run a fixed sample of a study's runs live; return each with its largest difference per metric.

    Raises AssertionError (with the numbers) when a difference exceeds TOLERANCE.
    """
    report = []
    for stored in sample_runs(results, n):
        live = _job((results["study"], stored["method"], stored["lr"], stored["seed"]))
        diffs = {k: abs(live[k] - stored[k]) for k in TOLERANCE}
        report.append({"method": stored["method"], "lr": stored["lr"], "seed": stored["seed"], **diffs})
        bad = {k: d for k, d in diffs.items() if d > TOLERANCE[k]}
        if bad:
            raise AssertionError(f"{results['study']}: live re-run of {stored['method']} lr={stored['lr']} "
                                 f"seed={stored['seed']} differs from the shipped file by {bad} "
                                 f"(tolerance {TOLERANCE}); re-run `{results['command']}` on this machine")
    return report


def prepared_model(results: dict, method: str):
    """A fresh Classifier on the study's base, prepared with `method` exactly as the study prepared it (untrained)."""
    from .model import Classifier

    study = _study(results["study"])
    if method not in study.methods:
        raise ValueError(f"study {results['study']!r} has no method {method!r}; it has {sorted(study.methods)}")
    model = Classifier(load_base(study.methods[method].n_layer))
    if study.methods[method].prepare is not None:
        study.methods[method].prepare(model)
    return model


def adapter_file_bytes(model) -> int:
    """Bytes of the weights file `peft.save_adapter` writes for `model`: what one more task costs on disk
    (the adapter, any trained base parameters and the task head; for full fine-tuning, every weight)."""
    import tempfile

    from .peft import save_adapter

    with tempfile.TemporaryDirectory() as folder:
        return save_adapter(model, Path(folder) / "adapter").stat().st_size


def card_rows(results: dict, up_to_chapter: int, batch: dict | None = None) -> list[dict]:
    """Rows for `plotting.cost_card`: every tuned method of a study introduced up to `up_to_chapter`.

    Accuracy and forgetting (per seed, test set, at the chosen rate) come from the study's results; parameter
    counts and training-step memory are measured live on `batch` (64 examples of the study's task by default),
    and so is the size of the file one task's weights take (`adapter_bytes`, see `adapter_file_bytes`).
    """
    from .data import encode, make_examples
    from .measure import method_profile

    batch = batch if batch is not None else encode(make_examples(results["task"], 64, seed=0))
    rows = []
    for name, entry in results["methods"].items():
        if entry["chapter"] > up_to_chapter or "test" not in entry:
            continue
        model = prepared_model(results, name)
        profile = method_profile(model, batch)
        rows.append({"method": name, "chapter": entry["chapter"], "trainable": profile["trainable"],
                     "total": profile["total"], "memory": profile["memory"],
                     "adapter_bytes": adapter_file_bytes(model),
                     "accuracy": entry["test"]["test_accuracy"], "forgetting_em": entry["test"]["forgetting_em"],
                     "forgetting_loss": entry["test"]["forgetting_loss"]})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Run a study of the measurement protocol; write its results file.")
    parser.add_argument("study", help="a module in minitransformer/studies/, e.g. showdown")
    parser.add_argument("--processes", type=int, default=2, help="parallel processes, one thread each (>= 1)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default results/STUDY.json)")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error(f"--processes must be at least 1, got {args.processes}")
    try:
        study = _study(args.study)
    except ModuleNotFoundError:
        known = sorted(p.stem for p in (Path(__file__).parent / "studies").glob("*.py") if p.stem != "__init__")
        parser.error(f"unknown study {args.study!r}; known studies: {known}")
    out = args.out or results_path(study.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = run_study(study, args.processes)
    out.write_text(json.dumps(results, indent=1) + "\n")
    n_runs = len(results["runs"])
    print(f"{study.name}: {n_runs} runs in {results['seconds']} s; wrote {out}")


if __name__ == "__main__":
    main()

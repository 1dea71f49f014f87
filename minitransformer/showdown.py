"""The showdown grid: every method, several learning rates, several seeds, one step budget.

    python -m minitransformer.showdown            # about 3 minutes on 2 cores; writes results/showdown.json

Chapter 8 reads the shipped results file and recomputes a few runs live to check they agree.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import torch

from . import peft
from .checkpoint import load_base
from .data import ReplaySampler, TaskSampler, encode, make_examples
from .forgetting import fine_tune, forgetting
from .measure import count_parameters, training_step_memory
from .model import Classifier
from .runtime import setup
from .train import classification_accuracy, eval_set, evaluate_base_tasks

RESULTS = Path(__file__).parent / "results" / "showdown.json"
TASK, STEPS, SEEDS = "is_sorted", 150, (0, 1, 2)
N_EVAL = 300

METHODS = {
    "full": (lambda m: None, (1e-4, 3e-4, 1e-3)),
    "head only": (lambda m: peft.select(m, "head"), (3e-3, 1e-2, 3e-2)),
    "last block": (lambda m: peft.select(m, "last_k", k=1), (3e-4, 1e-3, 3e-3)),
    "BitFit": (lambda m: peft.select(m, "bitfit"), (3e-3, 1e-2, 3e-2)),
    "Houlsby adapters m=8": (lambda m: peft.add_adapters(m, bottleneck=8), (1e-3, 3e-3, 1e-2)),
    "Pfeiffer adapter m=8": (lambda m: peft.add_adapters(m, placement="pfeiffer", bottleneck=8), (1e-3, 3e-3, 1e-2)),
    "LoRA q,v r=2": (lambda m: peft.add_lora(m, r=2, alpha=8), (1e-3, 3e-3, 1e-2)),
    "LoRA q,v r=8": (lambda m: peft.add_lora(m, r=8, alpha=8), (1e-3, 3e-3, 1e-2)),
    "LoRA all r=2": (lambda m: peft.add_lora(m, targets="all-linear", r=2, alpha=8), (1e-3, 3e-3, 1e-2)),
    "LoRA all r=8": (lambda m: peft.add_lora(m, targets="all-linear", r=8, alpha=8), (1e-3, 3e-3, 1e-2)),
    "prompt tuning, 8": (lambda m: peft.add_prompt(m, length=8), (3e-3, 1e-2, 3e-2)),
    "prefix tuning, 8": (lambda m: peft.add_prefix(m, length=8), (3e-3, 1e-2, 3e-2)),
    "IA3": (lambda m: peft.add_ia3(m), (3e-3, 1e-2, 3e-2)),
}
REPLAY_METHODS = ("full", "Houlsby adapters m=8", "LoRA q,v r=8")
REPLAY_FRACTION = 0.25


@lru_cache(maxsize=1)
def _base_scores() -> dict:
    """The shipped base's exact match, the "before" of every run's forgetting (computed once per process)."""
    return evaluate_base_tasks(load_base(), N_EVAL // 3)


def run(method: str, lr: float, seed: int, replay: float = 0.0) -> dict:
    """One fine-tuning run: new-task accuracy, forgetting, and training seconds per step."""
    setup(seed)
    prepare = METHODS[method][0]
    sampler = ReplaySampler(TASK, replay, seed=seed + 1) if replay else None
    model, history = fine_tune(TASK, prepare=prepare, steps=STEPS, lr=lr, seed=seed, next_batch=sampler)
    return {
        "method": method, "lr": lr, "seed": seed, "replay": replay,
        "accuracy": classification_accuracy(model, eval_set(TASK, N_EVAL)),
        "forgetting": forgetting(_base_scores(), evaluate_base_tasks(model, N_EVAL // 3))["mean"],
        "ms_per_step": 1000 * history.seconds / STEPS,
    }


def profile(method: str) -> dict:
    """Deterministic facts about a method: parameter counts, memory by part, adapter file size."""
    model = Classifier(load_base())
    METHODS[method][0](model)
    counts = count_parameters(model)
    memory = training_step_memory(model, encode(make_examples(TASK, 64, seed=0)), lr=1e-3).as_dict()
    with tempfile.TemporaryDirectory() as folder:
        size = peft.save_adapter(model, Path(folder) / "a").stat().st_size
    return {"trainable": counts["trainable"], "total": counts["total"], "percent": counts["percent"],
            "memory": memory, "adapter_bytes": size}


def _job(args):
    return run(*args)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run the chapter 8 grid and write its results file.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--processes", type=int, default=2, help="parallel processes, one thread each")
    args = parser.parse_args(argv)
    jobs = [(m, lr, s) for m, (_, lrs) in METHODS.items() for lr in lrs for s in SEEDS]
    start = time.perf_counter()
    with get_context("spawn").Pool(args.processes) as pool:
        runs = pool.map(_job, jobs, chunksize=1)
        tuned = {}
        for method in METHODS:
            by_lr = {lr: [r["accuracy"] for r in runs if r["method"] == method and r["lr"] == lr] for lr in METHODS[method][1]}
            tuned[method] = max(by_lr, key=lambda lr: sum(by_lr[lr]) / len(by_lr[lr]))
        replay_runs = pool.map(_job, [(m, tuned[m], s, REPLAY_FRACTION) for m in REPLAY_METHODS for s in SEEDS], chunksize=1)
    setup()
    results = {
        "task": TASK, "steps": STEPS, "seeds": list(SEEDS), "replay_fraction": REPLAY_FRACTION,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "threads_per_process": 1, "processes": args.processes},
        "seconds": round(time.perf_counter() - start, 1),
        "tuned_lr": tuned,
        "runs": runs,
        "replay": replay_runs,
        "profiles": {m: profile(m) for m in METHODS},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"{len(runs) + len(replay_runs)} runs in {results['seconds']} s; wrote {args.out}")


if __name__ == "__main__":
    main()

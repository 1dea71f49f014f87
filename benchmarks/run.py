"""The course's own benchmarks: `make benchmark` (or `python benchmarks/run.py`). Not part of the tests.

Measures, on this machine, and writes benchmarks/results.json:
- course run time: every solution notebook executed top to bottom (on a temporary copy), per chapter and total;
- training speed: tokens per second of the base model, hand-written vs fused attention, side by side;
- per-method step time and memory on the base model (batch 64, one thread);
- inference: the base model vs LoRA unmerged vs LoRA merged.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import minitransformer as mt  # noqa: E402
from minitransformer import experiments, peft  # noqa: E402
from minitransformer.data import encode  # noqa: E402
from minitransformer.course.notebooks import SOLUTIONS, execute  # noqa: E402
from minitransformer.experiments.timing import step_times  # noqa: E402

RESULTS = Path(__file__).parent / "results.json"


def course_run_time() -> dict:
    times = {}
    with tempfile.TemporaryDirectory() as folder:
        for notebook in sorted(SOLUTIONS.glob("*.ipynb")):
            copy_path = Path(folder) / notebook.name
            shutil.copy(notebook, copy_path)
            times[notebook.stem] = round(execute(copy_path), 1)
            print(f"  {notebook.stem}: {times[notebook.stem]} s", flush=True)
    return {"per_chapter_seconds": times, "total_seconds": round(sum(times.values()), 1)}


def tokens_per_second(repeats: int = 3, steps: int = 40) -> dict:
    """Training throughput, hand-written vs fused attention, interleaved so both see the same machine state."""
    mt.setup()
    batches = [mt.TaskSampler(mt.BASE_TASKS, 64, seed=i)() for i in range(steps)]
    tokens = sum(b["x"].numel() for b in batches)
    best = {}
    for _ in range(repeats):
        for fused in (False, True):
            model = mt.MiniTransformer(mt.ModelConfig(fused_attention=fused))
            iterator = iter(batches)
            start = time.perf_counter()
            mt.train(model, lambda: next(iterator), steps=steps, lr=3e-3, progress=False)
            rate = tokens / (time.perf_counter() - start)
            key = "fused" if fused else "hand-written"
            best[key] = max(best.get(key, 0.0), rate)
    return {k: round(v) for k, v in best.items()} | {"ratio_fused_over_hand_written": round(best["fused"] / best["hand-written"], 3),
                                                       "batch": 64, "steps": steps}


def per_method(rounds: int = 10, steps: int = 4) -> dict:
    """Each method's training step on one batch of 64: CPU time per step (all methods in interleaved rounds,
    best round each, on the process's CPU clock so that other jobs' load does not count), parameters, memory."""
    mt.setup()
    batch = encode(mt.make_examples("is_sorted", 64, seed=0))
    showdown = experiments.load_study("showdown")
    methods = [name for name, entry in showdown["methods"].items() if not entry["replay"]]
    models = {method: experiments.prepared_model(showdown, method) for method in methods}
    seconds = step_times(models, batch, rounds=rounds, steps=steps, clock=time.process_time)
    return {method: {"cpu_ms_per_step": round(1000 * seconds[method], 2), **experiments.method_costs(showdown, method)}
            for method in models}


def inference(repeats: int = 50) -> dict:
    mt.setup()
    batch = encode(mt.make_examples("is_sorted", 256, seed=1))
    base = mt.Classifier(mt.load_base())
    lora = copy.deepcopy(base)
    peft.add_lora(lora, r=8)
    merged = peft.merge_and_unload(copy.deepcopy(lora))

    def best_ms(model):
        times = []
        with torch.no_grad():
            for _ in range(repeats):
                start = time.perf_counter()
                model(batch["x"], batch["positions"])
                times.append(time.perf_counter() - start)
        return round(1000 * min(times), 3)

    timings = {}
    for _ in range(2):  # interleaved rounds, best of all
        for name, model in (("base", base), ("LoRA unmerged", lora), ("LoRA merged", merged)):
            timings[name] = min(timings.get(name, float("inf")), best_ms(model))
    return {"ms_per_batch_of_256": timings,
            "merged_over_base": round(timings["LoRA merged"] / timings["base"], 3),
            "unmerged_over_base": round(timings["LoRA unmerged"] / timings["base"], 3)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-notebooks", action="store_true", help="leave out the course run time")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
               "threads": mt.THREADS}
    results = {"machine": machine, "date": time.strftime("%Y-%m-%d")}
    print("training speed ...", flush=True)
    results["training_speed_tokens_per_second"] = tokens_per_second()
    print("per-method step time and memory ...", flush=True)
    results["per_method"] = per_method()
    print("inference ...", flush=True)
    results["inference"] = inference()
    if not args.skip_notebooks:
        print("course run time ...", flush=True)
        results["course"] = course_run_time()
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "per_method"}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

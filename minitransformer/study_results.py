"""A study's shipped results: load them, re-check a sample live, and turn them into cost-card rows.

`python -m minitransformer.experiment STUDY` writes `results/STUDY.json` (see `protocol.run_study`); notebooks
read it with `load_study` and re-run a fixed sample with `recheck`, which fails loudly if the file and the code
no longer agree on this machine.
"""

from __future__ import annotations

import json
from pathlib import Path

from .checkpoint import load_base
from .protocol import TOLERANCE, _job, _study

RESULTS = Path(__file__).parent / "results"


def results_path(name: str) -> Path:
    return RESULTS / f"{name}.json"


def load_study(name: str) -> dict:
    """The shipped results of a study (run `python -m minitransformer.experiment NAME` to recompute them)."""
    path = results_path(name)
    if not path.exists():
        known = sorted(p.stem for p in RESULTS.glob("*.json"))
        raise FileNotFoundError(f"no results for study {name!r} at {path}; shipped studies: {known}")
    return json.loads(path.read_text())


def reported_runs(results: dict) -> list[dict]:
    """The runs a study reports: those at each method's chosen rate (tuned studies), or every run (untuned)."""
    chosen = {name: e["chosen_lr"] for name, e in results["methods"].items() if "chosen_lr" in e}
    if not chosen:
        return list(results["runs"])
    return [r for r in results["runs"] if chosen.get(r["method"]) == r["lr"]]


def sample_runs(results: dict, n: int = 3) -> list[dict]:
    """A fixed, spread-out sample of the reported runs to re-check live: runs i*len/n of their sorted list.

    Re-checking what the chapter reports (not the grid's other rates) is what makes the file trustworthy.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    runs = reported_runs(results)
    n = min(n, len(runs))
    return [runs[i * len(runs) // n] for i in range(n)]


def recheck(results: dict, n: int = 3) -> list[dict]:
    """Re-run a fixed sample of a study's reported runs live; return each with its largest difference per metric.

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

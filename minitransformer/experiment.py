"""The measurement protocol every comparison in the course goes through, in one import.

The protocol itself (splits, one run, tuning over seeds and grids) is `protocol`; loading, re-checking and
card rows of shipped results is `study_results`. This module gathers both for notebooks and is the command
that runs a study (a module in `minitransformer/studies/`) and writes its results file:

    python -m minitransformer.experiment STUDY          # e.g. showdown; writes minitransformer/results/STUDY.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .protocol import (MAX_EXTENSIONS, METRICS, SMALL_DATA_SEED, VAL_SEED, Method, Study, base_loss, base_scores,
                       choose_lr, measure, run_one, run_study, study_definition, study_run, summarise, test_set,
                       val_set)
from .study_results import (LIVE_SEED_OFFSET, LOSS_CEILING, RECHECKED, RESULTS, SPREAD, adapter_file_bytes,
                            allowed_range, card_rows, comparable,
                            check_consistent, live_seed, load_study, prepared_model, recheck, reported_runs,
                            results_path, sample_runs, seed_values)

__all__ = ["MAX_EXTENSIONS", "METRICS", "SMALL_DATA_SEED", "VAL_SEED", "Method", "Study", "base_loss",
           "base_scores", "choose_lr", "measure", "run_one", "run_study", "study_definition", "study_run",
           "summarise", "test_set", "val_set", "LIVE_SEED_OFFSET", "LOSS_CEILING", "RECHECKED", "RESULTS", "SPREAD", "adapter_file_bytes",
           "allowed_range", "card_rows", "comparable", "check_consistent", "live_seed", "load_study", "prepared_model",
           "recheck", "reported_runs", "results_path", "sample_runs", "seed_values", "main"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Run a study of the measurement protocol; write its results file.")
    parser.add_argument("study", help="a module in minitransformer/studies/, e.g. showdown")
    parser.add_argument("--processes", type=int, default=2, help="parallel processes, one thread each (>= 1)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default results/STUDY.json)")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error(f"--processes must be at least 1, got {args.processes}")
    try:
        study = study_definition(args.study)
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

"""`python -m minitransformer.experiments STUDY`: run a study of the measurement protocol, write its results file.

A study is a module in `minitransformer/experiments/studies/`; its results go to `studies/results/STUDY.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .protocol import run_study, study_definition
from .results import results_path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Run a study of the measurement protocol; write its results file.")
    parser.add_argument("study", help="a module in minitransformer/experiments/studies/, e.g. showdown")
    parser.add_argument("--processes", type=int, default=2, help="parallel processes, one thread each (>= 1)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default studies/results/STUDY.json)")
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

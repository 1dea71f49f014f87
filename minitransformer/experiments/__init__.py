"""The course's experiments: the measurement protocol every comparison goes through, and its studies.

- `protocol`: splits, one run (`run_one`, `study_run`), tuning a study over seeds and grids (`run_study`);
- `forgetting`: `fine_tune` (a base + task head, learning and forgetting tracked), which every run calls;
- `results`: a study's shipped results: `load_study`, the portable live re-check (`recheck`), cost-card rows;
- `studies/`: one module per study, and `studies/results/NAME.json`, what it computed;
- `tradeoff`: learning against forgetting read off a study's curves (forgetting at matched accuracy, Pareto front);
- `stats` (means, intervals, paired differences), `timing` (step times on one batch).

Notebooks import what they need from here in one line (the names below; the rest stays in its module). `python -m minitransformer.experiments STUDY` runs a
study and writes its results file (see `__main__`).
"""

from __future__ import annotations

from .protocol import (METRICS, SMALL_DATA_SEED, TRADEOFF_METRICS, Study, base_loss, base_scores, choose_lr, run_study, summarise,
                       test_set, val_set)
from .forgetting import fine_tune, forgetting
from .results import (LIVE_SEED_OFFSET, LOSS_CEILING, RECHECKED, RESULTS, SPREAD, allowed_range, card_rows,
                      check_consistent, comparable, live_seed, load_study, method_costs, prepared_model, recheck,
                      rechecked, reported_runs, sample_runs, seed_values)

__all__ = ["METRICS", "SMALL_DATA_SEED", "TRADEOFF_METRICS", "Study", "base_loss", "base_scores", "choose_lr", "run_study", "summarise",
           "test_set", "val_set", "fine_tune", "forgetting", "LIVE_SEED_OFFSET", "LOSS_CEILING", "RECHECKED",
           "RESULTS", "SPREAD", "allowed_range", "card_rows", "check_consistent", "comparable", "live_seed",
           "load_study", "method_costs", "prepared_model", "recheck", "rechecked", "reported_runs", "sample_runs", "seed_values"]

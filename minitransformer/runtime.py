"""Seeds and thread count, fixed in one place for the library, the notebooks and the tests.

Results are bit-identical only for the same machine, build and thread count: another CPU, BLAS or torch build
rounds differently in the last bits, which training amplifies (so live checks compare with the spread of seeds,
`experiments.results`); one thread also keeps two notebooks running side by side from slowing each other down.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

SEED = 0  # the default seed of setup() and pretraining; a run with seed s draws its batches from seeds derived from s
# The data a model is judged on has seeds of its own, distinct from any training stream, all here:
EVAL_SEED = 12345  # the held-out sets (evaluate.eval_set): what the chapters and the studies report, their test set
VAL_SEED = 54321  # the validation sets (experiments.protocol.val_set): what learning rates are chosen on
SMALL_DATA_SEED = 77  # a small-data run with seed s trains on make_examples(task, n_train, seed=77 + s)
THREADS = 1


def setup(seed: int = SEED, threads: int = THREADS) -> dict:
    """Seed every random generator and fix torch's thread count. Call it first in a notebook."""
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    seed_all(seed)
    torch.set_num_threads(threads)
    return {"seed": seed, "threads": threads, "torch": torch.__version__, "cpus": os.cpu_count()}


def seed_all(seed: int) -> None:
    """Re-seed all generators (e.g. before each run of a multi-seed experiment)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

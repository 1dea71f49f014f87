"""The shared study of chapters 3-8: every method's learning against its forgetting, over rates and along training.

Task is_sorted_hard (is_sorted without its shortcut: every negative is a sorted string with one adjacent swap,
anywhere), 150 steps of 64 examples, 5 seeds shared by every method (the same head initialisation and the same
batches, so methods compare seed by seed). Every method runs at 5 learning rates a factor of 3 apart (one step
gentler than the showdown's grids), and every run records validation accuracy and forgetting every 25 steps, so
learning can be read against forgetting at any rate and any point of training. Forgetting is read on the base tasks'
per-character accuracy (bounded); exact match and the loss rise are kept beside it. Each method's rate is also chosen
on validation as in every study (grid extended when the best rate is at an end) and its test numbers reported.
The "+ replay" rows mix 25% base-task data into every batch (chapter 8).
"""

import math

from ...peft.methods import METHODS
from ..protocol import TRADEOFF_METRICS, Method, Study
from .showdown import GRIDS as SHOWDOWN_GRIDS, REPLAY, WITH_REPLAY

TASK = "is_sorted_hard"


def one_step_gentler(lr: float) -> float:
    """The rate one step below `lr` on the course's 1-3-10 grid (3e-3 -> 1e-3, 1e-3 -> 3e-4)."""
    mantissa = lr / 10 ** math.floor(math.log10(lr) + 1e-9)
    return float(f"{lr / 3 if mantissa > 2 else lr * 0.3:.3g}")


# (method, its learning-rate grid, the chapter that introduces it): the showdown's methods and grids, each grid
# with one gentler rate in front, so every method has five rates and the gentle end of its trade-off is measured
GRIDS = [(name, (one_step_gentler(grid[0]),) + tuple(grid), chapter) for name, grid, chapter in SHOWDOWN_GRIDS]


def methods(names=None) -> dict:
    grids = {name: (grid, chapter) for name, grid, chapter in GRIDS}
    chosen = {name: Method(METHODS[name], grid, chapter=chapter) for name, (grid, chapter) in grids.items()
              if names is None or name in names}
    replay = {f"{name} + replay": Method(METHODS[name], grids[name][0], chapter=8, replay=REPLAY)
              for name in WITH_REPLAY if names is None}
    return {**chosen, **replay}


STUDY = Study(
    name="tradeoff",
    description=__doc__.strip(),
    task=TASK,
    methods=methods(),
    metrics=TRADEOFF_METRICS,
    curve_every=25,
    # Live re-runs are compared on accuracy only. Here most methods forget part of the base tasks, not all, and
    # forgetting is heavy-tailed across seeds: Pfeiffer at 0.01 loses 0.006-0.059 of the characters on four seeds
    # and 0.307 on the fifth (loss rise 0.02-0.21 vs 1.72 nats). Five seeds cannot bound a sixth there (leaving one
    # out puts it 4.7 and 5.0 of the re-check's ranges away), so the chapters' forgetting claims rest on the
    # shipped runs, checked in the tests, and a live re-run is held to its accuracy.
    live_rechecked=("val_accuracy", "test_accuracy"),
)

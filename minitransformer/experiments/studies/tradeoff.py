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

from ...peft.methods import METHODS
from ..protocol import TRADEOFF_METRICS, Method, Study

TASK = "is_sorted_hard"
G_LOW = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
G_MID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
G_HIGH = (3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
REPLAY = 0.25

# (method, its learning-rate grid, the chapter that introduces it), in the order the chapters meet them
GRIDS = [
    ("full", G_LOW, 3),
    ("head only", G_HIGH, 3),
    ("last block", (3e-4, 1e-3, 3e-3, 1e-2, 3e-2), 4),
    ("BitFit", G_HIGH, 4),
    ("LayerNorm only", G_HIGH, 4),
    ("Houlsby adapters m=8", G_MID, 5),
    ("Pfeiffer adapter m=8", G_MID, 5),
    ("LoRA q,v r=2", G_MID, 6),
    ("LoRA q,v r=8", G_MID, 6),
    ("LoRA all r=2", G_MID, 6),
    ("LoRA all r=8", G_MID, 6),
    ("prompt tuning, 8", G_HIGH, 7),
    ("prefix tuning, 8", G_HIGH, 7),
    ("IA3", G_HIGH, 7),
]
WITH_REPLAY = ["full", "Houlsby adapters m=8", "LoRA q,v r=8"]


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
)

"""Every method of the course on one budget (is_sorted, 150 steps of 64 examples), each at its own tuned rate.

Each method's learning rate is chosen on validation over 5 seeds from a grid of factor-3 steps (extended when the
best rate sits at an end); the chosen rate's test accuracy and forgetting are reported. `chapter` is where the
course introduces the method: chapter N's cost card shows the methods with chapter <= N. The "+ replay" rows mix
25% base-task data into every batch (chapter 8) and are tuned like any other method.
"""

from ...peft.methods import METHODS
from ..protocol import Method, Study

G_FULL = (3e-4, 1e-3, 3e-3, 1e-2)
G_MID = (3e-3, 1e-2, 3e-2, 1e-1)
G_HIGH = (1e-2, 3e-2, 1e-1, 3e-1)
REPLAY = 0.25

# (method, its learning-rate grid, the chapter that introduces it), in the order the results file keeps
GRIDS = [
    ("full", G_FULL, 3),
    ("head only", G_HIGH, 3),
    ("last block", (1e-3, 3e-3, 1e-2, 3e-2), 4),
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

STUDY = Study(
    name="showdown",
    description=__doc__.strip(),
    methods={**{name: Method(METHODS[name], grid, chapter=chapter) for name, grid, chapter in GRIDS},
             **{f"{name} + replay": Method(METHODS[name], dict((n, g) for n, g, _ in GRIDS)[name], chapter=8,
                                           replay=REPLAY) for name in WITH_REPLAY}},
)

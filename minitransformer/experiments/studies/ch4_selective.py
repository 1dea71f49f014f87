"""Chapter 4: the selective methods, each at its own tuned learning rate (is_sorted, 150 steps of 64 examples).

Head only, LayerNorm only, BitFit, first block, last block, both blocks and full fine-tuning on the 2-layer base.
Each method's learning rate is chosen on validation over 5 seeds from a factor-3 grid (extended when the best
rate is at an end); test accuracy and forgetting (exact match and loss, with the method on) are reported. All
runs at every rate are kept, so the notebook can also compare methods at matched new-task accuracy.
"""

from ...peft.methods import METHODS
from ..protocol import Method, Study

LOW = (3e-4, 1e-3, 3e-3)
MID = (1e-3, 3e-3, 1e-2)
HIGH = (3e-3, 1e-2, 3e-2)

GRIDS = {
    "head only": (1e-2, 3e-2, 1e-1),
    "LayerNorm only": HIGH,
    "BitFit": HIGH,
    "first block": LOW,
    "last block": MID,
    "both blocks": LOW,
    "full": LOW,
}

STUDY = Study(
    name="ch4_selective",
    description=__doc__.strip(),
    methods={name: Method(METHODS[name], lrs, chapter=3 if name in ("head only", "full") else 4)
             for name, lrs in GRIDS.items()},
)

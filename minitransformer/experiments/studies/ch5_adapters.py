"""Chapter 5: bottleneck width, placement at matched parameters, and Houlsby's trainable LayerNorms.

Houlsby adapters (two per block) at bottleneck widths 1, 4, 8 and 32; a Pfeiffer adapter (one per block) at
m = 8, which has about the trainable parameters of Houlsby at m = 4 (2,322 vs 2,450 with the head), so the
placement comparison is parameter-matched; and Houlsby m = 4 with the LayerNorms trainable too, as Houlsby et
al. (2019) trained them. Each configuration's learning rate is tuned on validation over 5 seeds from a factor-3
grid (extended when the best rate is at an end); test accuracy and forgetting are reported.
"""

from ... import peft
from ...peft.methods import METHODS
from ..protocol import Method, Study

GRID = (1e-3, 3e-3, 1e-2)


def houlsby(m, layernorms=False):
    """Houlsby adapters of width m (the course's list holds m = 8; this study sweeps the width)."""
    def prepare(model):
        peft.add_adapters(model, bottleneck=m)
        if layernorms:
            peft.unfreeze_layernorms(model)
    return prepare


STUDY = Study(
    name="ch5_adapters",
    description=__doc__.strip(),
    methods={
        "Houlsby m=1": Method(houlsby(1), GRID, chapter=5),
        "Houlsby m=4": Method(houlsby(4), GRID, chapter=5),
        "Houlsby m=8": Method(METHODS["Houlsby adapters m=8"], GRID, chapter=5),
        "Houlsby m=32": Method(houlsby(32), GRID, chapter=5),
        "Pfeiffer m=8": Method(METHODS["Pfeiffer adapter m=8"], GRID, chapter=5),
        "Houlsby m=4 + LayerNorms": Method(houlsby(4, layernorms=True), GRID, chapter=5),
    },
)

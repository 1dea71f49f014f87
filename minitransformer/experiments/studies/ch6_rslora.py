"""Chapter 6: does the LoRA scaling matter once the learning rate is tuned per rank?

LoRA on the query and value projections, alpha = 8, at ranks 2, 8 and 32, with the original scaling alpha / r
and with rank-stabilised LoRA's alpha / sqrt(r) (six configurations). Under Adam the two scalings give different
step sizes at the same learning rate (chapter 6, section 2); here each configuration's rate is tuned on
validation over 5 seeds from a grid finer than the other studies' (steps of about x1.8, not x3: a coarse
grid can land the two scalings on unequal effective step sizes), extended when the best rate is at an end, so
the comparison is step-size controlled. Every rate's runs are kept, so the same file also shows the untuned
view: all six at one shared rate.
"""

from ... import peft
from ..protocol import Method, Study

GRID = (3.16e-3, 5.62e-3, 1e-2, 1.78e-2, 3.16e-2, 5.62e-2, 1e-1)  # steps of 10^(1/4), about x1.8
RANKS = (2, 8, 32)


def lora(r, rslora):
    def prepare(model):
        peft.add_lora(model, r=r, alpha=8, rslora=rslora)
    return prepare


STUDY = Study(
    name="ch6_rslora",
    description=__doc__.strip(),
    methods={f"LoRA q,v r={r}, {'rsLoRA' if rs else 'alpha/r'}": Method(lora(r, rs), GRID, chapter=6)
             for rs in (False, True) for r in RANKS},
    extra={"ranks": list(RANKS), "alpha": 8},
)

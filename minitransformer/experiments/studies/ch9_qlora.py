"""Chapter 9: LoRA on a 4-bit frozen base against the same LoRA on the float base, under the protocol.

LoRA q,v r=8 (alpha 8) on is_sorted, 150 steps of 64 examples, 5 seeds; the base is either the shipped float32
base or the same base with every linear layer of its blocks quantized to 4-bit absmax codes with one 16-bit scale
per 64 weights (QLoRA's block size), done before the adapter is added. Each row's learning rate is chosen on
validation (grids extended when the best rate is at an end); test is reported.
"""

from ...peft.methods import METHODS
from ...quantize import quantize_model
from ..protocol import Method, Study

GRID = (3e-3, 1e-2, 3e-2)


LORA = METHODS["LoRA q,v r=8"]  # the course's LoRA q,v r=8 (alpha 8), as in the showdown


def _four_bit_base(model):
    quantize_model(model.base, 4, 64)
    LORA(model)


STUDY = Study(
    name="ch9_qlora",
    description=__doc__.strip(),
    methods={
        "LoRA q,v r=8, float base": Method(LORA, GRID, chapter=9),
        "LoRA q,v r=8, 4-bit base": Method(_four_bit_base, GRID, chapter=9),
    },
)

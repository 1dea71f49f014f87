"""Chapter 4: does training only the last block fall behind full fine-tuning as the base gets deeper?

Last block and full fine-tuning on the shipped 4- and 6-layer bases (the 2-layer runs are in
ch4_selective, with the same methods, grids and protocol), is_sorted, 150 steps of 64 examples. Each
configuration's learning rate is chosen on validation over 5 seeds (grid extended when the best rate is at an
end); test accuracy and forgetting are reported.
"""

from ...peft.methods import METHODS
from ..protocol import Method, Study
from .ch4_selective import GRIDS

STUDY = Study(
    name="ch4_depth",
    description=__doc__.strip(),
    methods={f"{name}, {n} layers": Method(METHODS[name], GRIDS[name], chapter=4, n_layer=n)
             for n in (4, 6) for name in ("last block", "full")},
)

"""Chapter 3: on 32 labelled examples, does training fewer parameters generalise better?

Full fine-tuning against the frozen-base probe (head only), each trained 150 steps on a fixed set of 32
is_sorted examples (a different set for each seed: `protocol.SMALL_DATA_SEED` + seed), each at its own
learning rate chosen on validation over 5 seeds (grid extended when the best rate is at an end). Each run
also records its accuracy on its 32 training examples, so memorisation shows as train far above test.
"""

from ...peft.methods import METHODS
from ..protocol import Method, Study

STUDY = Study(
    name="ch3_small_data",
    description=__doc__.strip(),
    methods={
        "full": Method(METHODS["full"], (1e-3, 3e-3, 1e-2, 3e-2), chapter=3, n_train=32),
        "head only": Method(METHODS["head only"], (3e-3, 1e-2, 3e-2, 1e-1, 3e-1), chapter=3, n_train=32),
    },
)

"""Chapter 3: full fine-tuning at a small learning rate, 1e-4, to complete the learning-vs-forgetting curve.

The rates 3e-4, 1e-3 and 3e-3 (and any extension) come from ch4_selective's "full" runs, which use the same
task, budget (is_sorted, 150 steps of 64 examples), seeds and protocol. Every run is reported (no tuning here).
"""

from ..protocol import Method, Study

STUDY = Study(
    name="ch3_lr",
    description=__doc__.strip(),
    methods={"full": Method(None, (1e-4,), chapter=3)},
    tune=False,
)

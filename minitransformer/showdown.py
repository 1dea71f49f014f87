"""An alias: `python -m minitransformer.showdown` runs `python -m minitransformer.experiment showdown`.

The showdown is a study of the measurement protocol (`minitransformer/studies/showdown.py`: every method, its
learning rate tuned on validation over 5 seeds, test reported), written to `results/showdown.json`; chapter 8
loads it with `experiment.load_study("showdown")`. `METHODS` and `profile` stay for scripts that used them
(benchmarks/run.py): they read the study, not a copy of it.
"""

from __future__ import annotations

import sys

from .data import encode, make_examples
from .experiment import adapter_file_bytes, load_study, main as _experiment_main, prepared_model, results_path
from .measure import method_profile
from .studies.showdown import STUDY

RESULTS = results_path(STUDY.name)
# The study's methods without replay: {name: (prepare(model), learning-rate grid before extension)}.
METHODS = {name: (m.prepare or (lambda model: None), m.lrs) for name, m in STUDY.methods.items() if not m.replay}


def profile(method: str) -> dict:
    """Deterministic facts about a method: parameter counts, one training step's memory by part (batch of 64,
    AdamW), and the size of its saved weights file."""
    model = prepared_model({"study": STUDY.name}, method)
    costs = method_profile(model, encode(make_examples(STUDY.task, 64, seed=0)), lr=1e-3)
    return {**costs, "adapter_bytes": adapter_file_bytes(model)}


def main(argv=None) -> None:
    _experiment_main([STUDY.name, *(sys.argv[1:] if argv is None else argv)])


__all__ = ["METHODS", "RESULTS", "load_study", "main", "profile"]

if __name__ == "__main__":
    main()

"""Every method on the shipped base with a 2-class task head: trainable parameters and checkpoint size.

`python -m minitransformer.peft` prints the table; `survey()` returns it.
"""

from .. import Classifier, load_base
from ..checkpoint import BASE_CHECKPOINT
from ..counts import count_parameters
from .saving import adapter_file_bytes
from .methods import METHODS, prepare


def survey() -> list[dict]:
    rows = []
    for label in METHODS:
        model = prepare(Classifier(load_base()), label)
        counts = count_parameters(model)
        rows.append({"method": label, "trainable": counts["trainable"], "percent": counts["percent"],
                     "bytes": adapter_file_bytes(model)})
    return rows


def main(argv=None):
    import argparse

    argparse.ArgumentParser(prog="python -m minitransformer.peft", description=__doc__.splitlines()[0]).parse_args(argv)
    full_bytes = BASE_CHECKPOINT.with_suffix(".safetensors").stat().st_size
    print(f"{'method':34s} {'trainable':>10s} {'of all':>8s} {'checkpoint':>12s}")
    for row in survey():
        print(f"{row['method']:34s} {row['trainable']:>10,} {row['percent']:>7.2f}% {row['bytes']:>10,} B")
    print(f"(the base model's own checkpoint: {full_bytes:,} B; every row includes the 130-parameter task head)")

"""Every method on the shipped base with a 2-class task head: trainable parameters and checkpoint size.

`python -m minitransformer.peft` prints the table; `survey()` returns it.
"""

import tempfile
from pathlib import Path

from .. import Classifier, load_base
from ..checkpoint import BASE_CHECKPOINT
from ..measure import count_parameters
from . import add_adapters, add_ia3, add_lora, add_prefix, add_prompt, save_adapter, select

METHODS = {
    "full fine-tuning": lambda m: select(m, "full"),
    "head only": lambda m: select(m, "head"),
    "last block": lambda m: select(m, "last_k", k=1),
    "BitFit (biases)": lambda m: select(m, "bitfit"),
    "LayerNorm only": lambda m: select(m, "layernorm"),
    "Houlsby adapters, bottleneck 8": lambda m: add_adapters(m, bottleneck=8),
    "Pfeiffer adapters, bottleneck 8": lambda m: add_adapters(m, placement="pfeiffer", bottleneck=8),
    "LoRA q,v r=8": lambda m: add_lora(m, r=8),
    "LoRA all-linear r=8": lambda m: add_lora(m, targets="all-linear", r=8),
    "prompt tuning, 8 tokens": lambda m: add_prompt(m, length=8),
    "prefix tuning, 8 per layer": lambda m: add_prefix(m, length=8),
    "IA3": lambda m: add_ia3(m),
}


def survey() -> list[dict]:
    rows = []
    for label, prepare in METHODS.items():
        model = Classifier(load_base())
        prepare(model)
        counts = count_parameters(model)
        with tempfile.TemporaryDirectory() as folder:
            size = save_adapter(model, Path(folder) / "a").stat().st_size
        rows.append({"method": label, "trainable": counts["trainable"], "percent": counts["percent"], "bytes": size})
    return rows


def main(argv=None):
    import argparse

    argparse.ArgumentParser(prog="python -m minitransformer.peft", description=__doc__.splitlines()[0]).parse_args(argv)
    full_bytes = BASE_CHECKPOINT.with_suffix(".safetensors").stat().st_size
    print(f"{'method':34s} {'trainable':>10s} {'of all':>8s} {'checkpoint':>12s}")
    for row in survey():
        print(f"{row['method']:34s} {row['trainable']:>10,} {row['percent']:>7.2f}% {row['bytes']:>10,} B")
    print(f"(the base model's own checkpoint: {full_bytes:,} B; every row includes the 130-parameter task head)")

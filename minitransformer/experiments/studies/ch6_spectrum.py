"""Chapter 6: how many directions does each method's weight change use? Full fine-tuning against LoRA r = 8.

Both train 150 steps on is_sorted at the learning rate the showdown chose for them on validation (read from
its shipped results, so the two studies cannot drift apart), over 5 seeds. Each run records, for the query
and value projections of both blocks, the effective rank of the weight change (singular values holding 90% of
its squared norm) and its Frobenius norm. Nothing is chosen here (one rate per method), so the study is not tuned.
"""

from ...checkpoint import load_base
from ...counts import effective_rank
from ...peft.lora import LoRALinear
from ...peft.methods import METHODS
from ..protocol import Method, Study
from ..results import load_study

CHOSEN = {name: e["chosen_lr"] for name, e in load_study("showdown")["methods"].items()}
PROJECTIONS = [f"blocks.{b}.attn.{p}_proj" for b in (0, 1) for p in ("q", "v")]


def weight_changes(model) -> dict:
    """Effective rank and norm of the change to each of PROJECTIONS (LoRA: its update; otherwise new - base)."""
    base = load_base(len(model.base.blocks))
    out = {}
    for name in PROJECTIONS:
        layer = model.base.get_submodule(name)
        if isinstance(layer, LoRALinear):
            delta = layer.delta_weight("default")
        else:
            delta = layer.weight - base.get_submodule(name).weight
        out[f"effective_rank {name}"] = effective_rank(delta)
        out[f"norm {name}"] = delta.detach().norm().item()
    return out


STUDY = Study(
    name="ch6_spectrum",
    description=__doc__.strip(),
    methods={
        "full": Method(METHODS["full"], (CHOSEN["full"],), chapter=3),
        "LoRA q,v r=8": Method(METHODS["LoRA q,v r=8"], (CHOSEN["LoRA q,v r=8"],), chapter=6),
    },
    tune=False,
    extra_metrics=weight_changes,
    extra={"projections": PROJECTIONS, "energy": 0.9},
)

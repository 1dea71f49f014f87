"""The shared study at four times the budget: 600 steps instead of 150, for the methods the chapters compare head to head.

Everything else as in `tradeoff` (task, seeds, grids, forgetting scores, selection on validation); the curve is
recorded every 100 steps. Which conclusions of the 150-step study hold at 600 steps, and which do not, is what it is for.
"""

from dataclasses import replace

from . import tradeoff

HEADLINE = ["full", "last block", "BitFit", "Houlsby adapters m=8", "LoRA q,v r=8", "LoRA all r=8",
            "prompt tuning, 8", "IA3"]

STUDY = replace(tradeoff.STUDY, name="tradeoff_long", description=__doc__.strip(), steps=600, curve_every=100,
                methods=tradeoff.methods(HEADLINE))

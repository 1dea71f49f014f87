"""Every method of the course on one budget (is_sorted, 150 steps of 64 examples), each at its own tuned rate.

Each method's learning rate is chosen on validation over 5 seeds from a grid of factor-3 steps (extended when the
best rate sits at an end); the chosen rate's test accuracy and forgetting are reported. `chapter` is where the
course introduces the method: chapter N's cost card shows the methods with chapter <= N. The "+ replay" rows mix
25% base-task data into every batch (chapter 8) and are tuned like any other method.
"""

from .. import peft
from ..protocol import Method, Study

G_FULL = (3e-4, 1e-3, 3e-3, 1e-2)
G_MID = (3e-3, 1e-2, 3e-2, 1e-1)
G_HIGH = (1e-2, 3e-2, 1e-1, 3e-1)
REPLAY = 0.25

STUDY = Study(
    name="showdown",
    description=__doc__.strip(),
    methods={
        "full": Method(None, G_FULL, chapter=3),
        "head only": Method(lambda m: peft.select(m, "head"), G_HIGH, chapter=3),
        "last block": Method(lambda m: peft.select(m, "last_k", k=1), (1e-3, 3e-3, 1e-2, 3e-2), chapter=4),
        "BitFit": Method(lambda m: peft.select(m, "bitfit"), G_HIGH, chapter=4),
        "LayerNorm only": Method(lambda m: peft.select(m, "layernorm"), G_HIGH, chapter=4),
        "Houlsby adapters m=8": Method(lambda m: peft.add_adapters(m, bottleneck=8), G_MID, chapter=5),
        "Pfeiffer adapter m=8": Method(lambda m: peft.add_adapters(m, placement="pfeiffer", bottleneck=8), G_MID, chapter=5),
        "LoRA q,v r=2": Method(lambda m: peft.add_lora(m, r=2, alpha=8), G_MID, chapter=6),
        "LoRA q,v r=8": Method(lambda m: peft.add_lora(m, r=8, alpha=8), G_MID, chapter=6),
        "LoRA all r=2": Method(lambda m: peft.add_lora(m, targets="all-linear", r=2, alpha=8), G_MID, chapter=6),
        "LoRA all r=8": Method(lambda m: peft.add_lora(m, targets="all-linear", r=8, alpha=8), G_MID, chapter=6),
        "prompt tuning, 8": Method(lambda m: peft.add_prompt(m, length=8), G_HIGH, chapter=7),
        "prefix tuning, 8": Method(lambda m: peft.add_prefix(m, length=8), G_HIGH, chapter=7),
        "IA3": Method(lambda m: peft.add_ia3(m), G_HIGH, chapter=7),
        "full + replay": Method(None, G_FULL, chapter=8, replay=REPLAY),
        "Houlsby adapters m=8 + replay": Method(lambda m: peft.add_adapters(m, bottleneck=8), G_MID, chapter=8, replay=REPLAY),
        "LoRA q,v r=8 + replay": Method(lambda m: peft.add_lora(m, r=8, alpha=8), G_MID, chapter=8, replay=REPLAY),
    },
)

"""Chapter 7: prompt tuning's position confound and its length sweep, under the protocol.

Every row fine-tunes the base with a 2-class head on is_sorted (150 steps of 64 examples), 5 seeds; each row's
learning rate is chosen on validation (grids extended when the best rate is at an end) and test is reported.
- "prompt 8, keep" / "prompt 8, shift": the same 8-token soft prompt with the input kept at its pretrained
  positions or shifted behind the virtual tokens (Hugging Face PEFT's placement for GPT-2).
- "prompt 1/4/12, keep": the length sweep (8 is the row above).
"""

from ... import peft
from ..protocol import Method, Study

G_PROMPT = (1e-2, 3e-2, 1e-1)


def _prompt(length, positions="keep"):
    def prepare(model):
        peft.add_prompt(model, length=length, positions=positions)
    return prepare


LENGTHS = (1, 4, 8, 12)

STUDY = Study(
    name="ch7_prompt",
    description=__doc__.strip(),
    methods={
        "prompt 8, keep": Method(_prompt(8), G_PROMPT, chapter=7),
        "prompt 8, shift": Method(_prompt(8, "shift"), G_PROMPT, chapter=7),
        **{f"prompt {n}, keep": Method(_prompt(n), G_PROMPT, chapter=7) for n in LENGTHS if n != 8},
    },
    extra={"lengths": list(LENGTHS)},
)

"""The course's methods, one list: the names the showdown, the survey table and the figures use, and how each
prepares a model.

`METHODS[name](model)` freezes and adds what the method trains on a `Classifier` (None: full fine-tuning, where
every parameter trains and there is nothing to prepare). Every study (those that sweep a setting build their
variants with the same add_* verbs), the survey table
(`python -m minitransformer.peft`) and the figure styles (one colour and marker per method, in this order) all
read this list.
"""

from .adapters import add_adapters
from .ia3 import add_ia3
from .lora import add_lora
from .prefix import add_prefix
from .prompt import add_prompt
from .selective import select

METHODS = {
    "full": None,
    "head only": lambda m: select(m, "head"),
    "last block": lambda m: select(m, "last_k", k=1),
    "BitFit": lambda m: select(m, "bitfit"),
    "Houlsby adapters m=8": lambda m: add_adapters(m, bottleneck=8),
    "Pfeiffer adapter m=8": lambda m: add_adapters(m, placement="pfeiffer", bottleneck=8),
    "LoRA q,v r=2": lambda m: add_lora(m, r=2, alpha=8),
    "LoRA q,v r=8": lambda m: add_lora(m, r=8, alpha=8),
    "LoRA all r=2": lambda m: add_lora(m, targets="all-linear", r=2, alpha=8),
    "LoRA all r=8": lambda m: add_lora(m, targets="all-linear", r=8, alpha=8),
    "prompt tuning, 8": lambda m: add_prompt(m, length=8),
    "prefix tuning, 8": lambda m: add_prefix(m, length=8),
    "IA3": lambda m: add_ia3(m),
    "first block": lambda m: select(m, "first_k", k=1),
    "LayerNorm only": lambda m: select(m, "layernorm"),
    "both blocks": lambda m: select(m, "last_k", k=2),
}


def prepare(model, method: str):
    """Prepare `model` for `method` (see METHODS); returns the model."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; the course's methods: {', '.join(METHODS)}")
    if METHODS[method] is not None:
        METHODS[method](model)
    return model

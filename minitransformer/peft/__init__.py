"""Parameter-efficient fine-tuning for minitransformer: one module per method, the same verbs throughout.

| method | add | notes |
|---|---|---|
| selective | `freeze_base`, `unfreeze`, `unfreeze_blocks`, `unfreeze_biases` (BitFit), `unfreeze_layernorms`, `select` | trains the base's own parameters |
| bottleneck adapters | `add_adapters(model, name, placement="houlsby" or "pfeiffer", bottleneck=None, reduction_factor=16)` | identity at init |
| LoRA | `add_lora(model, name, targets=("q_proj", "v_proj"), r=8, alpha=8, dropout=0.0, rslora=False)` | `merge_lora`, `unmerge_lora`, `merge_and_unload` |
| prompt tuning | `add_prompt(model, name, length=8, init="vocab")` | uses `length` positions of the context |
| prefix tuning | `add_prefix(model, name, length=8, init="tokens")` | keys/values per layer |
| IA3 | `add_ia3(model, name, targets=("k_proj", "v_proj", "mlp.act"))` | identity at init |

Shared verbs: `set_active`, `disable_adapters` (context manager), `delete_adapter`, `describe`,
`save_adapter`, `load_adapter`.
"""

from .adapters import AdapterLayer, BottleneckAdapter, add_adapters
from .saving import base_fingerprint, load_adapter, read_adapter_config, save_adapter
from .core import (PeftLayer, active_adapters, adapter_names, delete_adapter, describe, disable_adapters,
                   peft_layers, set_active)
from .ia3 import IA3Layer, add_ia3, merge_ia3, unmerge_ia3
from .lora import LoRALinear, add_lora, merge_and_unload, merge_lora, unmerge_lora
from .prefix import PrefixKV, add_prefix
from .prompt import SoftPrompt, add_prompt
from .selective import freeze_base, select, unfreeze, unfreeze_biases, unfreeze_blocks, unfreeze_layernorms

"""Checks for the exercises: feedback in words, partial credit, and a fallback that keeps notebooks running.

In a notebook, after writing an exercise:

    causal_attention = check.causal_attention(causal_attention)

prints what is right and what is wrong, and returns the learner's version when it passes. When the
exercise is still a stub (its body raises NotImplementedError) or fails, it returns the library's
reference implementation instead, so the rest of the notebook still runs.

`run(exercise_id, candidate)` returns a CheckResult with points per part, for autograding.
"""

from .core import EXERCISES, RESULTS, CheckResult, Part, StubError, check, run
from .practice import prediction, quiz
from .ch1 import block, causal_attention, merge_heads, model_forward, parameter_count, split_heads
from .ch2 import activation_bytes, gpt2_parameters, training_bytes
from .ch3 import early_stopping, forgetting_score, separator_positions, training_step
from .ch4 import bitfit, count_trainable, train_last_blocks
from .ch5 import bottleneck_adapter, insert_adapters, near_identity_init
from .ch6 import lora_linear, lora_targets, merge_lora
from .ch7 import attention_with_prefix, ia3_scale, soft_prompt
from .ch9 import dequantize_weights, nf4_quantize, quantize_weights, quantized_bytes
from .ch8 import pareto_front, seed_summary, tuned_lr
from .ch10 import hf_lora_config, hf_tensor_name, hf_trainable_parameters

"""The bridge to Hugging Face PEFT: adapter files it reads and writes, `export_hf` and `import_hf`.

`names` maps tensor names both ways, `export` writes a folder, `load` reads one.

`export_hf(model, name, folder)` writes the course adapter `name` as HF PEFT's `save_pretrained` would, so
`peft.PeftModel.from_pretrained(<the same Classifier or MiniTransformer, without adapters>, folder)` loads it
and computes the same outputs. `import_hf(model, folder)` reads a folder written by HF PEFT's
`save_pretrained` for this model and adds it as a course adapter. Neither needs the `peft` package: the
files are one JSON config and one safetensors file (metadata {"format": "pt"}, as HF writes).

What is compatible (both ways):
- LoRA on any of the transformer's linear layers (q, v, all-linear, ...), with one r, lora_alpha, dropout and
  use_rslora for every layer (HF's r, lora_alpha, lora_dropout, use_rslora);
- IA3 on keys, values and other linear layers (HF scales their outputs) and on mlp.act (the course scales
  the activation; HF scales the input of mlp.fc_out, a "feedforward" module: the same numbers);
- a Classifier's task head, which HF keeps through modules_to_save=["head"]. peft 0.22 matches that name by
  whole dot-separated parts, so it wraps the head alone, and export writes the head alone. Releases before 0.22
  matched it as a plain string suffix and also wrapped (and saved a copy of) base.lm_head; import accepts such a
  file and checks that the copy is untouched.

What is not (refused with an error that names the option): other methods (bottleneck adapters, prompt and
prefix tuning, HF's other PEFT types), DoRA, LoRA biases (bias != "none", lora_bias), fan_in_fan_out,
rank_pattern / alpha_pattern, init variants that change the base weights (PiSSA, OLoRA, LoftQ, ...), any
other HF option set away from its default, trained base parameters besides the task head, merged adapters.

The course's own format (`save_adapter`) stays the default: it records the base model's config and
fingerprint, so loading onto the wrong base is an error. HF's format has neither; `export_hf` puts the
fingerprint into the safetensors metadata (HF ignores it), and `import_hf` checks it when it is there. An
adapter saved by HF carries none, so nothing can tell that it was trained on another base.
"""

from .export import export_hf
from .load import import_hf
from .names import course_name, hf_tensor_name, unwrapped

__all__ = ["course_name", "export_hf", "hf_tensor_name", "import_hf", "unwrapped"]

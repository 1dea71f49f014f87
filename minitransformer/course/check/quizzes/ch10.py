"""Chapter 10's end-of-chapter questions: Hugging Face PEFT on the course's model."""

from ..practice import Question

QUESTIONS = [
    Question("q1", "LoraConfig(r=32, target_modules=[\"q_proj\", \"v_proj\"]) leaves lora_alpha at its default of 8. "
             "What scaling does HF apply to B A?", 0.25,
             "Scaling is lora_alpha / r = 8 / 32 = 0.25. Raising r without raising lora_alpha shrinks the update, "
             "so a rank sweep at a fixed learning rate also sweeps the step size. With use_rslora=True it would be "
             "8 / sqrt(32) ≈ 1.41.", tolerance=0.01),
    Question("q2", "target_modules=[\"q_proj\", \"v_prj\"] (one typo). What does HF PEFT (the version printed at the "
             "top) do? (a) raises an "
             "error (b) adapts only q_proj, without a word (c) adapts q_proj and v_proj",
             "b",
             "HF raises only when no target matches at all. One typo in a list leaves a smaller adapter than you "
             "asked for, silently; compare print_trainable_parameters() with what you expect. The course's "
             "add_lora raises for any name that matches nothing.",
             choices=("a", "b", "c")),
    Question("q3", "You train a Classifier with LoRA in HF but forget modules_to_save=[\"head\"]. Which is true? "
             "(a) the head trains but is not saved (b) the head stays frozen at its random start and is not saved "
             "(c) HF detects the head and saves it",
             "b",
             "get_peft_model freezes every parameter it does not wrap, the new head included, and save_pretrained "
             "writes only the adapter and the modules_to_save copies. The adapter then learns around a random head "
             "that nobody can rebuild: reloaded on a fresh Classifier it meets another random head.",
             choices=("a", "b", "c")),
    Question("q4", "On this Classifier, with the peft version this course locks (0.22), modules_to_save=[\"head\"] "
             "makes how many trainable copies of modules?", 1,
             "One, the task head's: since 0.22 modules_to_save matches whole dot-separated parts, as target_modules "
             "does. Releases before 0.22 matched any name ending in the string \"head\", so they also copied "
             "base.lm_head: 35 × 64 = 2,240 trainable parameters and a tensor in every saved file, though the "
             "Classifier never uses it. What a name catches is versioned: list the wrapped modules after an upgrade."),
    Question("q5", "The course's IA3 scales mlp.act's output; HF's IA3 scales mlp.fc_out's input (a feedforward "
             "module). When merged, which weights change for that vector? (a) fc_in's rows (b) fc_out's columns "
             "(c) nothing: IA3 cannot be merged",
             "b",
             "Scaling the input of fc_out by s is the same as multiplying fc_out's weight column j by s_j; the "
             "bias is untouched. Scaling a layer's output (keys, values) multiplies its weight rows and its bias.",
             choices=("a", "b", "c")),
]

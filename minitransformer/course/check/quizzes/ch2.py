"""Chapter 2's end-of-chapter questions: why PEFT, the cost of full fine-tuning."""

from ..practice import Question

QUESTIONS = [
    Question("q1", "Full fine-tuning in fp32 with Adam: how many bytes per parameter for weights, gradients and "
             "Adam's two moments together?", 16,
             "4 bytes of weight + 4 of gradient + 8 for the two moments = 16 bytes per parameter, before any "
             "activations. Mixed precision with an fp32 master copy costs about the same."),
    Question("q2", "With LoRA, about 1% of the parameters train. Which part still costs memory for every parameter "
             "of the model? (a) gradients (b) optimizer states (c) the weights themselves",
             "c",
             "Frozen weights still have to be in memory for the forward pass; only the gradients and optimizer "
             "states shrink to the trainable 1%. Quantizing the frozen weights (chapter 9) attacks the rest.",
             choices=("a", "b", "c")),
    Question("q3", "Which part of training memory grows with the batch size and the sequence length? "
             "(a) optimizer states (b) activations kept for the backward pass (c) gradients",
             "b",
             "Activations are per token: s · b · h values per layer and more. Gradients and optimizer states are per "
             "trained parameter and do not depend on the batch.",
             choices=("a", "b", "c")),
    Question("q4", "How many GB do 10 fully fine-tuned copies of a 7B-parameter model take in 16-bit?", 140,
             "7 · 10⁹ parameters × 2 bytes × 10 copies = 140 GB; ten LoRA adapters of a few MB each add almost "
             "nothing to one shared base.", tolerance=0.1),
    Question("q5", "Only the last block and the head train. Which blocks does the backward pass go through? "
             "(a) every block (b) only the last block (c) none",
             "b",
             "Backward only needs to reach the first trainable parameter: nothing below the last block needs a "
             "gradient, so PyTorch does not even keep its activations. Methods that train something in every layer "
             "(LoRA, adapters, prompts) send backward through the whole model.",
             choices=("a", "b", "c")),
]

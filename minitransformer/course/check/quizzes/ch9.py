"""Chapter 9's end-of-chapter questions: quantized bases and QLoRA."""

from ..practice import Question

QUESTIONS = [
    Question("q1", "Bits per weight of 4-bit codes with one 16-bit scale per 16 weights?", 5.0,
             "4 bits of code plus 16 / 16 = 1 bit of scale per weight: 5 bits. Small groups cost scale bytes.",
             tolerance=0.01),
    Question("q2", "How many of the 16 four-bit codes does the course's absmax grid (codes -7..7) use, and how "
             "many does NF4 use? Answer as 'absmax/nf4', e.g. '16/16'.", "15/16",
             "A symmetric grid with an exact zero has 7 levels on each side plus zero: 15 codes. NF4 puts 8 levels "
             "on one side, 7 on the other and an exact zero: all 16."),
    Question("q3", "QLoRA's optimizer bill per trainable parameter: bf16 adapter weight, bf16 gradient and two "
             "fp32 Adam moments, no fp32 master copy. How many bytes?", 12,
             "2 + 2 + 4 + 4 = 12 bytes, against 16 for mixed precision with an fp32 master copy."),
    Question("q4", "What does a paged optimizer do? (a) quantizes Adam's moments to 4 bits (b) lets the optimizer "
             "states move to CPU memory when the GPU runs short, e.g. during a memory spike from a long batch, and "
             "back when needed (c) splits the model across GPUs",
             "b",
             "Paged optimizers use unified memory: Adam's states are paged out to CPU RAM under memory pressure and "
             "paged back for the update, so a rare spike does not crash the run. It changes no steady-state number.",
             choices=("a", "b", "c")),
    Question("q5", "LoRA r = 64 on every linear layer of LLaMA-65B (80 layers, d = 8192, MLP 22016, gated): about "
             "what percentage of the model's 65.3B parameters does it train?", 1.22,
             "Per layer r·(in + out) summed over q, k, v, out (4 × 16,384) and gate, up, down (3 × 30,208): "
             "64 × 156,160 ≈ 10.0M; × 80 layers ≈ 800M, about 1.22% of 65.3B.",
             tolerance=0.05),
]

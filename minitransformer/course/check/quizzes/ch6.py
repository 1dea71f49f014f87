"""Chapter 6's end-of-chapter questions: LoRA."""

from ..practice import Question

QUESTIONS = [
    Question("q1", "How many trainable numbers does LoRA with r = 8 add to one 64 × 64 weight matrix?", 1024,
             "A is r × in and B is out × r: r · (in + out) = 8 · 128 = 1,024, a quarter of the 4,096 weights "
             "(2r/d of them), which is why the percentages are large on a tiny model."),
    Question("q2", "LoRA starts with B = 0 and A random. At step 0, which gets a non-zero gradient? "
             "(a) A and B (b) only B (c) only A (d) neither",
             "b",
             "The update is scaling · B A x. Its gradient with respect to A is multiplied by B, which is zero; the "
             "gradient with respect to B is multiplied by A x, which is not. The first step moves B; from then on "
             "B is non-zero and A learns too. With A = 0 as well, neither would ever move.",
             choices=("a", "b", "c", "d")),
    Question("q3", "With the common habit alpha = 2r, what is LoRA's scaling alpha / r at r = 16?", 2,
             "alpha / r = 2r / r = 2 at every rank: the habit fixes the scaling, so the rank no longer changes the "
             "size of the update, and alpha is in effect part of the learning rate."),
    Question("q4", "After merge_and_unload, how many extra matrix products per adapted layer does inference do?", 0,
             "Merging writes W + scaling · B A into the weight: the merged layer is an ordinary linear layer with "
             "the base's shape, so inference costs what the base costs."),
    Question("q5", "Over 5 seeds, full fine-tuning forgets 0.60 [0.52, 0.68] and LoRA 0.65 [0.55, 0.75] (mean, 95% "
             "interval). Which statement do the numbers support? (a) LoRA forgets more (b) full fine-tuning "
             "forgets more (c) no difference is established",
             "c",
             "The intervals overlap widely: the gap of 0.05 is within what changing the seed does. Say \"no "
             "difference established\", and measure more seeds if the question matters.",
             choices=("a", "b", "c")),
]

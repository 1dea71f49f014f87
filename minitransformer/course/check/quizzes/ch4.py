"""Chapter 4's end-of-chapter questions: selective fine-tuning."""

from ..practice import Question

QUESTIONS = [
    Question("q1", "BitFit on one linear layer from 64 to 256 features (with a bias): how many of its parameters "
             "train?", 256,
             "BitFit trains the biases only: one per output feature, 256 here; the 64·256 weights stay frozen."),
    Question("q2", "Why is each method compared at its own tuned learning rate, not at one shared rate? "
             "(a) a shared rate suits some methods and starves others, so the comparison would measure the rate, "
             "not the method (b) it is faster (c) the rate does not matter for forgetting", "a",
             "A thousand or so biases, or a few hundred LayerNorm scales and shifts, need larger steps than a whole "
             "block to move as far in the same budget. At one shared rate, a method can look gentle only because it "
             "barely trained. Forgetting grows with the rate (chapter 3), so a rate difference alone can reorder the "
             "methods.",
             choices=("a", "b", "c")),
    Question("q3", "Two methods' 95% intervals for forgetting overlap. What may you conclude? (a) the one with the "
             "lower mean forgets less (b) no difference is established with these seeds (c) they forget exactly "
             "as much", "b",
             "Overlapping intervals mean the seeds' spread could explain the gap. More seeds may separate them, or "
             "not; until then the difference is not a finding."),
    Question("q4", "The head-only probe (only the task head trains): how much base-task exact match does it lose, "
             "measured through the base's LM head?", 0.0,
             "Nothing the base tasks use changes: the body is frozen and the new head is not on their path. Its "
             "forgetting is exactly zero, by construction, at any learning rate.", tolerance=0.0),
    Question("q5", "Only the last block trains. Which part of the model computes exactly what the base computed? "
             "(a) nothing (b) the embeddings and every block below the last one (c) only the LM head", "b",
             "Frozen layers below the trained block see the same inputs and compute the same outputs; only the "
             "last block (and what reads it) changes. Training the first block instead changes the input of every "
             "layer above it.",
             choices=("a", "b", "c")),
]

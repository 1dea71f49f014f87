"""Chapter 1's end-of-chapter questions: the mini transformer."""

from ..practice import Question

QUESTIONS = [
    Question("q1", "With a causal mask, which positions can the token at position t attend to? "
             "(a) every position (b) positions 0 … t (c) positions 0 … t − 1",
             "b",
             "Causal attention hides the future, not the present: row t of the weights is non-zero on columns 0 … t "
             "and each row sums to 1. Position 0 can only attend to itself.",
             choices=("a", "b", "c")),
    Question("q2", "How many parameters do the four attention projections (q, k, v, out) of one block have at "
             "d_model = 64, with biases?", 16640,
             "Each projection is a 64 × 64 matrix plus 64 biases: 4 · (64 · 64 + 64) = 16,640. The number of heads "
             "does not change it: heads split the 64 dimensions, they do not add weights."),
    Question("q3", "If the context length grew from 32 to 64 tokens, how many parameters would the model gain?", 2048,
             "Only the learned position embedding depends on the context length: 32 more rows of 64 numbers, "
             "32 · 64 = 2,048. Attention's weights are shared by every position."),
    Question("q4", "Exact match on 'reverse' counts an example as right when … (a) most answer characters are right "
             "(b) every answer character, and the final '.', is right (c) the loss on it is below 0.1 nats",
             "b",
             "Exact match is all or nothing per example: one wrong character and the whole answer counts as wrong. "
             "That is why it saturates, and why later chapters also track the loss, a continuous measure.",
             choices=("a", "b", "c")),
    Question("q5", "The loss is computed only on the answer characters (after '='). Why? (a) to save memory "
             "(b) the prompt is random input the model cannot predict, so grading it would only add noise "
             "(c) the tokenizer cannot encode the prompt",
             "b",
             "The input string is random: no model can predict its next character better than chance. Masking it "
             "out (target −100) makes the loss measure what the task asks, the answer.",
             choices=("a", "b", "c")),
]

"""Chapter 8's end-of-chapter questions: the showdown."""

from ..practice import Question

QUESTIONS = [
    Question("q1", "You choose each method's learning rate by its mean TEST accuracy and report that test accuracy. "
             "Compared with choosing on validation, the reported number is (a) unbiased (b) optimistic: never "
             "lower, usually higher (c) pessimistic",
             "b",
             "The test-chosen rate is, by construction, the one with the highest test mean, so its test score is at "
             "least the test score of the validation-chosen rate. Part of that edge is luck on this particular test "
             "set, which new data will not repeat. The chapter measures the gap.",
             choices=("a", "b", "c")),
    Question("q2", "A method's chosen learning rate is the largest one in its grid. What should you do? (a) report "
             "it: it is the best (b) try a rate one step beyond it and choose again (c) take the second largest to be safe",
             "b",
             "At the edge, the best rate may lie outside the grid, and the method is reported below its potential: an "
             "unfair comparison. Extend the grid until the best is inside it (the study does this and records it).",
             choices=("a", "b", "c")),
    Question("q3", "Five seeds give test accuracies with a sample standard deviation of 0.02. The 95% t-interval is "
             "mean ± t · sd / √n with t = 2.776 for 4 degrees of freedom. What is its half-width?", 0.0248,
             "2.776 · 0.02 / √5 = 0.0248. Two methods 0.02 apart with intervals this wide overlap: the data do not "
             "separate them.",
             tolerance=0.05),
    Question("q4", "Which adapted model costs exactly what the base costs at inference, with no merging step? "
             "(a) prompt tuning (b) Houlsby adapters (c) BitFit",
             "c",
             "BitFit changes values the model already has (its biases): same shapes, same computation. Prompt tuning "
             "lengthens every input and adapters add layers. LoRA and IA3 reach the base's cost once merged.",
             choices=("a", "b", "c")),
    Question("q5", "Replay cut forgetting for every method it was tried on. What does it need that a "
             "PEFT method does not? (a) more trainable parameters (b) some of the old tasks' data at fine-tuning "
             "time (c) a larger learning rate",
             "b",
             "Replay mixes old-task examples into every batch, so the old data (or a sample of it) must be available; "
             "when it is not (licensing, privacy, an unknown pretraining mix), a method that can be switched off, or "
             "a gentler setting, is what is left.",
             choices=("a", "b", "c")),
]

"""Chapter 3's end-of-chapter questions: full fine-tuning, the training step, forgetting and early stopping."""

from ..practice import Question

QUESTIONS = [
    Question("q1", "Which set may you pick the early-stopping step on? (a) the test set (b) the validation set "
             "(c) the training batches", "b",
             "Anything you choose must be chosen on validation: a step picked on the test set makes the test score "
             "the best of many tries, an optimistic estimate of what you will see on new data.",
             choices=("a", "b", "c")),
    Question("q2", "A language-model batch has 4 rows of 12 target positions; 15 of the 48 targets are answer "
             "tokens, the rest are IGNORE (prompt and padding). Over how many positions is the masked loss "
             "averaged?", 15,
             "Only the answer tokens are graded: the prompt is given and the padding is not text. Dividing the same "
             "sum by all 48 positions would scale the loss by 15/48, a factor that changes from batch to batch with "
             "the padding, so batches with short answers would count less; grading the prompt's characters too "
             "would make the loss mostly about predicting random characters, which is not the task."),
    Question("q3", "You forget optimizer.zero_grad(). Which gradient does the third call of your training step "
             "hand to the optimizer? (a) the third batch's (b) the sum of the three batches' gradients (c) zero",
             "b",
             "backward() adds into .grad; nothing clears it unless you do. Every step then applies the running sum "
             "of all gradients so far, as if the old batches were still in the current one.",
             choices=("a", "b", "c")),
    Question("q4", "Where in a training step does gradient clipping go? (a) before loss.backward() "
             "(b) between loss.backward() and optimizer.step() (c) after optimizer.step()", "b",
             "Clipping rescales the gradients: they exist only after backward(), and the optimizer uses them in "
             "step(). Before backward there is nothing to clip; after step it is too late.",
             choices=("a", "b", "c")),
    Question("q5", "Full fine-tuning for a fixed number of steps at a much smaller learning rate (1e-4 instead of "
             "the 9e-3 chosen on validation): what happens to the base tasks and to the new task? (a) it forgets "
             "less and learns less (b) it forgets less and learns as much (c) it forgets as much", "a",
             "In this chapter's measurement both move together: the small rate keeps more of the base tasks and "
             "reaches a lower new-task accuracy in the same budget. Full fine-tuning moves along a trade-off "
             "curve; whether a PEFT method beats the curve is what chapters 4-8 measure.",
             choices=("a", "b", "c")),
]

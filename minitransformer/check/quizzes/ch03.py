"""Chapter 3's end-of-chapter questions (an example of the format; the chapter's author owns the content)."""

from ..practice import Question

QUESTIONS = [
    Question("q1", "Which set may you pick the early-stopping step on? (a) the test set (b) the validation set "
             "(c) the training batches", "b",
             "Anything you choose must be chosen on validation: a step picked on the test set makes the test score "
             "the best of many tries, an optimistic estimate of what you will see on new data.",
             choices=("a", "b", "c")),
]

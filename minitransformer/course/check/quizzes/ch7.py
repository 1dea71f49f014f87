"""Chapter 7's end-of-chapter questions: prompt tuning, prefix tuning, IA3."""

from ..practice import Question

QUESTIONS = [
    Question("q1", "How many numbers does an 8-token soft prompt train on a model with d_model = 64 (the task "
             "head not counted)?", 512,
             "One vector of width d_model per virtual token: 8 × 64 = 512. The base and its embeddings stay frozen."),
    Question("q2", "A soft prompt of P tokens is in front of every input. What happens to the activations a "
             "training step keeps for backward as P grows? (a) they stay the same: only P·d parameters are added "
             "(b) they grow roughly linearly with P (c) they shrink, because fewer weights train",
             "b",
             "Every layer now processes T + P positions, and backward must pass through every layer down to the "
             "input to reach the prompt, so each layer's saved activations grow with T + P: linearly in P "
             "(attention scores grow faster, with (T + P)², but are small here).",
             choices=("a", "b", "c")),
    Question("q3", "Lester et al. found prompt tuning weak on small T5 models. Can this chapter's position "
             "confound (shifted learned absolute positions) explain their finding? (a) yes, entirely "
             "(b) no: T5 has no learned absolute position embeddings, it uses relative position biases",
             "b",
             "T5 encodes positions as relative biases inside attention, so prepending virtual tokens does not move "
             "the input onto positions it never saw. The confound matters for models with learned absolute "
             "positions, such as GPT-2 and ours; their small-scale weakness has other causes.",
             choices=("a", "b")),
    Question("q4", "Why did Li & Liang train the prefix through an MLP (P = MLP(P')) instead of directly? "
             "(a) to save memory at inference (b) training the prefix directly was unstable and performed "
             "slightly worse (c) the MLP is kept and adds capacity at inference",
             "b",
             "Optimising the prefix matrix directly was sensitive to the learning rate and initialisation. The "
             "reparameterisation only helps training: afterwards P is computed once and stored, and the MLP is "
             "thrown away, so the saved prefix and inference are the same as without it.",
             choices=("a", "b", "c")),
    Question("q5", "An IA3 model is trained and its scaling vectors are switched off (disable_adapters). How much "
             "does it forget of the base tasks then? (a) as much as with them on (b) nothing: the base's outputs "
             "come back exactly",
             "b",
             "IA3 multiplies activations by learned vectors without touching a weight; switched off, the model "
             "computes exactly the base. Forgetting in this chapter is measured with the method switched on.",
             choices=("a", "b")),
]

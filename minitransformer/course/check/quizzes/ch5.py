"""Chapter 5's end-of-chapter questions: adapters."""

from ..practice import Question

QUESTIONS = [
    Question("q1", "How many parameters does one bottleneck adapter have for d = 64 and m = 4 (weights and biases)?",
             580,
             "down has d·m weights and m biases, up has m·d weights and d biases: 2·64·4 + 4 + 64 = 580."),
    Question("q2", "Right after the near-identity init (up = 0, down small and random), which parameters get a "
             "non-zero gradient at step 0? (a) all of them (b) up's weight and bias only (c) down only (d) none",
             "b",
             "The gradient reaching down passes through up's weight, which is zero, so down gets none at step 0. "
             "up's weight sees relu(down(h)), small but non-zero, and up's bias needs no input at all. After one "
             "step up is non-zero and down starts learning too.",
             choices=("a", "b", "c", "d")),
    Question("q3", "Placement is compared at about the same number of trainable parameters. Which pair is fair? "
             "(a) Houlsby m=8 vs Pfeiffer m=8 (b) Houlsby m=4 vs Pfeiffer m=8 (c) Houlsby m=8 vs Pfeiffer m=4",
             "b",
             "Houlsby puts two adapters in each block, Pfeiffer one, so Pfeiffer at m=8 trains about what Houlsby "
             "trains at m=4 (2,322 vs 2,450 with the head). At equal m, Houlsby has twice the parameters and the "
             "comparison mixes placement with size.",
             choices=("a", "b", "c")),
    Question("q4", "A Houlsby-adapted model forgets a lot of the base tasks (measured with the adapters on). "
             "What do the base tasks score once you switch the adapters off? (a) the same, still forgotten "
             "(b) somewhat better (c) exactly what the base scored",
             "c",
             "Adapters are added modules; the base weights never change. Switched off, the model computes the "
             "base's outputs bit for bit, so the forgetting exists only while the adapter is on.",
             choices=("a", "b", "c")),
    Question("q5", "Over many tokens, at most how many independent directions can the change Δ = up(relu(down(h))) "
             "of an m = 8 adapter vary in, after removing the constant vector added by up's bias?", 8,
             "Every Δ is up's weight times an 8-number vector, so the centred Δ lies in an 8-dimensional subspace "
             "of the 64-wide hidden state, whatever the input."),
]

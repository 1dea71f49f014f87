"""`python -m minitransformer.peft`: trainable parameters and checkpoint size of every method."""

from .survey import main

main()

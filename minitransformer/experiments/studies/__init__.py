"""Studies: named grids of methods x learning rates x seeds, run under the protocol of `protocol.py`.

Each module here defines `STUDY = protocol.Study(...)`; `python -m minitransformer.experiments NAME` runs it and
writes `minitransformer/experiments/studies/results/NAME.json`, which the chapters load and re-check live on a sample.
"""

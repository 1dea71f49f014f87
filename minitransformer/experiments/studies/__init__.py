"""Studies: named grids of methods x learning rates x seeds, run under the protocol of `experiment.py`.

Each module here defines `STUDY = experiment.Study(...)`; `python -m minitransformer.experiments NAME` runs it and
writes `minitransformer/experiments/studies/results/NAME.json`, which the chapters load and re-check live on a sample.
"""

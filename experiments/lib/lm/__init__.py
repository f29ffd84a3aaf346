"""The language-modelling study (``python -m experiments.lm``).

``runs`` trains one cell at one seed through the pipeline and keeps its record; ``baselines``
counts the unigram, bigram and Kneser-Ney models on the same text; ``report`` writes the
tables, curves and samples.
"""

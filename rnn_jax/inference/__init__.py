"""Finished runs: restoring, predicting, ensembles.

``runs`` restores a workdir's model and vocabulary and predicts texts and splits; ``ensemble``
scores several runs together. Imports every folder below it.
"""

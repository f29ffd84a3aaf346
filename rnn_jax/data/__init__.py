"""IMDB as arrays: tfds reading, the Keras-style vocabulary, the on-disk cache, batches.

Receives the few values it needs (vocabulary size, lengths, split), never a model. Imports
numpy, tensorflow-datasets and itself only.
"""

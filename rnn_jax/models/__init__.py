"""Models built from the layers: the IMDB classifier, a sequence regressor, their summary.

Imports ``layers`` and ``cells``; knows nothing of data or training (a config reaches a model
through ``create_model``, which reads the model's own fields).
"""

from rnn_jax.models.classifier import *  # noqa: F403
from rnn_jax.models.classifier import make_cells, pool  # noqa: F401

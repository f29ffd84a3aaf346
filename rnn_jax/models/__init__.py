"""Models built from the layers: the IMDB classifier, the language model, sequence models.

``classifier`` is ``SentimentClassifier`` and ``create_model(config)``; ``language_model`` the
byte-level ``LanguageModel`` that reads a stream chunk by chunk; ``sequence`` the
``SequenceRegressor`` and the per-step ``SequenceTagger``; ``cell_stack`` turns a config's cell
names into cells; ``summary`` counts and describes. Imports ``layers`` and ``cells``; knows
nothing of data or training.
"""

from rnn_jax.models.cell_stack import make_cells
from rnn_jax.models.classifier import (
    COMPUTE_DTYPES,
    POOLINGS,
    SentimentClassifier,
    create_model,
    ngram_ids,
    pool,
)
from rnn_jax.models.language_model import LanguageModel
from rnn_jax.models.sequence import SequenceRegressor, SequenceTagger
from rnn_jax.models.summary import count_params, recurrence_path, summary

__all__ = [
    "COMPUTE_DTYPES",
    "LanguageModel",
    "POOLINGS",
    "SentimentClassifier",
    "SequenceRegressor",
    "SequenceTagger",
    "count_params",
    "create_model",
    "make_cells",
    "ngram_ids",
    "pool",
    "recurrence_path",
    "summary",
]

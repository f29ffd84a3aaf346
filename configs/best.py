"""The best recurrent models this codebase trains from scratch on IMDB (supervised, no extra data).

A bidirectional GRU reading whole reviews (up to 1,000 tokens, 99% of reviews whole; length
bucketing keeps short ones cheap), whose input at each token is the word's embedding plus an
embedding of the word pair ending there (hashed into 262,144 rows, as fastText does: the cell
then reads "not good" or "waste of" as one input). Its states are mean- and max-pooled over the
real tokens (Johnson & Zhang 2016 found pooling over a bidirectional LSTM's states strong on
IMDB), heavily regularized with dropout (the embedding tables are most of the parameters and
memorize fast), trained with a warmup + cosine schedule.

Protocol: every choice below, the number of epochs included, was made on validation (20% of the
training reviews held out; a config scores its best epoch, and a cosine schedule's length is part
of the config, so the refit trains all of it). This file then refits the chosen config on all
25,000 training reviews (validation_fraction=0; the last epoch is the model) and tests that
model once: experiments/best.py runs both and reports them (experiments/results/best/).

How each choice was made, candidate by candidate with its validation accuracy:
docs/best_model.md. Expected: test accuracy of the single model and of the ensemble in
experiments/results/best/table.md and ensemble.md.

Run:      python -m rnn_jax.main --config=configs/best.py[:member] --workdir=runs/best_<member>
Ensemble: python -m rnn_jax.evaluate --workdir=runs/best_gru --workdir=runs/best_lstm \
              --workdir=runs/best_word_dropout
Tune:     the same runs with --config.validation_fraction=0.2 --config.evaluate_test=False
"""

from configs import default

# The ensemble's members (``--config=configs/best.py:<member>``), each a change to candidate 7.
MEMBERS = {
    "gru": {},  # Candidate 7.
    "lstm": {"cell": "lstm"},  # Candidate 10.
    "word_dropout": {"embed_dropout_tokens": True, "embed_dropout_rate": 0.3},  # Candidate 9.
}


def get_config(member: str = "gru"):
    """The config of one ensemble member; the default, ``gru``, is the best single model."""
    if member not in MEMBERS:
        raise ValueError(f"unknown member {member!r} of configs/best.py; allowed: {list(MEMBERS)}")
    config = default.get_config()
    config.cell = "gru"
    config.bidirectional = True
    config.hidden_size = 64
    config.vocab_size = 30_000
    config.max_len = 1000
    config.bucket_width = 50
    config.ngram_buckets = 262_144  # 2^18 rows of bigram embeddings.
    config.ngram_order = 2
    config.pooling = "mean_max"
    config.embed_dropout_rate = 0.5
    config.dropout_rate = 0.5
    config.learning_rate = 2e-3
    config.schedule = "warmup_cosine"
    config.warmup_epochs = 0.3
    config.grad_clip_norm = 1.0
    config.num_epochs = 3  # Candidate 7's length (docs/best_model.md).
    # Refit on every training review: the config above was chosen with 0.2 held out.
    config.validation_fraction = 0.0
    config.update(MEMBERS[member])
    return config

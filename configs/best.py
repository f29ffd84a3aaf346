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

Candidates, run with --config.validation_fraction=0.2 and selected on best validation accuracy.
train.py then evaluated test at the end of every run, so each candidate's test accuracy was
printed too; it was not used to choose. (Tune with --config.evaluate_test=False now.)
  1. vocab 20k, max_len 400, mean pooling, dropout 0.3/0.3, 4 epochs: val 0.8882.
  2. no n-grams, vocab 20k, max_len 600, 3 epochs (this file until 2026-11-22): val 0.8950,
     test 0.8817, 150 s per epoch.
  3. 2 with vocab 30k, max_len 1000, bucket_width 50, 4 epochs: val 0.8962, test 0.8749.
  4. 2 with bucket_width 50 and bigrams (262,144 rows): val 0.9034, test 0.8941; 147 s/epoch.
  5. 4 with bigrams and trigrams in the same table: val 0.8990, test 0.8896.
  6. 4 with 65,536 rows: val 0.9022, test 0.8894; 90 s/epoch (the dense Adam update of the
     n-gram table is most of a step: ~260 ms for 262,144 x 128 rows, ~50 ms for 65,536).
  7. this file (4 with vocab 30k, max_len 1000): val 0.9044 (epoch 2), test 0.8959.
  8. 7 with 2 epochs (the cosine ends at epoch 2): val 0.9010, test 0.8939.
  9. 7 with word dropout (embed_dropout_tokens, rate 0.3) in place of feature dropout 0.5:
     val 0.9000, test 0.8913.
  10. 7 with an LSTM in place of the GRU: val 0.8990, test 0.8946; 167-201 s/epoch.
  11. 7 with learning rate 1e-3: val 0.9004 (epoch 3); run with evaluate_test=False, so its
      test accuracy was never computed.
Chosen single model: 7 (member `gru`, the default). Its refit on all 25,000 training reviews
(validation_fraction=0) tested 0.8961 (606 s of training: epochs of 186-230 s).
Differences of a few tenths on 5,000 validation reviews are within their noise (standard error
~0.4 points): 4, 6, 7 and 8 are alike on validation; the choice follows the rule.
The target was 0.90 on test. Validation is carved from the training reviews, which share movies
with them (IMDB's test set is other movies), so it runs about 1 point above test here.

Chosen model: the ensemble of MEMBERS below, which averages their probabilities per review. The
members are three candidates that differ in kind: 7; 10, its LSTM; 9, its word dropout (members
that err differently gain most; 4, 6 and 8 differ from 7 only in sizes). On validation, from the
candidates' own runs, each at its best epoch: 0.9064, above every single candidate. (This
ensemble was measured after 7's refit had been tested.) Each member was refit as 7 was; the
ensemble of the refits tested 0.9019, the members alone 0.8961 (gru), 0.8910 (lstm) and 0.8934
(word_dropout). python -m experiments.best trains all six runs (about an hour) and reports them
(experiments/results/best/).

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
    config.num_epochs = 3  # Candidate 7: val 0.9044 at epoch 2, 0.9036 at 3 (the refit's last).
    # Refit on every training review: the config above was chosen with 0.2 held out.
    config.validation_fraction = 0.0
    config.update(MEMBERS[member])
    return config

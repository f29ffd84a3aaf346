"""The best recurrent model this codebase trains from scratch on IMDB (supervised, no extra data).

A bidirectional GRU reading up to 600 tokens (the end of longer reviews; 600 covers ~95% of
reviews whole), mean- and max-pooled over the real tokens (Johnson & Zhang 2016 found pooling
over a bidirectional LSTM's states strong on IMDB), heavily regularized with dropout (the
embedding table is most of the parameters and memorizes fast), trained with a warmup + cosine
schedule. Selected on validation; test reported once (experiments/results/best/).

Candidates, selected on validation accuracy:
  1. vocab 20k, max_len 400, mean pooling, dropout 0.3/0.3, 4 epochs: best val 0.8882
     (run with the projection before the scan, before 'auto' chose in_step on CPU).
  2. this file: best val 0.8950 (epoch 3). Its test accuracy: experiments/results/best/.
  3. this file with vocab 30k, max_len 1000 (99% of reviews whole), bucket_width 50 (67 s per
     epoch instead of 150 s), 4 epochs: best val 0.8962 (epoch 4), test 0.8749. Tried after
     the test accuracy of 2 was known, so its test was seen too. Its validation gain, 0.12
     points, is well inside the noise of 5,000 validation reviews (standard error ~0.4 points),
     so this file stays 2 (fewer epochs, fewer parameters); that choice was made knowing both
     test numbers.
The target was 0.90 on test; this reaches less (see the results). Validation is carved from the
training reviews, which share movies with them (IMDB's test set is other movies), so it runs
about 1.5 points above test for these high-capacity models.

Run:  python -m rnn_jax.main --config=configs/best.py --workdir=runs/best
"""

from configs import default


def get_config():
    config = default.get_config()
    config.cell = "gru"
    config.bidirectional = True
    config.hidden_size = 64
    config.vocab_size = 20_000
    config.max_len = 600
    config.pooling = "mean_max"
    config.embed_dropout_rate = 0.5
    config.dropout_rate = 0.5
    config.learning_rate = 2e-3
    config.schedule = "warmup_cosine"
    config.warmup_epochs = 0.3
    config.grad_clip_norm = 1.0
    config.num_epochs = 3
    return config

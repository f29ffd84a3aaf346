"""Language model on the reviews' text: a byte-level LSTM (docs/language_model.md).

Run:  python -m rnn_jax.main --config=configs/lm_lstm.py --workdir=runs/lm_lstm
Then: python -m rnn_jax.generate --workdir=runs/lm_lstm "This movie" --length 400 \
          --temperature 0.8 --seed 0
Expected: the long run of experiments/results/lm/long_run (test bits per character, curve and
samples), quoted in the README.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.task = "language_model"
    config.cell = "lstm"
    config.activation = ""  # Each cell's own (a study swaps the cell: the minGRU's is linear).
    config.embed_dim = 64
    config.hidden_size = 256
    config.batch_size = 32  # Streams.
    config.chunk_length = 128
    config.eval_batch_size = 256  # Streams scored at once on validation and test.
    # 24,000 steps of 32 x 128 characters: 98.3 M characters (about three passes over the
    # training text), in about an hour on one core of the 2-core machines here.
    config.steps_per_epoch = 2000  # 8.2 M characters between validations.
    config.num_epochs = 12
    config.validation_fraction = 0.04  # 1,000 reviews (1.3 M characters), the same for every seed.
    config.dropout_rate = 0.0
    config.embed_dropout_rate = 0.0
    config.optimizer = "adam"
    config.learning_rate = 3e-3
    config.schedule = "warmup_cosine"
    config.grad_clip_norm = 1.0
    return config

"""The course assignment: a 5-unit SimpleRNN on short reviews, kernels RandomNormal(0.001).

Run:  python -m rnn_jax.main --config=configs/assignment.py --workdir=runs/assignment
Expected: the studies built on it, experiments/results/studies/ (python -m experiments.studies).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.cell = "rnn"
    config.vocab_size = 2_000
    config.max_len = 30
    config.embed_dim = 50
    config.hidden_size = 5
    # The course sets RandomNormal(stddev=0.001) on the SimpleRNN's kernels; we read "kernels"
    # as both the input and the recurrent kernel.
    config.kernel_init = "random_normal:0.001"
    config.recurrent_init = "random_normal:0.001"
    # The course's model has no dropout or clipping (our defaults add both).
    config.dropout_rate = 0.0
    config.embed_dropout_rate = 0.0
    config.grad_clip_norm = 0.0
    config.optimizer = "rmsprop"
    config.learning_rate = 1e-4
    config.schedule = "constant"  # The course's fixed learning rate.
    config.num_epochs = 10
    config.batch_size = 64
    return config

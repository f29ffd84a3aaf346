"""Every config field, with the course's shootout defaults (LSTM).

Run:  python -m rnn_jax.main --config=configs/default.py --workdir=runs/lstm
Override any field:  --config.hidden_size=64 --config.optimizer=rmsprop

The variant files (rnn.py, lstm.py, gru.py, assignment.py, best.py) import this and change only
what differs. docs/configuration.md describes every field.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    # What is trained: 'sentiment' (the IMDB classifier, everything below by default) or
    # 'language_model' (bytes of the reviews' text; configs/lm_lstm.py and docs/language_model.md).
    config.task = "sentiment"

    # Data (tfds imdb_reviews/plain_text; Keras's imdb vocabulary rules).
    config.data_dir = ""  # '' = $TFDS_DATA_DIR, else tfds's default ~/tensorflow_datasets.
    config.cache_dir = ""  # '' = $XDG_CACHE_HOME/rnn_jax or ~/.cache/rnn_jax.
    config.vocab_size = 10_000  # Ids 0..vocab_size-1; 0 pad, 1 start, 2 out-of-vocabulary.
    config.max_len = 200
    config.padding = "pre"  # 'pre' or 'post' (Keras pad_sequences default: 'pre').
    config.truncating = "pre"  # 'pre' keeps the end of long reviews, 'post' the beginning.
    # Carved from train, deterministically from `seed`. 0: no validation, every training review
    # is trained on, and the last epoch is tested (the refit of a config chosen on validation).
    config.validation_fraction = 0.2
    config.max_examples = 0  # > 0 reads only the first N reviews of each split (smoke runs).
    # > 0: length bucketing. Training batches group reviews of similar length and are cut to a
    # multiple of this many steps, so short reviews cost short scans (needs mask_padding; see
    # rnn_jax/data/batching.py, train_batches). 0: every batch is max_len long, plain shuffled.
    config.bucket_width = 0

    # Model.
    config.cell = "lstm"  # rnn, lstm, gru, mgu, mingru, minlstm, rglru, or package.module:Class.
    # The cell's constructor arguments as a JSON object, e.g. '{"reset_after": false}' ('': none).
    config.cell_kwargs = ""
    config.embed_dim = 128
    config.hidden_size = 128
    config.num_layers = 1
    # True: layers after the first are pre-norm residual, x + layer(LayerNorm(x)) (how the
    # papers stack cells linear in h; rnn_jax/layers/recurrence.py, RecurrentStack).
    config.residual = False
    config.bidirectional = False
    config.pooling = "last"  # last, mean, max or mean_max over the real (unpadded) steps.
    # Not in the course's list of defaults; chosen on validation (docs/configuration.md).
    config.dropout_rate = 0.2  # Between recurrent layers and before the head.
    config.embed_dropout_rate = 0.2
    config.embed_dropout_tokens = False  # True: drop whole tokens ("word dropout").
    # > 0: each token's embedding also gets the embeddings of the 2- to ngram_order-grams ending
    # at it, hashed into one table of this many rows (models.ngram_ids). 0: words only, as in the
    # course.
    config.ngram_buckets = 0
    config.ngram_order = 2
    config.kernel_init = "glorot_uniform"  # Or e.g. random_normal:0.001.
    config.recurrent_init = "orthogonal"
    config.activation = "tanh"
    config.unroll = 1  # lax.scan unroll (per cell: experiments/results/benchmark/sweeps.md).
    # Where x W runs: 'auto' (in the step on CPU, one matmul before the scan on GPU/TPU; see
    # rnn_jax/layers/evaluation.py), 'before_scan' or 'in_step'.
    config.input_projection = "auto"
    # How a cell linear in h (mingru, minlstm, rglru) runs its recurrence: 'sequential'
    # (lax.scan), 'parallel' (lax.associative_scan, O(log T) depth) or 'auto' (sequential on CPU,
    # parallel on GPU/TPU; see rnn_jax/layers/evaluation.py). The other cells are always sequential.
    config.time_parallel = "auto"
    # The LSTM's path: 'auto' (cuDNN's fused kernel, jax.experimental.rnn.lstm, on a GPU when
    # eligible: tanh/sigmoid, float32, masks; else the scan), 'scan', or 'cudnn' (an error when
    # it cannot run). Same parameters either way (rnn_jax/cells/cudnn_lstm.py).
    config.lstm_backend = "auto"
    # True: the backward pass recomputes each scan step instead of storing its gates
    # (jax.checkpoint): less memory for long sequences, more compute. Same numbers.
    config.remat = False
    # True: padded steps leave the state unchanged (so pre/post padding give the same result).
    # False: padding tokens are read like words, as in Keras without mask_zero=True.
    config.mask_padding = True
    # 'float32', or 'bfloat16': embeddings and cells compute in bfloat16 (parameters, gradients,
    # optimizer, pooling, head and loss stay float32). Meant for GPU/TPU; on CPU it is slower
    # (experiments/results/precision/table.md).
    config.compute_dtype = "float32"

    # Optimization.
    # adam, keras_adam, rmsprop or sgd, with Keras defaults (rnn_jax/training/optimizers.py).
    config.optimizer = "adam"
    config.learning_rate = 1e-3
    config.momentum = 0.0  # sgd only.
    # constant or warmup_cosine (linear warmup, then cosine decay to 0 at the last step). Not in
    # the course's list; chosen on validation over three seeds (python -m experiments.schedule,
    # experiments/results/schedule/table.md).
    config.schedule = "warmup_cosine"
    config.warmup_epochs = 0.0  # warmup_cosine only.
    config.grad_clip_norm = 1.0  # > 0 clips gradients by global norm (0 = off).
    config.batch_size = 64  # Global batch, split over all devices.
    # How every device runs its slice of each batch (rnn_jax/training/parallel.py): 'pmap', or
    # 'shard_map' over a one-axis mesh with global arrays (what JAX recommends since 0.8). The
    # same numbers, bitwise; a run may resume under the other (docs/configuration.md).
    config.parallelism = "pmap"
    # CPU only: JAX devices the CPU is split into, each running its slice of every batch
    # (0 = one per core, as many as divide the batch sizes). Accelerators ignore it.
    # 1 by default, so a config gives the same numbers on any machine (several devices sum the
    # gradients in another order); the speed-up: experiments/results/cores/table.md.
    config.cpu_devices = 1
    config.eval_batch_size = 250
    # False while tuning: the run ends without evaluating test (summary test fields null), so
    # configs are chosen on validation alone. Rerunning the chosen workdir with True evaluates
    # test once, on the checkpoint best on validation, without training again.
    config.evaluate_test = True
    config.num_epochs = 5

    # Language model only (task='language_model'): batch_size streams of whole reviews are read
    # chunk_length tokens at a time, the carries handed from chunk to chunk (truncated BPTT);
    # an epoch is steps_per_epoch steps (0: one pass over the training text), then validation.
    config.chunk_length = 128
    config.steps_per_epoch = 0

    # Checkpoints and logging.
    config.keep_checkpoints = 2  # Latest N kept, plus the best by validation accuracy.
    config.log_every_steps = 50  # Host syncs (loss, NaN check) only this often.
    config.progress_bar = True
    return config

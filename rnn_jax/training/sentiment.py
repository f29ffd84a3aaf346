"""The IMDB sentiment classifier as a training task (``config.task = "sentiment"``).

Reviews as padded token ids (``rnn_jax.data.input_pipeline``), the ``SentimentClassifier``,
one batch of reviews per step (``train_steps``), accuracy on validation and test.
"""

import os

import jax
import ml_collections

from rnn_jax.data import batching, input_pipeline
from rnn_jax.models import create_model, recurrence_path, summary
from rnn_jax.training import configuration, parallel, train_steps
from rnn_jax.training import workdir as workdirs
from rnn_jax.training.tasks import Task


class SentimentTask(Task):
    """Positive or negative reviews; ``examples_per_second`` counts reviews."""

    unit = "examples"

    def __init__(self, config: ml_collections.ConfigDict):
        """Reads IMDB as the config asks for it and builds the classifier.

        Raises:
          configuration.ConfigError: ``validation_fraction`` or ``batch_size`` leaves no
            review for validation or no batch to train on (with ``max_examples``, they can).
        """
        self.config = config
        try:
            self.data = input_pipeline.load_imdb_for(config)
        except input_pipeline.SplitSizeError as error:
            raise configuration.ConfigError(f"config.validation_fraction: {error}") from None
        self.model = create_model(config)
        num_train = len(self.data.train["label"])
        self.steps_per_epoch = batching.num_train_batches(num_train, config.batch_size)
        if self.steps_per_epoch == 0:
            raise configuration.ConfigError(
                f"config.batch_size={config.batch_size} is not allowed: at most the {num_train} "
                f"training reviews (max_examples={config.max_examples}, "
                f"validation_fraction={config.validation_fraction})"
            )
        self.units_per_step = config.batch_size

    @property
    def has_validation(self) -> bool:
        return len(self.data.validation["label"]) > 0

    def create_state(self):
        return train_steps.create_train_state(self.config, self.model, self.steps_per_epoch)

    def compile(self, data_parallel):
        train_step, eval_step = train_steps.compile_steps(data_parallel)

        def train_with_stream(state, sums, stream, batch):
            return (*train_step(state, sums, batch), stream)  # Nothing passes between steps.

        return train_with_stream, eval_step

    def train_batches(self, epoch, start_batch):
        c = self.config
        return batching.train_batches(
            self.data.train,
            c.batch_size,
            seed=c.seed,
            epoch=epoch,
            start_batch=start_batch,
            bucket_width=c.bucket_width,
            padding=c.padding,
        )

    def evaluate(self, eval_step, data_parallel: parallel.DataParallel, state, split):
        c = self.config
        return train_steps.evaluate(
            eval_step,
            data_parallel,
            state,
            self.data.split(split),
            c.eval_batch_size,
            c.bucket_width,
            c.padding,
        )

    def summary(self, history, test, num_params, best_step):
        return workdirs.make_summary(
            self.config,
            history,
            test,
            num_params,
            best_step,
            devices=jax.device_count(),
            backend=jax.default_backend(),
        )

    def describe(self, params) -> str:
        return (
            f"Model:\n{summary(self.model, params, self.config.max_len)}\n"
            f"{recurrence_path(self.model)}"
        )

    def write_files(self, workdir: str) -> None:
        self.data.vocab.to_json(os.path.join(workdir, "vocab.json"))

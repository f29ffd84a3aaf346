"""One run of the language-modelling study: a cell trained on the reviews' text at one seed.

A run is ``configs/lm_lstm.py`` with the study's budget, cell, width and seed, trained through
the pipeline (``rnn_jax.training.train``, via ``experiments.lib.training_runs``) into its own
workdir, so a killed run resumes from its last checkpoint. When it has finished, its record --
test bits per character, the validation curve, speed, parameters and two samples -- is written
to ``<out>/runs/<name>.json``; a later study reads the record back, not the workdir, when its
key (cell, constructor arguments, width, seed), budget and ``RECORD_VERSION`` are the run's
own, and trains again otherwise.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import ml_collections

from configs import lm_lstm
from experiments.lib import training_runs
from experiments.lib.flags import file_stem
from experiments.lib.lab.control import cell_spec
from rnn_jax.data.files import write_json

# A stored record is read back only if it was written under the same rules.
RECORD_VERSION = 1
# The samples each run writes from its final parameters (temperature 0.8, sampling seed 0).
PROMPTS = ("This movie", "The acting was")
SAMPLE_BYTES = 300
SAMPLE_TEMPERATURE = 0.8


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every run of a study gets.

    Attributes:
      steps: optimizer steps (each ``streams * chunk`` characters).
      streams: streams read side by side (``batch_size``).
      chunk: characters per stream per step (``chunk_length``).
      width: hidden size (a run may be given another, ``--match-params``).
      embed: byte embedding size.
      layers: recurrent layers.
      eval_every: steps between validations (the curve's points).
      learning_rate: Adam's peak rate (cosine decay to 0 over the run).
      max_examples: reviews read of each split (0: all; quick runs read a documented subset).
    """

    steps: int = 3000
    streams: int = 32
    chunk: int = 128
    width: int = 128
    embed: int = 64
    layers: int = 1
    eval_every: int = 500
    learning_rate: float = 3e-3
    max_examples: int = 0

    @property
    def characters(self) -> int:
        """Characters each run trains on."""
        return self.steps * self.streams * self.chunk


FULL = Budget()
# --quick: the pipeline end to end on the first 60 reviews of each split; numbers mean nothing.
QUICK = Budget(steps=20, streams=4, chunk=16, width=8, embed=8, eval_every=10, max_examples=60)


@dataclasses.dataclass(frozen=True)
class RunKey:
    """What identifies a run (with its ``Budget``)."""

    cell: str
    seed: int
    width: int
    cell_kwargs: str = ""  # The cell's constructor arguments, JSON ('': none).

    def name(self) -> str:
        return f"{file_stem(self.cell, self.cell_kwargs)}__w{self.width}__s{self.seed}"


def config_of(key: RunKey, budget: Budget, args) -> ml_collections.ConfigDict:
    """``configs/lm_lstm.py`` with the run's cell, width and seed and the study's budget."""
    config = lm_lstm.get_config()
    config.update(
        cell=cell_spec(key.cell),
        cell_kwargs=key.cell_kwargs,
        seed=key.seed,
        hidden_size=key.width,
        embed_dim=budget.embed,
        num_layers=budget.layers,
        residual=budget.layers > 1,
        batch_size=budget.streams,
        chunk_length=budget.chunk,
        steps_per_epoch=budget.eval_every,
        num_epochs=budget.steps // budget.eval_every,
        learning_rate=budget.learning_rate,
        max_examples=budget.max_examples,
        eval_batch_size=min(config.eval_batch_size, 8 * budget.streams),
        keep_checkpoints=1,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        progress_bar=False,
    )
    return config


def parameters(cell: str, width: int, budget: Budget, cell_kwargs: str = "") -> int:
    """The language model's parameter count for ``cell`` at ``width`` (nothing initialized)."""
    import jax.numpy as jnp

    from rnn_jax.data.text import BOUNDARY, VOCAB_SIZE
    from rnn_jax.models import LanguageModel, count_params

    model = LanguageModel(
        VOCAB_SIZE,
        BOUNDARY,
        cell_spec(cell),
        budget.embed,
        width,
        budget.layers,
        residual=budget.layers > 1,
        activation="",
        cell_kwargs=cell_kwargs,
    )
    tokens = jnp.zeros((1, 4), jnp.int32)
    return count_params(jax.eval_shape(model.init, jax.random.key(0), tokens)["params"])


def matched_width(cell: str, target: int, budget: Budget, cell_kwargs: str = "") -> int:
    """The width at which ``cell`` has the parameter count closest to ``target``."""

    def count(width: int) -> int:
        return parameters(cell, width, budget, cell_kwargs)

    low, high = 1, 4096  # Parameters grow with the width: the last width at or below target.
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if count(middle) <= target else (low, middle - 1)
    return min((low, low + 1), key=lambda w: (abs(count(w) - target), w))


def _record(key: RunKey, budget: Budget, result: training_runs.RunResult, samples) -> dict:
    s = result.summary
    per_step = budget.streams * budget.chunk
    return {
        **dataclasses.asdict(key),
        "version": RECORD_VERSION,
        "budget": dataclasses.asdict(budget),
        "parameters": s["num_params"],
        "test_bpc": s["test_bpc"],
        "test_characters": s["test_characters"],
        "best_val_bpc": s["best_val_bpc"],
        "curve": [
            {"characters": h["step"] * per_step, "val_bpc": h["val_bpc"]} for h in result.history
        ],
        "characters_per_second": s["characters_per_second"],
        "train_seconds": s["train_seconds"],
        "samples": samples,
    }


def read_back(path: Path, key: RunKey, budget: Budget) -> dict[str, Any] | None:
    """The record at ``path`` if it is this key's run with this budget and version, else None."""
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    same_key = all(record.get(f.name) == getattr(key, f.name) for f in dataclasses.fields(key))
    if not same_key or record.get("version") != RECORD_VERSION:
        return None
    return record if Budget(**record["budget"]) == budget else None


def run(key: RunKey, budget: Budget, args, log=print) -> dict[str, Any]:
    """The run's record: read from ``<out>/runs`` if it finished with this budget, else trained.

    ``args`` carries the study's flags: ``out``, ``workdirs``, ``data_dir``, ``cache_dir``.
    """
    from rnn_jax.inference import generation

    path = Path(args.out) / "runs" / f"{key.name()}.json"
    record = read_back(path, key, budget)
    if record is not None:
        return record
    workdir = Path(args.workdirs) / key.name()
    result = training_runs.run(key.name(), config_of(key, budget, args), workdir)
    model = generation.load_language_model(str(workdir))
    samples = [
        generation.sample(
            model, prompt, length=SAMPLE_BYTES, temperature=SAMPLE_TEMPERATURE, seed=0
        )
        for prompt in PROMPTS
    ]
    record = _record(key, budget, result, [p + s for p, s in zip(PROMPTS, samples, strict=True)])
    write_json(path, record)
    log(
        f"{key.name()}: test {record['test_bpc']:.4f} bpc "
        f"({record['characters_per_second']:,.0f} characters/s)"
    )
    return record

"""Text from a language model: ``python -m rnn_jax.generate --workdir=W "This movie"``.

Restores the run's checkpoint best on validation and prints the prompt and what the model
writes after it: ``--length`` bytes at most (it stops early where the model ends the review),
sampled at ``--temperature`` from ``--seed`` (the same seed, the same text). A workdir that is
not a language model's, a temperature or length that is not positive, or a checkpoint that does
not restore is one line on stderr and exit 1 (2 for a flag's value); nothing is written.
"""

import sys

from absl import app, flags, logging

from rnn_jax.inference import generation
from rnn_jax.inference.runs import RunNotFoundError, exit_with_error

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of a language-model run.")
_LENGTH = flags.DEFINE_integer("length", 400, "Most bytes to write after the prompt.")
_TEMPERATURE = flags.DEFINE_float(
    "temperature", 1.0, "Softmax temperature, > 0 (lower: likelier, blander text)."
)
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    logging.set_verbosity(logging.WARNING)  # Orbax's restore chatter; the text goes to stdout.
    if len(argv) > 2:
        print(
            f"error: one prompt, quoted (got {len(argv) - 1} arguments: "
            f'{" ".join(argv[1:])[:60]!r}...); e.g. "This movie"',
            file=sys.stderr,
        )
        sys.exit(2)
    prompt = argv[1] if len(argv) == 2 else ""
    for name, value in (("length", _LENGTH.value), ("temperature", _TEMPERATURE.value)):
        if not value > 0:
            print(f"error: --{name}={value} is not allowed: a number > 0", file=sys.stderr)
            sys.exit(2)
    try:
        run = generation.load_language_model(_WORKDIR.value)
    except RunNotFoundError as error:
        exit_with_error(f"error: {error}")
    written = generation.sample(
        run, prompt, length=_LENGTH.value, temperature=_TEMPERATURE.value, seed=_SEED.value
    )
    if hasattr(sys.stdout, "reconfigure"):  # A terminal that cannot show a byte shows it escaped.
        sys.stdout.reconfigure(errors="backslashreplace")
    print(prompt + written)


if __name__ == "__main__":
    app.run(main)

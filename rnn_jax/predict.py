"""Positive probability of reviews: ``python -m rnn_jax.predict --workdir=W "text" ["text" ...]``.

With no text arguments, reads one review per line from standard input. Prints one line per
review: the probability, a tab, and the start of the text. Uses the run's best checkpoint.
"""

import sys

from absl import app, flags

from rnn_jax.inference import runs as inference

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of a training run.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    # A preview in a script the terminal cannot encode (emoji on an ASCII or cp1252 stdout) is
    # shown escaped rather than crashing after the model has run.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    texts = argv[1:] or [line.rstrip("\n") for line in sys.stdin]
    if not texts:
        print("error: no review given (pass texts as arguments or on stdin)", file=sys.stderr)
        sys.exit(2)
    try:
        run = inference.load_run(_WORKDIR.value)
    except inference.RunNotFoundError as error:
        inference.exit_with_error(f"error: {error}")
    probabilities = inference.predict_texts(run, texts)
    _, known = inference.encode_texts(run, texts)
    for text, probability, n in zip(texts, probabilities, known, strict=True):
        preview = " ".join(text.split())[:60]
        print(f"{probability:.4f}\t{preview}")
        if n == 0:
            print(
                f"note: no known words in {preview[:30]!r}; the probability is the model's "
                "answer to an empty review",
                file=sys.stderr,
            )


if __name__ == "__main__":
    app.run(main)

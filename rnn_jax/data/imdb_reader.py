"""Reading the raw IMDB reviews from tfds (``imdb_reviews/plain_text``), offline.

TensorFlow and tfds are imported only here, and only when a split is actually read; the folder
is checked first, so a missing dataset is one line in a second, not a download attempt.
"""

import os

import numpy as np
from absl import logging

DATASET_NAME = "imdb_reviews/plain_text"
DATASET_VERSION = "1.0.0"


class DataNotFoundError(RuntimeError):
    """The prepared ``imdb_reviews/plain_text`` dataset is not where tfds was told to look."""


def resolve_data_dir(data_dir: str | os.PathLike | None) -> tuple[str, str]:
    """Where tfds will look, and why there (for the error message)."""
    if data_dir:
        return os.fspath(data_dir), "data_dir"
    if os.environ.get("TFDS_DATA_DIR"):
        return os.environ["TFDS_DATA_DIR"], "$TFDS_DATA_DIR"
    # tfds's own default; spelled out so the check below does not need to import tfds.
    return os.path.join(os.path.expanduser("~"), "tensorflow_datasets"), "tfds default"


def _not_found(data_dir: str, reason: str = "") -> DataNotFoundError:
    detail = f" ({reason})" if reason else ""
    return DataNotFoundError(
        f"IMDB dataset not found in {data_dir}{detail}: set TFDS_DATA_DIR or --config.data_dir "
        f"to a folder containing {DATASET_NAME}/{DATASET_VERSION}"
    )


def read_split(name: str, data_dir: str, max_examples: int | None) -> tuple[list[str], np.ndarray]:
    """Reads one tfds split as texts and labels, in tfds order (no file shuffling).

    Tests replace this function to run ``input_pipeline.load_imdb`` on fake texts.

    Args:
        name: "train" or "test".
        data_dir: the tfds data folder (already resolved).
        max_examples: read only the first this many examples, if not None.

    Returns:
        ``(texts, labels <int32>[N])``.

    Raises:
        DataNotFoundError: when the prepared dataset is missing or tfds cannot open it.
    """
    version_dir = os.path.join(data_dir, *DATASET_NAME.split("/"), DATASET_VERSION)
    # Checked before importing TensorFlow so the common mistake fails in a second with one line,
    # not after TF's start-up with tfds's attempt to download. Remote paths (gs://...) are left to
    # tfds.
    is_remote = "://" in data_dir
    if not is_remote and not os.path.isfile(os.path.join(version_dir, "dataset_info.json")):
        raise _not_found(data_dir)

    import tensorflow as tf

    try:
        # tfds only reads here; keep TensorFlow off any GPU so JAX keeps all of its memory.
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # GPUs already initialised by someone else: too late, and harmless.
        pass
    import tensorflow_datasets as tfds

    split = name if max_examples is None else f"{name}[:{int(max_examples)}]"
    texts: list[str] = []
    labels: list[np.ndarray] = []
    try:
        builder = tfds.builder(
            f"{DATASET_NAME}:{DATASET_VERSION}", data_dir=data_dir, try_gcs=False
        )
        if not builder.is_prepared():
            raise _not_found(data_dir, "not prepared")
        ds = builder.as_dataset(split=split, shuffle_files=False)
        # Batched reads are ~10x faster than one example per Python iteration.
        for ex in tfds.as_numpy(ds.batch(1024)):
            texts.extend(t.decode("utf-8", errors="replace") for t in ex["text"])
            labels.append(ex["label"].astype(np.int32))
    except DataNotFoundError:
        raise
    except Exception as e:  # tfds raises many types; the user needs one actionable line.
        logging.debug("tfds failed to read %s", data_dir, exc_info=True)
        first_line = (str(e).strip().splitlines() or [""])[0][:200]
        raise _not_found(data_dir, f"{type(e).__name__}: {first_line}") from None
    label = np.concatenate(labels) if labels else np.zeros(0, np.int32)
    return texts, label

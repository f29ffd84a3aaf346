"""The on-disk cache of prepared IMDB arrays: one .npz per setting, complete or absent.

A cache file is named by a hash of everything that changes its arrays (``cache_key``), so a
changed setting or a new tokenizer never reads a stale file; a damaged file is ignored (and
rebuilt by the caller). Loading a cache does not import TensorFlow.
"""

import hashlib
import json
import os
import unicodedata
from pathlib import Path

import numpy as np
from absl import logging

from rnn_jax.data import files
from rnn_jax.data.vocabulary import TOKENIZER_VERSION, Vocabulary

# Bump when the cache file's layout or the way arrays are derived changes (not the tokenizer:
# that has its own TOKENIZER_VERSION).
CACHE_FORMAT_VERSION = 1

SPLITS = ("train", "validation", "test")
ARRAY_KEYS = ("token_ids", "length", "label")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/rnn_jax``, else ``~/.cache/rnn_jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnn_jax"


def cache_key(**settings) -> str:
    """Hash of everything that changes the arrays; a new setting must be added here."""
    key = {
        "tokenizer_version": TOKENIZER_VERSION,
        # tokenize's lower(), NFC and \w follow the running Python's Unicode tables.
        "unicode": unicodedata.unidata_version,
        "cache_format": CACHE_FORMAT_VERSION,
        **settings,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def cache_path(cache_dir: Path, name: str, key: str) -> Path:
    """The cache file of ``key`` in ``cache_dir``; ``name`` says what it holds."""
    return cache_dir / f"{name}-{key[:20]}.npz"


def save_cache(path: Path, data, key: str) -> None:
    """Writes one .npz (arrays and vocabulary) atomically, plus a readable vocab .json beside it.

    ``data`` is an ``input_pipeline.ImdbData``.

    The .npz alone is authoritative, so the cache is complete or absent whatever moment a run is
    killed at; the .json is for people and other tools.
    """
    arrays = {"key": np.array(key), "vocab_json": np.array(json.dumps(data.vocab.to_dict()))}
    for split in SPLITS:
        for k, v in data.split(split).items():
            arrays[f"{split}__{k}"] = v
        arrays[f"{split}__full_length"] = data.full_lengths[split]
        arrays[f"{split}__source_index"] = data.source_index[split]
    # Uncompressed: mostly small ints and zeros would compress ~5x, but loading would then cost a
    # decompression on every run; the files are tens of MB.
    files.atomic_write(path, lambda f: np.savez(f, **arrays))
    data.vocab.to_json(path.with_suffix(".vocab.json"))


def load_cache(path: Path, key: str, max_len: int) -> tuple | None:
    """Reads a cache file; None (and a warning) if it is missing, foreign or damaged.

    Returns:
      ``(splits, vocab, full_lengths, source_index)``, each split a dict of ``ARRAY_KEYS``.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                raise ValueError("cache key mismatch")
            vocab = Vocabulary.from_dict(json.loads(str(z["vocab_json"])))
            splits, full_lengths, source_index = {}, {}, {}
            for split in SPLITS:
                splits[split] = {k: z[f"{split}__{k}"] for k in ARRAY_KEYS}
                full_lengths[split] = z[f"{split}__full_length"]
                source_index[split] = z[f"{split}__source_index"]
                n = len(splits[split]["label"])
                shapes_ok = (
                    splits[split]["token_ids"].shape == (n, max_len)
                    and splits[split]["length"].shape == (n,)
                    and full_lengths[split].shape == (n,)
                    and source_index[split].shape == (n,)
                )
                if not shapes_ok:
                    raise ValueError(f"inconsistent shapes in split {split}")
    except Exception as e:  # Any damage means "rebuild": the cache is only an optimisation.
        logging.warning(
            "Ignoring unreadable cache %s (%s: %s); rebuilding.", path, type(e).__name__, e
        )
        return None
    return splits, vocab, full_lengths, source_index

"""Tests of rnn_jax.input_pipeline (and rnn_jax.vocabulary): tiny in-memory data, plus one test on
the real prepared IMDB in ../shared/tensorflow_datasets."""

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from rnn_jax.data import data_cache, imdb_reader
from rnn_jax.data import input_pipeline as ip
from rnn_jax.data.batching import (
    cut_padding,
    eval_batches,
    length_statistics,
    num_eval_batches,
    num_train_batches,
    pad_sequences,
    shard_for_process,
    train_batches,
)
from rnn_jax.data.imdb_reader import DataNotFoundError
from rnn_jax.data.input_pipeline import load_imdb
from rnn_jax.data.vocabulary import (
    INDEX_FROM,
    OOV_ID,
    PAD_ID,
    START_ID,
    Vocabulary,
    decode_review,
    tokenize,
)

# The repo's checkouts always have ../shared beside them (docs/design.md, "Data on these machines").
SHARED_TFDS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "tensorflow_datasets"


# --------------------------------------------------------------------------------------------
# Tokenizer.


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", []),
        ("   \n\t ", []),
        ("!!! ... ?!", []),
        ("Great MOVIE, Great acting", ["great", "movie", "great", "acting"]),
        ("end.<br /><br />The next", ["end", "the", "next"]),
        ("a<br>b<BR/>c<br />d< br / >e", ["a", "b", "c", "d", "e"]),
        (
            "Don't stop, it's 'quoted' and 'tis rock'n'roll'",
            [
                "don't",
                "stop",
                "it's",
                "quoted",
                "and",
                "tis",
                "rock'n'roll",
            ],
        ),
        ("it\u2019s typographic", ["it's", "typographic"]),
        ("''' ' a'' ''b", ["a", "b"]),
        ("rated 10/10 (really!)", ["rated", "10", "10", "really"]),
        ("good 😀👍 film🎬!", ["good", "film"]),
        ("Кино ОТЛИЧНОЕ! 映画が好き", ["кино", "отличное", "映画が好き"]),
        # Combining marks belong to the word (Python's \w alone would split Hindi).
        ("हिन्दी फ़िल्म", ["हिन्दी", "फ़िल्म"]),
        ("cafe\u0301 café", ["café", "café"]),
        ("tab\tnew\nline", ["tab", "new", "line"]),
    ],
)
def test_tokenize(text, expected):
    assert tokenize(text) == expected


def test_tokenize_never_crashes_and_is_fast_on_long_text():
    assert tokenize("\ud800 lone surrogate \x00") == ["lone", "surrogate"]
    long_text = " ".join(["word"] * 100_000)
    start = time.perf_counter()
    assert len(tokenize(long_text)) == 100_000
    assert time.perf_counter() - start < 2.0


def test_tokenize_rejects_non_str():
    with pytest.raises(TypeError):
        tokenize(b"bytes")


# --------------------------------------------------------------------------------------------
# Vocabulary.


def test_vocabulary_ranks_by_frequency_ties_alphabetically():
    docs = [["b", "a", "c", "c"], ["c", "b", "a", "d"], ["e"]]  # c:3, a:2, b:2, d:1, e:1
    vocab = Vocabulary.build(docs, vocab_size=INDEX_FROM + 1 + 4)
    assert vocab.words == ["c", "a", "b", "d"]  # "e" ties with "d" but sorts after it
    assert vocab.counts == [3, 2, 2, 1]
    assert vocab.word_to_id == {"c": 4, "a": 5, "b": 6, "d": 7}
    assert len(vocab) == 8
    # Independent of the order words were seen in.
    assert Vocabulary.build(reversed([d[::-1] for d in docs]), 8) == vocab


def test_vocabulary_reserved_ids_and_limit():
    assert (PAD_ID, START_ID, OOV_ID, INDEX_FROM) == (0, 1, 2, 3)
    docs = [[f"w{i}"] * (100 - i) for i in range(50)]
    vocab = Vocabulary.build(docs, vocab_size=20)
    assert vocab.num_words == 20 - INDEX_FROM - 1
    ids = list(vocab.word_to_id.values())
    assert min(ids) == INDEX_FROM + 1 and max(ids) == 19
    assert vocab.word_to_id["w0"] == 4  # most frequent word -> id 4, as keras.datasets.imdb
    encoded = vocab.encode([f"w{i}" for i in range(50)])
    assert encoded[0] == START_ID
    assert encoded[1:17] == list(range(4, 20))
    assert encoded[17:] == [OOV_ID] * 34
    assert all(0 <= i < 20 for i in encoded)
    assert vocab.encode([]) == [START_ID]


def test_vocabulary_smaller_corpus_than_room():
    vocab = Vocabulary.build([["x", "y"]], vocab_size=100)
    assert len(vocab) == 100 and vocab.num_words == 2
    assert vocab.encode(["y", "z"]) == [START_ID, 5, OOV_ID]


@pytest.mark.parametrize("vocab_size", [0, 3, 4])
def test_vocabulary_too_small_raises(vocab_size):
    with pytest.raises(ValueError, match=str(vocab_size)):
        Vocabulary.build([["a"]], vocab_size)


def test_decode_round_trip_and_reserved_ids():
    text = "This film's plot is great; the acting? Great too."
    tokens = tokenize(text)
    vocab = Vocabulary.build([tokens], vocab_size=100)
    ids = vocab.encode(tokens)
    assert vocab.decode(ids) == " ".join(tokens)
    padded, _ = pad_sequences([ids], max_len=20)
    assert decode_review(padded[0], vocab) == " ".join(tokens)  # PAD and START skipped
    assert vocab.decode(vocab.encode(["great", "unseenword"])) == "great <oov>"
    assert vocab.id_to_word(START_ID) == "<start>"
    with pytest.raises(ValueError, match="99"):
        vocab.decode([99])


def test_vocabulary_json_round_trip(tmp_path):
    vocab = Vocabulary.build([["a", "b", "b", "ü"]], vocab_size=10)
    path = tmp_path / "sub" / "vocab.json"
    vocab.to_json(path)
    loaded = Vocabulary.from_json(path)
    assert loaded == vocab and loaded.counts == vocab.counts and len(loaded) == 10
    assert loaded.word_to_id == vocab.word_to_id
    assert [p.name for p in path.parent.iterdir()] == ["vocab.json"]  # no temp file left


def test_vocabulary_of_another_tokenizer_is_refused():
    # Its words were split by other rules: encoding new text with it would be silently wrong.
    d = Vocabulary.build([["a", "b"]], vocab_size=10).to_dict()
    d["tokenizer_version"] += 1
    with pytest.raises(ValueError, match=r"tokenizer v\d+; this code tokenizes with v"):
        Vocabulary.from_dict(d)


# --------------------------------------------------------------------------------------------
# Padding and statistics.

SEQS = [[1, 2, 3, 4, 5], [1, 6], []]


@pytest.mark.parametrize(
    "padding, truncating, expected",
    [
        ("pre", "pre", [[3, 4, 5], [0, 1, 6], [0, 0, 0]]),
        ("pre", "post", [[1, 2, 3], [0, 1, 6], [0, 0, 0]]),
        ("post", "pre", [[3, 4, 5], [1, 6, 0], [0, 0, 0]]),
        ("post", "post", [[1, 2, 3], [1, 6, 0], [0, 0, 0]]),
    ],
)
def test_pad_sequences_modes(padding, truncating, expected):
    token_ids, length = pad_sequences(SEQS, max_len=3, padding=padding, truncating=truncating)
    assert token_ids.dtype == np.int32 and length.dtype == np.int32
    np.testing.assert_array_equal(token_ids, np.array(expected))
    np.testing.assert_array_equal(length, [3, 2, 0])


def test_pad_sequences_defaults_are_keras_pre_pre_and_exact_fit():
    token_ids, length = pad_sequences([np.array([7, 8, 9]), [5]], max_len=3)
    np.testing.assert_array_equal(token_ids, [[7, 8, 9], [0, 0, 5]])
    np.testing.assert_array_equal(length, [3, 1])
    token_ids, length = pad_sequences([], max_len=4)
    assert token_ids.shape == (0, 4) and length.shape == (0,)


@pytest.mark.parametrize("argument", ["padding", "truncating"])
def test_pad_sequences_invalid_mode(argument):
    with pytest.raises(ValueError, match=rf"{argument}='middle'.*'pre' or 'post'"):
        pad_sequences(SEQS, 3, **{argument: "middle"})


def test_pad_sequences_invalid_max_len():
    with pytest.raises(ValueError, match="max_len"):
        pad_sequences(SEQS, 0)


def test_length_statistics():
    stats = length_statistics(np.arange(1, 101))
    assert stats["mean"] == pytest.approx(50.5)
    assert stats["median"] == pytest.approx(50.5)
    assert stats["p90"] == pytest.approx(90.1)
    assert stats["p95"] == pytest.approx(95.05)
    assert stats["p99"] == pytest.approx(99.01)
    assert (stats["min"], stats["max"], stats["count"]) == (1, 100, 100)
    json.dumps(stats)  # plain Python numbers, ready for summary files
    with pytest.raises(ValueError):
        length_statistics(np.array([]))


# --------------------------------------------------------------------------------------------
# load_imdb on fake texts (tfds replaced by a fake `imdb_reader.read_split`).

COMMON = ["movie", "good", "bad", "plot", "actor", "scene", "film", "great", "boring", "fun"]


def _fake_corpus(split, n):
    rng = np.random.default_rng(0 if split == "train" else 1)
    texts, labels = [], []
    for i in range(n):
        words = list(rng.choice(COMMON, size=3 + i % 7))
        words.append(f"row{i}{split}")  # unique per row and split: rows are traceable
        if split == "test":
            words.append("testonlyword")
        texts.append("<br />".join(w.capitalize() for w in words) + "!")
        labels.append(i % 2)
    return texts, np.array(labels, dtype=np.int64)


@pytest.fixture
def fake_tfds(monkeypatch):
    """Replaces the tfds read; records the calls."""
    calls = []
    sizes = {"train": 50, "test": 30}

    def fake_read_split(name, data_dir, max_examples):
        calls.append((name, data_dir, max_examples))
        n = sizes[name] if max_examples is None else min(sizes[name], max_examples)
        return _fake_corpus(name, n)

    monkeypatch.setattr(imdb_reader, "read_split", fake_read_split)
    return calls


def _load(tmp_path, **kwargs):
    args = dict(vocab_size=30, max_len=8, data_dir="unused", cache_dir=tmp_path / "cache")
    args.update(kwargs)
    return load_imdb(**args)


def _assert_same_data(a, b):
    for split in ip.SPLITS:
        assert a.split(split).keys() == b.split(split).keys()
        for k in a.split(split):
            np.testing.assert_array_equal(a.split(split)[k], b.split(split)[k])
        np.testing.assert_array_equal(a.source_index[split], b.source_index[split])
    assert a.vocab == b.vocab
    assert a.stats == b.stats


def test_load_imdb_shapes_and_encoding(tmp_path, fake_tfds):
    data = _load(tmp_path)
    assert [c[0] for c in fake_tfds] == ["train", "test"]
    sizes = {s: len(data.split(s)["label"]) for s in ip.SPLITS}
    assert sizes == {"train": 40, "validation": 10, "test": 30}
    train_texts, train_labels = _fake_corpus("train", 50)
    test_texts, _ = _fake_corpus("test", 30)
    texts = {
        "train": [train_texts[i] for i in data.source_index["train"]],
        "validation": [train_texts[i] for i in data.source_index["validation"]],
        "test": test_texts,
    }
    for split in ip.SPLITS:
        arrays = data.split(split)
        n = sizes[split]
        assert arrays["token_ids"].shape == (n, 8) and arrays["token_ids"].dtype == np.int32
        assert arrays["length"].dtype == np.int32 and arrays["label"].dtype == np.int32
        assert arrays["token_ids"].min() >= 0 and arrays["token_ids"].max() < 30
        # Exactly what the public pieces give, row by row.
        encoded = [data.vocab.encode(tokenize(t)) for t in texts[split]]
        expected_ids, expected_len = pad_sequences(encoded, 8)
        np.testing.assert_array_equal(arrays["token_ids"], expected_ids)
        np.testing.assert_array_equal(arrays["length"], expected_len)
        np.testing.assert_array_equal(data.full_lengths[split], [len(e) for e in encoded])
    np.testing.assert_array_equal(
        data.validation["label"], train_labels[data.source_index["validation"]]
    )
    assert data.stats == length_statistics(data.full_lengths["train"])
    assert set(data.split_stats) == set(ip.SPLITS)


def test_vocabulary_from_training_rows_only(tmp_path, fake_tfds):
    data = _load(tmp_path, vocab_size=1000)
    train_texts, _ = _fake_corpus("train", 50)
    train_rows = [tokenize(train_texts[i]) for i in data.source_index["train"]]
    assert data.vocab == Vocabulary.build(train_rows, 1000)
    assert "testonlyword" not in data.vocab
    assert "row0test" not in data.vocab
    for i in data.source_index["validation"]:
        assert f"row{i}train" not in data.vocab  # validation stays unseen too
    for i in data.source_index["train"]:
        assert f"row{i}train" in data.vocab
    # Test rows: the test-only words are OOV.
    decoded = decode_review(data.test["token_ids"][0], data.vocab)
    assert "testonlyword" not in decoded and "<oov>" in decoded


def test_load_imdb_padding_post_and_max_examples(tmp_path, fake_tfds):
    data = _load(tmp_path, padding="post", truncating="post", max_len=30, max_examples=20)
    assert fake_tfds[0][2] == 20
    assert len(data.train["label"]) + len(data.validation["label"]) == 20
    assert len(data.test["label"]) == 20
    ids, length = data.train["token_ids"], data.train["length"]
    for row, n in zip(ids, length, strict=True):
        assert (row[:n] != PAD_ID).all() and (row[n:] == PAD_ID).all()


@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_load_imdb_truncates_long_reviews_at_the_side_asked(tmp_path, fake_tfds, truncating):
    # max_len 6 is shorter than most fake reviews: 'post' keeps their start, 'pre' their end.
    data = _load(tmp_path, truncating=truncating, max_len=6, use_cache=False)
    ids, full = data.train["token_ids"], data.full_lengths["train"]
    assert (full > 6).sum() >= 3  # Rows long enough to be cut (START_ID included).
    starts_kept = ids[full > 6, 0] == START_ID
    assert starts_kept.all() if truncating == "post" else not starts_kept.any()


def test_validation_split_deterministic(tmp_path, fake_tfds):
    a = _load(tmp_path, split_seed=3, use_cache=False)
    b = _load(tmp_path, split_seed=3, use_cache=False)
    c = _load(tmp_path, split_seed=4, use_cache=False)
    _assert_same_data(a, b)
    assert not np.array_equal(a.source_index["validation"], c.source_index["validation"])
    for d in (a, c):
        train_idx, val_idx = d.source_index["train"], d.source_index["validation"]
        assert len(val_idx) == round(0.2 * 50) and len(train_idx) == 40
        assert not set(train_idx) & set(val_idx)
        assert sorted([*train_idx, *val_idx]) == list(range(50))
    # The documented recipe: the last round(f * N) rows of the seeded permutation.
    perm = np.random.default_rng(3).permutation(50)
    np.testing.assert_array_equal(a.source_index["validation"], np.sort(perm[-10:]))
    d = _load(tmp_path, validation_fraction=0.3, use_cache=False)
    assert len(d.validation["label"]) == 15


def test_validation_fraction_zero_keeps_every_training_review(tmp_path, fake_tfds):
    data = _load(tmp_path, validation_fraction=0.0, vocab_size=1000, use_cache=False)
    np.testing.assert_array_equal(data.source_index["train"], np.arange(50))
    assert data.validation["token_ids"].shape == (0, data.train["token_ids"].shape[1])
    assert len(data.validation["label"]) == len(data.validation["length"]) == 0
    assert "validation" not in data.split_stats
    # The vocabulary counts every training row, the 10 that were validation included.
    split = _load(tmp_path, vocab_size=1000, use_cache=False)
    for i in split.source_index["validation"]:
        assert f"row{i}train" not in split.vocab and f"row{i}train" in data.vocab
    cached = _load(tmp_path, validation_fraction=0.0)  # Written, then read back alike.
    _assert_same_data(cached, _load(tmp_path, validation_fraction=0.0))


@pytest.mark.parametrize("fraction", [1.0, -0.1, 1.5])
def test_validation_fraction_out_of_range(tmp_path, fake_tfds, fraction):
    with pytest.raises(ValueError, match="validation_fraction"):
        _load(tmp_path, validation_fraction=fraction)
    assert not fake_tfds  # rejected before reading anything


@pytest.mark.parametrize("kwargs", [{"padding": "both"}, {"truncating": "x"}, {"max_len": 0}])
def test_load_imdb_invalid_args(tmp_path, fake_tfds, kwargs):
    with pytest.raises(ValueError):
        _load(tmp_path, **kwargs)
    assert not fake_tfds


# --------------------------------------------------------------------------------------------
# Cache.


def test_cache_second_call_does_not_read_tfds(tmp_path, fake_tfds, monkeypatch):
    first = _load(tmp_path)
    assert not first.from_cache and first.cache_path.is_file()
    assert Vocabulary.from_json(first.cache_path.with_suffix(".vocab.json")) == first.vocab
    assert not [p for p in first.cache_path.parent.iterdir() if p.name.endswith(".tmp")]

    def boom(*args):
        raise AssertionError("tfds must not be read on a cache hit")

    monkeypatch.setattr(imdb_reader, "read_split", boom)
    second = _load(tmp_path)
    assert second.from_cache and second.cache_path == first.cache_path
    _assert_same_data(first, second)
    np.testing.assert_array_equal(first.full_lengths["test"], second.full_lengths["test"])


@pytest.mark.parametrize(
    "change",
    [
        {"vocab_size": 31},
        {"max_len": 9},
        {"padding": "post"},
        {"truncating": "post"},
        {"validation_fraction": 0.25},
        {"split_seed": 1},
        {"max_examples": 40},
    ],
)
def test_cache_key_changes_with_args(tmp_path, fake_tfds, change):
    base = _load(tmp_path)
    other = _load(tmp_path, **change)
    assert not other.from_cache
    assert other.cache_path != base.cache_path
    assert _load(tmp_path, **change).from_cache


@pytest.mark.parametrize(
    "module, name, value",
    [
        (data_cache, "TOKENIZER_VERSION", 99),
        (data_cache, "CACHE_FORMAT_VERSION", 99),
        (data_cache.unicodedata, "unidata_version", "0.0.0"),  # Another Python's Unicode tables.
    ],
)
def test_cache_key_changes_with_the_code_that_makes_the_arrays(monkeypatch, module, name, value):
    before = data_cache.cache_key(vocab_size=30)
    monkeypatch.setattr(module, name, value)
    assert data_cache.cache_key(vocab_size=30) != before


def test_cache_key_ignores_where_things_live(tmp_path, fake_tfds):
    base = _load(tmp_path)
    assert _load(tmp_path, data_dir="elsewhere").from_cache
    assert _load(tmp_path, cache_dir=tmp_path / "other").cache_path.name == base.cache_path.name


def test_corrupt_cache_is_rebuilt(tmp_path, fake_tfds):
    first = _load(tmp_path)
    first.cache_path.write_bytes(b"PK\x03\x04 truncated garbage")
    rebuilt = _load(tmp_path)
    assert not rebuilt.from_cache
    _assert_same_data(first, rebuilt)
    assert _load(tmp_path).from_cache  # and rewritten in good shape


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data_cache.default_cache_dir() == tmp_path / "rnn_jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_cache.default_cache_dir() == Path.home() / ".cache" / "rnn_jax"


# --------------------------------------------------------------------------------------------
# Missing data.


def _assert_helpful(error, folder):
    message = str(error)
    assert "\n" not in message
    assert str(folder) in message
    assert "TFDS_DATA_DIR" in message and "data_dir" in message
    assert "imdb_reviews/plain_text/1.0.0" in message
    assert error.__cause__ is None  # no chained tfds traceback


def test_missing_dataset_raises_data_not_found(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError) as info:
        load_imdb(vocab_size=100, max_len=10, data_dir=empty, cache_dir=tmp_path / "cache")
    _assert_helpful(info.value, empty)
    assert isinstance(info.value, RuntimeError)


def test_missing_dataset_via_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError) as info:
        load_imdb(vocab_size=100, max_len=10, cache_dir=tmp_path / "cache")
    _assert_helpful(info.value, tmp_path)


# --------------------------------------------------------------------------------------------
# Batching.


def _toy_data(n, max_len=5):
    # Row i holds i everywhere, so a batch shows whether its arrays stayed aligned.
    return {
        "token_ids": np.repeat(np.arange(n, dtype=np.int32)[:, None], max_len, axis=1),
        "length": np.arange(n, dtype=np.int32) % max_len + 1,
        "label": np.arange(n, dtype=np.int32),
    }


def _rows(batch):
    np.testing.assert_array_equal(batch["token_ids"][:, 0], batch["label"])
    return batch["label"].tolist()


def test_num_batches():
    assert num_train_batches(103, 10) == 10
    assert num_eval_batches(103, 10) == 11
    assert num_eval_batches(100, 10) == 10
    with pytest.raises(ValueError):
        num_train_batches(10, 0)


def test_train_batches_permutation_per_epoch():
    data = _toy_data(103)
    epoch0 = list(train_batches(data, 10, seed=7, epoch=0))
    assert len(epoch0) == num_train_batches(103, 10) == 10
    for batch in epoch0:
        assert batch.keys() == data.keys()
        assert batch["token_ids"].shape == (10, 5) and batch["token_ids"].dtype == np.int32
        assert batch["length"].shape == (10,) and batch["label"].shape == (10,)
    rows0 = [r for b in epoch0 for r in _rows(b)]
    assert len(set(rows0)) == 100  # each example at most once, 3 left out
    expected = np.random.default_rng([7, 0]).permutation(103)[:100]
    assert rows0 == expected.tolist()
    again = [r for b in train_batches(data, 10, seed=7, epoch=0) for r in _rows(b)]
    assert again == rows0
    rows1 = [r for b in train_batches(data, 10, seed=7, epoch=1) for r in _rows(b)]
    other_seed = [r for b in train_batches(data, 10, seed=8, epoch=0) for r in _rows(b)]
    assert rows1 != rows0 and other_seed != rows0
    assert rows0 != sorted(rows0)


def test_train_batches_resume_mid_epoch():
    data = _toy_data(64)
    full = list(train_batches(data, 8, seed=1, epoch=3))
    resumed = list(train_batches(data, 8, seed=1, epoch=3, start_batch=5))
    assert len(resumed) == 3
    for a, b in zip(full[5:], resumed, strict=True):
        for k in data:
            np.testing.assert_array_equal(a[k], b[k])
    assert list(train_batches(data, 8, seed=1, epoch=3, start_batch=8)) == []
    with pytest.raises(ValueError, match="start_batch"):
        list(train_batches(data, 8, seed=1, epoch=3, start_batch=9))


def _lengthy_data(n, max_len, padding, seed=0):
    # Row i: label i, length drawn in [1, max_len], token ids 100 + i on its real steps, 0 on pads.
    lengths = np.random.default_rng(seed).integers(1, max_len + 1, n).astype(np.int32)
    token_ids = np.zeros((n, max_len), np.int32)
    for i, length in enumerate(lengths):
        columns = slice(max_len - length, max_len) if padding == "pre" else slice(0, length)
        token_ids[i, columns] = 100 + i
    return {"token_ids": token_ids, "length": lengths, "label": np.arange(n, dtype=np.int32)}


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_bucketed_batches_cut_only_padding_and_cover_the_epoch(padding):
    data = _lengthy_data(1003, max_len=100, padding=padding)
    plain = list(train_batches(data, 10, seed=3, epoch=2))
    bucketed = list(train_batches(data, 10, seed=3, epoch=2, bucket_width=16, padding=padding))
    # The same rows as the plain epoch (the same 3 of 1003 left out), each once.
    rows = sorted(r for b in bucketed for r in b["label"].tolist())
    assert len(rows) == 1000 and rows == sorted(r for b in plain for r in b["label"].tolist())
    widths = set()
    for batch in bucketed:
        width = batch["token_ids"].shape[1]
        widths.add(width)
        longest = batch["length"].max()
        assert width == min(100, -(-longest // 16) * 16)  # Longest, rounded up to 16.
        full = data["token_ids"][batch["label"]]
        kept = slice(100 - width, 100) if padding == "pre" else slice(0, width)
        np.testing.assert_array_equal(batch["token_ids"], full[:, kept])
        assert (np.delete(full, np.arange(100)[kept], axis=1) == 0).all()  # Only padding cut.
        assert ((batch["token_ids"] != 0).sum(1) == batch["length"]).all()
    assert len(widths) > 3  # Short batches exist: bucketing grouped the lengths.
    mean_width = np.mean([b["token_ids"].shape[1] for b in bucketed])
    assert mean_width < 0.75 * 100  # Uniform lengths: plain batches would all be 100 wide.
    # Deterministic, other epochs differ, and a resumed epoch continues where it stopped.
    again = list(train_batches(data, 10, seed=3, epoch=2, bucket_width=16, padding=padding))
    resumed = list(
        train_batches(data, 10, seed=3, epoch=2, start_batch=40, bucket_width=16, padding=padding)
    )
    for a, b in zip(bucketed, again, strict=True):
        np.testing.assert_array_equal(a["token_ids"], b["token_ids"])
    for a, b in zip(bucketed[40:], resumed, strict=True):
        np.testing.assert_array_equal(a["label"], b["label"])
    other = list(train_batches(data, 10, seed=3, epoch=3, bucket_width=16, padding=padding))
    assert [b["label"].tolist() for b in other] != [b["label"].tolist() for b in bucketed]


def test_train_batches_too_few_examples():
    with pytest.raises(ValueError, match="batch_size"):
        list(train_batches(_toy_data(5), 8, seed=0, epoch=0))


@pytest.mark.parametrize("n, batch_size", [(23, 5), (20, 5), (3, 8), (1, 1)])
def test_eval_batches_count_every_example_once(n, batch_size):
    data = _toy_data(n)
    batches = list(eval_batches(data, batch_size))
    assert len(batches) == num_eval_batches(n, batch_size)
    for batch in batches:
        assert batch["token_ids"].shape == (batch_size, 5)
        assert batch["mask"].shape == (batch_size,) and batch["mask"].dtype == bool
        assert (batch["length"] >= 1).all()  # padded rows are real rows, never empty
    assert sum(int(b["mask"].sum()) for b in batches) == n
    for k in data:
        kept = np.concatenate([b[k][b["mask"]] for b in batches])
        np.testing.assert_array_equal(kept, data[k])
    last = batches[-1]
    assert last["mask"].tolist() == [True] * (n - (len(batches) - 1) * batch_size) + [False] * (
        len(batches) * batch_size - n
    )


def test_eval_batches_fill_with_copies_of_the_batchs_first_row(tmp_path, fake_tfds):
    data = _load(tmp_path)
    n = len(data.validation["label"])
    last = list(eval_batches(data.validation, 4))[-1]
    assert last["mask"].tolist() == [True, True, False, False]
    first = n - 2  # The last batch holds rows n-2, n-1 and two copies of row n-2.
    for k in data.validation:
        np.testing.assert_array_equal(last[k][2:], data.validation[k][[first, first]])


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_bucketed_eval_batches_count_every_example_once_and_cut_only_padding(padding):
    data = _lengthy_data(103, max_len=60, padding=padding)
    batches = list(eval_batches(data, 10, bucket_width=8, padding=padding))
    assert len(batches) == num_eval_batches(103, 10)
    labels = np.concatenate([b["label"][b["mask"]] for b in batches])
    assert sorted(labels.tolist()) == list(range(103))
    lengths = np.concatenate([b["length"][b["mask"]] for b in batches])
    assert (np.diff(lengths) >= 0).all()  # Shortest first.
    for batch in batches:
        width = batch["token_ids"].shape[1]
        assert width == min(60, -(-batch["length"].max() // 8) * 8)
        assert ((batch["token_ids"] != 0).sum(1) == batch["length"]).all()  # No real token cut.
    assert batches[0]["token_ids"].shape[1] < batches[-1]["token_ids"].shape[1]


def test_shard_for_process():
    batch = next(train_batches(_toy_data(40), 12, seed=0, epoch=0))
    shards = [shard_for_process(batch, i, 3) for i in range(3)]
    for k in batch:
        assert all(s[k].shape[0] == 4 for s in shards)
        np.testing.assert_array_equal(np.concatenate([s[k] for s in shards]), batch[k])
    np.testing.assert_array_equal(shards[1]["label"], batch["label"][4:8])
    with pytest.raises(ValueError, match="divisible"):
        shard_for_process(batch, 0, 5)
    with pytest.raises(ValueError, match="process_index"):
        shard_for_process(batch, 3, 3)


# --------------------------------------------------------------------------------------------
# Real data (TensorFlow is imported only here).


def test_real_imdb_small(tmp_path):
    version_dir = SHARED_TFDS_DIR / "imdb_reviews" / "plain_text" / "1.0.0"
    assert version_dir.is_dir(), (
        f"prepared IMDB missing: expected {version_dir} (the shared/ folder beside the checkout)"
    )
    data = load_imdb(
        vocab_size=1000, max_len=50, data_dir=SHARED_TFDS_DIR, cache_dir=tmp_path, max_examples=200
    )
    assert len(data.train["label"]) == 160
    assert len(data.validation["label"]) == 40
    assert len(data.test["label"]) == 200
    for split in ip.SPLITS:
        arrays = data.split(split)
        assert set(np.unique(arrays["label"]).tolist()) == {0, 1}
        assert arrays["token_ids"].shape[1] == 50
        assert (arrays["length"] >= 1).all() and arrays["token_ids"].max() < 1000
    assert data.vocab.words[:3] == ["the", "and", "a"]
    assert data.stats["max"] > 50  # real reviews are longer than this max_len
    assert not any("br" == w for w in data.vocab.words[:50])


def test_unreadable_dataset_is_wrapped(tmp_path):
    # A folder that passes the quick check but that tfds cannot read: its error gets wrapped.
    version_dir = tmp_path / "imdb_reviews" / "plain_text" / "1.0.0"
    version_dir.mkdir(parents=True)
    (version_dir / "dataset_info.json").write_text("{not json")
    with pytest.raises(DataNotFoundError) as info:
        load_imdb(vocab_size=100, max_len=10, data_dir=tmp_path, cache_dir=tmp_path / "c")
    _assert_helpful(info.value, tmp_path)
    assert not (tmp_path / "c").exists() or not os.listdir(tmp_path / "c")  # nothing cached


def test_a_negative_bucket_width_is_refused_not_read_as_bucketing():
    data = _lengthy_data(20, max_len=50, padding="pre")
    with pytest.raises(ValueError, match=r"bucket_width must be an int >= 0, got -16"):
        next(train_batches(data, 10, seed=0, epoch=0, bucket_width=-16))
    with pytest.raises(ValueError, match=r"bucket_width must be an int >= 0, got -16"):
        next(eval_batches(data, 10, bucket_width=-16))
    with pytest.raises(ValueError, match=r"bucket_width must be a positive int, got 0"):
        cut_padding({k: v[:10] for k, v in data.items()}, 0, "pre")


def test_a_negative_split_seed_is_refused_before_reading(tmp_path, fake_tfds):
    with pytest.raises(ValueError, match=r"split_seed must be an int >= 0, got -1"):
        _load(tmp_path, split_seed=-1)
    assert fake_tfds == []  # Nothing was read or tokenized.

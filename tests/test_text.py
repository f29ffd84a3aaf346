"""The reviews' text as bytes (``rnn_jax.data.text``) and its streams (``rnn_jax.data.streams``).

The split and the cache on fake reviews (tfds replaced) and on the real data; the streams'
rules on small documents: whole reviews dealt to balanced streams, chunks a function of the seed
and the step, every review predicted exactly once in evaluation.
"""

import numpy as np
import pytest

from rnn_jax.data import imdb_reader, streams, text
from rnn_jax.data.text import BOUNDARY, Documents
from tests.test_train import DATA_DIR

TRAIN = [f"train review {i}<br /><br />it was {'good ' * (i % 5)}— ok {i}" for i in range(40)]
TEST = [f"TEST review {i} with words unseen" for i in range(10)]


@pytest.fixture
def fake_tfds(monkeypatch):
    """tfds replaced by fixed texts; records what was read."""
    calls = []

    def read_split(name, data_dir, max_examples):
        calls.append(name)
        texts = TRAIN if name == "train" else TEST
        return texts[:max_examples], np.zeros(len(texts[:max_examples]), np.int32)

    monkeypatch.setattr(imdb_reader, "read_split", read_split)
    return calls


def decode(documents: Documents) -> list[str]:
    return [bytes(documents.review(i)).decode("utf-8") for i in range(len(documents))]


def test_a_review_is_its_utf8_bytes_with_line_breaks_as_newlines():
    encoded = text.encode_review("a<br />b — é")
    assert bytes(encoded) == "a\nb — é".encode()
    assert encoded.dtype == np.uint8


def test_train_and_validation_are_the_train_split_and_test_the_test_split(tmp_path, fake_tfds):
    loaded = text.load_review_text(validation_fraction=0.25, cache_dir=tmp_path)
    train, validation = decode(loaded.train), decode(loaded.validation)
    expected = [t.replace("<br />", "\n") for t in TRAIN]
    assert sorted(train + validation) == sorted(expected)
    assert len(validation) == 10 and not set(train) & set(validation)
    assert decode(loaded.test) == [t.replace("<br />", "\n") for t in TEST]
    assert all("TEST" not in t for t in train + validation)  # No test text reaches training.
    # The held-out reviews do not depend on anything but the fraction (not on a run's seed).
    again = text.load_review_text(validation_fraction=0.25, cache_dir=tmp_path, use_cache=False)
    assert decode(again.validation) == validation


def test_the_text_is_cached_complete_and_read_back_without_tfds(tmp_path, fake_tfds):
    first = text.load_review_text(validation_fraction=0.25, cache_dir=tmp_path)
    assert not first.from_cache and fake_tfds == ["train", "test"]
    second = text.load_review_text(validation_fraction=0.25, cache_dir=tmp_path)
    assert second.from_cache and fake_tfds == ["train", "test"]  # tfds not read again.
    for split in text.SPLITS:
        np.testing.assert_array_equal(first.split(split).data, second.split(split).data)
        np.testing.assert_array_equal(first.split(split).starts, second.split(split).starts)
    (cached,) = tmp_path.glob("*.npz")
    cached.write_bytes(cached.read_bytes()[:100])  # Damaged: ignored and rebuilt.
    rebuilt = text.load_review_text(validation_fraction=0.25, cache_dir=tmp_path)
    assert not rebuilt.from_cache and decode(rebuilt.test) == decode(first.test)


@pytest.mark.slow  # Reads tfds (TensorFlow's start-up).
def test_on_the_real_data_training_reads_the_train_split_only(tmp_path):
    loaded = text.load_review_text(
        validation_fraction=0.1, data_dir=DATA_DIR, cache_dir=tmp_path, max_examples=200
    )
    train_texts, _ = imdb_reader.read_split("train", str(DATA_DIR), 200)
    test_texts, _ = imdb_reader.read_split("test", str(DATA_DIR), 200)
    train_set = {bytes(text.encode_review(t)) for t in train_texts}
    read = [bytes(d.review(i)) for d in (loaded.train, loaded.validation) for i in range(len(d))]
    assert sorted(read) == sorted(bytes(text.encode_review(t)) for t in train_texts)
    assert [bytes(loaded.test.review(i)) for i in range(200)] == [
        bytes(text.encode_review(t)) for t in test_texts
    ]
    test_only = {bytes(text.encode_review(t)) for t in test_texts} - train_set
    assert test_only and not test_only & set(read)  # Test reviews are nowhere in training.


# ------------------------------------------------------------------------------------ streams


def documents(lengths) -> Documents:
    """Reviews of the given lengths whose bytes say which review they are (review i: i % 256)."""
    return Documents.from_bytes([np.full(n, i % 256, np.uint8) for i, n in enumerate(lengths)])


def test_dealing_keeps_reviews_whole_and_streams_balanced():
    lengths = np.random.default_rng(0).integers(1, 100, 200)
    dealt = streams.deal(lengths, 8)
    assert sorted(i for s in dealt for i in s) == list(range(200))
    totals = [int(lengths[s].sum()) for s in dealt]
    assert max(totals) - min(totals) < lengths.max()
    assert all(s == sorted(s) for s in dealt)  # Each stream keeps the given order.


def test_training_chunks_are_whole_reviews_from_their_boundary_and_a_function_of_the_step():
    docs = documents(np.random.default_rng(1).integers(5, 40, 120))
    streams_, length = 4, 16
    per_pass = streams.chunks_per_pass(docs, streams_, length)
    chunks = list(streams.train_chunks(docs, streams_, length, seed=3, start=0, stop=2 * per_pass))
    assert all(c["tokens"].shape == (streams_, length + 1) for c in chunks)
    for first in (chunks[0], chunks[per_pass]):  # Every pass starts every stream at a review.
        assert (first["tokens"][:, 0] == BOUNDARY).all()
    for a, b in zip(chunks, chunks[1:], strict=False):  # Chunks overlap by one token.
        if b is not chunks[per_pass]:
            np.testing.assert_array_equal(a["tokens"][:, -1], b["tokens"][:, 0])
    # A stream of a pass: BOUNDARY then a review, again and again; each review whole.
    row = np.concatenate([c["tokens"][0, :-1] for c in chunks[:per_pass]])
    pieces = np.split(row, np.flatnonzero(row == BOUNDARY))[1:]
    indices = [int(piece[1]) for piece in pieces]  # Review i's bytes are all i (< 256 here).
    assert len(set(indices)) == len(indices)  # A review at most once per pass.
    for piece in pieces[:-1]:  # The last may be cut by the end of the pass.
        assert len(piece) - 1 == docs.lengths()[piece[1]] and (piece[1:] == piece[1]).all()
    # Resuming at step 5 gives the chunks step 5 onwards had; another seed, another order.
    later = list(streams.train_chunks(docs, streams_, length, seed=3, start=5, stop=8))
    for a, b in zip(later, chunks[5:8], strict=True):
        np.testing.assert_array_equal(a["tokens"], b["tokens"])
    other = next(streams.train_chunks(docs, streams_, length, seed=4, start=0, stop=1))
    assert not np.array_equal(other["tokens"], chunks[0]["tokens"])


def test_evaluation_predicts_every_token_of_every_review_once():
    lengths = np.random.default_rng(2).integers(1, 30, 37)
    docs = documents(lengths)
    chunks = list(streams.eval_chunks(docs, 5, 8))
    assert sum(int(c["mask"].sum()) for c in chunks) == docs.predicted_tokens
    # The predicted tokens of each stream are whole reviews, each followed by its end; together,
    # every review once.
    seen = []
    for s in range(5):
        predicted = np.concatenate([c["tokens"][s, 1:][c["mask"][s]] for c in chunks])
        assert predicted[-1] == BOUNDARY
        for piece in np.split(predicted, np.flatnonzero(predicted == BOUNDARY) + 1)[:-1]:
            review = int(piece[0])  # Review i's bytes are all i.
            assert len(piece) == lengths[review] + 1 and (piece[:-1] == review).all()
            seen.append(review)
    assert sorted(seen) == list(range(len(lengths)))
    assert (chunks[0]["tokens"][:, 0] == BOUNDARY).all()
    # Dealt longest first, the streams end within a review of each other.
    ends = [int(sum(c["mask"][s].sum() for c in chunks)) for s in range(5)]
    assert max(ends) - min(ends) <= lengths.max() + 1


def test_a_text_too_short_for_the_streams_is_one_clear_error():
    with pytest.raises(streams.TextTooShortError, match="do not fill one chunk of 16 tokens"):
        streams.chunks_per_pass(documents([10, 12]), 4, 16)

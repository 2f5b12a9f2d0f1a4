"""SentencePiece trained locally, saved in the workdir and reused; the tokenizer interface."""

import os
import pickle

import numpy as np
import pytest

from zoo.data import tasks
from zoo.data.tokenizers import (
    SentencePieceTokenizer,
    as_text,
    record_texts,
    sentencepiece_tokenizer,
    train_sentencepiece,
)
from zoo.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID

VOCAB = 120


def _corpus():
    # Dates spelled out in words and digits: a few thousand varied, small sentences.
    return [source for source, _ in tasks.date_pairs(3000, seed=0)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("workdir"))
    return workdir, sentencepiece_tokenizer(workdir, _corpus, vocab_size=VOCAB)


def test_trains_once_into_the_workdir_and_reuses_the_file(trained):
    workdir, tokenizer = trained
    path = os.path.join(workdir, "spm.model")
    assert tokenizer.path == path and os.path.exists(path)
    assert os.listdir(workdir) == ["spm.model"]  # no temporary files left behind
    mtime = os.stat(path).st_mtime_ns

    def must_not_train():
        raise AssertionError("the saved model should have been reused")

    again = sentencepiece_tokenizer(workdir, must_not_train, vocab_size=VOCAB)
    assert os.stat(path).st_mtime_ns == mtime
    text = "Saturday, September 23rd 2045"
    assert again.encode(text) == tokenizer.encode(text)


def test_a_saved_model_of_another_size_is_an_error(trained):
    workdir, _ = trained
    with pytest.raises(ValueError, match="vocab_size 120.*vocab_size=200"):
        sentencepiece_tokenizer(workdir, _corpus, vocab_size=200)


def test_special_ids_match_the_char_vocab(trained):
    _, tokenizer = trained
    assert tokenizer.size == len(tokenizer) == VOCAB
    pieces = [tokenizer._sp.id_to_piece(i) for i in range(4)]
    assert pieces == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)


def test_encode_decode_round_trip_with_bos_eos_and_padding(trained):
    _, tokenizer = trained
    text = "Monday 3 March 1998"
    ids = tokenizer.encode(text, add_bos=True, add_eos=True)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID and len(ids) < len(text)  # subwords
    assert tokenizer.decode(ids + [PAD_ID] * 3) == text
    assert tokenizer.decode([*ids[:-1], EOS_ID, 7, 8]) == text  # stops at <eos>
    batch = tokenizer.encode_batch([text, "May 1"], add_eos=True)
    assert batch.ids.shape == (2, batch.lengths.max()) and batch.ids[1, -1] == PAD_ID
    assert tokenizer.decode_batch(batch.ids) == [text, "May 1"]
    with pytest.raises(ValueError, match="outside this vocabulary"):
        tokenizer.decode([VOCAB + 5])


def test_pickles_for_grain_workers(trained):
    _, tokenizer = trained
    copy = pickle.loads(pickle.dumps(tokenizer))
    assert copy.encode("12 June 2001") == tokenizer.encode("12 June 2001")


def test_training_writes_the_given_path_and_rejects_bad_options(tmp_path):
    path = str(tmp_path / "sub" / "bpe.model")
    tokenizer = train_sentencepiece(_corpus(), path, vocab_size=80, model_type="bpe",
                                    max_sentences=500)
    assert SentencePieceTokenizer(path).size == tokenizer.size == 80
    with pytest.raises(ValueError, match="model_type"):
        train_sentencepiece(_corpus(), path, model_type="wordpiece")
    with pytest.raises(ValueError, match="vocab_size=100000"):
        train_sentencepiece(["tiny corpus"] * 10, str(tmp_path / "x.model"), vocab_size=100_000)


def test_record_texts_reads_fields_as_str():
    records = [{"de": "Hündin".encode(), "en": b"dog"}, {"de": "Katze", "en": "cat"}]
    assert list(record_texts(records, ("de", "en"))) == ["Hündin", "dog", "Katze", "cat"]
    assert list(record_texts(records, ("en",), limit=1)) == ["dog"]
    assert as_text(np.bytes_(b"x")) == "x"

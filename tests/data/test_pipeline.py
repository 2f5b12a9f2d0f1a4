"""grain pipelines: shapes, padding, lengths, buckets, shuffling, sharding, resumable state."""

import json

import grain
import numpy as np
import pytest
import tensorflow_datasets as tfds

from zoo.data import pipeline, sources, tasks
from zoo.data.builders import task_config
from zoo.data.vocab import BOS_ID, EOS_ID, PAD_ID, CharVocab

tfds.disable_progress_bar()

VOCAB = tasks.task_vocab("reverse")
N = 500


@pytest.fixture(scope="module")
def records():
    """N distinct (source, target) records as TFDS gives them: dicts of bytes."""
    pairs = dict(tasks.reverse_pairs(2 * N, seed=0, length_range=(1, 30)))
    return [{"source": s.encode(), "target": t.encode()} for s, t in list(pairs.items())[:N]]


def _seq2seq(records, **overrides):
    options = dict(src_tokenizer=VOCAB, batch_size=8, max_src_len=30, max_tgt_len=31,
                   buckets=(8, 16), bucket_window=4, num_epochs=1, seed=0)
    options.update(overrides)
    return pipeline.seq2seq_dataset(records, **options)


def _rows(batches):
    """The (source, target) text of every real row, in order."""
    return [(VOCAB.decode(b.src[i]), VOCAB.decode(b.tgt_out[i]))
            for b in batches for i in np.flatnonzero(b.src_lengths)]


def _same(batches_a, batches_b):
    return len(batches_a) == len(batches_b) and all(
        all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        for a, b in zip(batches_a, batches_b, strict=True)
    )


# ------------------------------------------------------------------------- seq2seq batches


def test_batches_have_static_bucketed_shapes_and_correct_padding(records):
    batches = list(_seq2seq(records))
    assert len(batches) == N // 8  # drop_remainder: 62 full batches
    for b in batches:
        B, S = b.src.shape
        T = b.tgt_in.shape[1]
        assert B == 8 and S in (8, 16, 30) and T in (8, 16, 31)
        assert b.tgt_out.shape == (B, T) and b.src_lengths.shape == b.tgt_lengths.shape == (B,)
        assert all(x.dtype == np.int32 for x in b)
        # The smallest bucket that fits the longest row.
        assert S == min(s for s in (8, 16, 30) if s >= b.src_lengths.max())
        for i in range(B):
            n, m = b.src_lengths[i], b.tgt_lengths[i]
            assert np.all(b.src[i, n:] == PAD_ID) and np.all(b.src[i, :n] >= 4)
            assert b.tgt_in[i, 0] == BOS_ID and b.tgt_out[i, m - 1] == EOS_ID
            assert np.array_equal(b.tgt_in[i, 1:m], b.tgt_out[i, : m - 1])  # shifted by one
            assert np.all(b.tgt_in[i, m:] == PAD_ID) and np.all(b.tgt_out[i, m:] == PAD_ID)
    rows = _rows(batches)
    assert all(target == source[::-1] for source, target in rows)
    # Sorting windows of 4 batches by length: rows of a batch have similar lengths.
    unsorted = list(_seq2seq(records, bucket_window=1))
    spread = np.mean([np.ptp(b.tgt_lengths) for b in batches])
    assert spread < 0.5 * np.mean([np.ptp(b.tgt_lengths) for b in unsorted])


def test_one_epoch_sees_every_example_once_without_drop_remainder(records):
    batches = list(_seq2seq(records, drop_remainder=False, buckets=None))
    assert len(batches) == -(-N // 8)
    assert all(b.src.shape == (8, 30) and b.tgt_in.shape == (8, 31) for b in batches)
    padded = sum(int((b.src_lengths == 0).sum()) for b in batches)
    assert padded == -N % 8  # empty rows fill the last batch
    expected = sorted((r["source"].decode(), r["target"].decode()) for r in records)
    assert sorted(_rows(batches)) == expected


def test_long_examples_are_dropped_or_truncated(records):
    dropped = _rows(list(_seq2seq(records, max_src_len=10, max_tgt_len=11,
                                  drop_remainder=False)))
    kept = [(r["source"].decode(), r["target"].decode()) for r in records
            if len(r["source"]) <= 10]
    assert sorted(dropped) == sorted(kept)
    truncated = list(_seq2seq(records, max_src_len=10, max_tgt_len=6, long_examples="truncate",
                              source_eos=True, drop_remainder=False))
    assert len(_rows(truncated)) == N
    for b in truncated:
        assert b.src.shape[1] <= 10 and b.tgt_in.shape[1] <= 6
        rows = np.flatnonzero(b.src_lengths)
        assert np.all(b.src[rows, b.src_lengths[rows] - 1] == EOS_ID)  # source_eos kept


def test_shuffle_is_determined_by_the_seed_and_changes_each_epoch(records):
    first = list(_seq2seq(records, seed=1))
    assert _same(first, list(_seq2seq(records, seed=1)))
    assert _rows(first) != _rows(list(_seq2seq(records, seed=2)))
    # Windows of one batch, and batches that divide N, keep the epochs apart.
    two_epochs = _rows(list(_seq2seq(records, seed=1, num_epochs=2, batch_size=4,
                                     bucket_window=1)))
    assert sorted(two_epochs[:N]) == sorted(two_epochs[N:]) and two_epochs[:N] != two_epochs[N:]
    # No shuffling: batch k holds records 8k .. 8k+7 (sorted by length inside the batch).
    in_order = _rows(list(_seq2seq(records, shuffle=False, bucket_window=1, buckets=None,
                                   drop_remainder=False)))
    originals = [(r["source"].decode(), r["target"].decode()) for r in records]
    assert all(sorted(in_order[k : k + 8]) == sorted(originals[k : k + 8])
               for k in range(0, N, 8))


def test_two_processes_read_disjoint_shards_that_cover_the_data(records):
    shards = []
    for index in range(2):
        shard = grain.sharding.ShardOptions(shard_index=index, shard_count=2)
        shards.append(_rows(list(_seq2seq(records, shard=shard, drop_remainder=False))))
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == sorted(
        (r["source"].decode(), r["target"].decode()) for r in records)
    assert pipeline.shard_interval(11, grain.sharding.ShardOptions(1, 2)) == (6, 11)
    even = grain.sharding.ShardOptions(1, 2, drop_remainder=True)
    assert pipeline.shard_interval(11, even) == (5, 10)
    by_jax = grain.sharding.ShardByJaxProcess(drop_remainder=True)  # one process here
    assert pipeline.shard_interval(11, by_jax) == (0, 11)


@pytest.mark.parametrize("consumed", [0, 1, 5, 13, 61])  # 61: across the epoch boundary
def test_iterator_state_restores_mid_epoch(records, consumed):
    ds = _seq2seq(records, num_epochs=None, seed=4)
    it = iter(ds)
    for _ in range(consumed):
        next(it)
    state = json.loads(json.dumps(it.get_state()))  # what a checkpoint stores
    expected = [next(it) for _ in range(6)]
    restored = iter(_seq2seq(records, num_epochs=None, seed=4))  # e.g. after a restart
    restored.set_state(state)
    assert _same([next(restored) for _ in range(6)], expected)


def test_tfds_source_end_to_end(tmp_path):
    config = task_config("dates", train_size=200, validation_size=10, test_size=10)
    source = sources.data_source("generated_tasks", "train", data_dir=str(tmp_path),
                                 builder_kwargs={"config": config})
    vocab = tasks.task_vocab("dates")
    batches = list(pipeline.seq2seq_dataset(source, src_tokenizer=vocab, batch_size=16,
                                            max_src_len=32, max_tgt_len=11, num_epochs=1))
    assert len(batches) == 200 // 16
    assert all(b.src.shape == (16, 32) and b.tgt_out.shape == (16, 11) for b in batches)
    assert all(vocab.decode(row)[4] == "-" for b in batches for row in b.tgt_out)


def test_bad_arguments_name_the_parameter(records):
    with pytest.raises(ValueError, match="batch_size"):
        _seq2seq(records, batch_size=0)
    with pytest.raises(ValueError, match="long_examples"):
        _seq2seq(records, long_examples="wrap")
    with pytest.raises(ValueError, match="num_epochs"):
        _seq2seq(records, num_epochs=0)
    with pytest.raises(ValueError, match="fields"):
        _seq2seq(records, fields=("source",))
    with pytest.raises(ValueError, match="max_tgt_len"):
        _seq2seq(records, max_tgt_len=1)


# ------------------------------------------------------------------------- language model

TEXT_VOCAB = CharVocab("abcdefghijklmnopqrstuvwxyz ")


@pytest.fixture(scope="module")
def documents():
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
    return [{"text": " ".join(rng.choice(words, size=rng.integers(1, 8))).encode()}
            for _ in range(300)]


def _lm(documents, **overrides):
    options = dict(tokenizer=TEXT_VOCAB, batch_size=4, seq_len=48, num_epochs=1, seed=0)
    options.update(overrides)
    return pipeline.lm_dataset(documents, **options)


def test_packed_lm_batches_have_segments_positions_and_shifted_targets(documents):
    batches = list(_lm(documents, drop_remainder=False))
    texts = []
    for b in batches:
        assert all(x.shape == (4, 48) for x in b[:4]) and b.lengths.shape == (4,)
        assert np.array_equal(b.lengths, (b.segment_ids > 0).sum(axis=1))
        for row in range(4):
            for segment in range(1, b.segment_ids[row].max() + 1):
                where = np.flatnonzero(b.segment_ids[row] == segment)
                inputs, targets = b.inputs[row, where], b.targets[row, where]
                assert np.array_equal(b.positions[row, where], np.arange(len(where)))
                assert inputs[0] == BOS_ID and targets[-1] == EOS_ID
                assert np.array_equal(inputs[1:], targets[:-1])  # next-token targets
                texts.append(TEXT_VOCAB.decode(targets))
            assert np.all(b.inputs[row][b.segment_ids[row] == 0] == PAD_ID)
    assert sorted(texts) == sorted(d["text"].decode() for d in documents)
    assert np.mean([b.lengths.mean() for b in batches]) > 40  # packing fills rows


def test_unpacked_lm_puts_one_document_a_row_and_truncates(documents):
    batches = list(_lm(documents, pack=False, seq_len=12))
    assert len(batches) == 300 // 4
    for b in batches:
        assert b.inputs.shape == (4, 12) and set(np.unique(b.segment_ids)) <= {0, 1}
        assert np.all(b.lengths <= 12) and np.all(b.inputs[:, 0] == BOS_ID)
    dropped = list(_lm(documents, pack=False, seq_len=12, long_examples="drop",
                       drop_remainder=False))
    short = [d for d in documents if len(d["text"]) + 1 <= 12]
    assert sum(int((b.lengths > 0).sum()) for b in dropped) == len(short)


@pytest.mark.parametrize("pack", [True, False])
def test_lm_iterator_state_round_trip(documents, pack):
    it = iter(_lm(documents, pack=pack, num_epochs=None, seed=3))
    for _ in range(7):
        next(it)
    state = json.loads(json.dumps(it.get_state()))
    expected = [next(it) for _ in range(5)]
    restored = iter(_lm(documents, pack=pack, num_epochs=None, seed=3))
    restored.set_state(state)
    assert _same([next(restored) for _ in range(5)], expected)


def test_lm_sharding_is_disjoint(documents):
    seen = []
    for index in range(2):
        shard = grain.sharding.ShardOptions(shard_index=index, shard_count=2)
        batches = list(_lm(documents, pack=False, shard=shard, drop_remainder=False,
                           shuffle=False))
        seen.append([TEXT_VOCAB.decode(row) for b in batches for row in b.targets[b.lengths > 0]])
    assert len(seen[0]) == len(seen[1]) == 150
    assert seen[0] + seen[1] == [d["text"].decode() for d in documents]


def test_iterator_state_checkpoints_with_orbax(records, tmp_path):
    import orbax.checkpoint as ocp

    it = iter(_seq2seq(records, num_epochs=None, seed=5))
    for _ in range(9):
        next(it)
    manager = ocp.CheckpointManager(str(tmp_path), item_names=("data",))
    manager.save(9, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    manager.wait_until_finished()
    expected = [next(it) for _ in range(3)]
    restored = iter(_seq2seq(records, num_epochs=None, seed=5))
    manager.restore(9, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(restored)))
    assert _same([next(restored) for _ in range(3)], expected)


# ------------------------------------------------------------------------- arrays


@pytest.fixture(scope="module")
def images():
    """37 tiny uint8 'images' [2, 3, 1] whose pixels all equal their index (0..36 * 7)."""
    return [{"image": np.full((2, 3, 1), 7 * i, np.uint8), "label": i} for i in range(37)]


def test_array_batches_scale_pixels_and_mask_the_padding(images):
    ds = pipeline.array_dataset(images, field="image", batch_size=8, value_range=(-1.0, 1.0),
                                shuffle=False, num_epochs=1, drop_remainder=False)
    batches = list(ds)
    assert len(batches) == 5 and all(b["x"].shape == (8, 2, 3, 1) for b in batches)
    assert all(b["x"].dtype == np.float32 for b in batches)
    x = np.concatenate([b["x"] for b in batches])  # [40, 2, 3, 1]
    mask = np.concatenate([b["mask"] for b in batches])  # [40]
    assert mask.sum() == 37 and not mask[37:].any()
    np.testing.assert_allclose(x[:37, 0, 0, 0], 7 * np.arange(37) / 255 * 2 - 1, atol=1e-6)
    assert not x[37:].any()
    # Floats (points) pass through; training batches drop the remainder and carry no mask.
    points = [{"point": np.asarray([i, -i], np.float32)} for i in range(10)]
    train = list(pipeline.array_dataset(points, field="point", batch_size=4, num_epochs=1))
    assert len(train) == 2 and set(train[0]) == {"x"}
    seen = np.concatenate([b["x"] for b in train])  # [8, 2]
    np.testing.assert_array_equal(seen[:, 1], -seen[:, 0])
    assert len(set(seen[:, 0].tolist())) == 8 and set(seen[:, 0].tolist()) <= set(range(10))


def test_array_batches_carry_the_label_of_each_image(images):
    """label_field: every batch's 'label' [B] int32 belongs to its image, shuffled or not;
    padded rows get label 0 and are masked."""
    ds = pipeline.array_dataset(images, field="image", batch_size=8, value_range=(0.0, 255.0),
                                shuffle=False, num_epochs=1, drop_remainder=False,
                                label_field="label")
    batches = list(ds)
    assert all(b["label"].dtype == np.int32 and b["label"].shape == (8,) for b in batches)
    labels = np.concatenate([b["label"] for b in batches])  # [40]
    np.testing.assert_array_equal(labels[:37], np.arange(37))
    assert not labels[37:].any()
    shuffled = next(iter(pipeline.array_dataset(images, field="image", batch_size=16, seed=2,
                                                value_range=(0.0, 255.0), label_field="label")))
    np.testing.assert_array_equal(shuffled["x"][:, 0, 0, 0], 7 * shuffled["label"])
    assert len(set(shuffled["label"].tolist())) == 16


@pytest.mark.parametrize("consumed", [1, 6])
def test_array_iterator_state_restores_mid_epoch(images, consumed):
    def make():
        return iter(pipeline.array_dataset(images, field="image", batch_size=4, seed=3))

    it = make()
    for _ in range(consumed):
        next(it)
    state = json.loads(json.dumps(it.get_state()))
    expected = [next(it)["x"] for _ in range(12)]  # crosses into the next epochs
    resumed = make()
    resumed.set_state(state)
    for want in expected:
        np.testing.assert_array_equal(next(resumed)["x"], want)


def test_array_dataset_rejects_bad_arguments(images):
    with pytest.raises(ValueError, match="batch_size"):
        pipeline.array_dataset(images, field="image", batch_size=0)
    with pytest.raises(ValueError, match="value_range"):
        pipeline.array_dataset(images, field="image", batch_size=2, value_range=(1.0, 1.0))

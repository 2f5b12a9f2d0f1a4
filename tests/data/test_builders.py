"""TFDS builders (array_record, no TensorFlow) and the one loading path, `tfds.data_source`."""

import importlib.util
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from debian_data import needs_bibles, needs_de_en, needs_wordnet

from zoo.data import corpora, pipeline, sources, tasks
from zoo.data.builders import (
    BUILDERS,
    DeEn,
    EnEsBible,
    GeneratedTasks,
    WordnetGlosses,
    prepare,
    split_pairs,
    task_config,
)

tfds.disable_progress_bar()

SPLITS = ("train", "validation", "test")


def _records(builder, split, *keys):
    source = builder.as_data_source(split=split)
    return [tuple(r[k] for k in keys) for r in source.__getitems__(range(len(source)))]


def test_tensorflow_is_not_needed():
    assert importlib.util.find_spec("tensorflow") is None


def test_builders_write_array_record_only(tmp_path):
    builder = prepare(GeneratedTasks(config=task_config("copy", train_size=20, validation_size=5,
                                                        test_size=5), data_dir=str(tmp_path)))
    files = os.listdir(builder.data_dir)
    assert any(".array_record-" in f for f in files) and not any("tfrecord" in f for f in files)
    assert set(BUILDERS) == {"generated_tasks", "de_en", "en_es_bible", "wordnet_glosses",
                             "fashion_mnist"}


# ------------------------------------------------------------------------- generated tasks


def test_generated_task_splits_are_deterministic_disjoint_and_sized(tmp_path):
    config = task_config("dates", seed=3, train_size=300, validation_size=40, test_size=30)
    first = prepare(GeneratedTasks(config=config, data_dir=str(tmp_path / "a")))
    again = prepare(GeneratedTasks(config=config, data_dir=str(tmp_path / "b")))
    sources_by_split = {}
    for split, size in zip(SPLITS, (300, 40, 30), strict=True):
        records = _records(first, split, "source", "target")
        assert records == _records(again, split, "source", "target")  # same seed, same data
        assert len(records) == size
        sources_by_split[split] = {s for s, _ in records}
        assert all(t.decode()[:2] in ("19", "20") and len(t) == 10 for _, t in records)
    assert not sources_by_split["train"] & sources_by_split["validation"]
    assert not sources_by_split["train"] & sources_by_split["test"]
    assert not sources_by_split["validation"] & sources_by_split["test"]
    # The records are the task's own pairs: the builder only deals and stores them.
    pairs = split_pairs(config)
    assert sorted(pairs["test"]) == sorted((s.decode(), t.decode())
                                           for s, t in _records(first, "test", "source", "target"))


def test_another_seed_gives_other_examples_and_another_directory(tmp_path):
    a = task_config("reverse", seed=0, train_size=50, validation_size=5, test_size=5)
    b = task_config("reverse", seed=1, train_size=50, validation_size=5, test_size=5)
    assert a.name != b.name and a.name.startswith("reverse-")
    assert task_config("reverse") is not a and task_config("reverse").name == "reverse"
    assert split_pairs(a)["train"] != split_pairs(b)["train"]
    assert split_pairs(a) == split_pairs(task_config("reverse", seed=0, train_size=50,
                                                     validation_size=5, test_size=5))


def test_every_task_has_a_default_config_and_bad_settings_raise():
    assert {c.name for c in GeneratedTasks.BUILDER_CONFIGS} == set(tasks.TASKS)
    with pytest.raises(ValueError, match="task must be one of"):
        task_config("translate")
    with pytest.raises(ValueError, match="train_size"):
        task_config("copy", train_size=-1)
    # Only "a" and "b" exist: 12 distinct sources cannot.
    tiny = task_config("copy", length_range=(1, 1), alphabet="ab", train_size=10,
                       validation_size=1, test_size=1)
    with pytest.raises(ValueError, match="distinct sources"):
        split_pairs(tiny)


# ------------------------------------------------------------------------- real corpora


@needs_de_en
def test_de_en_builder_prepares_disjoint_hash_splits(tmp_path):
    builder = prepare(DeEn(data_dir=str(tmp_path)))  # 'sentences', the default config
    german = {split: {de for de, _ in _records(builder, split, "de", "en")} for split in SPLITS}
    sizes = {split: builder.info.splits[split].num_examples for split in SPLITS}
    assert sum(sizes.values()) == len(corpora.de_en_pairs())
    assert sizes["validation"] > 300 and sizes["test"] > 300
    assert not german["train"] & german["test"] and not german["train"] & german["validation"]
    assert builder.info.supervised_keys == ("de", "en")  # the layout of wmt14_translate/de-en


@needs_bibles
def test_en_es_bible_builder_holds_out_whole_chapters(tmp_path):
    builder = prepare(EnEsBible(data_dir=str(tmp_path)), max_examples_per_split=400)
    chapters = {
        split: {v.decode().rsplit(".", 1)[0] for (v,) in _records(builder, split, "verse")}
        for split in SPLITS
    }
    assert not chapters["train"] & chapters["test"]
    assert not chapters["train"] & chapters["validation"]
    verse, en, es = _records(builder, "test", "verse", "en", "es")[0]
    assert verse.count(b".") == 2 and en and es


@needs_wordnet
def test_wordnet_glosses_builder(tmp_path):
    builder = prepare(WordnetGlosses(data_dir=str(tmp_path)), max_examples_per_split=300)
    texts = {split: {t for (t,) in _records(builder, split, "text")} for split in SPLITS}
    assert len(texts["train"]) == 300
    assert not texts["train"] & texts["test"] and not texts["validation"] & texts["test"]


@pytest.mark.parametrize(
    "builder_cls, package",
    [(DeEn, "trans-de-en"), (EnEsBible, "sword-text-kjv"), (WordnetGlosses, "wordnet-base")],
)
def test_missing_debian_package_is_a_clear_error(tmp_path, builder_cls, package):
    builder = builder_cls(data_dir=str(tmp_path), source=str(tmp_path / "not-installed"))
    with pytest.raises(corpora.MissingSourceError,
                       match=f"'{package}'.*sudo apt-get install {package}.*make data"):
        prepare(builder)


def test_missing_package_through_the_loader(tmp_path):
    with pytest.raises(corpora.MissingSourceError, match="sudo apt-get install trans-de-en"):
        sources.data_source("de_en/sentences", "train", data_dir=str(tmp_path),
                            builder_kwargs={"source": str(tmp_path / "nowhere")})


# ------------------------------------------------------------------------- the loading path


def test_loader_prepares_zoo_datasets_on_first_use(tmp_path):
    config = task_config("sort", train_size=64, validation_size=8, test_size=8)
    kwargs = {"config": config}
    source = sources.data_source("generated_tasks", "train", data_dir=str(tmp_path),
                                 builder_kwargs=kwargs)
    assert len(source) == 64
    # The same call again reads what is there; so does plain TFDS with the name.
    again = tfds.data_source(f"generated_tasks/{config.name}", split="train",
                             data_dir=str(tmp_path), download=False)
    assert [again[i] for i in range(64)] == [source[i] for i in range(64)]
    with pytest.raises(FileNotFoundError, match="not prepared"):
        sources.data_source("generated_tasks/copy", "train", data_dir=str(tmp_path),
                            prepare=False)


def test_unprepared_foreign_dataset_is_never_downloaded(tmp_path):
    with pytest.raises(FileNotFoundError, match="'wmt14_translate/de-en'.*never downloads"):
        sources.data_source("wmt14_translate/de-en", "train", data_dir=str(tmp_path))


def test_a_users_prepared_tfds_dataset_loads_through_the_same_path():
    # TFDS registers its own builders lazily; importing the module registers wmt14.
    import tensorflow_datasets.translate.wmt14  # noqa: F401

    vocab = tasks.task_vocab("copy", alphabet="abcdefghij ")
    with tfds.testing.mock_data(num_examples=40):
        source = sources.data_source("wmt14_translate/de-en", "train")
        assert len(source) == 40 and set(source[0]) == {"de", "en"}
        ds = pipeline.seq2seq_dataset(source, src_tokenizer=vocab, fields=("de", "en"),
                                      batch_size=8, max_src_len=64, max_tgt_len=64,
                                      num_epochs=1, shuffle=False, drop_remainder=False)
        batches = list(ds)
        originals = sorted(str(source[i]["de"]) for i in range(40))
    assert sum(int((b.src_lengths > 0).sum()) for b in batches) == 40
    assert all(b.src.shape == (8, 64) for b in batches)
    texts = sorted(vocab.decode(row) for b in batches for row in b.src[b.src_lengths > 0])
    assert texts == originals
    assert np.all(batches[0].tgt_in[:, 0] == 1)

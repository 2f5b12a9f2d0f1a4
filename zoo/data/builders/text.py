"""TFDS builders for the real corpora in Debian packages: de_en, en_es_bible, wordnet_glosses.

Each reads the files a Debian package installed (see `zoo.data.corpora`),
deals examples into train/validation/test by a hash of the part that must not
leak (German sentence, Bible chapter, gloss text), and writes array_record.
A missing package raises `MissingSourceError` naming it and the install command.

    name                   records                               package
    de_en/sentences        {'de', 'en'} example sentence pairs   trans-de-en
    de_en/phrases          {'de', 'en'} every aligned entry      trans-de-en
    en_es_bible            {'verse', 'en', 'es'}                 sword-text-kjv + -sparv
    wordnet_glosses        {'synset', 'text'}                    wordnet-base

de_en uses the feature layout of TFDS's `wmt14_translate/de-en`, so a
pipeline written for one reads the other.
"""

from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds

from zoo.data import corpora
from zoo.data.builders.base import LocalBuilder

SPLITS = ("train", "validation", "test")


def _by_split(items, key_of, holdout: corpora.Holdout) -> dict[str, list]:
    out: dict[str, list] = {split: [] for split in SPLITS}
    for item in items:
        out[corpora.split_of(key_of(item), holdout)].append(item)
    return out


@dataclasses.dataclass(eq=False, kw_only=True)
class DeEnConfig(tfds.core.BuilderConfig):
    sentences_only: bool = True
    holdout: corpora.Holdout = corpora.Holdout(validation=0.025, test=0.025)


class DeEn(LocalBuilder):
    """German-English pairs from the TU Chemnitz dictionary (Debian trans-de-en)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: sentences and phrases from trans-de-en 1.9."}
    BUILDER_CONFIGS = [
        DeEnConfig(name="sentences", description="Example sentences (about 19.7k pairs)."),
        DeEnConfig(name="phrases", sentences_only=False,
                   holdout=corpora.Holdout(validation=0.01, test=0.01),
                   description="Every aligned entry: words, phrases, sentences (388k pairs)."),
    ]
    DEFAULT_CONFIG_NAME = "sentences"

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.Translation(languages=("de", "en")),
            supervised_keys=("de", "en"),
            homepage="https://dict.tu-chemnitz.de/",
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        pairs = corpora.de_en_pairs(
            self.source_path(corpora.TRANS_DE_EN),
            sentences_only=self.builder_config.sentences_only,
        )
        splits = _by_split(pairs, lambda pair: pair[0], self.builder_config.holdout)
        return {split: self._generate_examples(splits[split]) for split in SPLITS}

    def _generate_examples(self, pairs):
        for i, (de, en) in enumerate(pairs):
            yield i, {"de": de, "en": en}


def _chapter(verse: corpora.VersePair) -> str:
    """'Gen.1' of 'Gen.1.1': whole chapters are held out, so no test verse's neighbours train."""
    return verse.key.rsplit(".", 1)[0]


class EnEsBible(LocalBuilder):
    """English (KJV) - Spanish (Reina-Valera 1909) Bible verses aligned by KJV versification."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: engKJV2006eb + spaRV1909eb, split by chapter."}
    HOLDOUT = corpora.Holdout(validation=0.02, test=0.02)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.FeaturesDict({
                "verse": tfds.features.Text(),  # OSIS key, "Gen.1.1"
                "en": tfds.features.Text(),
                "es": tfds.features.Text(),
            }),
            supervised_keys=("en", "es"),
            homepage="https://crosswire.org/sword/",
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        verses = corpora.bible_verse_pairs(self.source_path(corpora.SWORD_ROOT))
        splits = _by_split(verses, _chapter, self.HOLDOUT)
        return {split: self._generate_examples(splits[split]) for split in SPLITS}

    def _generate_examples(self, verses):
        for verse in verses:
            yield verse.key, {"verse": verse.key, "en": verse.en, "es": verse.es}


class WordnetGlosses(LocalBuilder):
    """English WordNet 3.0 glosses (definitions with example uses), one synset a record."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: every synset of wordnet-base."}
    HOLDOUT = corpora.Holdout(validation=0.01, test=0.01)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.FeaturesDict(
                {"synset": tfds.features.Text(), "text": tfds.features.Text()}
            ),
            homepage="https://wordnet.princeton.edu/",
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        glosses = corpora.wordnet_glosses(self.source_path(corpora.WORDNET_DIR))
        splits = _by_split(glosses, lambda gloss: gloss.text, self.HOLDOUT)
        return {split: self._generate_examples(splits[split]) for split in SPLITS}

    def _generate_examples(self, glosses):
        for gloss in glosses:
            yield gloss.synset, {"synset": gloss.synset, "text": gloss.text}

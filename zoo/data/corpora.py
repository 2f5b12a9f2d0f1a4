"""Real text corpora read from Debian packages: parsers, source checks and split assignment.

Plain Python, no TFDS: the builders in `zoo.data.builders` write these to
array_record, and tests can check the parsers on their own.

    corpus            Debian package(s)                    what it yields
    de_en             trans-de-en                          (German, English) pairs
    en_es_bible       sword-text-kjv + sword-text-sparv    (verse key, English, Spanish)
    wordnet_glosses   wordnet-base                         (synset id, English gloss)

Nothing is downloaded: a missing package raises `MissingSourceError`, which
names the package and the command that installs it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from typing import NamedTuple

from zoo.data import sword

TRANS_DE_EN = "/usr/share/trans/de-en"
SWORD_ROOT = "/usr/share/sword"
KJV_MODULE = "engKJV2006eb"  # sword-text-kjv: King James Version (1769 text)
SPARV_MODULE = "spaRV1909eb"  # sword-text-sparv: Reina-Valera 1909
WORDNET_DIR = "/usr/share/wordnet"
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")

# Every Debian package a real corpus needs: what `make data` installs.
DEBIAN_PACKAGES = ("trans-de-en", "sword-text-kjv", "sword-text-sparv", "wordnet-base")


class MissingSourceError(FileNotFoundError):
    """A corpus' Debian package is not installed (or its files are not where expected)."""


def require(path: str, package: str, corpus: str) -> str:
    """`path` if it exists, else a MissingSourceError saying how to install `package`."""
    if not os.path.exists(path):
        raise MissingSourceError(
            f"{corpus} needs the Debian package '{package}', but {path} does not exist. "
            f"Install it with `sudo apt-get install {package}` (or `make data`, which installs "
            f"every corpus: {' '.join(DEBIAN_PACKAGES)}), then prepare the dataset again."
        )
    return path


# ---------------------------------------------------------------------------- splits


class Holdout(NamedTuple):
    """Fractions of a corpus held out for validation and test; the rest is train."""

    validation: float = 0.02
    test: float = 0.02


DEFAULT_HOLDOUT = Holdout()


def split_of(key: str, holdout: Holdout = DEFAULT_HOLDOUT, salt: str = "zoo") -> str:
    """'train', 'validation' or 'test' for `key`, from a hash: stable across runs and machines.

    Hash the part of an example that must not leak between splits (the source
    sentence for translation), so all its translations land in one split.
    """
    if not (0 <= holdout.validation and 0 <= holdout.test and sum(holdout) < 1):
        raise ValueError(f"holdout fractions must be >= 0 and sum below 1, got {holdout}")
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    if u < holdout.test:
        return "test"
    if u < holdout.test + holdout.validation:
        return "validation"
    return "train"


# ---------------------------------------------------------------------------- de_en

# The TU Chemnitz dictionary (Ding) format of trans-de-en, one entry a line:
#   German ... :: English ...
# each side has ' | '-separated sub-entries (aligned between the sides: the
# headword, its inflections, then example phrases and sentences), and each
# sub-entry ';'-separated synonyms. Annotations: {m} gender/part of speech,
# [ugs.] usage labels, (...) explanations, <...> cross references.
_ANNOTATION = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|<[^<>]*>|\([^()]*\)")
# Dictionary placeholders ("jdm. etw. geben" / "to give sb. sth.") mark a
# phrase template, not a sentence.
_PLACEHOLDER = re.compile(r"(?<!\w)(jd|jdm|jdn|jds|etw|sb|sth)\.")
_SENTENCE_END = (".", "!", "?")


def _clean_side(text: str) -> str:
    first = text.split(";")[0]  # the first synonym
    for _ in range(2):  # annotations nest at most once: "(see [1])"
        first = _ANNOTATION.sub(" ", first)
    first = " ".join(first.split())
    return re.sub(r" (?=[,.;:!?])", "", first)


def _may_end_a_sentence(part: str) -> bool:
    """Whether the first synonym of a raw sub-entry has a . ! or ? anywhere: cleaning only
    removes characters, so without one its cleaned form cannot end a sentence."""
    first = part.split(";", 1)[0]
    return "." in first or "!" in first or "?" in first


def _is_sentence(de: str, en: str) -> bool:
    return (
        de[:1].isupper()
        and de.endswith(_SENTENCE_END)
        and en.endswith(_SENTENCE_END)
        and len(de.split()) >= 3
        and len(en.split()) >= 3
        and not _PLACEHOLDER.search(de)
        and not _PLACEHOLDER.search(en)
    )


def de_en_pairs(path: str = TRANS_DE_EN, *, sentences_only: bool = True) -> list[tuple[str, str]]:
    """Distinct (German, English) pairs from trans-de-en, in file order.

    Each aligned sub-entry gives one pair of its first synonyms with the
    annotations removed. `sentences_only` keeps the example sentences
    (capitalised, ending in . ! or ?, three or more words, no sb./sth.
    placeholders); otherwise words and phrases are kept too.
    """
    require(path, "trans-de-en", "de_en")
    pairs: dict[tuple[str, str], None] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or " :: " not in line:
                continue
            de_side, en_side = line.rstrip("\n").split(" :: ", 1)
            de_parts, en_parts = de_side.split(" | "), en_side.split(" | ")
            if len(de_parts) != len(en_parts):
                continue  # misaligned entry: no safe pairing
            for de_part, en_part in zip(de_parts, en_parts, strict=True):
                if sentences_only and not (_may_end_a_sentence(de_part)
                                           and _may_end_a_sentence(en_part)):
                    continue  # most sub-entries are words: skip the regexes
                de, en = _clean_side(de_part), _clean_side(en_part)
                if de and en and (not sentences_only or _is_sentence(de, en)):
                    pairs[(de, en)] = None
    return list(pairs)


# ---------------------------------------------------------------------------- en_es_bible


class VersePair(NamedTuple):
    key: str  # OSIS reference, "Gen.1.1"
    en: str
    es: str


def bible_verse_pairs(sword_root: str = SWORD_ROOT) -> Iterator[VersePair]:
    """(key, English KJV, Spanish Reina-Valera 1909) for every verse non-empty in both.

    Both modules use the KJV versification, so entry i of one is the same verse
    as entry i of the other; the keys are checked to agree.
    """
    dirs = {}
    for module, package in ((KJV_MODULE, "sword-text-kjv"), (SPARV_MODULE, "sword-text-sparv")):
        require(os.path.join(sword_root, "mods.d", module + ".conf"), package, "en_es_bible")
        dirs[module] = sword.module_dir(sword_root, module)
    english = sword.read_verses(dirs[KJV_MODULE])
    spanish = sword.read_verses(dirs[SPARV_MODULE])
    for en, es in zip(english, spanish, strict=True):
        if en.key != es.key:
            raise ValueError(f"verse keys disagree: {en.key} (KJV) vs {es.key} (RV1909)")
        en_text, es_text = sword.osis_to_text(en.text), sword.osis_to_text(es.text)
        if en_text and es_text:  # RV1909 leaves a few verses empty (merged into the previous)
            yield VersePair(en.key, en_text, es_text)


# ---------------------------------------------------------------------------- wordnet_glosses


class Gloss(NamedTuple):
    synset: str  # "n02084071": part of speech + byte offset, WordNet's own synset id
    text: str  # definition and examples: 'a member of the genus Canis ...; "the dog barked"'


def wordnet_glosses(wordnet_dir: str = WORDNET_DIR) -> Iterator[Gloss]:
    """Every synset's gloss from WordNet's data.{noun,verb,adj,adv}, in file order."""
    require(wordnet_dir, "wordnet-base", "wordnet_glosses")
    for name in WORDNET_FILES:
        path = require(os.path.join(wordnet_dir, name), "wordnet-base", "wordnet_glosses")
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):  # the licence header
                    continue
                head, sep, gloss = line.partition(" | ")
                text = " ".join(gloss.split())
                if sep and text:
                    offset, _, pos = head.split(" ", 3)[:3]
                    yield Gloss(f"{pos}{offset}", text)

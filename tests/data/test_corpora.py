"""Corpus parsers: the SWORD zText reader, trans-de-en, WordNet, splits, missing packages.

Format tests run on small files written here; the tests on the real Debian
packages are skipped (with the install command as the reason) where they are
absent. CI installs them (`make data`), so they run there.
"""

import os
import struct
import zlib
from collections import Counter

import pytest
from debian_data import needs_bibles, needs_de_en, needs_wordnet

from zoo.data import corpora, sword

# ------------------------------------------------------------------------- SWORD zText


def test_kjv_versification_has_the_canonical_counts():
    chapters = [len(counts.split()) for _, counts in sword.KJV_BOOKS]
    verses = [sum(map(int, counts.split())) for _, counts in sword.KJV_BOOKS]
    assert (len(sword.KJV_BOOKS), sum(chapters), sum(verses)) == (66, 1189, 31102)
    assert sum(verses[: sword.OLD_TESTAMENT_BOOKS]) == 23145  # Genesis .. Malachi
    ot, nt = sword.testament_keys("ot"), sword.testament_keys("nt")
    # Module and testament headings, a heading per book and per chapter, then verses.
    assert len(ot) == 2 + 39 + 929 + 23145 and len(nt) == 2 + 27 + 260 + 7957
    assert ot[:5] == [None, None, None, None, "Gen.1.1"]
    assert nt[-1] == "Rev.22.21"
    with pytest.raises(ValueError, match="testament"):
        sword.testament_keys("apocrypha")


def _write_ztext_module(root, name, text_of, *, block_entries=1000):
    """A KJV-versified zText module whose verse `key` holds `text_of(key)`."""
    data = os.path.join(root, "modules", "texts", "ztext", name.lower())
    os.makedirs(data)
    os.makedirs(os.path.join(root, "mods.d"), exist_ok=True)
    with open(os.path.join(root, "mods.d", name + ".conf"), "w") as f:
        f.write(f"[{name}]\nDataPath=./modules/texts/ztext/{name.lower()}/\nModDrv=zText\n"
                "CompressType=ZIP\nEncoding=UTF-8\nVersification=KJV\n")
    for testament in ("ot", "nt"):
        entries = [b"" if k is None else text_of(k).encode() for k in
                   sword.testament_keys(testament)]
        bzs, bzv, bzz = bytearray(), bytearray(), bytearray()
        for b, first in enumerate(range(0, len(entries), block_entries)):
            block = bytearray()
            for entry in entries[first : first + block_entries]:
                bzv += struct.pack("<IIH", b, len(block), len(entry))
                block += entry
            compressed = zlib.compress(bytes(block))
            bzs += struct.pack("<III", len(bzz), len(compressed), len(block))
            bzz += compressed
        for ext, content in (("bzs", bzs), ("bzv", bzv), ("bzz", bzz)):
            with open(os.path.join(data, f"{testament}.{ext}"), "wb") as f:
                f.write(content)


def test_ztext_reader_maps_every_index_to_its_verse_key(tmp_path):
    _write_ztext_module(str(tmp_path), "TestMod", lambda key: f"<w>text</w> of {key}.")
    verses = list(sword.read_verses(sword.module_dir(str(tmp_path), "TestMod")))
    assert len(verses) == 31102
    assert all(sword.osis_to_text(v.text) == f"text of {v.key}." for v in verses)
    assert [v.key for v in verses[:2]] == ["Gen.1.1", "Gen.1.2"]
    assert verses[23145].key == "Matt.1.1"


def test_ztext_reader_rejects_other_drivers_and_versifications(tmp_path):
    _write_ztext_module(str(tmp_path), "Mod", lambda key: key)
    conf = tmp_path / "mods.d" / "Mod.conf"
    conf.write_text(conf.read_text().replace("Versification=KJV", "Versification=Vulg"))
    with pytest.raises(ValueError, match="Versification=Vulg"):
        sword.module_dir(str(tmp_path), "Mod")
    conf.write_text(conf.read_text().replace("ModDrv=zText", "ModDrv=RawText"))
    with pytest.raises(ValueError, match="ModDrv"):
        sword.module_dir(str(tmp_path), "Mod")


def test_osis_to_text_strips_markup_notes_and_titles():
    osis = (
        '<title type="psalm">A Psalm of David.</title><w lemma="strong:H3068">LORD</w>, how '
        '<transChange type="added">are</transChange> they increased<note placement="foot">'
        '<reference>3.1</reference>Heb. many</note> ! \\nd JEHOVAH &amp; <q who="x">¿ Qué</q> ?'
    )
    assert sword.osis_to_text(osis) == "LORD, how are they increased! JEHOVAH & ¿Qué?"


# ------------------------------------------------------------------------- de_en, WordNet


def test_de_en_parser_aligns_sub_entries_and_strips_annotations(tmp_path):
    path = tmp_path / "de-en"
    path.write_text(
        "# Version :: devel\n"
        "Hund {m} [zool.] | Hunde {pl} | Der Hund bellt laut. :: dog | dogs | The dog barks "
        "loudly.\n"
        "Katze {f}; Mieze {f} [ugs.] (Haustier) :: cat; kitty\n"
        "ungleich | zu viel :: uneven\n"  # misaligned: skipped
        "jdm. etw. geben | Gib ihm das Buch zurück! :: to give sb. sth. | Give him back the "
        "book!\n"
        "Er kommt (morgen) . :: He comes (tomorrow) .\n",
        encoding="utf-8",
    )
    assert corpora.de_en_pairs(str(path), sentences_only=False) == [
        ("Hund", "dog"), ("Hunde", "dogs"), ("Der Hund bellt laut.", "The dog barks loudly."),
        ("Katze", "cat"), ("jdm. etw. geben", "to give sb. sth."),
        ("Gib ihm das Buch zurück!", "Give him back the book!"), ("Er kommt.", "He comes."),
    ]
    assert corpora.de_en_pairs(str(path)) == [
        ("Der Hund bellt laut.", "The dog barks loudly."),
        ("Gib ihm das Buch zurück!", "Give him back the book!"),
    ]


def test_wordnet_parser_reads_glosses_after_the_bar(tmp_path):
    for name in corpora.WORDNET_FILES:
        (tmp_path / name).write_text(
            "  1 This software and database is being provided ...\n"
            f"00001740 03 {name[5]} 01 entity 0 003 ~ 00001930 n 0000 | that which is "
            'perceived;  "an entity"  \n'
        )
    glosses = list(corpora.wordnet_glosses(str(tmp_path)))
    assert len(glosses) == 4
    assert glosses[0] == corpora.Gloss("n00001740", 'that which is perceived; "an entity"')


# ------------------------------------------------------------------------- splits, errors


def test_split_of_is_deterministic_and_follows_the_fractions():
    keys = [f"sentence {i}" for i in range(20_000)]
    splits = [corpora.split_of(k, corpora.Holdout(0.1, 0.05)) for k in keys]
    assert splits == [corpora.split_of(k, corpora.Holdout(0.1, 0.05)) for k in keys]
    counts = Counter(splits)
    assert abs(counts["validation"] / 20_000 - 0.1) < 0.01
    assert abs(counts["test"] / 20_000 - 0.05) < 0.01
    assert corpora.split_of("x", salt="a") in ("train", "validation", "test")
    with pytest.raises(ValueError, match="holdout"):
        corpora.split_of("x", corpora.Holdout(0.6, 0.5))


@pytest.mark.parametrize(
    "parse, package",
    [
        (lambda missing: corpora.de_en_pairs(missing), "trans-de-en"),
        (lambda missing: list(corpora.bible_verse_pairs(missing)), "sword-text-kjv"),
        (lambda missing: list(corpora.wordnet_glosses(missing)), "wordnet-base"),
    ],
)
def test_missing_package_names_it_and_the_install_command(tmp_path, parse, package):
    with pytest.raises(corpora.MissingSourceError) as info:
        parse(str(tmp_path / "not-installed"))
    message = str(info.value)
    assert f"'{package}'" in message
    assert f"sudo apt-get install {package}" in message and "make data" in message
    assert isinstance(info.value, FileNotFoundError)


# ------------------------------------------------------------------------- the real packages


@needs_de_en
def test_trans_de_en_sentences():
    pairs = corpora.de_en_pairs()
    assert 19_000 < len(pairs) < 21_000 and len(set(pairs)) == len(pairs)
    de, en = pairs[len(pairs) // 2]
    assert de[0].isupper() and de[-1] in ".!?" and en[-1] in ".!?"
    assert not any("{" in d or "[" in d or "{" in e for d, e in pairs)


@needs_bibles
def test_kjv_and_reina_valera_align_by_verse():
    pairs = {p.key: p for p in corpora.bible_verse_pairs()}
    assert 31_000 < len(pairs) <= 31_102
    assert pairs["Gen.1.1"].en == "In the beginning God created the heaven and the earth."
    assert pairs["Gen.1.1"].es == "EN el principio crió Dios los cielos y la tierra."
    assert pairs["Rev.22.21"].en.startswith("The grace of our Lord Jesus Christ")
    assert pairs["John.11.35"].en == "Jesus wept."
    assert not any("<" in p.en or "<" in p.es for p in pairs.values())


@needs_wordnet
def test_wordnet_base_glosses():
    glosses = list(corpora.wordnet_glosses())
    assert len(glosses) == 117_659  # WordNet 3.0 synsets
    assert len({g.synset for g in glosses}) == len(glosses)
    assert all(g.text for g in glosses)

"""Generated tasks (determinism, correctness of targets, dates vs. an independent parser)
and the character vocabulary (round trip, padding, out-of-vocabulary)."""

import datetime
import re

import numpy as np
import pytest

from zoo.data import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    TASKS,
    UNK_ID,
    CharVocab,
    generate,
    seq2seq_arrays,
    task_vocab,
)
from zoo.data.tasks import DATE_FORMATS, POSIX_PIVOT_YEARS, date_pairs

# The test's own reading of every format, with the standard library's parser.
# Ordinal suffixes are stripped first (strptime has no directive for "3rd").
STRPTIME_PATTERNS = [
    "%d %B %Y", "%b %d, %y", "%m/%d/%Y", "%m/%d/%y", "%d.%m.%Y", "%Y-%m-%d", "%Y%m%d",
    "%B %d, %Y", "%B %d %Y", "%d %b %y", "%d of %B, %Y", "%a %d %b %Y", "%A, %B %d %Y",
    "%A, %B %d, %Y",
]
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()


@pytest.mark.parametrize("task", sorted(TASKS))
def test_same_seed_same_pairs_other_seed_other_pairs(task):
    a = generate(task, 50, seed=3)
    assert a == generate(task, 50, seed=3)
    assert a != generate(task, 50, seed=4)
    assert len(a) == 50 and all(isinstance(s, str) and isinstance(t, str) for s, t in a)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_character_is_in_the_task_vocabulary(task):
    vocab = task_vocab(task)
    for source, target in generate(task, 300, seed=0):
        assert UNK_ID not in vocab.encode(source) + vocab.encode(target), (source, target)


def test_string_tasks_are_correct_and_respect_lengths():
    for s, t in generate("reverse", 200, seed=1, length_range=(2, 5), alphabet="xyz"):
        assert t == s[::-1] and 2 <= len(s) <= 5 and set(s) <= set("xyz")
    for s, t in generate("copy", 50, seed=1):
        assert s == t
    for s, t in generate("sort", 200, seed=1, alphabet="zyx"):
        # Sorted in alphabet order, not code-point order.
        assert t == "".join(sorted(s, key="zyx".index))
    lengths = {len(s) for s, _ in generate("reverse", 500, seed=2, length_range=(4, 6))}
    assert lengths == {4, 5, 6}


def test_addition_is_correct_and_digit_counts_follow_the_range():
    pairs = generate("addition", 300, seed=5, length_range=(2, 3))
    for s, t in pairs:
        a, b = s.split("+")
        assert int(a) + int(b) == int(t)
        assert {len(a), len(b)} <= {2, 3} and a[0] != "0" and b[0] != "0"


def _parse(source):
    """All readings of `source` by STRPTIME_PATTERNS, as dates."""
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", r"\1", source)
    readings = set()
    for pattern in STRPTIME_PATTERNS:
        try:
            readings.add(datetime.datetime.strptime(text, pattern).date())
        except ValueError:
            pass
    return readings


def test_dates_parse_to_their_iso_target_in_exactly_one_way():
    pairs = date_pairs(2000, seed=11)
    for source, target in pairs:
        day = datetime.date.fromisoformat(target)  # a valid ISO date
        assert target == day.isoformat()
        assert _parse(source) == {day}, (source, target)  # unambiguous, and agrees
        for weekday in WEEKDAYS:  # a named weekday is the right one
            if weekday in source.lower() or weekday[:3] in source.lower().split():
                assert WEEKDAYS[day.weekday()] == weekday, (source, target)
        for n, suffix in re.findall(r"\b(\d+)(st|nd|rd|th)\b", source):
            expected = "th" if 11 <= int(n) % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(
                int(n) % 10, "th")
            assert suffix == expected, source
        years = datetime.date.fromisoformat(target).year
        assert 1970 <= years <= 2049
    used = {name for name, render in DATE_FORMATS.items()
            for s, t in pairs[:2000] if render(datetime.date.fromisoformat(t)) == s}
    assert used == set(DATE_FORMATS)  # every format shows up


def test_two_digit_years_only_within_the_posix_pivot():
    lo, hi = POSIX_PIVOT_YEARS
    pairs = date_pairs(1000, seed=2, years=(1900, 2099))
    for source, target in pairs:
        if not lo <= int(target[:4]) <= hi:
            assert target[:4] in source, (source, target)  # written with all four digits
        else:
            assert _parse(source) == {datetime.date.fromisoformat(target)}, (source, target)
    assert any(not lo <= int(t[:4]) <= hi for _, t in pairs)


def test_date_length_filter_and_errors():
    for source, _ in date_pairs(100, seed=0, length_range=(8, 10)):
        assert 8 <= len(source) <= 10
    with pytest.raises(ValueError, match="length_range"):
        date_pairs(5, seed=0, length_range=(60, 70))
    with pytest.raises(ValueError, match="formats"):
        date_pairs(5, seed=0, formats=("dd/mm/yyyy",))
    with pytest.raises(ValueError, match="length_range"):
        generate("reverse", 5, seed=0, length_range=(0, 3))
    with pytest.raises(ValueError, match="task"):
        generate("translate", 5, seed=0)
    with pytest.raises(ValueError, match="n must be"):
        generate("copy", -1, seed=0)


# ---------------------------------------------------------------------------------- vocabulary


def test_vocab_reserves_special_ids_and_round_trips():
    vocab = task_vocab("dates")
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    assert vocab.size == 4 + len(set(vocab.chars))
    for source, target in date_pairs(200, seed=0):
        assert vocab.decode(vocab.encode(source)) == source
        ids = vocab.encode(target, add_bos=True, add_eos=True)
        assert ids[0] == BOS_ID and ids[-1] == EOS_ID and vocab.decode(ids) == target


def test_vocab_out_of_vocabulary_and_decode_rules():
    vocab = CharVocab("abc")
    assert vocab.encode("abz") == [4, 5, UNK_ID]
    assert vocab.decode(vocab.encode("a?c")) == "a\N{REPLACEMENT CHARACTER}c"
    assert vocab.decode([BOS_ID, 4, PAD_ID, 5, EOS_ID, 6]) == "ab"  # stops at <eos>
    with pytest.raises(ValueError, match="outside this vocabulary"):
        vocab.decode([99])
    with pytest.raises(ValueError, match="single characters"):
        CharVocab(["ab"])
    assert CharVocab.from_texts(["cab", "b"]).chars == ("a", "b", "c")


def test_batches_pad_and_shift():
    vocab = CharVocab("abc")
    batch = vocab.encode_batch(["ab", "c", ""], max_len=4)
    np.testing.assert_array_equal(batch.ids, [[4, 5, 0, 0], [6, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(batch.lengths, [2, 1, 0])
    assert batch.ids.dtype == np.int32 and batch.lengths.dtype == np.int32
    assert vocab.decode_batch(batch.ids) == ["ab", "c", ""]
    with pytest.raises(ValueError, match="max_len"):
        vocab.encode_batch(["abc"], max_len=2)

    arrays = seq2seq_arrays([("ab", "ba"), ("c", "c")], vocab)
    np.testing.assert_array_equal(arrays.src, [[4, 5], [6, 0]])
    np.testing.assert_array_equal(arrays.src_lengths, [2, 1])
    np.testing.assert_array_equal(arrays.tgt_in, [[BOS_ID, 5, 4], [BOS_ID, 6, 0]])
    np.testing.assert_array_equal(arrays.tgt_out, [[5, 4, EOS_ID], [6, EOS_ID, 0]])
    np.testing.assert_array_equal(arrays.tgt_lengths, [3, 2])

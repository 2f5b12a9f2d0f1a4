"""Generated seq2seq tasks: (source, target) string pairs, deterministic by seed.

Plain Python + numpy, no JAX and no files, so data builders, tests and
benchmarks can all import them. Each task is

    task(n, *, seed, length_range=(lo, hi), ...) -> list[(source, target)]

and `generate(name, n, seed=...)` picks one from `TASKS`. The same arguments
always give the same pairs (numpy's PCG64 `default_rng(seed)`).

    reverse   "abc"        -> "cba"        length_range: source characters
    copy      "abc"        -> "abc"        length_range: source characters
    sort      "cab"        -> "abc"        length_range: source characters
    addition  "123+45"     -> "168"        length_range: digits per operand
    dates     "Mar 3, 98"  -> "1998-03-03" length_range: source characters (a filter)

Dates are the classic "date normalisation" toy translation task: many human
formats map to ISO 8601. Two rules keep every source readable in one way only:
the separator fixes the field order (`/` is month/day/year as in the US, `.`
is day.month.year as in Germany, `-` is ISO), and two-digit years follow the
POSIX pivot (69-99 -> 19xx, 00-68 -> 20xx), so formats with two-digit years are
used only for years 1969-2068.
"""

from __future__ import annotations

import datetime
import string
from collections.abc import Callable

import numpy as np

from zoo.data.vocab import CharVocab

Pairs = list[tuple[str, str]]

LETTERS = string.ascii_lowercase
DIGITS = string.digits

# English names, hard-coded: `calendar.month_name` follows the process locale.
MONTHS = ("January February March April May June July August September October "
          "November December").split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()


def _ordinal(n: int) -> str:
    """3 -> '3rd', 11 -> '11th', 22 -> '22nd'."""
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _month(d: datetime.date) -> str:
    return MONTHS[d.month - 1]


def _weekday(d: datetime.date) -> str:
    return WEEKDAYS[d.weekday()]


# name -> render; the name spells the format so a failing example is easy to trace.
DATE_FORMATS: dict[str, Callable[[datetime.date], str]] = {
    "d month yyyy": lambda d: f"{d.day} {_month(d)} {d.year}",  # 3 March 1998
    "mon d, yy": lambda d: f"{_month(d)[:3]} {d.day}, {d.year % 100:02d}",  # Mar 3, 98
    "mm/dd/yyyy": lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",  # 03/03/1998
    "m/d/yy": lambda d: f"{d.month}/{d.day}/{d.year % 100:02d}",  # 3/3/98
    "dd.mm.yyyy": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",  # 03.03.1998
    "yyyy-mm-dd": lambda d: d.isoformat(),  # 1998-03-03
    "yyyymmdd": lambda d: f"{d.year}{d.month:02d}{d.day:02d}",  # 19980303
    "month d, yyyy": lambda d: f"{_month(d)} {d.day}, {d.year}",  # March 3, 1998
    "MONTH d yyyy": lambda d: f"{_month(d).upper()} {d.day} {d.year}",  # MARCH 3 1998
    "d mon yy": lambda d: f"{d.day} {_month(d)[:3].lower()} {d.year % 100:02d}",  # 3 mar 98
    "dth of month, yyyy": lambda d: f"{_ordinal(d.day)} of {_month(d)}, {d.year}",
    "dow d mon yyyy": lambda d: f"{_weekday(d)[:3]} {d.day} {_month(d)[:3]} {d.year}",
    "weekday, month dth yyyy": lambda d: (  # tuesday, march 3rd 1998
        f"{_weekday(d).lower()}, {_month(d).lower()} {_ordinal(d.day)} {d.year}"
    ),
    "Weekday, Month d, yyyy": lambda d: f"{_weekday(d)}, {_month(d)} {d.day}, {d.year}",
}
TWO_DIGIT_YEAR_FORMATS = frozenset({"mon d, yy", "m/d/yy", "d mon yy"})
POSIX_PIVOT_YEARS = (1969, 2068)  # the years a two-digit year can name
DATE_ALPHABET = string.ascii_letters + DIGITS + " ,./-"


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int (number of pairs), got {n!r}")


def _check_range(name: str, value, minimum: int) -> tuple[int, int]:
    ok = (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and minimum <= value[0] <= value[1]
    )
    if not ok:
        raise ValueError(f"{name} must be a pair (lo, hi) of ints with {minimum} <= lo <= hi, "
                         f"got {value!r}")
    return int(value[0]), int(value[1])


def _check_alphabet(alphabet: str) -> None:
    if not isinstance(alphabet, str) or not alphabet:
        raise ValueError(f"alphabet must be a non-empty string, got {alphabet!r}")


def _strings(n: int, seed: int, length_range, alphabet: str) -> list[str]:
    """n random strings over `alphabet` with lengths uniform in length_range."""
    _check_count(n)
    lo, hi = _check_range("length_range", length_range, 1)
    _check_alphabet(alphabet)
    rng = np.random.default_rng(seed)
    chars = np.array(list(alphabet))
    return ["".join(chars[rng.integers(0, len(chars), size=rng.integers(lo, hi + 1))])
            for _ in range(n)]


def reverse_pairs(n: int, *, seed: int, length_range=(1, 10), alphabet: str = LETTERS) -> Pairs:
    """'abc' -> 'cba'."""
    return [(s, s[::-1]) for s in _strings(n, seed, length_range, alphabet)]


def copy_pairs(n: int, *, seed: int, length_range=(1, 10), alphabet: str = LETTERS) -> Pairs:
    """'abc' -> 'abc'."""
    return [(s, s) for s in _strings(n, seed, length_range, alphabet)]


def sort_pairs(n: int, *, seed: int, length_range=(1, 10), alphabet: str = LETTERS) -> Pairs:
    """'cab' -> 'abc' (characters in alphabet order)."""
    rank = {c: i for i, c in enumerate(alphabet)}
    return [(s, "".join(sorted(s, key=rank.__getitem__)))
            for s in _strings(n, seed, length_range, alphabet)]


def addition_pairs(n: int, *, seed: int, length_range=(1, 4)) -> Pairs:
    """'123+45' -> '168'; each operand has a digit count drawn from length_range."""
    _check_count(n)
    lo, hi = _check_range("length_range", length_range, 1)
    rng = np.random.default_rng(seed)

    def operand() -> int:
        digits = int(rng.integers(lo, hi + 1))
        # The leading digit is non-zero so the digit count is the one drawn.
        return int(rng.integers(10 ** (digits - 1) if digits > 1 else 0, 10**digits))

    pairs = []
    for _ in range(n):
        a, b = operand(), operand()
        pairs.append((f"{a}+{b}", str(a + b)))
    return pairs


def date_pairs(
    n: int,
    *,
    seed: int,
    length_range=None,
    years: tuple[int, int] = (1970, 2049),
    formats: tuple[str, ...] | None = None,
) -> Pairs:
    """Human-written date -> ISO 'yyyy-mm-dd'; day uniform in `years`, format uniform.

    length_range, if given, keeps only sources with that many characters.
    """
    _check_count(n)
    y0, y1 = _check_range("years", years, datetime.MINYEAR)
    if y1 > datetime.MAXYEAR:
        raise ValueError(f"years must lie within [1, {datetime.MAXYEAR}], got {years!r}")
    lo, hi = (0, 10**9) if length_range is None else _check_range("length_range", length_range, 0)
    names = tuple(DATE_FORMATS) if formats is None else tuple(formats)
    unknown = sorted(set(names) - set(DATE_FORMATS))
    if unknown or not names:
        raise ValueError(f"formats must be a non-empty subset of {list(DATE_FORMATS)}, "
                         f"got unknown {unknown}")
    first = datetime.date(y0, 1, 1).toordinal()
    last = datetime.date(y1, 12, 31).toordinal()
    rng = np.random.default_rng(seed)
    pairs: Pairs = []
    # Rejection sampling; the cap turns an unsatisfiable length_range into an error.
    for _ in range(1000 * n + 1000):
        if len(pairs) == n:
            break
        day = datetime.date.fromordinal(int(rng.integers(first, last + 1)))
        name = names[int(rng.integers(len(names)))]
        if name in TWO_DIGIT_YEAR_FORMATS and not (
            POSIX_PIVOT_YEARS[0] <= day.year <= POSIX_PIVOT_YEARS[1]
        ):
            continue
        source = DATE_FORMATS[name](day)
        if lo <= len(source) <= hi:
            pairs.append((source, day.isoformat()))
    if len(pairs) < n:
        raise ValueError(f"length_range={length_range!r} (with years={years!r}, formats="
                         f"{names!r}) admits (almost) no dates; widen it")
    return pairs


TASKS: dict[str, Callable[..., Pairs]] = {
    "reverse": reverse_pairs,
    "copy": copy_pairs,
    "sort": sort_pairs,
    "addition": addition_pairs,
    "dates": date_pairs,
}
# Every character a task can produce, in sources or targets (default options).
ALPHABETS: dict[str, str] = {
    "reverse": LETTERS,
    "copy": LETTERS,
    "sort": LETTERS,
    "addition": DIGITS + "+",
    "dates": DATE_ALPHABET,
}


def _check_task(name: str) -> None:
    if name not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {name!r}")


def generate(name: str, n: int, *, seed: int, **options) -> Pairs:
    """`n` pairs of task `name`; options go to the task function."""
    _check_task(name)
    return TASKS[name](n, seed=seed, **options)


def task_vocab(name: str, alphabet: str | None = None) -> CharVocab:
    """The shared source/target vocabulary of task `name` (or of a custom `alphabet`)."""
    _check_task(name)
    return CharVocab(ALPHABETS[name] if alphabet is None else alphabet)

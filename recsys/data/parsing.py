"""Line parsers of the raw formats, as pure functions: text line -> record, or a rejection.

A parser either returns a tuple in the column order of its staged table or
raises :class:`Reject` with a stable code and a detail; the reader turns
rejections into quarantine rows (file, line number, raw line, reason), so no
input line is ever dropped without a trace. File-level problems (missing,
empty, header-only, wrong delimiter, genre columns that do not match) raise
:class:`SourceError` naming the file and the line instead.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_YEAR_IN_TITLE = re.compile(r"\((\d{4})\)\s*$")
_YEAR_AT_END = re.compile(r"(\d{4})$")
_ID = re.compile(r"^[0-9]+$")


class Reject(ValueError):
    """One line cannot be used; ``code`` is stable (reports count by it), ``detail`` says why."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}")


class SourceError(RuntimeError):
    """A whole input file is unusable; the message names the file, the line and the problem."""


@dataclass(frozen=True)
class RatingRules:
    """What a valid rating line is.

    Attributes:
        rating_min: Lowest rating on the scale.
        rating_max: Highest rating on the scale.
        max_ts: Latest allowed timestamp (end of the run date, seconds); later is "in the future".
        numeric_ids: Ids must be non-negative integers (MovieLens); otherwise any non-empty string.
    """

    rating_min: float = 0.5
    rating_max: float = 5.0
    max_ts: int = 2**62
    numeric_ids: bool = True


def split_fields(line: str, sep: str, n: int | None) -> list[str]:
    """Split ``line`` on ``sep``; ``n`` fields expected (``None``: any).

    Raises:
        Reject: ``field_count`` when the count differs.
    """
    fields = next(csv.reader([line])) if sep == "," else line.split(sep)
    if n is not None and len(fields) != n:
        raise Reject("field_count", f"expected {n} fields separated by {sep!r}, got {len(fields)}")
    return fields


def parse_id(value: str, what: str, numeric: bool = True) -> str:
    """A cleaned id.

    Raises:
        Reject: ``bad_id`` when missing or, for numeric ids, not a non-negative integer.
    """
    v = value.strip()
    if not v:
        raise Reject("bad_id", f"missing {what}")
    if numeric and not _ID.match(v):
        raise Reject("bad_id", f"{what} {v!r} is not a number")
    return v


def parse_rating(value: str, rules: RatingRules) -> float:
    """A rating on the scale.

    Raises:
        Reject: ``bad_rating`` (not a number, NaN, infinite) or ``rating_out_of_range``.
    """
    try:
        r = float(value)
    except ValueError:
        raise Reject("bad_rating", f"rating {value.strip()!r} is not a number") from None
    if not math.isfinite(r):
        raise Reject("bad_rating", f"rating {value.strip()!r} is not finite")
    if not rules.rating_min <= r <= rules.rating_max:
        raise Reject("rating_out_of_range", f"rating {r:g} outside [{rules.rating_min:g}, {rules.rating_max:g}]")
    return r


def parse_ts(value: str, rules: RatingRules) -> int:
    """A timestamp in seconds since the epoch.

    Raises:
        Reject: ``bad_timestamp`` (not an integer), ``negative_timestamp`` or ``future_timestamp``.
    """
    v = value.strip()
    try:
        ts = int(v)
    except ValueError:
        try:
            f = float(v)
        except ValueError:
            raise Reject("bad_timestamp", f"timestamp {v!r} is not a number") from None
        if not math.isfinite(f) or f != int(f):
            raise Reject("bad_timestamp", f"timestamp {v!r} is not a whole number of seconds") from None
        ts = int(f)
    if ts < 0:
        raise Reject("negative_timestamp", f"timestamp {ts} is before 1970")
    if ts > rules.max_ts:
        raise Reject("future_timestamp", f"timestamp {ts} is after the run date")
    return ts


def rating_parser(sep: str, rules: RatingRules) -> Callable[[str], tuple]:
    """Parser of ``user, item, rating, timestamp`` lines -> ``stg_ratings`` tuples."""

    def parse(line: str) -> tuple:
        u, i, r, t = split_fields(line, sep, 4)
        return (parse_id(u, "user id", rules.numeric_ids), parse_id(i, "item id", rules.numeric_ids),
                parse_rating(r, rules), parse_ts(t, rules))

    return parse


def year_of(title: str, release: str = "") -> int | None:
    """The year of an item: ``Title (1995)`` or a release date ending in the year."""
    m = _YEAR_IN_TITLE.search(title.strip()) or _YEAR_AT_END.search(release.strip())
    if not m:
        return None
    year = int(m.group(1))
    return year if 1800 <= year <= 2100 else None


def ml100k_item_parser(genres: Sequence[str]) -> Callable[[str], tuple]:
    """Parser of ``u.item`` lines (id|title|release|video release|url|flags...) -> ``stg_items``."""
    n = 5 + len(genres)

    def parse(line: str) -> tuple:
        f = split_fields(line, "|", n)
        flags = f[5:]
        if any(x not in ("0", "1") for x in flags):
            raise Reject("bad_genres", "genre flags must be 0 or 1")
        return (parse_id(f[0], "item id"), f[1], year_of(f[1], f[2]),
                [g for g, x in zip(genres, flags, strict=True) if x == "1"])

    return parse


def ml100k_user(line: str) -> tuple:
    """Parser of ``u.user`` lines (id|age|gender|occupation|zip) -> ``stg_users``."""
    uid, age, gender, occupation, _zip = split_fields(line, "|", 5)
    return (parse_id(uid, "user id"), _age(age), gender or None, occupation or None, None)


def _age(value: str) -> int | None:
    v = value.strip()
    if not v:
        return None
    if not v.isdigit() or not 1 <= int(v) <= 120:
        raise Reject("bad_age", f"age {v!r} is not between 1 and 120")
    return int(v)


ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)


def dat_user(line: str) -> tuple:
    """Parser of ML-1M ``users.dat`` (UserID::Gender::Age::Occupation::Zip) -> ``stg_users``.

    Age is the lower bound of the published age bucket (1 = under 18, 18, 25, 35, 45, 50, 56).
    """
    uid, gender, age, occ, _zip = split_fields(line, "::", 5)
    occupation = None
    if occ.strip():
        if not occ.strip().isdigit() or int(occ) >= len(ML1M_OCCUPATIONS):
            raise Reject("bad_occupation", f"occupation code {occ!r} is unknown")
        occupation = ML1M_OCCUPATIONS[int(occ)]
    return (parse_id(uid, "user id"), _age(age), gender or None, occupation, None)


def genre_list(value: str) -> list[str]:
    """``Action|Comedy`` -> ``["Action", "Comedy"]``; ``(no genres listed)`` -> ``[]``."""
    v = value.strip()
    if not v or v == "(no genres listed)":
        return []
    return [g for g in v.split("|") if g]


def dat_movie(line: str) -> tuple:
    """Parser of ``movies.dat`` (MovieID::Title::Genres) -> ``stg_items``."""
    mid, title, genres = split_fields(line, "::", 3)
    return (parse_id(mid, "item id"), title, year_of(title), genre_list(genres))


def csv_movie(line: str, numeric_ids: bool = True) -> tuple:
    """Parser of ``movies.csv`` (movieId,title,genres; quoted titles) -> ``stg_items``.

    ``numeric_ids=False`` for catalogues of event logs (``items.csv``), whose ids are any strings.
    """
    mid, title, genres = split_fields(line, ",", 3)
    return (parse_id(mid, "item id", numeric_ids), title, year_of(title), genre_list(genres))


def tag_parser(sep: str, rules: RatingRules) -> Callable[[str], tuple]:
    """Parser of ``user, item, tag, timestamp`` lines -> ``stg_tags`` tuples."""

    def parse(line: str) -> tuple:
        u, i, tag, t = split_fields(line, sep, 4)
        if not tag.strip():
            raise Reject("bad_tag", "empty tag")
        return (parse_id(u, "user id", rules.numeric_ids), parse_id(i, "item id", rules.numeric_ids),
                tag.strip(), parse_ts(t, rules))

    return parse


def event_parser(rules: RatingRules) -> Callable[[str], tuple]:
    """Parser of event-log CSV lines ``user_id,item_id,event,timestamp,value`` -> ``stg_events``.

    ``value`` is optional (empty): watch seconds, a rating, a price. A ``rating`` event
    needs a value on the scale of ``rules`` (else ``rating_out_of_range``).
    """

    def parse(line: str) -> tuple:
        f = split_fields(line, ",", None)
        if len(f) not in (4, 5):
            raise Reject("field_count", f"expected 4 or 5 fields separated by ',', got {len(f)}")
        u, i, event, t = f[:4]
        value = f[4].strip() if len(f) == 5 else ""
        if not event.strip():
            raise Reject("bad_event", "missing event type")
        v: float | None = None
        if value:
            try:
                v = float(value)
            except ValueError:
                raise Reject("bad_value", f"value {value!r} is not a number") from None
            if not math.isfinite(v):
                raise Reject("bad_value", f"value {value!r} is not finite")
        if event.strip().lower() == "rating" and (v is None or not rules.rating_min <= v <= rules.rating_max):
            raise Reject("rating_out_of_range",
                         f"rating event without a value in [{rules.rating_min:g}, {rules.rating_max:g}]")
        return (parse_id(u, "user id", False), parse_id(i, "item id", False), event.strip().lower(),
                parse_ts(t, rules), v)

    return parse

"""Audit checks run on a staged run before it may go live.

Everything here is a pure function over pandas DataFrames: no I/O, no clock.
The store calls :func:`check_schema` on the frames it is given (before loading
them) and :func:`audit_run` on the rows it reads back from staging, so a load
bug is caught as well as a bad input.

Every problem is one string that starts with a stable code followed by a colon,
e.g. ``"missing_users: 2 expected users have no recommendations (e.g. ['u7', 'u9'])"``;
:attr:`AuditReport.codes` lists the codes.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

CANDIDATE_SOURCES: tuple[str, ...] = ("similar", "genre", "segment", "embedding", "new", "popular", "profile")
"""The candidate sources a recommendation may name, in their fixed order.

A recommendation's ``source`` is the sources that proposed it joined by ``+`` in this
order, e.g. ``similar`` or ``similar+genre+popular``. The retrieval code names its
sources with these strings (one list for the pipeline and the audit)."""
SOURCE_SEPARATOR = "+"
"""Joins the source names of one recommendation."""

RECOMMENDATION_INPUT_COLUMNS: tuple[str, ...] = ("user_id", "rank", "item_id", "score", "reason", "source")
"""Columns of the recommendations frame given to ``Store.publish`` (one row per user and rank)."""
SIMILAR_ITEM_INPUT_COLUMNS: tuple[str, ...] = ("item_id", "rank", "neighbor_id", "distance", "source")
"""Columns of the similar-items frame given to ``Store.publish`` (one row per item, source and rank)."""
SEEN_COLUMNS: tuple[str, ...] = ("user_id", "item_id")
"""Columns of the ``seen`` frame: (user, item) pairs the user already rated."""

# Problem codes (the text before the first colon of a problem).
MISSING_COLUMNS = "missing_columns"
BAD_TYPES = "bad_types"
NULL_VALUES = "null_values"
NO_RECOMMENDATIONS = "no_recommendations"
MISSING_USERS = "missing_users"
UNEXPECTED_USERS = "unexpected_users"
WRONG_COUNT = "wrong_count"
BAD_RANKS = "bad_ranks"
DUPLICATE_ITEMS = "duplicate_items"
SEEN_ITEMS = "seen_items"
NON_FINITE_SCORES = "non_finite_scores"
UNKNOWN_ITEMS = "unknown_items"
MISSING_SOURCES = "missing_sources"
UNKNOWN_SOURCES = "unknown_sources"
UNORDERED_SOURCES = "unordered_sources"
BLOCKED_ITEMS = "blocked_items"
NO_SIMILAR_ITEMS = "no_similar_items"
SIMILAR_BAD_RANKS = "similar_bad_ranks"
SIMILAR_DUPLICATE_NEIGHBORS = "similar_duplicate_neighbors"
SIMILAR_NON_FINITE_DISTANCES = "similar_non_finite_distances"
SIMILAR_UNKNOWN_ITEMS = "similar_unknown_items"
LOAD_MISMATCH = "load_mismatch"

_EXAMPLES = 5

_NUMERIC_COLUMNS: dict[str, tuple[str, ...]] = {
    "recommendations": ("rank", "score"),
    "similar_items": ("rank", "distance"),
}
_KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "recommendations": ("user_id", "rank", "item_id"),
    "similar_items": ("item_id", "rank", "neighbor_id", "source"),
}


@dataclass(frozen=True)
class AuditReport:
    """Outcome of auditing one run.

    Attributes:
        problems: One string per failed check, ``"<code>: <details>"``; empty when the run passed.
        k: Number of recommendations each expected user must have.
        n_expected_users: Number of distinct users that must be covered.
        n_users: Number of distinct users in the recommendations.
        n_recommendations: Number of recommendation rows.
        n_similar_items: Number of distinct (item, source) lists in the similar items.
        n_similar_rows: Number of similar-item rows.
        n_blocked_items: Number of blocked item ids the recommendations were checked against.
    """

    problems: list[str] = field(default_factory=list)
    k: int = 0
    n_expected_users: int = 0
    n_users: int = 0
    n_recommendations: int = 0
    n_similar_items: int = 0
    n_similar_rows: int = 0
    n_blocked_items: int = 0

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.problems

    @property
    def codes(self) -> list[str]:
        """The problem codes, in the order of :attr:`problems`."""
        return [problem.split(":", 1)[0] for problem in self.problems]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view of the report (stored in ``runs.metrics['audit']``)."""
        return {
            "ok": self.ok,
            "problems": list(self.problems),
            "k": self.k,
            "n_expected_users": self.n_expected_users,
            "n_users": self.n_users,
            "n_recommendations": self.n_recommendations,
            "n_similar_items": self.n_similar_items,
            "n_similar_rows": self.n_similar_rows,
            "n_blocked_items": self.n_blocked_items,
        }


def _problem(code: str, message: str, examples: Iterable[Any] = ()) -> str:
    shown = sorted(str(e) for e in examples)[:_EXAMPLES]
    suffix = f" (e.g. {shown})" if shown else ""
    return f"{code}: {message}{suffix}"


def _as_ids(values: pd.Series) -> pd.Series:
    """Ids as strings (nulls stay null), so int ids from upstream compare with TEXT ids."""
    return values.astype(object).where(values.notna(), None).map(lambda v: v if v is None else str(v))


def _missing_columns(frame: pd.DataFrame, required: Sequence[str], name: str) -> list[str]:
    missing = [c for c in required if c not in frame.columns]
    if not missing:
        return []
    return [_problem(MISSING_COLUMNS, f"{name} lacks columns {missing}")]


def check_schema(recommendations: pd.DataFrame, similar_items: pd.DataFrame) -> list[str]:
    """Check that the input frames can be loaded at all.

    Args:
        recommendations: Frame with :data:`RECOMMENDATION_INPUT_COLUMNS`.
        similar_items: Frame with :data:`SIMILAR_ITEM_INPUT_COLUMNS`.

    Returns:
        Problems (codes ``missing_columns`` and ``bad_types``): a required column is
        absent, a numeric column holds non-numbers, or a rank is not a whole number.
        Empty when both frames can be coerced to the store's column types.
    """
    problems: list[str] = []
    for name, frame, required in (
        ("recommendations", recommendations, RECOMMENDATION_INPUT_COLUMNS),
        ("similar_items", similar_items, SIMILAR_ITEM_INPUT_COLUMNS),
    ):
        missing = _missing_columns(frame, required, name)
        if missing:
            problems.extend(missing)
            continue
        for column in _NUMERIC_COLUMNS[name]:
            values = pd.to_numeric(frame[column], errors="coerce")
            not_numeric = frame[column].notna() & values.isna()
            if not_numeric.any():
                problems.append(
                    _problem(
                        BAD_TYPES,
                        f"{name}.{column} has {int(not_numeric.sum())} non-numeric values",
                        frame.loc[not_numeric, column].unique(),
                    )
                )
            elif column == "rank":
                finite = values[np.isfinite(values.astype(float))]
                fractional = finite[finite != np.floor(finite)]
                if len(fractional) or len(finite) != values.notna().sum():
                    problems.append(
                        _problem(BAD_TYPES, f"{name}.rank has values that are not whole numbers", fractional.unique())
                    )
    return problems


def check_arguments(seen: pd.DataFrame, k: int) -> None:
    """Reject caller bugs (as opposed to data problems) before any work is done.

    Raises:
        ValueError: ``k`` < 1 or ``seen`` lacks :data:`SEEN_COLUMNS`.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    missing = [c for c in SEEN_COLUMNS if c not in seen.columns]
    if missing:
        raise ValueError(f"seen lacks columns {missing}")


def _null_problems(frame: pd.DataFrame, name: str) -> list[str]:
    problems = []
    for column in _KEY_COLUMNS[name]:
        n_null = int(frame[column].isna().sum())
        if n_null:
            problems.append(_problem(NULL_VALUES, f"{name}.{column} has {n_null} nulls"))
    return problems


def _repeats(frame: pd.DataFrame, key: list[str], code: str, what: str) -> list[str]:
    """Rows whose ``key`` (first column = the list owner, last = the listed id) occurred before."""
    keys = frame[key].dropna()
    repeated = keys[keys.duplicated()]
    if repeated.empty:
        return []
    return [_problem(code, f"{len(repeated)} rows repeat {what}", repeated[key[0]].unique())]


def _non_finite(frame: pd.DataFrame, column: str, code: str, *, example_column: str) -> list[str]:
    values = pd.to_numeric(frame[column], errors="coerce").astype(float)
    bad = ~np.isfinite(values)
    if not bad.any():
        return []
    return [
        _problem(
            code,
            f"{int(bad.sum())} values of {column} are NaN, infinite or missing",
            frame.loc[bad, example_column].dropna().unique(),
        )
    ]


def _source_kind(source: str | None) -> str | None:
    """Which source problem one ``source`` value has: a problem code, or None when it is fine."""
    if source is None or not source.strip():
        return MISSING_SOURCES
    parts = source.split(SOURCE_SEPARATOR)
    if any(part not in CANDIDATE_SOURCES for part in parts):
        return UNKNOWN_SOURCES
    positions = [CANDIDATE_SOURCES.index(part) for part in parts]
    if any(a >= b for a, b in itertools.pairwise(positions)):
        return UNORDERED_SOURCES
    return None


def _row_labels(rows: pd.DataFrame) -> list[str]:
    """``user/item (rank r)`` of the first few rows by (user, rank): examples of offending rows."""
    first = rows.sort_values(["user_id", "rank"]).head(_EXAMPLES)
    labels = []
    for user, item, rank in first[["user_id", "item_id", "rank"]].itertuples(index=False, name=None):
        shown = int(rank) if isinstance(rank, int | float | np.number) and np.isfinite(rank) else rank
        labels.append(f"{user}/{item} (rank {shown})")
    return labels


def _source_problems(recs: pd.DataFrame) -> list[str]:
    """Problems of the ``source`` column (checked once per distinct value, so cheap on big runs)."""
    values = recs["source"]
    kinds = {value: _source_kind(value) for value in set(values)}
    kind = pd.Series([kinds[value] for value in values], index=values.index, dtype=object)
    problems = []
    messages = {
        MISSING_SOURCES: "recommendations have no source (null or empty)",
        UNKNOWN_SOURCES: f"recommendations name a source not in {list(CANDIDATE_SOURCES)}",
        UNORDERED_SOURCES: "recommendations list a source twice or out of the order "
        + SOURCE_SEPARATOR.join(CANDIDATE_SOURCES),
    }
    for code, message in messages.items():
        bad = recs[kind == code]
        if bad.empty:
            continue
        if code == MISSING_SOURCES:
            examples: Iterable[Any] = _row_labels(bad)
        else:
            examples = bad["source"].unique()
        problems.append(_problem(code, f"{len(bad)} {message}", examples))
    return problems


def _blocked_problems(recs: pd.DataFrame, blocked: frozenset[str]) -> list[str]:
    if not blocked:
        return []
    hits = recs[recs["item_id"].isin(blocked)]
    if hits.empty:
        return []
    return [
        _problem(
            BLOCKED_ITEMS,
            f"{len(hits)} recommendations of {hits['user_id'].nunique()} users are blocked items "
            f"({hits['item_id'].nunique()} distinct)",
            _row_labels(hits),
        )
    ]


def _audit_recommendations(
    recs: pd.DataFrame,
    expected: frozenset[str],
    known: frozenset[str],
    seen: pd.DataFrame,
    k: int,
    blocked: frozenset[str],
) -> list[str]:
    if recs.empty:
        return [_problem(NO_RECOMMENDATIONS, "the run has no recommendation rows")]
    problems = _null_problems(recs, "recommendations")
    users = set(recs["user_id"].dropna())

    missing = expected - users
    if missing:
        problems.append(_problem(MISSING_USERS, f"{len(missing)} expected users have no recommendations", missing))
    unexpected = users - expected
    if unexpected:
        problems.append(_problem(UNEXPECTED_USERS, f"{len(unexpected)} users are not expected", unexpected))

    counts = recs.groupby("user_id").size()
    wrong = counts[counts != k]
    if len(wrong):
        problems.append(_problem(WRONG_COUNT, f"{len(wrong)} users do not have exactly k={k} rows", wrong.index))
    full = recs[recs["user_id"].isin(counts.index[counts == k])]
    ranks = full.groupby("user_id")["rank"].agg(["min", "max", "nunique"])
    bad = ranks[(ranks["min"] != 1) | (ranks["max"] != k) | (ranks["nunique"] != k)]
    if len(bad):
        problems.append(_problem(BAD_RANKS, f"{len(bad)} users do not have ranks 1..{k}", bad.index))

    problems += _repeats(recs, ["user_id", "item_id"], DUPLICATE_ITEMS, "an item already in the same user's list")
    pairs = recs[["user_id", "item_id"]].dropna()
    seen_pairs = pd.DataFrame({"user_id": _as_ids(seen["user_id"]), "item_id": _as_ids(seen["item_id"])})
    hits = pairs.merge(seen_pairs.drop_duplicates(), on=["user_id", "item_id"], how="inner")
    if len(hits):
        problems.append(
            _problem(
                SEEN_ITEMS,
                f"{len(hits)} recommendations are items the user has already seen",
                (f"{u}/{i}" for u, i in hits.itertuples(index=False, name=None)),
            )
        )

    problems += _non_finite(recs, "score", NON_FINITE_SCORES, example_column="user_id")
    unknown = set(recs["item_id"].dropna()) - known
    if unknown:
        problems.append(_problem(UNKNOWN_ITEMS, f"{len(unknown)} recommended items are not in the catalogue", unknown))
    problems += _source_problems(recs)
    problems += _blocked_problems(recs, blocked)
    return problems


def _audit_similar_items(sims: pd.DataFrame, known: frozenset[str]) -> list[str]:
    if sims.empty:
        return [_problem(NO_SIMILAR_ITEMS, "the run has no similar-item rows")]
    problems = _null_problems(sims, "similar_items")
    keys = ["item_id", "source"]
    ranks = sims.dropna(subset=keys).groupby(keys)["rank"].agg(["min", "nunique", "size"])
    bad = ranks[(ranks["min"] != 1) | (ranks["nunique"] != ranks["size"])]
    if len(bad):
        problems.append(
            _problem(
                SIMILAR_BAD_RANKS,
                f"{len(bad)} (item, source) lists do not have distinct ranks starting at 1",
                (f"{i}/{s}" for i, s in bad.index),
            )
        )
    problems += _repeats(
        sims,
        ["item_id", "source", "neighbor_id"],
        SIMILAR_DUPLICATE_NEIGHBORS,
        "a neighbour already in the same (item, source) list",
    )
    problems += _non_finite(sims, "distance", SIMILAR_NON_FINITE_DISTANCES, example_column="item_id")
    unknown = (set(sims["item_id"].dropna()) | set(sims["neighbor_id"].dropna())) - known
    if unknown:
        problems.append(
            _problem(SIMILAR_UNKNOWN_ITEMS, f"{len(unknown)} similar-item ids are not in the catalogue", unknown)
        )
    return problems


def audit_run(
    recommendations: pd.DataFrame,
    similar_items: pd.DataFrame,
    *,
    expected_users: Iterable[str],
    known_items: Iterable[str],
    seen: pd.DataFrame,
    k: int,
    blocked_items: Collection[str] = (),
) -> AuditReport:
    """Audit one run's rows.

    Checks: every expected user has exactly ``k`` rows with ranks ``1..k``; no user
    that is not expected; no item twice in one user's list; no (user, item) pair of
    ``seen``; finite scores; every ``item_id`` and ``neighbor_id`` in ``known_items``;
    every ``source`` non-empty, made of :data:`CANDIDATE_SOURCES` names joined by ``+``
    in that order (codes ``missing_sources``, ``unknown_sources``, ``unordered_sources``);
    no item of ``blocked_items`` recommended (code ``blocked_items``, naming a few
    user/item/rank rows); no nulls in key columns; similar items non-empty, with distinct
    ranks starting at 1 and no repeated neighbour per (item, source), and finite distances.

    Ids are compared as strings, so integer ids in ``seen`` or the id sets are fine.

    Args:
        recommendations: One row per (user, rank), :data:`RECOMMENDATION_INPUT_COLUMNS`
            (extra columns are ignored).
        similar_items: One row per (item, source, rank), :data:`SIMILAR_ITEM_INPUT_COLUMNS`.
        expected_users: Users that must each get exactly ``k`` recommendations.
        known_items: The catalogue: every recommended item and neighbour must be in it.
        seen: (user_id, item_id) pairs the user already rated; none may be recommended.
        k: Number of recommendations per user (>= 1).
        blocked_items: Item ids the run's policy forbids (blocked ids and the items of
            blocked genres); none may be recommended. Similar items are not checked.

    Returns:
        The report; ``report.ok`` is True when no check failed.

    Raises:
        ValueError: If ``k`` < 1 or ``seen`` lacks its columns (caller bugs, not data problems).
    """
    check_arguments(seen, k)
    expected = frozenset(str(u) for u in expected_users)
    known = frozenset(str(i) for i in known_items)
    blocked = frozenset(str(i) for i in blocked_items)

    problems = _missing_columns(recommendations, RECOMMENDATION_INPUT_COLUMNS, "recommendations")
    problems += _missing_columns(similar_items, SIMILAR_ITEM_INPUT_COLUMNS, "similar_items")
    n_users = n_rec_rows = n_sim_lists = n_sim_rows = 0
    if not problems:
        recs = recommendations.assign(
            user_id=_as_ids(recommendations["user_id"]),
            item_id=_as_ids(recommendations["item_id"]),
            rank=pd.to_numeric(recommendations["rank"], errors="coerce"),
            source=_as_ids(recommendations["source"]),
        )
        sims = similar_items.assign(
            item_id=_as_ids(similar_items["item_id"]),
            rank=pd.to_numeric(similar_items["rank"], errors="coerce"),
            neighbor_id=_as_ids(similar_items["neighbor_id"]),
            source=_as_ids(similar_items["source"]),
        )
        problems += _audit_recommendations(recs, expected, known, seen, k, blocked)
        problems += _audit_similar_items(sims, known)
        n_users = int(recs["user_id"].nunique())
        n_rec_rows = len(recs)
        n_sim_lists = len(sims[["item_id", "source"]].drop_duplicates())
        n_sim_rows = len(sims)
    return AuditReport(
        problems=problems,
        k=k,
        n_expected_users=len(expected),
        n_users=n_users,
        n_recommendations=n_rec_rows,
        n_similar_items=n_sim_lists,
        n_similar_rows=n_sim_rows,
        n_blocked_items=len(blocked),
    )

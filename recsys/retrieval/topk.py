"""Exact top-K selection over dense score rows: the one place serving and evaluation pick a user's best items.

Serving (candidate sources, the two-tower model's calibration, the exact neighbour
index) and evaluation (the protocol's ranked lists) all call :func:`top_k_items`
or :func:`top_k_candidates`; they live here, in the serving package, so that
serving never imports evaluation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Candidates", "first_k_per_row", "top_k_candidates", "top_k_items"]

#: Rows with fewer items than this are selected by the dense method directly.
_MIN_GROUPED_ITEMS = 256
#: A row whose filter keeps more than ``_MAX_GROUPS_PER_K * k + _MAX_GROUPS_EXTRA`` groups
#: (many ties, or a large slack) is handed back as a dense row.
_MAX_GROUPS_PER_K = 4
_MAX_GROUPS_EXTRA = 16


class Candidates(NamedTuple):
    """A superset of every row's top k, from :func:`top_k_candidates`.

    Attributes:
        rows: ``[p]`` int64 row of each candidate, ascending.
        cols: ``[p]`` int64 item index of each candidate (ascending within a group of a row).
        values: ``[p]`` the candidates' scores (the input's dtype).
        dense: ``[r]`` int64 rows, ascending, whose candidates are *not* listed: too many
            items pass the filter (ties, or a large slack); select them over the full row.
    """

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    dense: np.ndarray


def _n_groups(n_items: int, k: int) -> int:
    """Groups of the filter: enough that the k-th group maximum is tight, few enough to partition cheaply."""
    return int(min(n_items // 2, max(4 * k + 8, np.sqrt(4.0 * k * n_items))))


def top_k_candidates(scores: np.ndarray, k: int, *, slack: np.ndarray | float | None = None) -> Candidates:
    """Every item that can be among its row's ``k`` best, found without sorting or partitioning whole rows.

    Method: the items are split into ``g`` groups by ``item mod g`` (``g`` about
    ``sqrt(4 k n_items)``); one vectorised pass takes each group's maximum. The k-th
    largest group maximum ``t`` is reached by at least ``k`` items, so the row's
    k-th best score is ``>= t``; only the groups whose maximum is ``>= t - slack``
    are read again, and their items scoring ``>= t - slack`` are the candidates.
    With ``slack = 0`` they hold the row's top k and every item tied with its k-th
    score; with ``slack >= 2 e`` they hold the top k of any scores within ``e`` of
    these (the exact index's float32 filter with an error bound ``e``).

    Items scoring ``-inf`` are never candidates. A row with fewer than ``k`` other
    items has all of them as candidates.

    Args:
        scores: ``[n_rows, n_items]`` float scores, higher is better, no NaN. Not modified.
        k: Best items wanted per row (>= 1; capped at ``n_items``).
        slack: Optional ``[n_rows]`` (or scalar) non-negative margin below the threshold.

    Returns:
        :class:`Candidates`; grain one (row, item) pair, plus the rows left dense.

    Raises:
        ValueError: On a bad shape, ``k < 1`` or NaN scores.
    """
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be [n_rows, n_items], got shape {s.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n_rows, n_items = s.shape
    kk = min(k, n_items)
    empty = np.empty(0, dtype=np.int64)
    if n_rows == 0 or n_items == 0:
        return Candidates(empty, empty, np.empty(0, s.dtype), empty)
    if n_items < max(_MIN_GROUPED_ITEMS, 4 * (4 * kk + 8)):
        if np.isnan(s).any():
            raise ValueError("scores contain NaN")
        return Candidates(empty, empty, np.empty(0, s.dtype), np.arange(n_rows, dtype=np.int64))

    ng = _n_groups(n_items, kk)
    per = n_items // ng  # whole "rows" of ng items; the last n_items - per * ng items form a partial one
    full = per * ng
    gmax = s[:, :full].reshape(n_rows, per, ng).max(axis=1)  # [n_rows, ng]; NaN propagates
    if full < n_items:
        np.maximum(gmax[:, : n_items - full], s[:, full:], out=gmax[:, : n_items - full])
    if np.isnan(gmax).any():
        raise ValueError("scores contain NaN")
    t = np.partition(gmax, ng - kk, axis=1)[:, ng - kk]  # [n_rows] k-th largest group maximum
    if slack is not None:
        t = t - np.asarray(slack, dtype=t.dtype)
    keep_group = (gmax >= t[:, None]) & (gmax > -np.inf)
    n_kept = np.count_nonzero(keep_group, axis=1)
    dense = n_kept > _MAX_GROUPS_PER_K * kk + _MAX_GROUPS_EXTRA
    if dense.any():
        keep_group[dense] = False
    g_rows, g_ids = np.nonzero(keep_group)  # row-major: rows ascending
    depth = per + (full < n_items)
    cols = g_ids[:, None] + ng * np.arange(depth, dtype=np.int64)[None, :]  # [groups, depth] items of each group
    inside = cols < n_items
    vals = s[g_rows[:, None], np.minimum(cols, n_items - 1)]
    ok = inside & (vals >= t[g_rows][:, None]) & (vals > -np.inf)
    return Candidates(
        np.broadcast_to(g_rows[:, None], cols.shape)[ok].astype(np.int64, copy=False),
        cols[ok],
        vals[ok],
        np.flatnonzero(dense).astype(np.int64),
    )


def _top_k_dense(s: np.ndarray, kk: int) -> np.ndarray:
    """``[n_rows, kk]`` best items of every row of ``s`` by partitioning whole rows (ties: lower index; -inf: -1).

    Method: ``np.partition`` gives each row's k-th largest score ``t`` (measured 3-4x
    faster here than ``np.argpartition``, which also picks arbitrarily among items tied
    at ``t``); the items scoring above ``t`` plus the lowest-indexed items scoring
    exactly ``t`` are the row's top k, which a stable sort then orders by score.
    """
    n_rows, n_items = s.shape
    kth = np.partition(s, n_items - kk, axis=1)[:, n_items - kk]  # [n_rows] k-th largest score
    take = s >= kth[:, None]
    tied = np.flatnonzero(np.count_nonzero(take, axis=1) > kk)
    if tied.size:  # more items reach the k-th score than there are slots: keep the lowest-indexed tied ones
        sub, t = s[tied], kth[tied][:, None]
        above, eq = sub > t, sub == t
        need = kk - np.count_nonzero(above, axis=1)
        take[tied] = above | (eq & (np.cumsum(eq, axis=1) <= need[:, None]))
    cand = np.nonzero(take)[1].reshape(n_rows, kk)  # row-major: kk per row, by ascending index
    rows = np.arange(n_rows)[:, None]
    order = np.argsort(-s[rows, cand], axis=1, kind="stable")  # stable: equal scores stay by index
    top = np.take_along_axis(cand, order, axis=1)
    top[np.isneginf(s[rows, top])] = -1
    return top


def first_k_per_row(rows: np.ndarray, values: np.ndarray, n_rows: int, k: int, *, fill: float | int = -1) -> np.ndarray:
    """``[n_rows, k]``: the first ``k`` entries of each row of flat pairs sorted by row (``fill`` where fewer).

    Args:
        rows: ``[p]`` row of each entry, ascending (entries of a row in their wanted order).
        values: ``[p]`` the value to place (an item index, a distance); sets the output dtype.
        n_rows: Rows of the output.
        k: Columns of the output.
        fill: Value of the empty slots.
    """
    out = np.full((n_rows, k), fill, dtype=values.dtype)
    if rows.size == 0:
        return out
    counts = np.bincount(rows, minlength=n_rows)
    starts = np.cumsum(counts) - counts
    rank = np.arange(rows.size) - starts[rows]
    keep = rank < k
    out[rows[keep], rank[keep]] = values[keep]
    return out


def top_k_items(scores: np.ndarray, k: int, *, exclude: list[np.ndarray] | None = None) -> np.ndarray:
    """Each row's ``k`` best-scored items, best first.

    Ties are broken by the lower item index, so the result is deterministic.
    Items listed in ``exclude[u]`` get score ``-inf`` for row ``u``; an item with
    score ``-inf`` (excluded, or given as ``-inf``) is never returned: when a row
    has fewer than ``k`` eligible items, its remaining slots are ``-1``.

    Method: :func:`top_k_candidates` (one pass of group maxima, then only the few
    groups that can hold a top-k item are read again); the candidates, about ``k``
    a row, are sorted by (score descending, index). Rows with many ties at their
    k-th score, and catalogues too small to group, are selected by partitioning
    whole rows. Float32 scores are used as they are (no float64 copy).

    Args:
        scores: ``[n_users, n_items]`` float scores (higher is better; no NaN).
            Not modified.
        k: Items per row (>= 1).
        exclude: Optional list of length ``n_users``; ``exclude[u]`` is an int
            array of item indices not to recommend to row ``u`` (e.g. seen items).

    Returns:
        ``[n_users, k]`` int64 item indices, best first, ``-1`` for empty slots.

    Raises:
        ValueError: On a bad shape, ``k < 1``, NaN scores or a bad ``exclude``.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [n_users, n_items], got shape {scores.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n_users, n_items = scores.shape
    s = scores if np.issubdtype(scores.dtype, np.floating) else scores.astype(np.float64)
    if exclude is not None:
        if len(exclude) != n_users:
            raise ValueError(f"exclude must have one entry per row ({n_users}), got {len(exclude)}")
        lens = np.fromiter((len(e) for e in exclude), dtype=np.int64, count=n_users)
        if lens.sum():
            cols = np.concatenate([np.asarray(e, dtype=np.int64).ravel() for e in exclude])
            if cols.min() < 0 or cols.max() >= n_items:
                raise ValueError("exclude holds item indices outside [0, n_items)")
            s = s.copy() if s is scores else s  # the caller's scores stay as they were
            s[np.repeat(np.arange(n_users), lens), cols] = -np.inf
    kk = min(k, n_items)
    out = np.full((n_users, k), -1, dtype=np.int64)
    if n_users == 0 or kk == 0:
        return out

    cand = top_k_candidates(s, kk)
    order = np.lexsort((cand.cols, -cand.values, cand.rows))  # by row, score descending, then index
    out[:, :kk] = first_k_per_row(cand.rows[order], cand.cols[order], n_users, kk)
    if cand.dense.size:
        out[cand.dense, :kk] = _top_k_dense(s[cand.dense], kk)
    return out

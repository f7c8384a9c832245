"""How each user's final list is built: a greedy walk under a per-genre cap, with an optional MMR re-rank.

Both walks work on a block of users at once, as padded matrices:

* ``items`` ``[n_users, width]``: each user's allowed candidates, best first (model score
  descending, ties by the smaller item index), ``-1`` after the last one;
* ``relevance`` ``[n_users, width]`` (MMR only): the score normalised per user to [0, 1].

The walk repeatedly takes the user's *next* candidate (the next in order, or under MMR the
remaining one with the highest MMR value); if one of its genres already has ``genre_cap``
items in the list it is *skipped* (and never reconsidered: counts only grow), otherwise it is
appended. It stops when the list has ``top_k`` items or the candidates run out. An item with
no genre is never capped. Candidates the walk never reached are *cut*.

MMR value of a remaining candidate ``i`` given the list ``S`` so far (Carbonell & Goldstein, 1998):
``(1 - w) * relevance[i] - w * max(sim(i, j) for j in S)`` (the max is 0 while ``S`` is empty),
``sim`` = cosine of the items' genre multi-hot vectors (0 for an item without genres); ties go
to the smaller item index.
"""

from __future__ import annotations

import numpy as np

_CHUNK_CELLS = 1 << 22
"""Most ``users x width x genres`` cells the MMR walk holds at once (bounds its memory)."""


def genre_flags(item_genres: np.ndarray) -> np.ndarray:
    """``[n_items + 1, n_genres]`` bool: the item has the genre; the extra last row (index -1) is all False.

    Args:
        item_genres: ``[n_items, n_genres]`` multi-hot genres (any value > 0 counts).
    """
    flags = np.asarray(item_genres) > 0
    return np.vstack([flags, np.zeros((1, flags.shape[1]), dtype=bool)])


def unit_genres(item_genres: np.ndarray) -> np.ndarray:
    """``[n_items + 1, n_genres]`` float32 genre vectors scaled to unit length (rows without genres stay 0).

    Their dot products are the cosine similarities the MMR uses; the extra last row (index -1) is 0.

    Args:
        item_genres: ``[n_items, n_genres]`` multi-hot genres (any value > 0 counts).
    """
    flags = genre_flags(item_genres).astype(np.float32)
    norms = np.linalg.norm(flags, axis=1, keepdims=True)
    return np.divide(flags, norms, out=np.zeros_like(flags), where=norms > 0)


def cap_walk(items: np.ndarray, *, top_k: int, flags: np.ndarray, genre_cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Each user's list: their candidates in order, skipping those that would break the genre cap.

    Args:
        items: ``[n_users, width]`` item indices, each row best first, ``-1`` padding at the end.
        top_k: Most items per list.
        flags: ``[n_items + 1, n_genres]`` from :func:`genre_flags`.
        genre_cap: Most items of one genre per list (0: no cap).

    Returns:
        ``ranks`` ``[n_users, width]`` int32: the candidate's rank in the list (1..), 0 if not
        chosen; ``skipped`` ``[n_users]`` int64: candidates skipped by the cap.
    """
    n_users, width = items.shape
    ranks = np.zeros((n_users, width), dtype=np.int32)
    skipped = np.zeros(n_users, dtype=np.int64)
    if genre_cap <= 0:
        valid = items >= 0
        order = np.cumsum(valid, axis=1, dtype=np.int32)
        ranks[valid & (order <= top_k)] = order[valid & (order <= top_k)]
        return ranks, skipped
    count = np.zeros(n_users, dtype=np.int32)
    held = np.zeros((n_users, flags.shape[1]), dtype=np.int32)
    rows = np.arange(n_users)
    for c in range(width):
        rows = rows[(items[rows, c] >= 0) & (count[rows] < top_k)]
        if rows.size == 0:
            break
        f = flags[items[rows, c]]
        over = (f & (held[rows] >= genre_cap)).any(axis=1)
        skipped[rows[over]] += 1
        take = rows[~over]
        count[take] += 1
        ranks[take, c] = count[take]
        held[take] += f[~over]
    return ranks, skipped


def mmr_walk(
    items: np.ndarray,
    relevance: np.ndarray,
    *,
    top_k: int,
    flags: np.ndarray,
    unit: np.ndarray,
    genre_cap: int,
    mmr_weight: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's list by greedy MMR, skipping candidates that would break the genre cap.

    Costs about ``(top_k + skipped)`` steps of ``n_users x width x n_genres`` work.

    Args:
        items: ``[n_users, width]`` item indices, ``-1`` padding (any order; ties go to the smaller index).
        relevance: ``[n_users, width]`` finite relevance in [0, 1] (padding cells are ignored).
        top_k: Most items per list.
        flags: ``[n_items + 1, n_genres]`` from :func:`genre_flags`.
        unit: ``[n_items + 1, n_genres]`` from :func:`unit_genres`.
        genre_cap: Most items of one genre per list (0: no cap).
        mmr_weight: Weight ``w`` of diversity, in [0, 1).

    Returns:
        ``ranks`` ``[n_users, width]`` int32 (1.. in the order chosen, 0 if not chosen) and
        ``skipped`` ``[n_users]`` int64, as :func:`cap_walk`.
    """
    n_users, width = items.shape
    ranks = np.zeros((n_users, width), dtype=np.int32)
    skipped = np.zeros(n_users, dtype=np.int64)
    chunk = max(1, _CHUNK_CELLS // max(1, width * unit.shape[1]))
    big = np.iinfo(np.int64).max
    for lo in range(0, n_users, chunk):
        it = items[lo : lo + chunk].astype(np.int64)
        vec = unit[it]
        base = (1.0 - mmr_weight) * np.asarray(relevance[lo : lo + chunk], dtype=np.float64)
        penalty = np.zeros(it.shape, dtype=np.float64)
        remaining = it >= 0
        count = np.zeros(it.shape[0], dtype=np.int32)
        held = np.zeros((it.shape[0], flags.shape[1]), dtype=np.int32)
        out = ranks[lo : lo + chunk]
        miss = skipped[lo : lo + chunk]
        while True:
            rows = np.flatnonzero((count < top_k) & remaining.any(axis=1))
            if rows.size == 0:
                break
            left = remaining[rows]
            value = np.where(left, base[rows] - mmr_weight * penalty[rows], -np.inf)
            best = value.max(axis=1, keepdims=True)
            pick = np.where(left & (value == best), it[rows], big).argmin(axis=1)
            f = flags[it[rows, pick]]
            over = (f & (held[rows] >= genre_cap)).any(axis=1) if genre_cap > 0 else np.zeros(rows.size, bool)
            remaining[rows, pick] = False
            miss[rows[over]] += 1
            take, at = rows[~over], pick[~over]
            count[take] += 1
            out[take, at] = count[take]
            held[take] += f[~over]
            sim = np.matmul(vec[take], vec[take, at][:, :, None])[:, :, 0]
            penalty[take] = np.maximum(penalty[take], sim)
    return ranks, skipped

"""What the candidate sources read, built from plain arrays once per run (pure functions, no I/O)."""

from __future__ import annotations

import numpy as np

from recsys.retrieval.user_items import UserItems


def recent_lists(user_idx: np.ndarray, item_idx: np.ndarray, ts: np.ndarray, n_users: int, n_recent: int) -> UserItems:
    """Each user's ``n_recent`` latest rated items, latest first (ties on ``ts`` by item index).

    Args:
        user_idx: ``[n]`` users of the rated pairs; grain one (user, item).
        item_idx: ``[n]`` items.
        ts: ``[n]`` rating times.
        n_users: Users of the index space.
        n_recent: Items kept per user.
    """
    u, i, t = np.asarray(user_idx, np.int64), np.asarray(item_idx, np.int64), np.asarray(ts)
    o = np.lexsort((i, -t.astype(np.float64), u))
    u, i = u[o], i[o]
    starts = np.r_[0, np.flatnonzero(u[1:] != u[:-1]) + 1] if u.size else np.zeros(0, np.int64)
    rank = np.arange(u.size) - np.repeat(starts, np.diff(np.r_[starts, u.size])) if u.size else u
    keep = rank < n_recent
    return UserItems.from_pairs(u[keep], i[keep], n_users, order=rank[keep])


def top_genres(genre_counts: np.ndarray, n: int) -> UserItems:
    """Each user's ``n`` most-watched genres, most first (ties by genre index; genres watched 0 times never).

    Args:
        genre_counts: ``[n_users, n_genres]`` training ratings per genre (``user_features.genre_counts``).
        n: Genres kept per user.
    """
    counts = np.asarray(genre_counts, dtype=np.float64)
    n_users, n_genres = counts.shape
    if n_genres == 0:
        return UserItems(np.zeros(n_users + 1, np.int64), np.zeros(0, np.int64))
    order = np.argsort(-counts, axis=1, kind="stable")[:, : min(n, n_genres)]
    top = np.take_along_axis(counts, order, axis=1)
    users, pos = np.nonzero(top > 0)
    return UserItems.from_pairs(users, order[users, pos], n_users, order=pos)


def genre_rankings(
    item_genres: np.ndarray,
    n_ratings: np.ndarray,
    mean_rating: np.ndarray,
    eligible: np.ndarray,
    *,
    rank_by: str,
    min_ratings: int,
) -> list[np.ndarray]:
    """Per genre, its eligible items best first.

    Args:
        item_genres: ``[n_items, n_genres]`` multi-hot genres.
        n_ratings: ``[n_items]`` training ratings.
        mean_rating: ``[n_items]`` mean training rating (NaN without).
        eligible: ``[n_items]`` bool, items that may be proposed (in the catalogue, rated).
        rank_by: ``popularity`` (most ratings first) or ``mean_rating`` (highest mean first,
            among items with at least ``min_ratings`` ratings; ties by popularity).
        min_ratings: See ``rank_by``.

    Returns:
        One int64 array per genre; ties by item index.
    """
    g = np.asarray(item_genres) > 0
    n = np.asarray(n_ratings, dtype=np.float64)
    ok = np.asarray(eligible, dtype=bool)
    idx = np.arange(n.size)
    if rank_by == "popularity":
        order = np.lexsort((idx, -n))
    elif rank_by == "mean_rating":
        ok = ok & (n >= min_ratings)
        order = np.lexsort((idx, -n, -np.nan_to_num(np.asarray(mean_rating, dtype=np.float64), nan=-np.inf)))
    else:
        raise ValueError(f"rank_by must be popularity or mean_rating, got {rank_by!r}")
    order = order[ok[order]]
    return [order[g[order, j]].astype(np.int64) for j in range(g.shape[1])]


def segments(user_tokens: list[list[str]], n_users: int) -> tuple[np.ndarray, list[str]]:
    """Each user's segment: their country where the data has countries, else their gender and age band.

    Args:
        user_tokens: Per user (index = user_idx), their demographic tokens (``country=US``,
            ``gender=F``, ``age=25-34``, ...; ``feature_vocab`` values).
        n_users: Users of the index space.

    Returns:
        ``([n_users] segment index, -1 without one; segment names)``, names sorted.
    """
    has_country = any(t.startswith("country=") for tokens in user_tokens for t in tokens)
    prefixes = ("country=",) if has_country else ("gender=", "age=")
    keys = []
    for tokens in user_tokens:
        chosen = sorted(t for t in tokens if t.startswith(prefixes))
        keys.append(", ".join(chosen) if len(chosen) == len(prefixes) else "")
    keys += [""] * (n_users - len(keys))
    names = sorted({k for k in keys if k})
    at = {k: j for j, k in enumerate(names)}
    return np.array([at.get(k, -1) for k in keys], dtype=np.int64), names


def segment_rankings(
    user_segment: np.ndarray,
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    eligible: np.ndarray,
    n_segments: int,
    head: int,
) -> list[np.ndarray]:
    """Per segment, the ``head`` eligible items its users rated most, most first (ties by item index).

    Args:
        user_segment: ``[n_users]`` segment per user (-1 none).
        user_idx: ``[n]`` training pairs' users.
        item_idx: ``[n]`` their items.
        eligible: ``[n_items]`` bool, items that may be proposed.
        n_segments: Segments.
        head: Items kept per segment.
    """
    u, i = np.asarray(user_idx, np.int64), np.asarray(item_idx, np.int64)
    seg = user_segment[u]
    ok = (seg >= 0) & np.asarray(eligible, bool)[i]
    n_items = eligible.size
    keys, counts = np.unique(seg[ok] * n_items + i[ok], return_counts=True)  # sparse: no [segments, items] matrix
    key_seg, key_item = keys // n_items, keys % n_items
    o = np.lexsort((key_item, -counts, key_seg))
    key_seg, key_item = key_seg[o], key_item[o]
    bounds = np.searchsorted(key_seg, np.arange(n_segments + 1))
    return [key_item[bounds[s] : bounds[s + 1]][:head].astype(np.int64) for s in range(n_segments)]

"""Candidate sources: each proposes, for a block of users, up to its quota of unseen items (with a reason detail).

A source is a small function ``(data, users) -> Proposals`` over one block of users:

* ``similar``: the nearest items of each of the user's latest rated items (``detail`` = that rated item);
* ``genre``: the top items of each of the user's most-watched genres (``detail`` = the genre);
* ``segment``: the most popular items among users of the user's segment (``detail`` = the segment);
* ``embedding``: the items nearest to the user's vector (the ranking model's, through the index);
* ``new``: items with features but no ratings, nearest to the user by the two-tower model;
* ``popular``: the global fallback, so every user, with or without history, has candidates.

Seen items are never proposed. :data:`SOURCES` is their fixed order (of reasons and of the
``source`` column, e.g. ``similar+popular``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from recsys.retrieval.user_items import UserItems

SOURCES: tuple[str, ...] = ("similar", "genre", "segment", "embedding", "new", "popular")
"""Every candidate source, in the order reasons and the ``source`` column name them."""


@dataclass(frozen=True)
class Proposals:
    """Items one source proposes to a block of users (flat arrays of one length ``m``).

    Attributes:
        row: ``[m]`` position of the user in the block.
        item: ``[m]`` item index.
        order: ``[m]`` rank within the source for that user (0 = its best).
        detail: ``[m]`` what the reason names: the rated item (``similar``), the genre
            (``genre``), the segment (``segment``), -1 otherwise.
    """

    row: np.ndarray
    item: np.ndarray
    order: np.ndarray
    detail: np.ndarray

    @classmethod
    def empty(cls) -> Proposals:
        """No proposals."""
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z, z)

    def __len__(self) -> int:
        return int(self.row.size)


@dataclass(frozen=True)
class Quotas:
    """Most candidates per user of each source (0 turns a source off)."""

    similar: int = 100
    genre: int = 30
    segment: int = 20
    embedding: int = 50
    new: int = 10
    popular: int = 50

    def scaled(self, factor: float) -> Quotas:
        """Every quota times ``factor`` (at least 1 where it was on): the retrieval-size experiment's knob."""
        return Quotas(**{k: max(1, round(v * factor)) if v else 0 for k, v in self.__dict__.items()})

    @property
    def total(self) -> int:
        """Most candidates a user can get."""
        return sum(self.__dict__.values())


Retrieve = Callable[[np.ndarray, int], np.ndarray]
"""``retrieve(users [b], k) -> [b, k]`` item ids nearest each user, best first (-1 pads)."""


@dataclass
class SourceData:
    """What the sources read, built once per run (no per-user frames).

    Attributes:
        n_items: Items of the index space.
        seen: Every item each user has rated (never proposed).
        recent: Each user's latest rated items, latest first (seeds ``similar``).
        neighbors: ``[n_items, k]`` nearest items of each item (-1 pads).
        popular: Item indices, most popular first (the catalogue's rated items).
        user_genres: Each user's most-watched genres, most first.
        genre_items: Per genre, its items best first.
        user_segment: ``[n_users]`` segment of each user (-1: none).
        segment_items: Per segment, its items most popular first.
        retrieve: Nearest items to the users' vectors (``embedding``), or None.
        new_items: ``[n_new]`` items with features but no ratings.
        new_scores: ``users [b] -> [b, n_new]`` scores of ``new_items`` (two-tower), or None.
        quotas: Per-source quotas.
    """

    n_items: int
    seen: UserItems
    recent: UserItems
    neighbors: np.ndarray
    popular: np.ndarray
    user_genres: UserItems | None = None
    genre_items: list[np.ndarray] = field(default_factory=list)
    user_segment: np.ndarray | None = None
    segment_items: list[np.ndarray] = field(default_factory=list)
    retrieve: Retrieve | None = None
    new_items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    new_scores: Callable[[np.ndarray], np.ndarray] | None = None
    quotas: Quotas = field(default_factory=Quotas)


def _group_rank(group: np.ndarray) -> np.ndarray:
    """``[m]`` position of each row within its run of equal ``group`` values (rows sorted by group)."""
    if group.size == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1]
    return np.arange(group.size) - np.repeat(starts, np.diff(np.r_[starts, group.size]))


def _unseen(data: SourceData, users: np.ndarray, row: np.ndarray, item: np.ndarray) -> np.ndarray:
    """``[m]`` bool: ``item`` is a real item (not a -1 pad) that user ``users[row]`` has not rated."""
    return (item >= 0) & ~data.seen.contains(users[row], np.maximum(item, 0), data.n_items)


def _unseen_first(
    data: SourceData, users: np.ndarray, row: np.ndarray, item: np.ndarray, group: np.ndarray, quota: int
) -> np.ndarray:
    """Mask of the rows kept: unseen, and within the first ``quota`` of their ``group`` (rows in group order)."""
    keep = _unseen(data, users, row, item)
    idx = np.flatnonzero(keep)
    keep[idx[_group_rank(group[idx]) >= quota]] = False
    return keep


def _from_lists(
    data: SourceData, users: np.ndarray, row: np.ndarray, lists: list[np.ndarray], which: np.ndarray, quota: int
) -> Proposals:
    """The first ``quota`` unseen items of list ``which[p]`` for user ``row[p]``, for every pair ``p``.

    Walks each list's head; the few pairs left short by heavy users walk further (the head
    grows fourfold each round), so memory stays about ``pairs x (2 quota + 16)`` rows.
    """
    pair_row, pair_list = np.asarray(row, np.int64), np.asarray(which, np.int64)
    if pair_row.size == 0 or not lists or quota <= 0:
        return Proposals.empty()
    sizes = np.array([len(x) for x in lists], dtype=np.int64)
    flat = np.concatenate([np.asarray(x, np.int64) for x in lists])
    start = np.r_[0, np.cumsum(sizes)[:-1]]
    walked = np.zeros(pair_row.size, dtype=np.int64)
    found = np.zeros(pair_row.size, dtype=np.int64)
    pairs = np.arange(pair_row.size)
    out: list[Proposals] = []
    head = 2 * quota + 16
    while pairs.size:
        lo = walked[pairs]
        hi = np.maximum(np.minimum(head, sizes[pair_list[pairs]]), lo)
        n = hi - lo
        p = np.repeat(pairs, n)
        pos = np.arange(p.size) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
        items = flat[start[pair_list[p]] + pos]
        idx = np.flatnonzero(_unseen(data, users, pair_row[p], items))
        idx = idx[_group_rank(p[idx]) < quota - found[p[idx]]]
        out.append(Proposals(pair_row[p[idx]], items[idx], pos[idx], pair_list[p[idx]]))
        found += np.bincount(p[idx], minlength=found.size)
        walked[pairs] = hi
        pairs = pairs[(found[pairs] < quota) & (hi < sizes[pair_list[pairs]])]
        head *= 4
    return _concat(out)


def _concat(parts: list[Proposals]) -> Proposals:
    parts = [p for p in parts if len(p)]
    if not parts:
        return Proposals.empty()
    return Proposals(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("row", "item", "order", "detail")))


def similar(data: SourceData, users: np.ndarray) -> Proposals:
    """Neighbours of each user's latest items, latest anchor first (``detail`` = the anchor)."""
    quota = data.quotas.similar
    if quota <= 0 or data.neighbors.size == 0:
        return Proposals.empty()
    row, anchor, recency = data.recent.rows(users)
    if row.size == 0:
        return Proposals.empty()
    k = data.neighbors.shape[1]
    row_k = np.repeat(row, k)
    anchor_k = np.repeat(anchor, k)
    item = data.neighbors[np.minimum(anchor, data.neighbors.shape[0] - 1)].ravel()
    item = np.where(np.repeat(anchor < data.neighbors.shape[0], k), item, -1)
    order = np.repeat(recency * k, k) + np.tile(np.arange(k), row.size)
    # one proposal per (user, item): the latest anchor's (rows are by user, then order)
    o = np.lexsort((order, item, row_k))
    row_k, item, order, anchor_k = row_k[o], item[o], order[o], anchor_k[o]
    first = np.r_[True, (row_k[1:] != row_k[:-1]) | (item[1:] != item[:-1])]
    row_k, item, order, anchor_k = row_k[first], item[first], order[first], anchor_k[first]
    o = np.lexsort((order, row_k))
    row_k, item, order, anchor_k = row_k[o], item[o], order[o], anchor_k[o]
    keep = _unseen_first(data, users, row_k, item, row_k, quota)
    return Proposals(row_k[keep], item[keep], order[keep], anchor_k[keep])


def genre(data: SourceData, users: np.ndarray) -> Proposals:
    """The top unseen items of each of the user's most-watched genres (``detail`` = the genre).

    The quota is shared evenly by the user's genres (the first ones get the remainder).
    """
    quota = data.quotas.genre
    if quota <= 0 or data.user_genres is None or not data.genre_items:
        return Proposals.empty()
    row, g, pos = data.user_genres.rows(users)
    if row.size == 0:
        return Proposals.empty()
    n = np.bincount(row, minlength=users.size)[row]
    per = quota // n + (pos < quota % n)
    parts = [
        _from_lists(data, users, row[per == q], data.genre_items, g[per == q], int(q)) for q in np.unique(per) if q
    ]
    out = _concat(parts)
    return _dedupe_keep_first(out)


def segment(data: SourceData, users: np.ndarray) -> Proposals:
    """The most popular unseen items among the users of each user's segment (``detail`` = the segment)."""
    quota = data.quotas.segment
    if quota <= 0 or data.user_segment is None or not data.segment_items:
        return Proposals.empty()
    u = np.asarray(users, np.int64)
    seg = np.where((u >= 0) & (u < data.user_segment.size), data.user_segment[np.clip(u, 0, None)], -1)
    rows = np.flatnonzero(seg >= 0)
    return _from_lists(data, users, rows, data.segment_items, seg[rows], quota)


def popular(data: SourceData, users: np.ndarray) -> Proposals:
    """The most popular unseen items, for every user."""
    quota = data.quotas.popular
    if quota <= 0 or data.popular.size == 0:
        return Proposals.empty()
    out = _from_lists(data, users, np.arange(users.size), [data.popular], np.zeros(users.size, np.int64), quota)
    return Proposals(out.row, out.item, out.order, np.full(len(out), -1, np.int64))


def _from_ranked(data: SourceData, users: np.ndarray, ids: np.ndarray, quota: int) -> Proposals:
    """The first ``quota`` unseen ids of each row of ``ids`` ``[b, k]`` (-1 pads)."""
    b, k = ids.shape
    row = np.repeat(np.arange(b), k)
    item = ids.ravel().astype(np.int64)
    order = np.tile(np.arange(k), b)
    keep = _unseen_first(data, users, row, item, row, quota)
    return Proposals(row[keep], item[keep], order[keep], np.full(int(keep.sum()), -1, np.int64))


def embedding(data: SourceData, users: np.ndarray) -> Proposals:
    """The items nearest each user's vector through the index, unseen.

    Each user needs ``quota`` + their seen items' count fetched to be sure of ``quota`` unseen
    ones; users are grouped by that need rounded up to a power of two, one index query per
    group, so a block's heaviest user does not set everyone's fetch.
    """
    quota = data.quotas.embedding
    if quota <= 0 or data.retrieve is None or users.size == 0:
        return Proposals.empty()
    need = np.minimum(quota + data.seen.lengths(users), data.n_items)
    fetch = np.minimum(2 ** np.ceil(np.log2(np.maximum(need, 1))).astype(np.int64), data.n_items)
    parts = []
    for k in np.unique(fetch).tolist():
        pos = np.flatnonzero(fetch == k)
        p = _from_ranked(data, users[pos], data.retrieve(users[pos], int(k)), quota)
        parts.append(Proposals(pos[p.row], p.item, p.order, p.detail))
    if len(parts) == 1:
        return parts[0]
    row, item, order, detail = (
        np.concatenate([getattr(p, f) for p in parts]) for f in ("row", "item", "order", "detail")
    )
    o = np.lexsort((order, row))  # by user, then rank, as one query would give them
    return Proposals(row[o], item[o], order[o], detail[o])


def new(data: SourceData, users: np.ndarray) -> Proposals:
    """The new items (features, no ratings) the two-tower model puts first for each user."""
    from recsys.retrieval.topk import top_k_items

    quota = data.quotas.new
    if quota <= 0 or data.new_scores is None or data.new_items.size == 0 or users.size == 0:
        return Proposals.empty()
    top = top_k_items(np.asarray(data.new_scores(users), dtype=np.float64), min(quota, data.new_items.size))
    ids = np.where(top >= 0, data.new_items[np.maximum(top, 0)], -1)
    return _from_ranked(data, users, ids, quota)


def _dedupe_keep_first(p: Proposals) -> Proposals:
    """One proposal per (user, item) within a source: the best-ordered one."""
    if not len(p):
        return p
    o = np.lexsort((p.order, p.item, p.row))
    row, item = p.row[o], p.item[o]
    first = np.r_[True, (row[1:] != row[:-1]) | (item[1:] != item[:-1])]
    keep = o[first]
    keep = keep[np.lexsort((p.order[keep], p.row[keep]))]
    return Proposals(p.row[keep], p.item[keep], p.order[keep], p.detail[keep])


SOURCE_FUNCTIONS: dict[str, Callable[[SourceData, np.ndarray], Proposals]] = {
    "similar": similar,
    "genre": genre,
    "segment": segment,
    "embedding": embedding,
    "new": new,
    "popular": popular,
}
"""Each source's function, by name (in :data:`SOURCES` order)."""

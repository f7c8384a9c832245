"""Per-user item lists in compressed rows: what each user has seen, their recent items, their top genres.

A :class:`UserItems` holds, for users ``0..n_users-1``, one ordered array of item (or
genre) indices each, in one flat array with offsets (the CSR layout): a whole
population's history costs two integer arrays, and a block of users' lists is a
slice, never a frame of the whole population.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UserItems:
    """Ordered index lists per user.

    Attributes:
        indptr: ``[n_users + 1]`` offsets; user ``u``'s list is ``indices[indptr[u]:indptr[u + 1]]``.
        indices: ``[nnz]`` int64 indices, in each user's order.
    """

    indptr: np.ndarray
    indices: np.ndarray

    @classmethod
    def from_pairs(
        cls, user_idx: np.ndarray, item_idx: np.ndarray, n_users: int, *, order: np.ndarray | None = None
    ) -> UserItems:
        """Lists from ``(user, item)`` pairs, each user's items sorted by ``order`` (default: item index).

        Args:
            user_idx: ``[n]`` user indices in ``[0, n_users)``.
            item_idx: ``[n]`` item indices.
            n_users: Users of the index space.
            order: ``[n]`` sort key within a user (ascending; ties by item index).
        """
        u = np.asarray(user_idx, dtype=np.int64)
        i = np.asarray(item_idx, dtype=np.int64)
        if u.size and (u.min() < 0 or u.max() >= n_users):
            raise ValueError(f"user indices must lie in [0, {n_users})")
        perm = np.lexsort((i, u)) if order is None else np.lexsort((i, np.asarray(order), u))
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(u, minlength=n_users), out=indptr[1:])
        return cls(indptr, i[perm])

    @property
    def n_users(self) -> int:
        """Users of the index space."""
        return self.indptr.size - 1

    def lengths(self, users: np.ndarray) -> np.ndarray:
        """``[b]`` list lengths of ``users`` (0 for users beyond the index space)."""
        u = np.asarray(users, dtype=np.int64)
        inside = (u >= 0) & (u < self.n_users)
        out = np.zeros(u.size, dtype=np.int64)
        out[inside] = self.indptr[u[inside] + 1] - self.indptr[u[inside]]
        return out

    def rows(self, users: np.ndarray, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The lists of ``users`` as flat pairs.

        Args:
            users: ``[b]`` user indices.
            limit: Keep at most the first ``limit`` entries of each list.

        Returns:
            ``(position in users [m], index [m], position in the user's list [m])``.
        """
        u = np.asarray(users, dtype=np.int64)
        n = self.lengths(u)
        if limit is not None:
            n = np.minimum(n, limit)
        row = np.repeat(np.arange(u.size), n)
        pos = np.arange(row.size) - np.repeat(np.cumsum(n) - n, n)
        start = np.where((u >= 0) & (u < self.n_users), self.indptr[np.clip(u, 0, self.n_users - 1)], 0)
        return row, self.indices[np.repeat(start, n) + pos], pos

    def contains(self, user_idx: np.ndarray, item_idx: np.ndarray, n_items: int) -> np.ndarray:
        """``[m]`` bool: is ``item_idx[k]`` in the list of ``user_idx[k]``.

        Args:
            user_idx: ``[m]`` user indices.
            item_idx: ``[m]`` item indices in ``[0, n_items)``.
            n_items: Items of the index space (for the pair keys).
        """
        u = np.asarray(user_idx, dtype=np.int64)
        if u.size == 0:
            return np.zeros(0, dtype=bool)
        users = np.unique(u)
        row, idx, _ = self.rows(users)
        known = np.sort(users[row] * n_items + idx)
        if known.size == 0:
            return np.zeros(u.size, dtype=bool)
        keys = u * n_items + np.asarray(item_idx, dtype=np.int64)
        at = np.searchsorted(known, keys)
        return (at < known.size) & (known[np.minimum(at, known.size - 1)] == keys)

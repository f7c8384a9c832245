"""Baselines every model must beat: global mean, item mean, popularity."""

from __future__ import annotations

import numpy as np


def item_means(item_idx: np.ndarray, rating: np.ndarray, n_items: int) -> tuple[np.ndarray, float]:
    """Mean rating of each item over the observed pairs.

    Args:
        item_idx: ``[n_obs]`` item indices.
        rating: ``[n_obs]`` ratings.
        n_items: Number of items.

    Returns:
        ``([n_items] means, global mean)``; items without ratings get the global mean.
    """
    mu = float(rating.mean()) if rating.size else 0.0
    counts = np.bincount(item_idx, minlength=n_items).astype(np.float64)
    sums = np.bincount(item_idx, weights=rating, minlength=n_items)
    means = np.full(n_items, mu)
    np.divide(sums, counts, out=means, where=counts > 0)
    return means, mu


class GlobalMean:
    """Predicts the mean training rating for every pair."""

    def fit(self, user_idx: np.ndarray, item_idx: np.ndarray, rating: np.ndarray, n_users: int, n_items: int) -> GlobalMean:  # noqa: D102
        self.mu_ = float(np.mean(rating))
        return self

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:  # noqa: D102
        return np.full(len(user_idx), self.mu_)


class ItemMean:
    """Predicts each item's mean training rating; unknown items get the global mean."""

    def fit(self, user_idx: np.ndarray, item_idx: np.ndarray, rating: np.ndarray, n_users: int, n_items: int) -> ItemMean:  # noqa: D102
        self.means_, self.mu_ = item_means(np.asarray(item_idx), np.asarray(rating, dtype=np.float64), n_items)
        return self

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:  # noqa: D102
        item_idx = np.asarray(item_idx)
        known = item_idx < self.means_.size
        return np.where(known, self.means_[np.where(known, item_idx, 0)], self.mu_)


class Popularity:
    """Scores an item by its number of training ratings (the same for every user)."""

    def fit(self, user_idx: np.ndarray, item_idx: np.ndarray, rating: np.ndarray, n_users: int, n_items: int) -> Popularity:  # noqa: D102
        self.counts_ = np.bincount(np.asarray(item_idx), minlength=n_items).astype(np.float64)
        return self

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:  # noqa: D102
        item_idx = np.asarray(item_idx)
        known = item_idx < self.counts_.size
        return np.where(known, self.counts_[np.where(known, item_idx, 0)], 0.0)

    def ranking(self) -> np.ndarray:
        """``[n_items]`` item indices, most popular first (ties by index)."""
        return np.lexsort((np.arange(self.counts_.size), -self.counts_))

"""The recommender interface every model implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Recommender(Protocol):
    """A model that scores (user, item) pairs given dense indices.

    Indices at or beyond what the model was fitted on are unknown users or
    items; every implementation must still return a finite score for them
    (its documented fallback), never raise.
    """

    def fit(self, user_idx: np.ndarray, item_idx: np.ndarray, rating: np.ndarray, n_users: int, n_items: int) -> Recommender:
        """Fit on observed pairs.

        Args:
            user_idx: ``[n_obs]`` int user indices.
            item_idx: ``[n_obs]`` int item indices.
            rating: ``[n_obs]`` float ratings (or 0/1 labels).
            n_users: Number of users (indices are ``0..n_users-1``).
            n_items: Number of items.
        """
        ...

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """``[n]`` scores of the pairs ``(user_idx[k], item_idx[k])``."""
        ...

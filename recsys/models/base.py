"""The interfaces every model implements.

:class:`Recommender` is what a baseline fitted in memory offers (``fit`` then ``predict``);
:class:`TrainedModel` is what every model the pipeline trains, saves and serves offers,
whatever its kind (the registry's loaders return one). The model contract suite
(``tests/unit/test_model_contract.py``) checks every registered model against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Recommender(Protocol):
    """A model that scores (user, item) pairs given dense indices.

    Indices at or beyond what the model was fitted on are unknown users or
    items; every implementation must still return a finite score for them
    (its documented fallback), never raise.
    """

    def fit(self, user_idx: np.ndarray, item_idx: np.ndarray, rating: np.ndarray, n_users: int, n_items: int) -> Any:
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


@runtime_checkable
class TrainedModel(Protocol):
    """A fitted model of the registry: scores users and items by dense index, saves to a folder.

    Attributes:
        n_users: Users of the index space it was fitted on (``0..n_users-1``).
        n_items: Items of the index space.
        params: Its parameters (a frozen dataclass; ``asdict`` goes into the manifest).
        history: Training curves and choices, ``{name: [value per epoch or choice]}`` (JSON-able).

    Unknown indices (``>= n_users`` / ``>= n_items``) get the model's documented
    fallback score, finite, never an error. ``score_users(u)[k, j]`` equals
    ``predict([u[k]], [j])`` up to float rounding.
    """

    params: Any
    history: dict[str, Any]

    @property
    def n_users(self) -> int:
        """Users of the index space it was fitted on."""
        ...

    @property
    def n_items(self) -> int:
        """Items of the index space it was fitted on."""
        ...

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """``[n]`` float scores of the pairs ``(user_idx[k], item_idx[k])``."""
        ...

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """``[len(user_idx), n_items]`` float scores of every item for each user."""
        ...

    def save(self, path: Path) -> Path:
        """Write the model into folder ``path`` (created), ``params.json`` included; returns ``path``."""
        ...

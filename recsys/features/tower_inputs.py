"""Inputs of the two-tower model: feature-table rows -> fixed-length float vectors.

The transforms are fitted on the training split's feature tables and saved with
the model (:meth:`TowerPreprocessor.to_json`), so serving applies exactly the
same scaling and vocabularies.

User vector (grain: one user; ``user_features`` plus the recent-genre mix):

* ``demographics`` as given (one-hot; zeros where unknown);
* ``log1p(n_ratings)``, standardised; a 0/1 flag "has training ratings";
* ``mean_rating`` standardised by the mean and spread of the items' training mean ratings
  (``stats["rating"]``; 0 without ratings);
* per genre: the user's mean rating, centred and scaled the same way (0 where the genre has no
  rating), and the genre's share of the user's ratings;
* the genre mix of the user's ``recent`` latest training ratings (:func:`recent_genre_mix`).

Item vector (grain: one item; ``item_features``):

* ``year`` standardised, and a flag "year known" (0 and 0 where unknown);
* ``genres`` (multi-hot);
* ``log1p(n_ratings)`` standardised; ``mean_rating`` standardised (0 without ratings) and a flag;
* ``tags``: multi-hot over the ``max_tags`` tags most items carry (vocabulary fitted on training).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd


def _stack(values: pd.Series, width: int) -> np.ndarray:
    """``[n, width]`` float32 from a column of equal-length lists (``width`` 0: ``[n, 0]``)."""
    if width == 0 or values.empty:
        return np.zeros((len(values), width), dtype=np.float32)
    return np.stack([np.asarray(v, dtype=np.float32) for v in values.to_numpy()])


def _z(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    return ((x - mean) / (std if std > 0 else 1.0)).astype(np.float32)


def recent_genre_mix(ratings: pd.DataFrame, item_genres: np.ndarray, n_users: int, *, recent: int = 10) -> np.ndarray:
    """``[n_users, n_genres]`` genre shares among each user's ``recent`` latest ratings (zeros without any).

    Args:
        ratings: Training ratings with ``user_idx``, ``item_idx``, ``ts`` (grain: one rating).
        item_genres: ``[n_items, n_genres]`` multi-hot genres.
        n_users: Users of the index space.
        recent: Latest ratings per user that count (ties in ``ts`` broken by ``item_idx``).

    Returns:
        Rows that sum to 1 for users with rated items that have genres, else zeros.
    """
    n_genres = item_genres.shape[1]
    out = np.zeros((n_users, n_genres), dtype=np.float32)
    if ratings.empty or n_genres == 0:
        return out
    r = ratings.sort_values(["user_idx", "ts", "item_idx"], ascending=[True, False, False], kind="stable")
    r = r[r.groupby("user_idx").cumcount() < recent]
    np.add.at(out, r["user_idx"].to_numpy(), item_genres[r["item_idx"].to_numpy()])
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


@dataclass
class TowerPreprocessor:
    """Fitted scaling and vocabularies of both towers' inputs (see the module docstring).

    Attributes:
        n_demographics: Length of ``demographics``.
        n_genres: Number of genres.
        tags: Tag vocabulary (item vector order).
        stats: ``user_log_n``, ``item_log_n``, ``rating``, ``year`` -> ``[mean, std]``.
    """

    n_demographics: int = 0
    n_genres: int = 0
    tags: list[str] = field(default_factory=list)
    stats: dict[str, list[float]] = field(default_factory=dict)

    @property
    def user_dim(self) -> int:
        """Length of a user vector."""
        return self.n_demographics + 3 + 3 * self.n_genres

    @property
    def item_dim(self) -> int:
        """Length of an item vector."""
        return 2 + self.n_genres + 3 + len(self.tags)

    @classmethod
    def fit(cls, user_features: pd.DataFrame, item_features: pd.DataFrame, *, max_tags: int = 50) -> TowerPreprocessor:
        """Fit on the training split's ``user_features`` and ``item_features`` rows."""
        demo = len(user_features["demographics"].iloc[0]) if len(user_features) else 0
        genres = len(item_features["genres"].iloc[0]) if len(item_features) else 0
        counts: Counter[str] = Counter()
        for tags in item_features["tags"]:
            counts.update(set(tags))
        vocab = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_tags]]
        rated = item_features["mean_rating"].dropna().to_numpy(dtype=np.float64)
        years = item_features["year"].dropna().to_numpy(dtype=np.float64)

        def ms(x: np.ndarray) -> list[float]:
            return [float(x.mean()), float(x.std())] if x.size else [0.0, 1.0]

        stats = {
            "user_log_n": ms(np.log1p(user_features["n_ratings"].to_numpy(dtype=np.float64))),
            "item_log_n": ms(np.log1p(item_features["n_ratings"].to_numpy(dtype=np.float64))),
            "rating": ms(rated),
            "year": ms(years),
        }
        return cls(demo, genres, vocab, stats)

    def users(self, user_features: pd.DataFrame, recent_genres: np.ndarray | None = None) -> np.ndarray:
        """``[n, user_dim]`` float32 user vectors, in the row order of ``user_features``.

        Args:
            user_features: ``user_features`` rows.
            recent_genres: ``[n, n_genres]`` genre mix of recent ratings in the same row order (zeros if None).
        """
        n = len(user_features)
        n_ratings = user_features["n_ratings"].to_numpy(dtype=np.float64)
        has = (n_ratings > 0).astype(np.float32)[:, None]
        r_mean, r_std = self.stats["rating"]
        mean = user_features["mean_rating"].to_numpy(dtype=np.float64, na_value=np.nan)
        mean = np.where(np.isfinite(mean), _z(mean, r_mean, r_std), 0.0).astype(np.float32)[:, None]
        g_mean = _stack(user_features["genre_mean_rating"], self.n_genres)
        g_count = _stack(user_features["genre_counts"], self.n_genres)
        g_mean = np.where(g_count > 0, _z(g_mean, r_mean, r_std), 0.0).astype(np.float32)
        g_share = (g_count / np.maximum(n_ratings, 1.0)[:, None]).astype(np.float32)
        recent = np.zeros((n, self.n_genres), np.float32) if recent_genres is None else recent_genres
        parts = [
            _stack(user_features["demographics"], self.n_demographics),
            _z(np.log1p(n_ratings), *self.stats["user_log_n"])[:, None],
            has,
            mean,
            g_mean,
            g_share,
            np.asarray(recent, dtype=np.float32),
        ]
        return np.concatenate(parts, axis=1)

    def items(self, item_features: pd.DataFrame) -> np.ndarray:
        """``[n, item_dim]`` float32 item vectors, in the row order of ``item_features``."""
        year = item_features["year"].to_numpy(dtype=np.float64, na_value=np.nan)
        known = np.isfinite(year)
        n_ratings = item_features["n_ratings"].to_numpy(dtype=np.float64)
        mean = item_features["mean_rating"].to_numpy(dtype=np.float64, na_value=np.nan)
        rated = np.isfinite(mean)
        index = {t: k for k, t in enumerate(self.tags)}
        tags = np.zeros((len(item_features), len(self.tags)), dtype=np.float32)
        for row, values in enumerate(item_features["tags"]):
            for t in values:
                if t in index:
                    tags[row, index[t]] = 1.0
        parts = [
            np.where(known, _z(year, *self.stats["year"]), 0.0)[:, None].astype(np.float32),
            known.astype(np.float32)[:, None],
            _stack(item_features["genres"], self.n_genres),
            _z(np.log1p(n_ratings), *self.stats["item_log_n"])[:, None],
            np.where(rated, _z(mean, *self.stats["rating"]), 0.0)[:, None].astype(np.float32),
            rated.astype(np.float32)[:, None],
            tags,
        ]
        return np.concatenate(parts, axis=1)

    def user_history_columns(self) -> np.ndarray:
        """``[user_dim]`` bool: the columns that come from the user's ratings (all but demographics)."""
        out = np.ones(self.user_dim, dtype=bool)
        out[: self.n_demographics] = False
        return out

    def item_stats_columns(self) -> np.ndarray:
        """``[item_dim]`` bool: the columns that come from the item's ratings (count, mean, rated flag)."""
        out = np.zeros(self.item_dim, dtype=bool)
        start = 2 + self.n_genres
        out[start : start + 3] = True
        return out

    def cold_user(self) -> np.ndarray:
        """``[user_dim]`` the vector of a user without ratings and without demographics."""
        row = pd.DataFrame(
            {
                "user_idx": [0],
                "demographics": [[0.0] * self.n_demographics],
                "n_ratings": [0],
                "mean_rating": pd.array([None], dtype="Float64"),
                "genre_mean_rating": [[0.0] * self.n_genres],
                "genre_counts": [[0.0] * self.n_genres],
            }
        )
        return self.users(row)[0]

    def as_new_users(self, user_x: np.ndarray) -> np.ndarray:
        """``[n, user_dim]`` float32 user vectors ``[n, user_dim]`` with their rating-history columns replaced by
        a new user's (:meth:`cold_user`): what the users would look like with side data alone."""
        x = np.asarray(user_x, np.float32)
        return np.where(self.user_history_columns()[None, :], self.cold_user()[None, :], x).astype(np.float32)

    def cold_item(self) -> np.ndarray:
        """``[item_dim]`` the vector of an item without ratings (and no year, genres or tags)."""
        row = pd.DataFrame(
            {
                "item_idx": [0],
                "year": pd.array([None], dtype="Int32"),
                "genres": [[0.0] * self.n_genres],
                "n_ratings": [0],
                "mean_rating": pd.array([None], dtype="Float64"),
                "tags": [[]],
            }
        )
        return self.items(row)[0]

    def to_json(self) -> str:
        """Serialise (what :meth:`from_json` reads)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TowerPreprocessor:
        """Read :meth:`to_json`'s output."""
        return cls(**json.loads(text))

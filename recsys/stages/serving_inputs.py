"""The recommend stage's inputs: the lake's tables read once, and the candidate sources' data built from them."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import Settings
from recsys.lake import read_partition
from recsys.retrieval.source_inputs import genre_rankings, recent_lists, segment_rankings, segments, top_genres
from recsys.retrieval.sources import Quotas, Retrieve, SourceData
from recsys.retrieval.user_items import UserItems

logger = logging.getLogger(__name__)


@dataclass
class ServingTables:
    """The run's lake tables the recommend stage reads (each read once).

    Attributes:
        ratings: ``ratings`` (every split).
        users: ``users``.
        items: ``items``.
        similar: ``similar_items``.
        item_features: ``item_features``.
        user_features: ``user_features``.
        vocab: ``feature_vocab``.
    """

    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    similar: pd.DataFrame
    item_features: pd.DataFrame
    user_features: pd.DataFrame
    vocab: pd.DataFrame

    @classmethod
    def read(cls, settings: Settings, run_date: str) -> ServingTables:
        """Read the tables of the run's partitions."""
        names = ("ratings", "users", "items", "similar_items", "item_features", "user_features", "feature_vocab")
        return cls(*(read_partition(settings.lake, n, run_date) for n in names))

    @property
    def train(self) -> pd.DataFrame:
        """The training ratings."""
        return self.ratings[self.ratings["split"] == "train"]

    def genre_names(self) -> list[str]:
        """Genre names by genre index (``feature_vocab``)."""
        v = self.vocab[self.vocab["feature"] == "genre"].sort_values("index")
        return v["value"].tolist()

    def item_genre_matrix(self, n_items: int) -> np.ndarray:
        """``[n_items, n_genres]`` multi-hot genres (zeros for items without features)."""
        width = len(self.genre_names())
        out = np.zeros((n_items, width), dtype=np.float32)
        f = self.item_features
        if len(f) and width:
            idx = f["item_idx"].to_numpy()
            keep = idx < n_items
            out[idx[keep]] = np.stack([np.asarray(g, np.float32) for g in f["genres"][keep]])
        return out


def quotas(settings: Settings) -> Quotas:
    """The per-source quotas of the settings (``n_popular`` is the popular source's)."""
    r = settings.retrieval
    return Quotas(
        similar=r.similar_quota,
        genre=r.genre_quota,
        segment=r.segment_quota,
        embedding=r.embedding_quota,
        new=r.new_quota,
        popular=settings.n_popular,
    )


def popular_items(tables: ServingTables, n_items: int, allowed: np.ndarray) -> np.ndarray:
    """Catalogue items the policy allows, most training ratings first (ties by index): the fallback list."""
    counts = np.bincount(tables.train["item_idx"].to_numpy(), minlength=n_items).astype(np.float64)
    order = np.lexsort((np.arange(n_items), -counts))
    return order[allowed[order]].astype(np.int64)


def source_data(
    tables: ServingTables,
    settings: Settings,
    *,
    n_users: int,
    n_items: int,
    neighbors: np.ndarray,
    allowed: np.ndarray,
    history: pd.DataFrame,
    retrieve: Retrieve | None = None,
    new_items: np.ndarray | None = None,
    new_scores: Callable[[np.ndarray], np.ndarray] | None = None,
) -> SourceData:
    """The candidate sources' data of one run.

    Args:
        tables: The run's tables.
        settings: The run's settings (quotas, genres, ...).
        n_users: Users of the index space.
        n_items: Items of the index space.
        neighbors: ``[n_items, k]`` nearest items of each item (-1 pads).
        allowed: ``[n_items]`` items in the catalogue the policy allows (the lists of the
            popular, genre and segment sources hold only these).
        history: (user_idx, item_idx, ts) pairs that count as seen (every split when serving;
            the training split when measuring).
        retrieve: The ``embedding`` source's nearest items per user.
        new_items: Items with features but no ratings.
        new_scores: Their scores per user (two-tower).
    """
    u, i = history["user_idx"].to_numpy(np.int64), history["item_idx"].to_numpy(np.int64)
    seen = UserItems.from_pairs(u, i, n_users)
    recent = recent_lists(u, i, history["ts"].to_numpy(), n_users, settings.n_recent)
    train = tables.train
    r = settings.retrieval
    eligible = allowed & (np.bincount(train["item_idx"].to_numpy(), minlength=n_items)[:n_items] > 0)
    counts = np.zeros((n_users, 0), dtype=np.float32)
    uf = tables.user_features
    if len(uf):
        width = len(uf["genre_counts"].iloc[0])
        counts = np.zeros((n_users, width), dtype=np.float32)
        idx = uf["user_idx"].to_numpy()
        keep = idx < n_users
        if width:
            counts[idx[keep]] = np.stack([np.asarray(g, np.float32) for g in uf["genre_counts"][keep]])
    item_stats = tables.item_features.set_index("item_idx").reindex(np.arange(n_items))
    genre_lists = genre_rankings(
        tables.item_genre_matrix(n_items),
        item_stats["n_ratings"].fillna(0).to_numpy(np.float64),
        item_stats["mean_rating"].to_numpy(np.float64, na_value=np.nan),
        eligible,
        rank_by=r.genre_rank_by,
        min_ratings=r.genre_min_ratings,
    )
    tokens = demographic_tokens(tables, n_users)
    user_segment, names = segments(tokens, n_users)
    head = 4 * r.segment_quota + 200
    seg_lists = segment_rankings(
        user_segment, train["user_idx"].to_numpy(), train["item_idx"].to_numpy(), eligible, len(names), head
    )
    return SourceData(
        n_items=n_items,
        seen=seen,
        recent=recent,
        neighbors=neighbors,
        popular=popular_items(tables, n_items, allowed),
        user_genres=top_genres(counts, r.n_genres),
        genre_items=genre_lists,
        user_segment=user_segment,
        segment_items=seg_lists,
        retrieve=retrieve,
        new_items=np.zeros(0, np.int64) if new_items is None else np.asarray(new_items, np.int64),
        new_scores=new_scores,
        quotas=quotas(settings),
    )


def segment_names(tables: ServingTables, n_users: int) -> list[str]:
    """The segments' names, by segment index (as :func:`source_data` numbers them)."""
    return segments(demographic_tokens(tables, n_users), n_users)[1]


def demographic_tokens(tables: ServingTables, n_users: int) -> list[list[str]]:
    """Per user index, the demographic tokens of their one-hot ``user_features.demographics``."""
    vocab = tables.vocab[tables.vocab["feature"] == "demographic"].sort_values("index")["value"].to_numpy()
    out: list[list[str]] = [[] for _ in range(n_users)]
    uf = tables.user_features
    if not len(uf) or not vocab.size:
        return out
    demo = np.stack([np.asarray(d, np.float32) for d in uf["demographics"]])
    rows, cols = np.nonzero(demo > 0)
    users = uf["user_idx"].to_numpy()[rows]
    for user, token in zip(users.tolist(), vocab[cols].tolist(), strict=True):
        if user < n_users:
            out[user].append(token)
    return out


def with_quotas(data: SourceData, new: Quotas) -> SourceData:
    """The same data with other quotas."""
    return dataclasses.replace(data, quotas=new)


def neighbors_with_fallback(similar: pd.DataFrame, n_items: int, k: int, primary: str, fallback: str) -> np.ndarray:
    """``[n_items, k]`` neighbours by ``primary`` vectors, by ``fallback`` for items ``primary`` knows nothing of."""
    from recsys.retrieval.similar import neighbor_matrix

    out = neighbor_matrix(similar[similar["source"] == primary], n_items, k)
    other = neighbor_matrix(similar[similar["source"] == fallback], n_items, k)
    empty = (out < 0).all(axis=1)
    out[empty] = other[empty]
    return out


def info(data: SourceData) -> dict[str, Any]:
    """Sizes of the sources' inputs (logged once per run)."""
    return {
        "genres": len(data.genre_items),
        "segments": len(data.segment_items),
        "new_items": int(data.new_items.size),
        "popular": int(data.popular.size),
        "embedding": data.retrieve is not None,
    }

"""Deterministic synthetic MovieLens-like data with planted structure.

The generator plants what a good recommender should find:

* ``n_groups`` taste groups; each group loves a few genres and dislikes others.
  A user's rating of an item depends on their group's affinity for the item's
  genres, so collaborative filtering can recover the groups and beat item means.
* Popularity skew: item exposure follows a Zipf law, so popularity is a strong
  (but beatable) baseline.
* Users watch what they like more often (exposure is tilted by affinity).
* Side data with signal: age, gender and country depend on the group.

Everything derives from one seed: the same config gives byte-identical tables.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "IN", "BR", "JP", "CA")
OCCUPATIONS: tuple[str, ...] = ("student", "engineer", "artist", "educator", "healthcare", "other")
_ADJ = ("Silent", "Crimson", "Last", "Hidden", "Broken", "Golden", "Midnight", "Lost", "Wild",
        "Frozen", "Burning", "Electric", "Forgotten", "Distant", "Secret", "Iron")  # fmt: skip
_NOUN = ("River", "Empire", "Garden", "Signal", "Harbor", "Kingdom", "Mirror", "Voyage",
         "Storm", "Orchard", "Circuit", "Lantern", "Canyon", "Symphony", "Frontier", "Engine")  # fmt: skip
EPOCH_START = 883_612_800  # 1998-01-01, seconds
SPAN_SECONDS = 2 * 365 * 86_400


@dataclass(frozen=True)
class SyntheticData:
    """The three staged tables of a synthetic source.

    Attributes:
        ratings: ``stg_ratings`` rows (user_id, item_id, rating, ts); one row per rating.
        items: ``stg_items`` rows (item_id, title, year, genres).
        users: ``stg_users`` rows (user_id, age, gender, occupation, country).
        user_group: ``[n_users]`` planted taste group of each user (ground truth).
        affinity: ``[n_groups, n_genres]`` planted affinity of each group for each genre.
    """

    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    user_group: np.ndarray
    affinity: np.ndarray


def generate(
    *,
    n_users: int,
    n_items: int,
    n_groups: int,
    mean_ratings_per_user: float,
    min_ratings_per_user: int,
    seed: int,
) -> SyntheticData:
    """Generate a synthetic dataset.

    Args:
        n_users: Number of users.
        n_items: Number of items.
        n_groups: Number of planted taste groups.
        mean_ratings_per_user: Mean of the (log-normal) number of ratings per user.
        min_ratings_per_user: Floor on ratings per user (MovieLens uses 20).
        seed: Random seed.

    Returns:
        The staged tables plus the planted ground truth.
    """
    rng = np.random.default_rng(seed)
    n_genres = len(GENRES)

    # Items: 1-3 genres each, with skewed genre frequencies; Zipf popularity; quality.
    genre_p = rng.dirichlet(np.full(n_genres, 2.0))
    item_genres = np.zeros((n_items, n_genres), dtype=bool)
    n_g = rng.choice([1, 2, 3], size=n_items, p=[0.45, 0.4, 0.15])
    for i in range(n_items):
        item_genres[i, rng.choice(n_genres, size=n_g[i], replace=False, p=genre_p)] = True
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity = popularity[rng.permutation(n_items)]
    quality = rng.normal(0.0, 0.35, n_items)
    years = np.clip(np.round(rng.normal(1990, 15, n_items)), 1920, 2025).astype(np.int32)

    # Groups: each loves ~3 genres and dislikes ~3.
    affinity = np.zeros((n_groups, n_genres))
    for g in range(n_groups):
        picks = rng.permutation(n_genres)
        affinity[g, picks[:3]] = rng.uniform(1.0, 1.6, 3)
        affinity[g, picks[3:6]] = -rng.uniform(1.0, 1.6, 3)
    item_affinity = (item_genres @ affinity.T) / item_genres.sum(1, keepdims=True)  # [n_items, n_groups]

    # Users: group, bias, side data correlated with group.
    user_group = rng.integers(0, n_groups, n_users)
    user_bias = rng.normal(0.0, 0.3, n_users)
    group_age = rng.uniform(20, 55, n_groups)
    ages = np.clip(np.round(rng.normal(group_age[user_group], 6)), 13, 80).astype(np.int32)
    group_male = rng.uniform(0.25, 0.8, n_groups)
    genders = np.where(rng.random(n_users) < group_male[user_group], "M", "F")
    group_country = rng.integers(0, len(COUNTRIES), n_groups)
    country_idx = np.where(rng.random(n_users) < 0.5, group_country[user_group],
                           rng.integers(0, len(COUNTRIES), n_users))  # fmt: skip
    occupations = np.array(OCCUPATIONS)[rng.integers(0, len(OCCUPATIONS), n_users)]
    n_per_user = np.maximum(
        min_ratings_per_user,
        np.round(rng.lognormal(np.log(mean_ratings_per_user) - 0.3, 0.75, n_users)).astype(int),
    )
    n_per_user = np.minimum(n_per_user, n_items // 2)

    users_col, items_col, ratings_col = [], [], []
    log_pop = np.log(popularity)
    for u in range(n_users):
        g = user_group[u]
        # Gumbel top-k: sample without replacement with weights pop * exp(1.5 * affinity).
        keys = log_pop + 1.5 * item_affinity[:, g] + rng.gumbel(size=n_items)
        chosen = np.argpartition(-keys, n_per_user[u])[: n_per_user[u]]
        chosen.sort()
        mean = 3.3 + quality[chosen] + user_bias[u] + 0.9 * item_affinity[chosen, g]
        r = np.clip(np.round(mean + rng.normal(0.0, 0.6, chosen.size)), 1, 5)
        users_col.append(np.full(chosen.size, u))
        items_col.append(chosen)
        ratings_col.append(r)
    u_arr = np.concatenate(users_col)
    i_arr = np.concatenate(items_col)
    r_arr = np.concatenate(ratings_col)
    ts = EPOCH_START + rng.integers(0, SPAN_SECONDS, u_arr.size)

    ratings = pd.DataFrame(
        {
            "user_id": (u_arr + 1).astype(str),
            "item_id": (i_arr + 1).astype(str),
            "rating": r_arr.astype(np.float64),
            "ts": ts.astype(np.int64),
        }
    )
    titles = [
        f"{_ADJ[rng.integers(len(_ADJ))]} {_NOUN[rng.integers(len(_NOUN))]} {i + 1} ({years[i]})"
        for i in range(n_items)
    ]
    items = pd.DataFrame(
        {
            "item_id": [str(i + 1) for i in range(n_items)],
            "title": titles,
            "year": years,
            "genres": [[GENRES[k] for k in np.flatnonzero(row)] for row in item_genres],
        }
    )
    users = pd.DataFrame(
        {
            "user_id": [str(u + 1) for u in range(n_users)],
            "age": ages,
            "gender": genders,
            "occupation": occupations,
            "country": np.array(COUNTRIES)[country_idx],
        }
    )
    logger.info("synthetic data: %d users, %d items, %d ratings (seed %d)",
                n_users, n_items, len(ratings), seed)  # fmt: skip
    return SyntheticData(ratings, items, users, user_group, affinity)

"""Deterministic synthetic MovieLens-like data with planted structure, at any size.

The generator plants what a good recommender should find:

* ``n_groups`` taste groups; each group loves a few genres and dislikes others.
  A user's rating of an item depends on their group's affinity for the item's
  genres, so collaborative filtering can recover the groups and beat item means.
* Popularity skew: item exposure follows a Zipf law, so popularity is a strong
  (but beatable) baseline.
* Users watch what they like more often (exposure is tilted by affinity).
* Side data with signal: age, gender and country depend on the group.

Two entry points share one generator:

* :func:`generate` returns the three staged tables in memory (small data, tests).
* :func:`write_parquet` streams them to Parquet in chunks of users, so tens of
  millions of ratings fit in a few hundred MB of memory.

Determinism: the catalogue and the groups derive from ``seed`` alone. Users are
generated in fixed blocks of ``_BLOCK_USERS``; block ``b`` draws from its own
stream ``SeedSequence(seed, spawn_key=(1, b))`` and always generates the whole
block (users past ``n_users`` are dropped afterwards). So user ``u``'s side data
and ratings depend only on ``seed``, ``u`` and the catalogue parameters: never on
``n_users``, on the chunk size of :func:`write_parquet`, or on the entry point.

Exposure: user ``u`` of group ``g`` watches ``k_u`` distinct items, drawn without
replacement with weights ``popularity_i * exp(1.5 * affinity_ig)`` (successive
sampling, the same law as a Gumbel top-k). It is computed as "the first ``k_u``
distinct items of an i.i.d. stream from those weights", vectorised over a block
by inverse-CDF draws; users whose stream runs long (``k_u`` a large share of the
catalogue) are completed exactly by a Gumbel top-k over the items not yet drawn.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas import table

logger = logging.getLogger(__name__)

GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "IN", "BR", "JP", "CA")
OCCUPATIONS: tuple[str, ...] = ("student", "engineer", "artist", "educator", "healthcare", "other")
_ADJ = ("Silent", "Crimson", "Last", "Hidden", "Broken", "Golden", "Midnight", "Lost", "Wild",
        "Frozen", "Burning", "Electric", "Forgotten", "Distant", "Secret", "Iron")
_NOUN = ("River", "Empire", "Garden", "Signal", "Harbor", "Kingdom", "Mirror", "Voyage",
         "Storm", "Orchard", "Circuit", "Lantern", "Canyon", "Symphony", "Frontier", "Engine")
EPOCH_START = 883_612_800  # 1998-01-01, seconds
SPAN_SECONDS = 2 * 365 * 86_400

GENERATOR_VERSION = 2  # bump when the same parameters would give other data (invalidates _SUCCESS caches)
_BLOCK_USERS = 128  # users per random stream; part of the output's definition: changing it changes the data
_EXPOSURE_TILT = 1.5  # exposure weight pop * exp(_EXPOSURE_TILT * affinity)
_COUNT_SIGMA = 0.75  # log-normal sigma of ratings per user
_STREAM_MAX_SHARE = 0.1  # users wanting more than this share of the catalogue go straight to Gumbel top-k
_STREAM_ROUNDS = 3  # i.i.d. draw rounds before the Gumbel completion
_GUMBEL_CELLS = 2_000_000  # users x items per Gumbel batch (bounds memory)
_SUCCESS = "_SUCCESS"


@dataclass(frozen=True)
class SyntheticData:
    """The three staged tables of a synthetic source.

    Attributes:
        ratings: ``stg_ratings`` rows (user_id, item_id, rating, ts); one row per rating,
            sorted by user then item.
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


@dataclass(frozen=True)
class SyntheticFiles:
    """What :func:`write_parquet` wrote (or found already written).

    Attributes:
        root: The output folder.
        ratings: ``stg_ratings`` part files in user order, one per chunk of users.
        items: ``stg_items`` file.
        users: ``stg_users`` file.
        success: The ``_SUCCESS`` marker (JSON: parameters and counts).
        n_ratings: Rows over all rating parts.
        n_users: Users (rows of ``users``).
        n_items: Items (rows of ``items``).
        cached: True when an earlier run with the same parameters was reused.
    """

    root: Path
    ratings: tuple[Path, ...]
    items: Path
    users: Path
    success: Path
    n_ratings: int
    n_users: int
    n_items: int
    cached: bool


@dataclass(frozen=True)
class _Catalogue:
    """Everything shared by all users: items, groups and the exposure law.

    Attributes:
        item_genres: ``[n_items, n_genres]`` genre flags (1-3 per item).
        quality: ``[n_items]`` item rating offset.
        years: ``[n_items]`` release year.
        titles: ``[n_items]`` titles.
        affinity: ``[n_groups, n_genres]`` group affinity per genre.
        item_affinity: ``[n_items, n_groups]`` mean affinity over the item's genres.
        log_weight: ``[n_groups, n_items]`` log exposure weight (log popularity + tilt).
        stacked_cdf: ``[n_groups * n_items]`` group ``g``'s exposure CDF plus ``g``, concatenated
            (strictly increasing, so one ``searchsorted`` serves every group).
        group_age: ``[n_groups]`` mean age.
        group_male: ``[n_groups]`` share of men.
        group_country: ``[n_groups]`` favourite country index.
    """

    item_genres: np.ndarray
    quality: np.ndarray
    years: np.ndarray
    titles: list[str]
    affinity: np.ndarray
    item_affinity: np.ndarray
    log_weight: np.ndarray
    stacked_cdf: np.ndarray
    group_age: np.ndarray
    group_male: np.ndarray
    group_country: np.ndarray

    @property
    def n_items(self) -> int:
        return self.item_genres.shape[0]

    @property
    def n_groups(self) -> int:
        return self.affinity.shape[0]


@dataclass(frozen=True)
class _Users:
    """Users ``[start, stop)``: side data and ratings (ratings sorted by user, then item).

    Attributes:
        start: First user index (0-based).
        stop: One past the last user index.
        group: ``[stop - start]`` taste group.
        age: ``[stop - start]`` age.
        male: ``[stop - start]`` gender flag.
        occupation: ``[stop - start]`` index into :data:`OCCUPATIONS`.
        country: ``[stop - start]`` index into :data:`COUNTRIES`.
        user: ``[n]`` 0-based user index of each rating.
        item: ``[n]`` 0-based item index of each rating.
        rating: ``[n]`` rating in 1..5.
        ts: ``[n]`` seconds since the epoch.
    """

    start: int
    stop: int
    group: np.ndarray
    age: np.ndarray
    male: np.ndarray
    occupation: np.ndarray
    country: np.ndarray
    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    ts: np.ndarray

    def slice(self, lo: int, hi: int) -> _Users:
        """Users ``[lo, hi)`` (within ``[start, stop)``)."""
        a, b = lo - self.start, hi - self.start
        r0, r1 = np.searchsorted(self.user, [lo, hi])
        return _Users(lo, hi, self.group[a:b], self.age[a:b], self.male[a:b], self.occupation[a:b],
                      self.country[a:b], self.user[r0:r1], self.item[r0:r1], self.rating[r0:r1],
                      self.ts[r0:r1])

    def side_data(self) -> _Users:
        """The same users without their ratings (copies: keeps no chunk's ratings alive)."""
        attrs = (a.copy() for a in (self.group, self.age, self.male, self.occupation, self.country))
        empty = (np.empty(0, a.dtype) for a in (self.user, self.item, self.rating, self.ts))
        return _Users(self.start, self.stop, *attrs, *empty)

    @staticmethod
    def concat(parts: list[_Users]) -> _Users:
        """Adjacent user ranges, in order, as one."""
        if len(parts) == 1:
            return parts[0]

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        return _Users(parts[0].start, parts[-1].stop, cat("group"), cat("age"), cat("male"), cat("occupation"),
                      cat("country"), cat("user"), cat("item"), cat("rating"), cat("ts"))


def _catalogue(*, n_items: int, n_groups: int, seed: int) -> _Catalogue:
    """Items, groups and exposure law; depends on (seed, n_items, n_groups) only."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    n_genres = len(GENRES)

    # Items: 1-3 genres each (without replacement, weighted by skewed genre frequencies).
    genre_p = rng.dirichlet(np.full(n_genres, 2.0))
    n_g = rng.choice([1, 2, 3], size=n_items, p=[0.45, 0.4, 0.15])
    keys = np.log(genre_p) + rng.gumbel(size=(n_items, n_genres))  # Gumbel top-k per item
    order = np.argsort(-keys, axis=1)
    take = np.arange(n_genres)[None, :] < n_g[:, None]
    item_genres = np.zeros((n_items, n_genres), dtype=bool)
    item_genres[np.nonzero(take)[0], order[take]] = True
    # Zipf popularity, quality, year.
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity = popularity[rng.permutation(n_items)]
    quality = rng.normal(0.0, 0.35, n_items)
    years = np.clip(np.round(rng.normal(1990, 15, n_items)), 1920, 2025).astype(np.int32)

    # Groups: each loves ~3 genres and dislikes ~3; side data correlated with the group.
    affinity = np.zeros((n_groups, n_genres))
    for g in range(n_groups):
        picks = rng.permutation(n_genres)
        affinity[g, picks[:3]] = rng.uniform(1.0, 1.6, 3)
        affinity[g, picks[3:6]] = -rng.uniform(1.0, 1.6, 3)
    item_affinity = (item_genres @ affinity.T) / item_genres.sum(1, keepdims=True)  # [n_items, n_groups]
    group_age = rng.uniform(20, 55, n_groups)
    group_male = rng.uniform(0.25, 0.8, n_groups)
    group_country = rng.integers(0, len(COUNTRIES), n_groups)

    adj = rng.integers(len(_ADJ), size=n_items)
    noun = rng.integers(len(_NOUN), size=n_items)
    titles = [f"{_ADJ[a]} {_NOUN[b]} {i + 1} ({y})" for i, (a, b, y) in enumerate(zip(adj, noun, years, strict=True))]

    # Exposure law per group: weights pop * exp(tilt * affinity), as stacked CDFs.
    log_weight = np.log(popularity)[None, :] + _EXPOSURE_TILT * item_affinity.T  # [n_groups, n_items]
    w = np.exp(log_weight - log_weight.max(axis=1, keepdims=True))
    cdf = np.cumsum(w, axis=1)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    stacked_cdf = (cdf + np.arange(n_groups)[:, None]).ravel()
    return _Catalogue(item_genres, quality, years, titles, affinity, item_affinity, log_weight, stacked_cdf,
                      group_age, group_male, group_country)


def _distinct(keys: np.ndarray, *, first: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Sorted distinct values of ``keys`` and, if ``first``, where each occurs first.

    Same as ``np.unique(keys, return_index=first)``, by sorting: numpy 2.4's hash-based
    ``unique`` is several times slower on the million-key arrays of a block.
    """
    if not first:
        s = np.sort(keys)
        return s[np.concatenate(([True], s[1:] != s[:-1]))], None
    order = np.argsort(keys, kind="stable")
    s = keys[order]
    new = np.concatenate(([True], s[1:] != s[:-1]))
    return s[new], order[new]


def _exposure(rng: np.random.Generator, cat: _Catalogue, group: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Which items each user of a block watched: ``k[j]`` distinct items, without replacement.

    Successive sampling with weights ``exp(cat.log_weight[group[j]])``: the first ``k[j]``
    distinct items of an i.i.d. stream, then (for users still short after a few rounds,
    or wanting a large share of the catalogue) an exact Gumbel top-k over the rest.

    Args:
        rng: The block's stream.
        cat: Catalogue.
        group: ``[n_block]`` group of each user.
        k: ``[n_block]`` items wanted per user (at most half the catalogue).

    Returns:
        ``[sum(k)]`` keys ``j * n_items + item``, sorted (so by user, then item).
    """
    n = cat.n_items
    nb = group.size
    stream = np.flatnonzero(k <= _STREAM_MAX_SHARE * n)
    keys_parts: list[np.ndarray] = []
    have = np.zeros(nb, dtype=np.int64)
    pending = stream
    for _ in range(_STREAM_ROUNDS):
        if pending.size == 0:
            break
        m = np.ceil(1.5 * (k[pending] - have[pending])).astype(np.int64) + 4
        users = np.repeat(pending, m)
        g = group[users]
        items = np.searchsorted(cat.stacked_cdf, g + rng.random(users.size), side="right") - g * n
        np.clip(items, 0, n - 1, out=items)  # guards g + u rounding up to g + 1
        keys_parts.append(users * n + items)
        have = np.bincount(_distinct(np.concatenate(keys_parts))[0] // n, minlength=nb)
        pending = pending[have[pending] < k[pending]]

    chosen = np.empty(0, dtype=np.int64)
    if keys_parts:
        # First k distinct of each user's stream, in order of first appearance.
        uniq, first = _distinct(np.concatenate(keys_parts), first=True)
        user_of = uniq // n
        order = np.lexsort((first, user_of))
        start = np.searchsorted(user_of[order], np.arange(nb))
        rank = np.arange(order.size) - start[user_of[order]]
        chosen = np.sort(uniq[order[rank < k[user_of[order]]]])
    have = np.bincount(chosen // n, minlength=nb)

    # Exact completion: the rest of a successive sample, given what was drawn, is a Gumbel
    # top-(k - have) over the items not drawn yet.
    rest = np.flatnonzero(have < k)
    extra: list[np.ndarray] = []
    step = max(1, _GUMBEL_CELLS // max(n, 1))
    for b0 in range(0, rest.size, step):
        rows = rest[b0 : b0 + step]
        keys = cat.log_weight[group[rows]] + rng.gumbel(size=(rows.size, n))
        drawn = chosen[np.isin(chosen // n, rows)]
        keys[np.searchsorted(rows, drawn // n), drawn % n] = -np.inf
        need = k[rows] - have[rows]
        kmax = int(need.max())
        top = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(keys, top, 1), axis=1), 1)
        take = np.arange(kmax)[None, :] < need[:, None]
        extra.append(np.repeat(rows, need) * n + top[take])
    return np.sort(np.concatenate([chosen, *extra])) if extra else chosen


def _user_block(cat: _Catalogue, b: int, *, mean_ratings_per_user: float, min_ratings_per_user: int,
                seed: int) -> _Users:
    """All ``_BLOCK_USERS`` users of block ``b``, from the block's own random stream."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, b)))
    nb, n = _BLOCK_USERS, cat.n_items
    start = b * nb
    group = rng.integers(0, cat.n_groups, nb)
    bias = rng.normal(0.0, 0.3, nb)
    age = np.clip(np.round(rng.normal(cat.group_age[group], 6)), 13, 80).astype(np.int32)
    male = rng.random(nb) < cat.group_male[group]
    country = np.where(rng.random(nb) < 0.5, cat.group_country[group], rng.integers(0, len(COUNTRIES), nb))
    occupation = rng.integers(0, len(OCCUPATIONS), nb)
    # Log-normal count with mean mean_ratings_per_user (before the floor), capped at half the catalogue.
    mu = np.log(mean_ratings_per_user) - _COUNT_SIGMA**2 / 2
    k = np.maximum(min_ratings_per_user, np.round(rng.lognormal(mu, _COUNT_SIGMA, nb)).astype(np.int64))
    k = np.minimum(k, n // 2)

    keys = _exposure(rng, cat, group, k)
    local, item = keys // n, keys % n
    mean = 3.3 + cat.quality[item] + bias[local] + 0.9 * cat.item_affinity[item, group[local]]
    rating = np.clip(np.round(mean + rng.normal(0.0, 0.6, item.size)), 1, 5)
    ts = EPOCH_START + rng.integers(0, SPAN_SECONDS, item.size)
    return _Users(start, start + nb, group, age, male, occupation, country,
                  (local + start).astype(np.int64), item.astype(np.int64), rating.astype(np.float64),
                  ts.astype(np.int64))


def _iter_users(cat: _Catalogue, *, n_users: int, chunk_users: int, mean_ratings_per_user: float,
                min_ratings_per_user: int, seed: int) -> Iterator[_Users]:
    """Users ``[0, n_users)`` in chunks of ``chunk_users`` (the last may be shorter).

    Blocks are generated in order and re-cut at chunk boundaries, so the chunk size
    changes the cut, never the data.
    """
    parts: list[_Users] = []
    lo = 0
    for b in range((n_users + _BLOCK_USERS - 1) // _BLOCK_USERS):
        block = _user_block(cat, b, mean_ratings_per_user=mean_ratings_per_user,
                            min_ratings_per_user=min_ratings_per_user, seed=seed)
        parts.append(block.slice(block.start, min(block.stop, n_users)))
        end = parts[-1].stop
        while end - lo >= chunk_users or (end == n_users and lo < n_users):
            hi = min(lo + chunk_users, n_users)
            yield _Users.concat([p.slice(max(lo, p.start), min(hi, p.stop)) for p in parts if p.start < hi])
            parts = [p for p in parts if p.stop > hi]
            lo = hi


def _items_frame(cat: _Catalogue) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": [str(i + 1) for i in range(cat.n_items)],
            "title": cat.titles,
            "year": cat.years,
            "genres": [[GENRES[k] for k in np.flatnonzero(row)] for row in cat.item_genres],
        }
    )


def _users_frame(u: _Users) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [str(i + 1) for i in range(u.start, u.stop)],
            "age": u.age,
            "gender": np.where(u.male, "M", "F"),
            "occupation": np.array(OCCUPATIONS)[u.occupation],
            "country": np.array(COUNTRIES)[u.country],
        }
    )


def _check(n_users: int, n_items: int, n_groups: int, mean_ratings_per_user: float, min_ratings_per_user: int,
           seed: int) -> None:
    if n_users < 1 or n_items < 2 or n_groups < 1:
        raise ValueError(f"need n_users >= 1, n_items >= 2, n_groups >= 1; got {n_users}, {n_items}, {n_groups}")
    if mean_ratings_per_user <= 0 or min_ratings_per_user < 0 or seed < 0:
        raise ValueError("need mean_ratings_per_user > 0, min_ratings_per_user >= 0 and seed >= 0")


def generate(
    *,
    n_users: int,
    n_items: int,
    n_groups: int,
    mean_ratings_per_user: float,
    min_ratings_per_user: int,
    seed: int,
) -> SyntheticData:
    """Generate a synthetic dataset in memory.

    The rows equal those :func:`write_parquet` writes for the same parameters. Use
    :func:`write_parquet` beyond a few million ratings (pandas strings cost ~100 B a row).

    Args:
        n_users: Number of users.
        n_items: Number of items.
        n_groups: Number of planted taste groups.
        mean_ratings_per_user: Mean of the (log-normal) number of ratings per user, before
            the floor; the count is capped at ``n_items // 2``.
        min_ratings_per_user: Floor on ratings per user (MovieLens uses 20).
        seed: Random seed (>= 0).

    Returns:
        The staged tables plus the planted ground truth.
    """
    _check(n_users, n_items, n_groups, mean_ratings_per_user, min_ratings_per_user, seed)
    t0 = time.perf_counter()
    cat = _catalogue(n_items=n_items, n_groups=n_groups, seed=seed)
    (u,) = _iter_users(cat, n_users=n_users, chunk_users=n_users, mean_ratings_per_user=mean_ratings_per_user,
                       min_ratings_per_user=min_ratings_per_user, seed=seed)
    ratings = pd.DataFrame(
        {
            "user_id": (u.user + 1).astype(str),
            "item_id": (u.item + 1).astype(str),
            "rating": u.rating,
            "ts": u.ts,
        }
    )
    logger.info("synthetic data: %d users, %d items, %d ratings (seed %d) in %.2fs",
                n_users, n_items, len(ratings), seed, time.perf_counter() - t0)
    return SyntheticData(ratings, _items_frame(cat), _users_frame(u), u.group.astype(np.int64), cat.affinity)


def _ratings_table(u: _Users) -> pa.Table:
    """One chunk's ratings as an ``stg_ratings`` Arrow table."""
    string = pa.string()
    return pa.Table.from_arrays(
        [pc.cast(pa.array(u.user + 1), string), pc.cast(pa.array(u.item + 1), string),
         pa.array(u.rating), pa.array(u.ts)],
        schema=table("stg_ratings").arrow,
    )


def _write_table(data: pa.Table, path: Path) -> None:
    """Write one Parquet file (the single place files are written; tests patch it)."""
    pq.write_table(data, path, compression="zstd")


def _read_success(out_dir: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((out_dir / _SUCCESS).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _files(root: Path, meta: dict[str, Any], *, cached: bool) -> SyntheticFiles:
    return SyntheticFiles(
        root=root,
        ratings=tuple(root / "ratings" / name for name in meta["ratings_parts"]),
        items=root / "items.parquet",
        users=root / "users.parquet",
        success=root / _SUCCESS,
        n_ratings=meta["n_ratings"],
        n_users=meta["n_users"],
        n_items=meta["n_items"],
        cached=cached,
    )


def write_parquet(
    out_dir: Path,
    *,
    n_users: int,
    n_items: int,
    n_groups: int,
    mean_ratings_per_user: float,
    min_ratings_per_user: int,
    seed: int,
    chunk_users: int = 5000,
) -> SyntheticFiles:
    """Stream a synthetic dataset to Parquet, one ratings file per chunk of users.

    Layout: ``out_dir/ratings/part-00000.parquet, ...`` (``stg_ratings``, users
    ``[c * chunk_users, (c + 1) * chunk_users)`` in part ``c``, sorted by user then
    item), ``out_dir/items.parquet`` (``stg_items``), ``out_dir/users.parquet``
    (``stg_users``) and ``out_dir/_SUCCESS`` (JSON: parameters and counts).

    Everything is built in a hidden temporary folder next to ``out_dir``, ``_SUCCESS``
    last, then renamed into place: readers see the whole dataset or nothing, and an
    interrupted run leaves ``out_dir`` as it was. If ``out_dir`` already holds a
    ``_SUCCESS`` with the same parameters it is returned as is (``cached=True``); an
    earlier dataset with other parameters is replaced. Memory is bounded by one chunk (about
    ``chunk_users * mean_ratings_per_user * 60`` bytes) plus the catalogue.

    Args:
        out_dir: Output folder (its parent is created if missing).
        n_users: Number of users.
        n_items: Number of items.
        n_groups: Number of planted taste groups.
        mean_ratings_per_user: Mean of the log-normal number of ratings per user.
        min_ratings_per_user: Floor on ratings per user.
        seed: Random seed (>= 0).
        chunk_users: Users per ratings file; changes the files, not the rows.

    Returns:
        Paths and counts of the dataset.

    Raises:
        FileExistsError: If ``out_dir`` exists, is not empty and holds no ``_SUCCESS``
            (not something this function wrote; it is left alone).
    """
    _check(n_users, n_items, n_groups, mean_ratings_per_user, min_ratings_per_user, seed)
    if chunk_users < 1:
        raise ValueError(f"chunk_users must be >= 1, got {chunk_users}")
    out_dir = Path(out_dir)
    params = {
        "generator_version": GENERATOR_VERSION, "n_users": n_users, "n_items": n_items, "n_groups": n_groups,
        "mean_ratings_per_user": float(mean_ratings_per_user), "min_ratings_per_user": min_ratings_per_user,
        "seed": seed, "chunk_users": chunk_users,
    }
    meta = _read_success(out_dir)
    if meta is not None and meta.get("params") == params:
        logger.info("synthetic parquet: %s already has these parameters (%d ratings); reusing it",
                    out_dir, meta["n_ratings"])
        return _files(out_dir, meta, cached=True)
    if meta is None and out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} exists and is not a synthetic dataset (no {_SUCCESS}); not replacing it")

    t0 = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        cat = _catalogue(n_items=n_items, n_groups=n_groups, seed=seed)
        _write_table(pa.Table.from_pandas(_items_frame(cat), schema=table("stg_items").arrow, preserve_index=False)
                     .replace_schema_metadata(None), tmp / "items.parquet")
        (tmp / "ratings").mkdir()
        parts: list[str] = []
        user_chunks: list[_Users] = []
        n_ratings = 0
        for c, u in enumerate(_iter_users(cat, n_users=n_users, chunk_users=chunk_users,
                                          mean_ratings_per_user=mean_ratings_per_user,
                                          min_ratings_per_user=min_ratings_per_user, seed=seed)):
            name = f"part-{c:05d}.parquet"
            _write_table(_ratings_table(u), tmp / "ratings" / name)
            parts.append(name)
            n_ratings += u.item.size
            user_chunks.append(u.side_data())
            logger.debug("synthetic parquet: %s users [%d, %d): %d ratings", name, u.start, u.stop, u.item.size)
        users = _users_frame(_Users.concat(user_chunks))
        _write_table(pa.Table.from_pandas(users, schema=table("stg_users").arrow, preserve_index=False)
                     .replace_schema_metadata(None), tmp / "users.parquet")
        meta = {"params": params, "n_ratings": n_ratings, "n_users": n_users, "n_items": n_items,
                "ratings_parts": parts}
        (tmp / _SUCCESS).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")  # last file
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("synthetic parquet: %d users, %d items, %d ratings in %d parts to %s in %.1fs",
                n_users, n_items, n_ratings, len(parts), out_dir, time.perf_counter() - t0)
    return _files(out_dir, meta, cached=False)


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` to ``out_dir`` by rename, replacing an older ``out_dir``."""
    old: Path | None = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(out_dir, old)
    os.rename(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

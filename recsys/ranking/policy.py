"""The recommendation policy: what may be recommended, and how varied each list must be.

What: blocked items, blocked genres (or tags), a minimum of training ratings. How varied: an
MMR re-rank and a per-genre cap (:mod:`recsys.ranking.diversity`).

Three steps, each once:

* :func:`load_policy` (once per run): the settings' :class:`~recsys.config.PolicyConfig`
  merged with its optional JSON file, checked, as a :class:`Policy`;
* :func:`item_rules` (once per run): the policy turned into ``[n_items]`` masks over the
  item index space, an :class:`ItemRules`;
* :func:`apply_policy` (once per block of users): each user's scored candidates filtered,
  re-ranked and cut to the final top-k list.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys.ranking.diversity import cap_walk, genre_flags, mmr_walk, unit_genres

if TYPE_CHECKING:
    from recsys.config import Settings

logger = logging.getLogger(__name__)

RULES: tuple[str, ...] = ("blocked_item", "blocked_genre", "min_ratings")
"""The item rules, in the order a candidate row blocked by several is counted (by the first)."""

COUNTS: tuple[str, ...] = (*RULES, "genre_cap", "cut", "short_users")
"""The keys of :func:`apply_policy`'s counts (every value adds up over blocks)."""

_LISTS = ("blocked_items", "blocked_genres")
_INTS = ("min_item_ratings", "genre_cap")
_FIELDS = (*_LISTS, *_INTS, "mmr_weight")


def genre_key(name: str) -> str:
    """How genre and tag names are compared: trimmed and case-folded (``" Sci-Fi "`` = ``"sci-fi"``)."""
    return name.strip().casefold()


@dataclass(frozen=True)
class Policy:
    """What may be recommended and how varied each list must be.

    Attributes:
        blocked_items: Item ids (``items.item_id``, exactly as the source spells them) never recommended.
        blocked_genres: Genres or tags whose items are never recommended, as :func:`genre_key` keys.
        min_item_ratings: Training ratings an item needs before it may be recommended (0: any).
        genre_cap: Most items of one genre in one list (0: no cap).
        mmr_weight: Weight of diversity in the MMR re-rank of each list, in [0, 1) (0: off).
    """

    blocked_items: frozenset[str] = frozenset()
    blocked_genres: frozenset[str] = frozenset()
    min_item_ratings: int = 0
    genre_cap: int = 0
    mmr_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in _INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        w = self.mmr_weight
        if isinstance(w, bool) or not isinstance(w, int | float) or not (0.0 <= float(w) < 1.0):
            raise ValueError(f"mmr_weight must be a number in [0, 1), got {w!r}")
        object.__setattr__(self, "mmr_weight", float(w))
        object.__setattr__(self, "blocked_items", frozenset(self.blocked_items))
        object.__setattr__(self, "blocked_genres", frozenset(genre_key(g) for g in self.blocked_genres))


def _read_policy_file(path: Path) -> dict[str, Any]:
    """The checked fields of a policy file (a JSON object with any of the policy's fields)."""

    def fail(problem: str) -> ValueError:
        return ValueError(f"policy file {path}: {problem}")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise fail(f"duplicate keys {', '.join(map(repr, dupes))}")
        return dict(pairs)

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail("not found") from None
    except UnicodeDecodeError as e:
        raise fail(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise fail(f"cannot be read ({e.strerror or e})") from None
    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as e:
        raise fail(f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(data, dict):
        raise fail(f"must hold a JSON object with any of {', '.join(_FIELDS)}; got a JSON {type(data).__name__}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise fail(f"unknown keys {', '.join(map(repr, unknown))} (allowed: {', '.join(_FIELDS)})")
    for name in _LISTS:
        if name not in data:
            continue
        value = data[name]
        if not isinstance(value, list):
            raise fail(f"{name} must be a list of strings, got {json.dumps(value)}")
        for i, v in enumerate(value):
            if not isinstance(v, str):
                hint = ' (item ids are strings, e.g. "50")' if name == "blocked_items" else ""
                raise fail(f"{name}[{i}] must be a string{hint}, got {json.dumps(v)}")
            if not v.strip():
                raise fail(f"{name}[{i}] is empty")
    for name in _INTS:
        if name in data:
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise fail(f"{name} must be an integer, got {json.dumps(value)}")
            if value < 0:
                raise fail(f"{name} must be >= 0, got {value}")
    if "mmr_weight" in data:
        value = data["mmr_weight"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise fail(f"mmr_weight must be a number, got {json.dumps(value)}")
        if not 0.0 <= value < 1.0:
            raise fail(f"mmr_weight must be in [0, 1), got {value}")
    return data


def load_policy(settings: Settings) -> Policy:
    """The run's policy: ``settings.policy`` merged with its JSON file, if any.

    The file (``settings.policy.file``; a relative path is read from the working directory)
    holds a JSON object with any of ``blocked_items``, ``blocked_genres`` (lists of strings),
    ``min_item_ratings``, ``genre_cap`` (integers >= 0) and ``mmr_weight`` (a number in [0, 1)).
    Its lists add to the settings' lists; its numbers replace the settings' values. So the
    settings (environment, DAG params) can block more on top of a shared file, and the file
    decides the numbers it names.

    Args:
        settings: The run's settings (only ``settings.policy`` is read).

    Returns:
        The merged policy.

    Raises:
        ValueError: The file is missing or unreadable, is not JSON, is not a JSON object, has
            unknown or duplicate keys, wrong types or out-of-range values (the message names
            the file and the problem); or a blocked item id or genre is empty.
    """
    config = settings.policy
    values: dict[str, Any] = {
        "blocked_items": list(config.blocked_items),
        "blocked_genres": list(config.blocked_genres),
        "min_item_ratings": config.min_item_ratings,
        "genre_cap": config.genre_cap,
        "mmr_weight": config.mmr_weight,
    }
    for name in _LISTS:
        if any(not v.strip() for v in values[name]):
            raise ValueError(f"policy setting {name} holds an empty value: {values[name]!r}")
    if config.file is not None:
        data = _read_policy_file(Path(config.file))
        for name, value in data.items():
            values[name] = values[name] + value if name in _LISTS else value
    policy = Policy(
        blocked_items=frozenset(values["blocked_items"]),
        blocked_genres=frozenset(values["blocked_genres"]),
        min_item_ratings=values["min_item_ratings"],
        genre_cap=values["genre_cap"],
        mmr_weight=values["mmr_weight"],
    )
    logger.info(
        "policy%s: %d blocked items, %d blocked genres, min_item_ratings=%d, genre_cap=%d, mmr_weight=%g",
        f" (with {config.file})" if config.file is not None else "",
        len(policy.blocked_items),
        len(policy.blocked_genres),
        policy.min_item_ratings,
        policy.genre_cap,
        policy.mmr_weight,
    )
    return policy


@dataclass(frozen=True, eq=False)
class ItemRules:
    """A policy over the item index space: what each rule blocks, computed once per run.

    Attributes:
        known: ``[n_items]`` bool: the index is a row of the ``items`` table.
        blocked_item: ``[n_items]`` bool: its ``item_id`` is blocked.
        blocked_genre: ``[n_items]`` bool: one of its genres or tags is blocked.
        min_ratings: ``[n_items]`` bool: it has fewer training ratings than the policy's minimum.
        allowed: ``[n_items]`` bool: known and blocked by no rule.
        genre_cap: The policy's cap (0: none).
        mmr_weight: The policy's MMR weight (0: off).
    """

    known: np.ndarray
    blocked_item: np.ndarray
    blocked_genre: np.ndarray
    min_ratings: np.ndarray
    allowed: np.ndarray
    genre_cap: int = 0
    mmr_weight: float = 0.0

    @property
    def n_items(self) -> int:
        """Size of the item index space."""
        return int(self.known.size)


def _has_blocked(lists: pd.Series, blocked: frozenset[str]) -> pd.Series:
    """Per row of ``lists`` (lists of names, or None), whether one of its names is blocked."""
    flat = lists.explode().dropna()
    hit = flat.astype(str).map(genre_key).isin(blocked)
    return hit.groupby(level=0).any().reindex(lists.index, fill_value=False)


def item_rules(
    policy: Policy, items: pd.DataFrame, item_stats: pd.DataFrame, *, n_items: int | None = None
) -> ItemRules:
    """Turn the policy into ``[n_items]`` masks (once per run).

    Args:
        policy: The run's policy.
        items: The lake's ``items``: ``item_idx``, ``item_id`` (str), ``genres`` (list of
            genre names, or None); grain one catalogue item.
        item_stats: The lake's ``item_features`` (or any frame with these columns):
            ``item_idx``, ``n_ratings`` (training ratings) and optionally ``tags`` (list of
            tag names). Items without a row have 0 ratings and no tags.
        n_items: Size of the item index space (default: the largest ``item_idx`` + 1 of the two
            frames); indices that are not rows of ``items`` are unknown, never allowed.

    Returns:
        The masks. Genres and tags are matched by :func:`genre_key` (trimmed, case-folded);
        item ids exactly. Blocked ids or genres that match no item are logged as warnings.
    """
    for frame, name, cols in (
        (items, "items", ("item_idx", "item_id", "genres")),
        (item_stats, "item_stats", ("item_idx", "n_ratings")),
    ):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks columns {missing}")
    idx = items["item_idx"].to_numpy(np.int64)
    stat_idx = item_stats["item_idx"].to_numpy(np.int64)
    if (idx < 0).any() or (stat_idx < 0).any():
        raise ValueError("item_idx must be >= 0")
    size = max(int(idx.max(initial=-1)) + 1, int(stat_idx.max(initial=-1)) + 1)
    if n_items is not None:
        if n_items < size:
            raise ValueError(f"n_items={n_items} is smaller than the largest item_idx + 1 ({size})")
        size = n_items

    known = np.zeros(size, dtype=bool)
    known[idx] = True
    ids = items["item_id"].astype(str)
    blocked_item = np.zeros(size, dtype=bool)
    blocked_item[idx[ids.isin(policy.blocked_items).to_numpy()]] = True
    missing_ids = sorted(policy.blocked_items - set(ids))
    if missing_ids:
        logger.warning("%d blocked item ids are not in the catalogue: %s", len(missing_ids), missing_ids[:10])

    blocked_genre = np.zeros(size, dtype=bool)
    if policy.blocked_genres:
        genres = items["genres"].reset_index(drop=True)
        blocked_genre[idx[_has_blocked(genres, policy.blocked_genres).to_numpy(bool)]] = True
        names = {genre_key(str(g)) for g in genres.explode().dropna()}
        if "tags" in item_stats.columns:
            tags = item_stats["tags"].reset_index(drop=True)
            blocked_genre[stat_idx[_has_blocked(tags, policy.blocked_genres).to_numpy(bool)]] = True
            names |= {genre_key(str(t)) for t in tags.explode().dropna()}
        unmatched = sorted(policy.blocked_genres - names)
        if unmatched:
            logger.warning("%d blocked genres match no item's genres or tags: %s", len(unmatched), unmatched[:10])

    n_ratings = np.zeros(size, dtype=np.int64)
    n_ratings[stat_idx] = item_stats["n_ratings"].fillna(0).to_numpy(np.int64)
    min_ratings = n_ratings < policy.min_item_ratings

    allowed = known & ~blocked_item & ~blocked_genre & ~min_ratings
    logger.info(
        "item rules: %d of %d known items allowed (blocked: %d by id, %d by genre, %d below %d ratings)",
        int(allowed.sum()),
        int(known.sum()),
        int((known & blocked_item).sum()),
        int((known & blocked_genre).sum()),
        int((known & min_ratings).sum()),
        policy.min_item_ratings,
    )
    return ItemRules(
        known=known,
        blocked_item=blocked_item,
        blocked_genre=blocked_genre,
        min_ratings=min_ratings,
        allowed=allowed,
        genre_cap=policy.genre_cap,
        mmr_weight=policy.mmr_weight,
    )


def _check_ranked(ranked: pd.DataFrame, rules: ItemRules) -> None:
    missing = [c for c in ("user_idx", "item_idx", "score") if c not in ranked.columns]
    if missing:
        raise ValueError(f"ranked lacks columns {missing}")
    item = ranked["item_idx"].to_numpy(np.int64)
    bad = (item < 0) | (item >= rules.n_items)
    bad[~bad] = ~rules.known[item[~bad]]
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} candidate rows have item indices not in the catalogue, e.g. {item[bad][:5]}"
        )
    if not np.isfinite(ranked["score"].to_numpy(np.float64)).all():
        raise ValueError("ranked has non-finite scores")
    if ranked.duplicated(["user_idx", "item_idx"]).any():
        raise ValueError("ranked has more than one row for some (user_idx, item_idx)")


def apply_policy(
    ranked: pd.DataFrame,
    rules: ItemRules,
    *,
    top_k: int,
    item_genres: np.ndarray | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Each user's final top-``top_k`` list from their scored candidates, under the policy.

    Steps, per user: drop the rows the item rules block; order the rest by score (descending,
    ties by the smaller item index); build the list by the walk of :mod:`recsys.ranking.diversity`
    (MMR if ``rules.mmr_weight > 0``, relevance = the score min-max normalised over the user's
    remaining candidates, all 1 if they are equal; the genre cap if ``rules.genre_cap > 0``).

    Args:
        ranked: One block of users' scored candidates, any order, one row per (user, item):
            ``user_idx``, ``item_idx`` (rows of the ``items`` table), ``score`` (finite, higher
            is better) and any other columns (``source``, ``reason``, ...), which are kept; a
            ``rank`` column is replaced.
        rules: From :func:`item_rules`.
        top_k: Most items per user (>= 1).
        item_genres: ``[n_items, n_genres]`` multi-hot genres (``ServingTables.item_genre_matrix``);
            needed when the policy has a cap or MMR (the cap and the similarity use these, not tags).

    Returns:
        ``(lists, counts)``. ``lists``: ``user_idx`` (int32), ``rank`` (int32, 1..n contiguous per
        user, n <= ``top_k``), ``item_idx`` (int32), ``score`` (the model's, so not always
        descending under MMR), then the other columns of ``ranked`` in their order; grain one
        (user, rank), sorted by user then rank. ``counts`` (rows of ``ranked`` unless noted):

        * ``blocked_item``, ``blocked_genre``, ``min_ratings``: dropped by that rule (a row
          blocked by several is counted once, by the first of these);
        * ``genre_cap``: candidates the walk reached while the user's list still had room and
          skipped because one of their genres was already at the cap;
        * ``cut``: allowed candidates the walk never reached (the list was full first);
        * ``short_users``: users of ``ranked`` left with fewer than ``top_k`` items (0 included).

        So ``len(ranked) == len(lists) + blocked_item + blocked_genre + min_ratings + genre_cap + cut``.

    Raises:
        ValueError: Missing columns, unknown items, non-finite scores, duplicate (user, item)
            rows, ``top_k < 1``, or genres needed but not given (or too few rows).
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    _check_ranked(ranked, rules)
    diverse = rules.genre_cap > 0 or rules.mmr_weight > 0
    if diverse:
        if item_genres is None:
            raise ValueError("item_genres is needed for the genre cap and MMR")
        if item_genres.ndim != 2 or item_genres.shape[0] < rules.n_items:
            raise ValueError(f"item_genres must be [n_items >= {rules.n_items}, n_genres], got {item_genres.shape}")

    user = ranked["user_idx"].to_numpy(np.int64)
    item = ranked["item_idx"].to_numpy(np.int64)
    score = ranked["score"].to_numpy(np.float64)
    counts = dict.fromkeys(COUNTS, 0)
    blocked = np.zeros(len(ranked), dtype=bool)
    for name in RULES:
        hit = getattr(rules, name)[item] & ~blocked
        counts[name] = int(hit.sum())
        blocked |= hit
    keep = np.flatnonzero(~blocked)
    order = keep[np.lexsort((item[keep], -score[keep], user[keep]))]

    # Padded [n_users, width] layout of the allowed candidates, best first.
    users, start, per_user = np.unique(user[order], return_index=True, return_counts=True)
    n_block_users = np.unique(user).size
    width = int(per_user.max(initial=0))
    row = np.repeat(np.arange(users.size), per_user)
    col = np.arange(order.size) - np.repeat(start, per_user)
    cells = np.full((users.size, width), -1, dtype=np.int64)
    cells[row, col] = item[order]

    if users.size == 0:
        ranks, skipped = np.zeros((0, 0), dtype=np.int32), np.zeros(0, dtype=np.int64)
    elif not diverse:
        ranks, skipped = cap_walk(cells, top_k=top_k, flags=np.zeros((1, 0), bool), genre_cap=0)
    else:
        assert item_genres is not None
        flags = genre_flags(item_genres)
        if rules.mmr_weight > 0:
            s = np.full((users.size, width), np.nan)
            s[row, col] = score[order]
            lo, hi = np.nanmin(s, axis=1, keepdims=True), np.nanmax(s, axis=1, keepdims=True)
            span = hi - lo
            rel = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 1.0)
            rel = np.nan_to_num(rel, nan=0.0)
            ranks, skipped = mmr_walk(
                cells,
                rel,
                top_k=top_k,
                flags=flags,
                unit=unit_genres(item_genres),
                genre_cap=rules.genre_cap,
                mmr_weight=rules.mmr_weight,
            )
        else:
            ranks, skipped = cap_walk(cells, top_k=top_k, flags=flags, genre_cap=rules.genre_cap)

    chosen = ranks[row, col] > 0
    rows_out = order[chosen]
    out_rank = ranks[row, col][chosen]
    out_user = user[rows_out]
    final = np.lexsort((out_rank, out_user))
    rows_out, out_rank = rows_out[final], out_rank[final]

    others = [c for c in ranked.columns if c not in ("user_idx", "item_idx", "score", "rank")]
    lists = pd.DataFrame(
        {
            "user_idx": user[rows_out].astype(np.int32),
            "rank": out_rank.astype(np.int32),
            "item_idx": item[rows_out].astype(np.int32),
            "score": score[rows_out],
        }
    )
    for c in others:
        lists[c] = ranked[c].iloc[rows_out].reset_index(drop=True)

    counts["genre_cap"] = int(skipped.sum())
    counts["cut"] = int(order.size - rows_out.size - skipped.sum())
    per_list = np.bincount(row[chosen], minlength=users.size)
    counts["short_users"] = int((per_list < top_k).sum()) + (n_block_users - users.size)
    logger.debug("policy over %d users, %d rows: %s", n_block_users, len(ranked), counts)
    return lists, counts

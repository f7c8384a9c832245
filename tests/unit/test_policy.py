"""recsys.ranking.policy and recsys.ranking.diversity: known answers, bad files, random policies."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.config import PolicyConfig, Settings
from recsys.ranking.diversity import unit_genres
from recsys.ranking.policy import COUNTS, RULES, ItemRules, Policy, apply_policy, item_rules, load_policy

GENRES = ["Action", "Comedy", "Drama", "Horror", "Sci-Fi"]


def catalogue(
    genres: list[list[str]], n_ratings: list[int] | None = None, tags: list[list[str]] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(items, item_features, [n_items, n_genres] multi-hot) of items ``m0, m1, ...`` with these genres."""
    n = len(genres)
    items = pd.DataFrame(
        {
            "item_idx": np.arange(n, dtype=np.int32),
            "item_id": [f"m{i}" for i in range(n)],
            "title": [f"title {i}" for i in range(n)],
            "year": np.full(n, 2000, dtype=np.int32),
            "genres": genres,
        }
    )
    multi_hot = np.array([[float(g in gs) for g in GENRES] for gs in genres], dtype=np.float32).reshape(n, len(GENRES))
    stats = pd.DataFrame(
        {
            "item_idx": np.arange(n, dtype=np.int32),
            "genres": list(multi_hot),
            "n_ratings": np.asarray(n_ratings if n_ratings is not None else [100] * n, dtype=np.int64),
            "tags": tags if tags is not None else [[] for _ in range(n)],
        }
    )
    return items, stats, multi_hot


def candidates(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    """(user_idx, item_idx, score) rows with a source and a reason."""
    df = pd.DataFrame(rows, columns=["user_idx", "item_idx", "score"])
    df["source"] = "popular"
    df["reason"] = [f"r{u}-{i}" for u, i in zip(df["user_idx"], df["item_idx"], strict=True)]
    return df


def lists_of(out: pd.DataFrame) -> dict[int, list[int]]:
    """``{user: [item, ...]}`` in rank order."""
    lists: dict[int, list[int]] = {}
    for u, i in out.sort_values(["user_idx", "rank"])[["user_idx", "item_idx"]].itertuples(index=False):
        lists.setdefault(int(u), []).append(int(i))
    return lists


def run(
    policy: Policy,
    genres: list[list[str]],
    rows: list[tuple[int, int, float]],
    *,
    top_k: int,
    n_ratings: list[int] | None = None,
    tags: list[list[str]] | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    items, stats, multi_hot = catalogue(genres, n_ratings, tags)
    rules = item_rules(policy, items, stats)
    return apply_policy(candidates(rows), rules, top_k=top_k, item_genres=multi_hot)


def one_user(scores: list[float]) -> list[tuple[int, int, float]]:
    return [(0, i, s) for i, s in enumerate(scores)]


# --- the rules, one at a time -----------------------------------------------------------------


def test_no_policy_keeps_the_top_k_by_score_ties_by_item_index():
    out, counts = run(Policy(), [["Action"]] * 5, one_user([0.1, 0.9, 0.5, 0.9, 0.3]), top_k=3)
    assert list(out.columns) == ["user_idx", "rank", "item_idx", "score", "source", "reason"]
    assert out["item_idx"].tolist() == [1, 3, 2]
    assert out["rank"].tolist() == [1, 2, 3]
    assert out["reason"].tolist() == ["r0-1", "r0-3", "r0-2"]
    assert out["user_idx"].dtype == np.int32 and out["rank"].dtype == np.int32 and out["item_idx"].dtype == np.int32
    assert counts == {
        "blocked_item": 0,
        "blocked_genre": 0,
        "min_ratings": 0,
        "genre_cap": 0,
        "cut": 2,
        "short_users": 0,
    }


def test_blocked_item_ids_never_appear():
    out, counts = run(Policy(blocked_items=frozenset({"m1", "unknown"})), [[]] * 4, one_user([4, 3, 2, 1]), top_k=2)
    assert out["item_idx"].tolist() == [0, 2]
    assert counts["blocked_item"] == 1 and counts["cut"] == 1


def test_blocked_genres_match_genres_and_tags_case_insensitively():
    genres = [["Action"], ["Horror", "Comedy"], ["Drama"], ["Comedy"]]
    tags = [[], [], ["gore"], []]
    policy = Policy(blocked_genres=frozenset({"horror", " GORE "}))
    out, counts = run(policy, genres, one_user([4, 3, 2, 1]), top_k=4, tags=tags)
    assert out["item_idx"].tolist() == [0, 3]
    assert counts["blocked_genre"] == 2 and counts["short_users"] == 1


def test_min_item_ratings_blocks_items_with_fewer_training_ratings():
    out, counts = run(Policy(min_item_ratings=5), [[]] * 4, one_user([4, 3, 2, 1]), top_k=4, n_ratings=[4, 5, 0, 9])
    assert out["item_idx"].tolist() == [1, 3]
    assert counts["min_ratings"] == 2


def test_items_without_stats_have_no_ratings():
    items, stats, _ = catalogue([[]] * 3)
    rules = item_rules(Policy(min_item_ratings=1), items, stats[stats["item_idx"] != 1])
    assert rules.allowed.tolist() == [True, False, True]


def test_a_row_blocked_by_several_rules_is_counted_once_by_the_first():
    policy = Policy(blocked_items=frozenset({"m0"}), blocked_genres=frozenset({"action"}), min_item_ratings=10)
    _, counts = run(policy, [["Action"], ["Action"], []], one_user([3, 2, 1]), top_k=3, n_ratings=[0, 0, 0])
    assert (counts["blocked_item"], counts["blocked_genre"], counts["min_ratings"]) == (1, 1, 1)


def test_genre_cap_skips_items_whose_genre_is_full():
    # Score order: 0 (Action), 1 (Action), 2 (Action+Comedy), 3 (no genre), 4 (Comedy), 5 (Drama).
    genres = [["Action"], ["Action"], ["Action", "Comedy"], [], ["Comedy"], ["Drama"]]
    out, counts = run(Policy(genre_cap=1), genres, one_user([6, 5, 4, 3, 2, 1]), top_k=4)
    assert out["item_idx"].tolist() == [0, 3, 4, 5]
    assert out["rank"].tolist() == [1, 2, 3, 4]
    assert counts["genre_cap"] == 2 and counts["cut"] == 0
    out, counts = run(Policy(genre_cap=1), genres, one_user([6, 5, 4, 3, 2, 1]), top_k=2)
    assert out["item_idx"].tolist() == [0, 3]
    # 1 and 2 were reached and skipped; 4 and 5 were never reached.
    assert counts["genre_cap"] == 2 and counts["cut"] == 2


def test_items_without_genres_are_never_capped():
    out, counts = run(Policy(genre_cap=1), [[]] * 5, one_user([5, 4, 3, 2, 1]), top_k=5)
    assert out["item_idx"].tolist() == [0, 1, 2, 3, 4]
    assert counts["genre_cap"] == 0


def test_short_users_include_users_left_with_nothing():
    rows = [(0, 0, 1.0), (0, 1, 0.5), (1, 2, 1.0), (7, 0, 0.3)]
    out, counts = run(Policy(blocked_items=frozenset({"m2"})), [[]] * 3, rows, top_k=2)
    assert lists_of(out) == {0: [0, 1], 7: [0]}
    assert counts["short_users"] == 2


def test_other_columns_are_kept_and_a_rank_column_replaced():
    df = candidates([(0, 0, 1.0), (0, 1, 2.0)]).assign(rank=[9, 9], anchor_idx=[5, 6], index=[10, 20])
    df = df.set_index("index").astype({"source": "category"})
    items, stats, _ = catalogue([[]] * 2)
    out, _ = apply_policy(df, item_rules(Policy(), items, stats), top_k=5)
    assert list(out.columns) == ["user_idx", "rank", "item_idx", "score", "source", "reason", "anchor_idx"]
    assert out["rank"].tolist() == [1, 2] and out["anchor_idx"].tolist() == [6, 5]
    assert out["source"].dtype == "category" and out.index.tolist() == [0, 1]


def test_empty_block():
    items, stats, multi_hot = catalogue([["Action"]] * 3)
    rules = item_rules(Policy(genre_cap=1, mmr_weight=0.5), items, stats)
    out, counts = apply_policy(candidates([]), rules, top_k=3, item_genres=multi_hot)
    assert len(out) == 0 and "rank" in out.columns
    assert counts == dict.fromkeys(COUNTS, 0)


# --- MMR -------------------------------------------------------------------------------------


def test_mmr_moves_the_best_item_of_a_different_genre_up():
    # 0 and 1 are near-duplicates (same genres); 2 is a different genre, a little less relevant.
    genres = [["Action", "Sci-Fi"], ["Action", "Sci-Fi"], ["Comedy"], ["Action"]]
    scores = one_user([1.0, 0.95, 0.9, 0.5])
    out, _ = run(Policy(mmr_weight=0.5), genres, scores, top_k=3)
    # step 2: item 1 = 0.5 * 0.9 - 0.5 * 1 < 0; item 2 = 0.5 * 0.8 - 0 = 0.4; step 3: item 1 = -0.05,
    # item 3 (cosine 1/sqrt(2) with item 0) = 0 - 0.5 * 0.707 = -0.354.
    assert out["item_idx"].tolist() == [0, 2, 1]
    assert out["score"].tolist() == [1.0, 0.9, 0.95]
    out, _ = run(Policy(mmr_weight=0.0), genres, scores, top_k=3)
    assert out["item_idx"].tolist() == [0, 1, 2]


def test_mmr_ties_go_to_the_smaller_item_index():
    out, _ = run(
        Policy(mmr_weight=0.7), [["Drama"], ["Comedy"], ["Action"], ["Drama"]], one_user([1, 1, 1, 1]), top_k=4
    )
    assert out["item_idx"].tolist() == [0, 1, 2, 3]


def test_mmr_with_the_cap():
    genres = [["Action"], ["Action"], ["Action"], ["Comedy"]]
    out, counts = run(Policy(mmr_weight=0.3, genre_cap=1), genres, one_user([4, 3, 2, 1]), top_k=3)
    # After 0, the MMR prefers 3 (another genre); then 1 is the best left but Action is full, so is 2.
    assert out["item_idx"].tolist() == [0, 3]
    assert counts["genre_cap"] == 2 and counts["short_users"] == 1


def test_mmr_weight_zero_is_pure_score_order():
    rng = np.random.default_rng(3)
    n = 60
    genres = [[g for g in GENRES if rng.random() < 0.4] for _ in range(n)]
    rows = [(u, int(i), float(rng.random())) for u in range(20) for i in rng.choice(n, 30, replace=False)]
    out, _ = run(Policy(mmr_weight=0.0), genres, rows, top_k=10)
    expect = (
        candidates(rows)
        .sort_values(["user_idx", "score", "item_idx"], ascending=[True, False, True])
        .groupby("user_idx")
    )
    assert lists_of(out) == {int(u): g["item_idx"].head(10).tolist() for u, g in expect}


# --- errors of apply_policy / item_rules ------------------------------------------------------


def test_apply_policy_rejects_bad_blocks():
    items, stats, _ = catalogue([["Action"]] * 3)
    rules = item_rules(Policy(), items, stats)
    with pytest.raises(ValueError, match="not in the catalogue"):
        apply_policy(candidates([(0, 3, 1.0)]), rules, top_k=2)
    with pytest.raises(ValueError, match="non-finite"):
        apply_policy(candidates([(0, 1, float("nan"))]), rules, top_k=2)
    with pytest.raises(ValueError, match="more than one row"):
        apply_policy(candidates([(0, 1, 1.0), (0, 1, 2.0)]), rules, top_k=2)
    with pytest.raises(ValueError, match="top_k"):
        apply_policy(candidates([(0, 1, 1.0)]), rules, top_k=0)
    with pytest.raises(ValueError, match="lacks columns"):
        apply_policy(candidates([(0, 1, 1.0)]).drop(columns="score"), rules, top_k=2)
    capped = item_rules(Policy(genre_cap=1), items, stats)
    with pytest.raises(ValueError, match="item_genres"):
        apply_policy(candidates([(0, 1, 1.0)]), capped, top_k=2)


def test_index_gaps_are_unknown_items():
    items, stats, _ = catalogue([[]] * 3)
    rules = item_rules(Policy(), items[items["item_idx"] != 1], stats[stats["item_idx"] != 1], n_items=5)
    assert rules.n_items == 5 and rules.allowed.tolist() == [True, False, True, False, False]
    with pytest.raises(ValueError, match="not in the catalogue"):
        apply_policy(candidates([(0, 1, 1.0)]), rules, top_k=2)
    with pytest.raises(ValueError, match="n_items"):
        item_rules(Policy(), items, stats, n_items=2)


def test_policy_checks_its_values():
    with pytest.raises(ValueError, match="genre_cap"):
        Policy(genre_cap=-1)
    with pytest.raises(ValueError, match="mmr_weight"):
        Policy(mmr_weight=1.0)
    assert Policy(blocked_genres=frozenset({" Sci-Fi"})).blocked_genres == frozenset({"sci-fi"})


# --- load_policy -----------------------------------------------------------------------------


def settings_with(tmp_path: Path, content: str | None, **fields: object) -> Settings:
    path = tmp_path / "policy.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    return Settings(policy=PolicyConfig(file=path, **fields))


def test_load_policy_without_a_file():
    config = PolicyConfig(blocked_items=("50",), blocked_genres=("Horror",), min_item_ratings=3, genre_cap=2)
    assert load_policy(Settings(policy=config)) == Policy(
        blocked_items=frozenset({"50"}), blocked_genres=frozenset({"horror"}), min_item_ratings=3, genre_cap=2
    )


def test_load_policy_file_lists_add_and_numbers_replace(tmp_path: Path):
    content = json.dumps({"blocked_items": ["7", "8"], "blocked_genres": ["gore"], "genre_cap": 3, "mmr_weight": 0.2})
    settings = settings_with(tmp_path, content, blocked_items=("50",), genre_cap=1, min_item_ratings=4)
    assert load_policy(settings) == Policy(
        blocked_items=frozenset({"50", "7", "8"}),
        blocked_genres=frozenset({"gore"}),
        min_item_ratings=4,
        genre_cap=3,
        mmr_weight=0.2,
    )
    assert load_policy(settings_with(tmp_path, "{}")) == Policy()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "not found"),
        ("{blocked_items: []}", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"blocked_item": ["1"]}', "unknown keys 'blocked_item'"),
        ('{"genre_cap": 1, "genre_cap": 2}', "duplicate keys 'genre_cap'"),
        ('{"blocked_items": "50"}', "blocked_items must be a list of strings"),
        ('{"blocked_items": [50]}', r"blocked_items\[0\] must be a string"),
        ('{"blocked_genres": ["Horror", ""]}', r"blocked_genres\[1\] is empty"),
        ('{"genre_cap": "2"}', "genre_cap must be an integer"),
        ('{"genre_cap": 2.0}', "genre_cap must be an integer"),
        ('{"min_item_ratings": true}', "min_item_ratings must be an integer"),
        ('{"min_item_ratings": -1}', "min_item_ratings must be >= 0"),
        ('{"mmr_weight": "0.5"}', "mmr_weight must be a number"),
        ('{"mmr_weight": NaN}', "mmr_weight must be a number"),
        ('{"mmr_weight": 1}', r"mmr_weight must be in \[0, 1\)"),
        ('{"mmr_weight": -0.1}', r"mmr_weight must be in \[0, 1\)"),
    ],
)
def test_load_policy_rejects_bad_files(tmp_path: Path, content: str | None, problem: str):
    with pytest.raises(ValueError, match=problem) as info:
        load_policy(settings_with(tmp_path, content))
    assert str(tmp_path / "policy.json") in str(info.value)


def test_load_policy_rejects_unreadable_files(tmp_path: Path):
    (tmp_path / "policy.json").write_bytes(b'{"blocked_items": ["\xff"]}')
    with pytest.raises(ValueError, match="not UTF-8"):
        load_policy(settings_with(tmp_path, None))
    with pytest.raises(ValueError, match="cannot be read"):
        load_policy(Settings(policy=PolicyConfig(file=tmp_path)))


# --- random policies and blocks ----------------------------------------------------------------


def reference_lists(
    cand: pd.DataFrame, rules: ItemRules, multi_hot: np.ndarray, top_k: int
) -> tuple[dict[int, list[int]], int]:
    """Per-user pure-Python greedy walk (the specification), and the cap skips."""
    flags = multi_hot > 0
    unit = unit_genres(multi_hot)
    w, cap = rules.mmr_weight, rules.genre_cap
    out: dict[int, list[int]] = {}
    skips = 0
    for u, g in cand.groupby("user_idx"):
        g = g[rules.allowed[g["item_idx"].to_numpy()]]
        if g.empty:
            continue
        s = g["score"].to_numpy(float)
        span = s.max() - s.min()
        rel = dict(zip(g["item_idx"], (s - s.min()) / span if span > 0 else np.ones_like(s), strict=True))
        left = sorted(rel, key=lambda i: (-rel[i], i))
        chosen: list[int] = []
        held = np.zeros(flags.shape[1], dtype=int)
        while left and len(chosen) < top_k:

            def value(i: int, chosen: list[int] = chosen, rel: dict[int, float] = rel) -> float:
                sim = max((float(np.dot(unit[i], unit[j])) for j in chosen), default=0.0)
                return (1 - w) * rel[i] - w * sim

            best = max(left, key=lambda i: (value(i), -i)) if w > 0 else left[0]
            left.remove(best)
            if cap > 0 and (held[flags[best]] >= cap).any():
                skips += 1
                continue
            chosen.append(best)
            held += flags[best]
        out[int(u)] = chosen
    return out, skips


def random_case(rng: np.random.Generator) -> tuple[Policy, pd.DataFrame, pd.DataFrame, np.ndarray, pd.DataFrame, int]:
    n_items = int(rng.integers(1, 40))
    names = GENRES[: int(rng.integers(0, len(GENRES) + 1))]
    genres = [[g for g in names if rng.random() < 0.35] for _ in range(n_items)]
    tags = [[t for t in ("gore", "funny", "slow") if rng.random() < 0.2] for _ in range(n_items)]
    n_ratings = rng.integers(0, 20, n_items).tolist()
    items, stats, multi_hot = catalogue(genres, n_ratings, tags)
    ids = [f"m{i}" for i in range(n_items)] + ["nope"]
    pool = [*GENRES, "gore", "funny", "slow", "western"]
    policy = Policy(
        blocked_items=frozenset(x for x in ids if rng.random() < 0.15),
        blocked_genres=frozenset(g.upper() if rng.random() < 0.5 else g for g in pool if rng.random() < 0.12),
        min_item_ratings=int(rng.choice([0, 0, 3, 10])),
        genre_cap=int(rng.choice([0, 1, 2, 3])),
        mmr_weight=float(rng.choice([0.0, rng.uniform(0, 0.99)])),
    )
    rows = []
    for u in rng.choice(1000, int(rng.integers(1, 8)), replace=False):
        picked = rng.choice(n_items, int(rng.integers(1, n_items + 1)), replace=False)
        # integer scores make ties; continuous ones make none.
        scores = rng.integers(0, 4, picked.size) if rng.random() < 0.3 else rng.normal(size=picked.size)
        rows += [(int(u), int(i), float(s)) for i, s in zip(picked, scores, strict=True)]
    cand = candidates(rows).sample(frac=1.0, random_state=int(rng.integers(1 << 30)))
    return policy, items, stats, multi_hot, cand, int(rng.integers(1, 10))


def test_random_policies_and_blocks_keep_every_invariant():
    rng = np.random.default_rng(20240614)
    for case in range(200):
        policy, items, stats, multi_hot, cand, top_k = random_case(rng)
        rules = item_rules(policy, items, stats)
        out, counts = apply_policy(cand, rules, top_k=top_k, item_genres=multi_hot)
        where = f"case {case}: {policy}, top_k={top_k}"
        assert set(counts) == set(COUNTS), where

        # Never a blocked item, genre, tag or under-rated item.
        info = items.set_index("item_idx").join(stats.set_index("item_idx")[["n_ratings", "tags"]])
        got = info.loc[out["item_idx"]]
        assert not got["item_id"].isin(policy.blocked_items).any(), where
        names = [{x.strip().casefold() for x in [*gs, *ts]} for gs, ts in zip(got["genres"], got["tags"], strict=True)]
        assert not any(n & policy.blocked_genres for n in names), where
        assert (got["n_ratings"] >= policy.min_item_ratings).all(), where

        # Ranks 1..n, at most top_k, no item twice, rows and columns carried from the input.
        for _, g in out.groupby("user_idx"):
            assert g["rank"].tolist() == list(range(1, len(g) + 1)) and len(g) <= top_k, where
            assert g["item_idx"].is_unique, where
            if policy.genre_cap:
                assert (multi_hot[g["item_idx"]] > 0).sum(axis=0).max(initial=0) <= policy.genre_cap, where
        back = out.merge(cand, on=["user_idx", "item_idx"], suffixes=("", "_in"))
        assert len(back) == len(out), where
        assert (back["score"] == back["score_in"]).all() and (back["reason"] == back["reason_in"]).all(), where

        # The same lists as the per-user specification; sizes and counts add up.
        expect, skips = reference_lists(cand, rules, multi_hot, top_k)
        assert lists_of(out) == {u: v for u, v in expect.items() if v}, where
        assert counts["genre_cap"] == skips, where
        n_allowed = cand.assign(ok=rules.allowed[cand["item_idx"]]).groupby("user_idx")["ok"].sum()
        sizes = out.groupby("user_idx").size().reindex(n_allowed.index, fill_value=0)
        if policy.genre_cap == 0:
            assert (sizes == np.minimum(top_k, n_allowed)).all(), where
        assert counts["short_users"] == int((sizes < top_k).sum()), where
        dropped = sum(counts[r] for r in RULES)
        assert dropped == int((~rules.allowed[cand["item_idx"]]).sum()), where
        assert len(cand) == len(out) + dropped + counts["genre_cap"] + counts["cut"], where


def test_a_full_size_block_is_fast():
    rng = np.random.default_rng(0)
    n_items, n_users, per_user = 5000, 4096, 300
    multi_hot = (rng.random((n_items, 19)) < 0.12).astype(np.float32)
    items = pd.DataFrame(
        {"item_idx": np.arange(n_items), "item_id": [f"m{i}" for i in range(n_items)], "genres": [[]] * n_items}
    )
    stats = pd.DataFrame({"item_idx": np.arange(n_items), "n_ratings": rng.integers(0, 50, n_items)})
    rules = item_rules(Policy(min_item_ratings=5, genre_cap=3), items, stats)
    cand = pd.DataFrame(
        {
            "user_idx": np.repeat(np.arange(n_users), per_user),
            "item_idx": np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)]),
            "score": rng.normal(size=n_users * per_user),
            "source": "popular",
        }
    )
    start = time.perf_counter()
    out, counts = apply_policy(cand, rules, top_k=10, item_genres=multi_hot)
    elapsed = time.perf_counter() - start
    assert len(out) == n_users * 10 and counts["short_users"] == 0
    assert elapsed < 15, f"{elapsed:.1f} s for {len(cand)} rows"  # a few seconds; the bound only catches blow-ups

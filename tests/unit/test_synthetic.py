"""The synthetic generator: deterministic, with the structure it claims to plant, streamed to Parquet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.data import synthetic
from recsys.data.synthetic import GENRES, generate, write_parquet
from schemas import table

KW = dict(n_users=200, n_items=150, n_groups=4, mean_ratings_per_user=30, min_ratings_per_user=10)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = generate(**KW, seed=1), generate(**KW, seed=1), generate(**KW, seed=2)
    pd.testing.assert_frame_equal(a.ratings, b.ratings)
    pd.testing.assert_frame_equal(a.items, b.items)
    pd.testing.assert_frame_equal(a.users, b.users)
    assert not a.ratings.equals(c.ratings)


def test_tables_match_the_staged_schemas() -> None:
    d = generate(**KW, seed=3)
    for name, frame in (("stg_ratings", d.ratings), ("stg_items", d.items), ("stg_users", d.users)):
        assert list(frame.columns) == table(name).names
    assert d.ratings["rating"].between(1, 5).all()
    assert not d.ratings.duplicated(["user_id", "item_id"]).any()
    assert (d.ratings.groupby("user_id").size() >= 10).all()
    assert {g for gs in d.items["genres"] for g in gs} <= set(GENRES)


def test_planted_tastes_and_popularity_skew() -> None:
    d = generate(**{**KW, "n_users": 600}, seed=4)
    counts = d.ratings.groupby("item_id").size().sort_values(ascending=False)
    top_share = counts.iloc[: len(counts) // 10].sum() / counts.sum()
    assert top_share > 0.25  # the top 10% of items get well over 10% of ratings
    # Users rate items of their group's loved genres higher than items of its disliked genres.
    items = d.items.set_index("item_id")["genres"]
    r = d.ratings.assign(group=d.user_group[d.ratings["user_id"].astype(int) - 1])
    aff = np.array(
        [np.mean([d.affinity[g, GENRES.index(x)] for x in items[i]]) for i, g in zip(r.item_id, r.group, strict=False)]
    )
    assert r.loc[aff > 0.5, "rating"].mean() > r.loc[aff < -0.5, "rating"].mean() + 1.0


# --- streaming to Parquet -------------------------------------------------------------------------

# 400 items and a mean of 30: users wanting <= 40 items take the streamed sampler, the others
# (about a fifth) the Gumbel top-k, so both paths are covered; 450 users span 4 internal blocks.
BIG = dict(n_users=450, n_items=400, n_groups=5, mean_ratings_per_user=30, min_ratings_per_user=10, seed=9)


def _ratings(files: synthetic.SyntheticFiles) -> pd.DataFrame:
    return pa.concat_tables([pq.read_table(p) for p in files.ratings]).to_pandas()


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> synthetic.SyntheticFiles:
    return write_parquet(tmp_path_factory.mktemp("syn") / "out", **BIG, chunk_users=100)


def test_chunk_size_changes_the_files_not_the_rows(written, tmp_path) -> None:
    other = write_parquet(tmp_path / "one", **BIG, chunk_users=37)
    single = write_parquet(tmp_path / "single", **BIG, chunk_users=10_000)
    assert len(written.ratings) == 5 and len(other.ratings) == 13 and len(single.ratings) == 1
    a, b, c = _ratings(written), _ratings(other), _ratings(single)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    pd.testing.assert_frame_equal(pd.read_parquet(written.users), pd.read_parquet(other.users))
    # Part c holds exactly users [c * chunk, (c + 1) * chunk).
    for c, p in enumerate(other.ratings):
        users = pq.read_table(p, columns=["user_id"]).column(0).to_numpy().astype(int)
        assert users.min() >= c * 37 + 1 and users.max() <= (c + 1) * 37
    assert written.n_ratings == len(a) and written.n_users == 450 and written.n_items == 400


def test_generate_equals_the_concatenated_parquet(written) -> None:
    d = generate(**BIG)
    pd.testing.assert_frame_equal(d.ratings, _ratings(written))
    pd.testing.assert_frame_equal(d.items, pd.read_parquet(written.items))
    pd.testing.assert_frame_equal(d.users, pd.read_parquet(written.users))
    # Both samplers ran and kept the contract: distinct items, counts within [min, n_items // 2].
    per_user = d.ratings.groupby("user_id").size()
    assert per_user.min() >= 10 and per_user.max() <= 200
    assert (per_user > 40).mean() > 0.1 and (per_user <= 40).mean() > 0.3
    assert not d.ratings.duplicated(["user_id", "item_id"]).any()


def test_written_files_have_the_staged_schemas(written) -> None:
    for name, paths in (
        ("stg_ratings", written.ratings),
        ("stg_items", [written.items]),
        ("stg_users", [written.users]),
    ):
        for p in paths:
            assert pq.read_schema(p).equals(table(name).arrow), (name, p)
    meta = json.loads(written.success.read_text())
    assert meta["params"]["seed"] == 9 and meta["params"]["chunk_users"] == 100
    assert meta["n_ratings"] == written.n_ratings
    newest_data = max(p.stat().st_mtime_ns for p in written.root.rglob("*.parquet"))
    assert written.success.stat().st_mtime_ns >= newest_data  # _SUCCESS is written last


def test_same_parameters_reuse_the_files_other_parameters_replace_them(tmp_path) -> None:
    kw = {**KW, "seed": 5}
    first = write_parquet(tmp_path / "out", **kw, chunk_users=64)
    before, first_ratings = _mtimes(first.root), _ratings(first)
    again = write_parquet(tmp_path / "out", **kw, chunk_users=64)
    assert again.cached and not first.cached
    assert again == synthetic.SyntheticFiles(**{**first.__dict__, "cached": True})
    assert _mtimes(again.root) == before  # nothing rewritten
    other = write_parquet(tmp_path / "out", **{**kw, "seed": 6}, chunk_users=64)
    assert not other.cached
    assert not _ratings(other).equals(first_ratings) and _mtimes(other.root) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp or old folders left


def test_a_folder_that_is_not_a_dataset_is_never_replaced(tmp_path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_parquet(tmp_path / "out", **KW, seed=1)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (tmp_path / "empty").mkdir()
    assert write_parquet(tmp_path / "empty", **KW, seed=1).n_users == 200  # an empty folder is fine


def test_interrupted_write_leaves_nothing_or_the_previous_dataset(tmp_path, monkeypatch) -> None:
    real, calls = synthetic._write_table, []

    def failing(data, path) -> None:
        calls.append(path)
        if len(calls) == 3:  # items, ratings part 0, then fail on part 1
            raise RuntimeError("disk full")
        real(data, path)

    monkeypatch.setattr(synthetic, "_write_table", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        write_parquet(tmp_path / "out", **KW, seed=1, chunk_users=64)
    assert list(tmp_path.iterdir()) == []  # no out_dir, no temp folder

    monkeypatch.setattr(synthetic, "_write_table", real)
    kept = write_parquet(tmp_path / "out", **KW, seed=1, chunk_users=64)
    before = _mtimes(kept.root)
    calls.clear()
    monkeypatch.setattr(synthetic, "_write_table", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        write_parquet(tmp_path / "out", **KW, seed=2, chunk_users=64)
    assert _mtimes(kept.root) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert json.loads(kept.success.read_text())["params"]["seed"] == 1


def test_a_users_data_depends_on_the_seed_and_the_user_only() -> None:
    small, large = generate(**KW, seed=3), generate(**{**KW, "n_users": 333}, seed=3)
    pd.testing.assert_frame_equal(small.ratings, large.ratings[large.ratings["user_id"].astype(int) <= 200])
    pd.testing.assert_frame_equal(small.users, large.users.iloc[:200])
    np.testing.assert_array_equal(small.user_group, large.user_group[:200])
    pd.testing.assert_frame_equal(small.items, large.items)


def test_streamed_sampler_has_the_law_of_the_gumbel_top_k(monkeypatch) -> None:
    """The fast path (first k distinct of an i.i.d. stream) and a plain Gumbel top-k agree."""
    cat = synthetic._catalogue(n_items=300, n_groups=3, seed=5)
    n = 20_000
    group, k = np.full(n, 1), np.full(n, 40)

    def inclusion(share: float, seed: int) -> np.ndarray:
        monkeypatch.setattr(synthetic, "_STREAM_MAX_SHARE", share)
        keys = synthetic._exposure(np.random.default_rng(seed), cat, group, k)
        assert (np.diff(keys) > 0).all() and (np.bincount(keys // 300, minlength=n) == k).all()  # sorted, distinct
        return np.bincount(keys % 300, minlength=300) / n

    streamed, gumbel = inclusion(1.0, 0), inclusion(0.0, 1)
    se = np.sqrt(np.maximum(gumbel * (1 - gumbel), 1e-4) * 2 / n)
    z2 = ((streamed - gumbel) / se) ** 2
    assert z2.mean() < 1.5 and z2.max() < 25, (z2.mean(), z2.max())

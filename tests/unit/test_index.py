"""Conformance suite of the nearest-neighbour indexes (recsys.retrieval.index) and similar items.

Every implementation of :class:`NeighborIndex` listed in ``INDEXES`` runs every
test below. Exact implementations must reproduce the known answers and the
brute-force reference exactly (ids in order, ties to the smaller id, distances
to rounding); approximate ones are held to the recall in ``MIN_RECALL`` and must
still return the true squared distances of the ids they return, nearest first.
Adding an implementation is one line in ``INDEXES`` (and one in ``MIN_RECALL``).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from recsys.retrieval.index import ExactIndex, NeighborIndex
from recsys.retrieval.similar import neighbor_matrix, similar_items

INDEXES: list[type[NeighborIndex]] = [ExactIndex]

# Recall@k against the exact reference each implementation must reach; 1.0 means "exact":
# identical ids in identical order. Implementations not listed get DEFAULT_MIN_RECALL.
MIN_RECALL: dict[type[NeighborIndex], float] = {ExactIndex: 1.0}
DEFAULT_MIN_RECALL = 0.9


@pytest.fixture(params=INDEXES, ids=lambda cls: cls.__name__)
def index_cls(request: pytest.FixtureRequest) -> type[NeighborIndex]:
    return request.param


def is_exact(cls: type[NeighborIndex]) -> bool:
    return MIN_RECALL.get(cls, DEFAULT_MIN_RECALL) >= 1.0


def brute_force(
    vectors: np.ndarray, queries: np.ndarray, k: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Reference: squared L2 by explicit differences, ties to the smaller id."""
    d = ((queries[:, None, :] - vectors[None, :, :]) ** 2).sum(-1)
    if exclude is not None:
        d[np.arange(len(queries)), exclude] = np.inf
    order = np.arange(vectors.shape[0])
    ids = np.stack([np.lexsort((order, row))[:k] for row in d]).astype(np.int64)
    return ids, np.take_along_axis(d, ids, axis=1)


def assert_matches(
    cls: type[NeighborIndex],
    ids: np.ndarray,
    dists: np.ndarray,
    want_ids: np.ndarray,
    want_dists: np.ndarray,
    vectors: np.ndarray,
    queries: np.ndarray,
) -> None:
    """Exact: same ids in the same order and same distances. Approximate: recall + honest distances."""
    want_ids = np.asarray(want_ids)
    assert ids.shape == want_ids.shape
    assert dists.shape == want_ids.shape
    assert ids.dtype == np.int64
    assert dists.dtype == np.float64
    if is_exact(cls):
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(dists, want_dists, rtol=1e-9, atol=1e-9)
        return
    k = want_ids.shape[1]
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(ids.tolist(), want_ids.tolist(), strict=True)])
    assert recall >= MIN_RECALL.get(cls, DEFAULT_MIN_RECALL), f"recall@{k} = {recall:.3f}"
    true = ((queries[:, None, :] - vectors[ids]) ** 2).sum(-1)
    np.testing.assert_allclose(dists, true, rtol=1e-9, atol=1e-9)
    assert np.all(np.diff(dists, axis=1) >= -1e-12), "neighbours must come nearest first"
    for row in ids:
        assert len(set(row.tolist())) == k, "an id returned twice for one query"


LINE = np.arange(10, dtype=np.float64)[:, None]  # points 0..9 on a line; row i is id i


# --- known answers ---------------------------------------------------------------------------


def test_line_neighbours_of_three_ties_to_smaller_id(index_cls):
    index = index_cls().build(LINE)
    ids, dists = index.query(LINE[[3]], 4, exclude=np.array([3]))
    # 2 and 4 are both at distance 1, then 1 and 5 at distance 4: smaller id first.
    assert_matches(index_cls, ids, dists, [[2, 4, 1, 5]], [[1.0, 1.0, 4.0, 4.0]], LINE, LINE[[3]])


def test_line_without_exclude_returns_the_point_itself_first(index_cls):
    index = index_cls().build(LINE)
    ids, dists = index.query(LINE[[3]], 3)
    assert_matches(index_cls, ids, dists, [[3, 2, 4]], [[0.0, 1.0, 1.0]], LINE, LINE[[3]])


def test_line_every_point_at_once(index_cls):
    index = index_cls().build(LINE)
    ids, dists = index.query(LINE, 2, exclude=np.arange(10))
    want = np.array([[1, 2]] + [[i - 1, i + 1] for i in range(1, 9)] + [[8, 7]])
    want_d = np.array([[1.0, 4.0]] + [[1.0, 1.0]] * 8 + [[1.0, 4.0]])
    assert_matches(index_cls, ids, dists, want, want_d, LINE, LINE)


def test_squared_distances_are_exact(index_cls):
    vectors = np.array([[0, 0], [3, 4], [1, 1], [-2, 5], [6, -8]], dtype=np.float64)
    q = np.array([[0.0, 0.0], [1.0, 1.0]])
    index = index_cls().build(vectors)
    ids, dists = index.query(q, 5)
    want = np.array([[0, 2, 1, 3, 4], [2, 0, 1, 3, 4]])
    # squared, not Euclidean: 3-4-5 gives 25; (1,1)->(6,-8) gives 25 + 81 = 106.
    want_d = np.array([[0.0, 2.0, 25.0, 29.0, 100.0], [0.0, 2.0, 13.0, 25.0, 106.0]])
    assert_matches(index_cls, ids, dists, want, want_d, vectors, q)
    if is_exact(index_cls):
        np.testing.assert_array_equal(dists, want_d)  # small integers: no rounding at all


def test_exclude_removes_self_by_id_even_among_duplicate_points(index_cls):
    # ids 0 and 1 are the same point: excluding "self" must drop the id, not every point at distance 0.
    vectors = np.array([[0.0], [0.0], [5.0], [7.0]])
    index = index_cls().build(vectors)
    ids, dists = index.query(vectors, 3, exclude=np.arange(4))
    for i, row in enumerate(ids):
        assert i not in row
    want = np.array([[1, 2, 3], [0, 2, 3], [3, 0, 1], [2, 0, 1]])
    want_d = np.array([[0.0, 25.0, 49.0], [0.0, 25.0, 49.0], [4.0, 25.0, 25.0], [4.0, 49.0, 49.0]])
    assert_matches(index_cls, ids, dists, want, want_d, vectors, vectors)


def test_exclude_applies_per_query(index_cls):
    # The same query point with a different excluded id each time.
    index = index_cls().build(LINE)
    q = LINE[[3, 3, 3]]
    ids, dists = index.query(q, 2, exclude=np.array([3, 2, 4]))
    assert_matches(index_cls, ids, dists, [[2, 4], [3, 4], [3, 2]], [[1.0, 1.0], [0.0, 1.0], [0.0, 1.0]], LINE, q)


# --- argument checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "use_exclude"),
    [(0, False), (-1, False), (11, False), (0, True), (10, True)],
    ids=["k0", "k-1", "k>n", "k0-exclude", "k=n-with-exclude"],
)
def test_k_out_of_bounds_raises(index_cls, k, use_exclude):
    index = index_cls().build(LINE)
    exclude = np.arange(10) if use_exclude else None
    with pytest.raises(ValueError, match="k="):
        index.query(LINE, k, exclude=exclude)


def test_k_at_the_bounds_is_allowed(index_cls):
    index = index_cls().build(LINE)
    ids, _ = index.query(LINE, 10)
    assert ids.shape == (10, 10)
    assert all(sorted(row) == list(range(10)) for row in ids.tolist())
    ids, _ = index.query(LINE, 9, exclude=np.arange(10))
    assert ids.shape == (10, 9)
    assert all(sorted(row) == sorted(set(range(10)) - {i}) for i, row in enumerate(ids.tolist()))


def test_query_before_build_raises(index_cls):
    with pytest.raises(RuntimeError, match="build"):
        index_cls().query(LINE, 2)


def test_build_returns_the_index_and_rebuild_replaces_the_vectors(index_cls):
    index = index_cls()
    assert index.build(LINE) is index
    index.build(LINE[::-1].copy())  # id 0 is now the point 9
    ids, dists = index.query(np.array([[9.0]]), 2)
    assert_matches(index_cls, ids, dists, [[0, 1]], [[0.0, 1.0]], LINE[::-1], np.array([[9.0]]))


# --- against the brute-force reference -------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_random_data_matches_brute_force_with_self_excluded(index_cls, seed):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(300, 8))
    index = index_cls().build(vectors)
    ids, dists = index.query(vectors, 10, exclude=np.arange(300))
    want, want_d = brute_force(vectors, vectors, 10, exclude=np.arange(300))
    assert_matches(index_cls, ids, dists, want, want_d, vectors, vectors)


def test_random_external_queries_match_brute_force(index_cls):
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(250, 5)) * 3.0 + 1.0
    queries = rng.normal(size=(40, 5)) * 3.0 + 1.0
    index = index_cls().build(vectors)
    ids, dists = index.query(queries, 15)
    want, want_d = brute_force(vectors, queries, 15)
    assert_matches(index_cls, ids, dists, want, want_d, vectors, queries)


def test_results_do_not_depend_on_a_moderate_translation(index_cls):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(120, 4))
    base_ids, base_d = index_cls().build(vectors).query(vectors, 5, exclude=np.arange(120))
    shifted = vectors + 1000.0
    ids, dists = index_cls().build(shifted).query(shifted, 5, exclude=np.arange(120))
    want, want_d = brute_force(shifted, shifted, 5, exclude=np.arange(120))
    assert_matches(index_cls, ids, dists, want, want_d, shifted, shifted)
    if is_exact(index_cls):
        np.testing.assert_array_equal(ids, base_ids)
        np.testing.assert_allclose(dists, base_d, rtol=1e-6)


@pytest.mark.parametrize("block", [1, 7, 64, 299, 300, 10_000])
def test_block_size_does_not_change_results(index_cls, block):
    if "block" not in inspect.signature(index_cls).parameters:
        pytest.skip(f"{index_cls.__name__} has no block size")
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(300, 6))
    ref_ids, ref_d = index_cls().build(vectors).query(vectors, 8, exclude=np.arange(300))
    ids, dists = index_cls(block=block).build(vectors).query(vectors, 8, exclude=np.arange(300))
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(dists, ref_d, rtol=1e-12, atol=1e-12)
    for i, row in enumerate(ids):  # exclude must follow its query across block boundaries
        assert i not in row


# --- similar items and the neighbour matrix built on an index --------------------------------


def test_similar_items_known_answer(index_cls):
    sim = similar_items(LINE[:5], 2, source="cf", index=index_cls())
    assert list(sim.columns) == ["item_idx", "rank", "neighbor_idx", "distance", "source"]
    assert sim["item_idx"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert sim["rank"].tolist() == [1, 2] * 5
    if is_exact(index_cls):
        assert sim["neighbor_idx"].tolist() == [1, 2, 0, 2, 1, 3, 2, 4, 3, 2]
        assert sim["distance"].tolist() == [1.0, 4.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 4.0]
    assert (sim["source"] == "cf").all()
    assert (sim["item_idx"] != sim["neighbor_idx"]).all()


def test_similar_items_caps_k_at_n_minus_one(index_cls):
    sim = similar_items(LINE[:3], 10, source="two_tower", index=index_cls())
    assert len(sim) == 3 * 2
    assert sim.groupby("item_idx")["rank"].max().tolist() == [2, 2, 2]


def test_neighbor_matrix_pads_with_minus_one_and_cuts_at_k():
    sim = similar_items(LINE[:4], 3, source="cf")
    m = neighbor_matrix(sim, n_items=6, k=2)  # items 4 and 5 have no rows
    assert m.dtype == np.int64
    np.testing.assert_array_equal(m, [[1, 2], [0, 2], [1, 3], [2, 1], [-1, -1], [-1, -1]])


def test_similar_items_of_a_single_item_catalogue_is_empty():
    sim = similar_items(np.zeros((1, 3)), 5, source="cf")
    assert len(sim) == 0
    assert list(sim.columns) == ["item_idx", "rank", "neighbor_idx", "distance", "source"]

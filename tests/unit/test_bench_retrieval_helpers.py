"""Smoke tests of the retrieval benchmark's helpers and of its two in-process exact parts at a tiny shape."""

from __future__ import annotations

import numpy as np
import pytest

from bench import retrieval


def test_drop_self_removes_the_item_or_the_last() -> None:
    ids = np.array([[0, 5, 6], [7, 1, 8], [3, 4, 9]])  # row 2 does not hold itself: its last one goes
    np.testing.assert_array_equal(retrieval.drop_self(ids), [[5, 6], [7, 8], [3, 4]])


def test_identical_sets_ignores_order() -> None:
    a = np.array([[1, 2], [3, 4]])
    assert retrieval.identical_sets(a, a[:, ::-1]) == 1.0
    assert retrieval.identical_sets(a, np.array([[1, 2], [3, 5]])) == 0.5


def test_data_is_seeded() -> None:
    np.testing.assert_array_equal(retrieval.clustered(50, 4, 3, seed=1), retrieval.clustered(50, 4, 3, seed=1))
    assert retrieval.clustered(50, 4, 3, seed=1).dtype == np.float32
    assert not np.array_equal(retrieval.gaussian(5, 4, 1), retrieval.gaussian(5, 4, 2))


def test_best_of_keeps_the_minimum() -> None:
    calls: list[int] = []
    (t,), (last,) = retrieval.best_of(3, lambda: calls.append(1) or len(calls))
    assert t >= 0 and last == 3 and len(calls) == 3


def test_exact_parts_agree_with_faiss() -> None:
    sim = retrieval.similar_items(600, repeats=1)
    assert sim["similar_items_agreement"] >= 0.99
    assert sim["similar_items_ratio"] == pytest.approx(sim["similar_items_s"] / sim["similar_items_faiss_s"])
    top = retrieval.topk(400, 300, 200, repeats=1)
    assert top["topk_agreement"] >= 0.99
    assert top["topk_users_timed"] == 200 and top["topk_s"] > 0 and top["gemm_floor_s"] > 0


def test_check_targets() -> None:
    out = retrieval.check_targets({"similar_items_ratio": 1.2, "ann_recall_at_10": 0.9})
    assert out["similar_items_ratio"]["ok"] is True
    assert out["ann_recall_at_10"]["ok"] is False
    assert out["topk_ratio"]["ok"] is None

"""Evaluation metrics (recsys.evaluation.metrics) against hand-computed answers.

Each known answer below is worked out in the comment next to it; the random
cases compare the vectorised code with a plain per-user loop written straight
from the definitions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys.evaluation.metrics import (
    ndcg_per_user,
    paired_bootstrap_ci,
    ranking_metrics,
    rating_metrics,
    relevant_lists,
)
from recsys.retrieval.topk import top_k_items

LOG2_3 = math.log2(3)


def rel(*lists: list[int]) -> list[np.ndarray]:
    return [np.asarray(x, dtype=np.int64) for x in lists]


# --------------------------------------------------------------------------- rating metrics


def test_rating_metrics_clips_to_the_scale() -> None:
    # Clipped predictions [1, 5, 2] vs truth [2, 4, 3]: errors -1, +1, -1 -> RMSE 1, MAE 1.
    # Unclipped ([0, 7, 2]) they would be -2, +3, -1: RMSE sqrt(14/3), MAE 2.
    m = rating_metrics(np.array([0.0, 7.0, 2.0]), np.array([2.0, 4.0, 3.0]), rating_min=1, rating_max=5)
    assert m["rmse"] == pytest.approx(1.0)
    assert m["mae"] == pytest.approx(1.0)
    assert m["n"] == 3
    assert m["n_unknown"] == 0


def test_rating_metrics_hand_computed_and_unknown_pairs_counted_and_scored() -> None:
    # Errors 0.5, -1, 0, 2: RMSE sqrt((0.25 + 1 + 0 + 4) / 4) = sqrt(1.3125), MAE 3.5 / 4.
    pred = np.array([3.5, 2.0, 4.0, 3.0])
    truth = np.array([3.0, 3.0, 4.0, 1.0])
    known = np.array([True, False, True, True])
    m = rating_metrics(pred, truth, rating_min=1, rating_max=5, known=known)
    assert m["rmse"] == pytest.approx(math.sqrt(1.3125))
    assert m["mae"] == pytest.approx(0.875)
    assert m["n"] == 4
    assert m["n_unknown"] == 1  # still scored: the errors above include the unknown pair


def test_rating_metrics_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        rating_metrics(np.ones(3), np.ones(2), rating_min=1, rating_max=5)
    with pytest.raises(ValueError):
        rating_metrics(np.ones(2), np.ones(2), rating_min=1, rating_max=5, known=np.ones(2))  # not bool
    with pytest.raises(ValueError):
        rating_metrics(np.array([np.nan, 1.0]), np.ones(2), rating_min=1, rating_max=5)


def test_rating_metrics_empty_is_nan() -> None:
    m = rating_metrics(np.empty(0), np.empty(0), rating_min=1, rating_max=5)
    assert math.isnan(m["rmse"]) and math.isnan(m["mae"]) and m["n"] == 0


# --------------------------------------------------------------------------- top_k_items


def test_top_k_items_order_and_tie_break_by_lower_index() -> None:
    scores = np.array([[1.0, 3.0, 3.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(top_k_items(scores, 2), [[1, 2], [0, 1]])
    np.testing.assert_array_equal(top_k_items(scores, 4), [[1, 2, 4, 3], [0, 1, 2, 3]])
    np.testing.assert_array_equal(top_k_items(scores, 5), [[1, 2, 4, 3, 0], [0, 1, 2, 3, 4]])


def test_top_k_items_matches_a_full_stable_sort_with_many_ties() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(300, 50)).astype(np.float64)  # few distinct values: ties everywhere
    for k in (1, 7, 10, 49, 50):
        expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(top_k_items(scores, k), expected)
        np.testing.assert_array_equal(top_k_items(scores.astype(np.float32), k), expected)
    # With random exclusions (up to every item of a row): excluded items become -inf, then padding.
    exclude = [rng.choice(50, size=n, replace=False) for n in rng.integers(0, 51, size=300)]
    masked = scores.copy()
    for u, e in enumerate(exclude):
        masked[u, e] = -np.inf
    for k in (5, 45):
        expected = np.argsort(-masked, axis=1, kind="stable")[:, :k]
        expected[np.isneginf(np.take_along_axis(masked, expected, axis=1))] = -1
        np.testing.assert_array_equal(top_k_items(scores, k, exclude=exclude), expected)


def test_top_k_items_exclusion_padding_and_input_untouched() -> None:
    scores = np.array([[5.0, 4.0, 3.0, 2.0], [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
    before = scores.copy()
    exclude = rel([0, 2], [], [0, 1, 2, 3])
    top = top_k_items(scores, 3, exclude=exclude)
    # Row 0: 0 and 2 excluded -> 1, 3, then nothing left. Row 2: everything excluded.
    np.testing.assert_array_equal(top, [[1, 3, -1], [3, 2, 1], [-1, -1, -1]])
    np.testing.assert_array_equal(scores, before)
    # k larger than the catalogue: padded with -1.
    np.testing.assert_array_equal(top_k_items(scores[:1], 6), [[0, 1, 2, 3, -1, -1]])


def test_top_k_items_rejects_nan_and_bad_k() -> None:
    with pytest.raises(ValueError):
        top_k_items(np.array([[1.0, np.nan]]), 1)
    with pytest.raises(ValueError):
        top_k_items(np.ones((2, 3)), 0)
    with pytest.raises(ValueError):
        top_k_items(np.ones((2, 3)), 1, exclude=rel([0]))  # one entry for two rows


# --------------------------------------------------------------------------- relevant_lists


def test_relevant_lists_groups_by_user_in_input_order() -> None:
    groups = relevant_lists(np.array([2, 0, 2, 2]), np.array([7, 3, 1, 9]), n_users=4)
    assert len(groups) == 4
    for got, want in zip(groups, ([3], [], [7, 1, 9], []), strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError):
        relevant_lists(np.array([4]), np.array([0]), n_users=4)


# --------------------------------------------------------------------------- ranking accuracy


def test_perfect_ranking() -> None:
    k = 10
    rel_small = np.array([5, 9, 2])  # |rel| = 3 < K
    rel_large = np.arange(20, 35)  # |rel| = 15 > K
    rec = np.full((2, k), -1)
    rec[0, :3] = rel_small
    rec[0, 3:] = np.arange(40, 47)  # the rest of the list: misses
    rec[1] = rel_large[:k]
    m = ranking_metrics(rec, [rel_small, rel_large], k=k, n_items=50)
    assert m["ndcg"] == pytest.approx(1.0)
    assert m["map"] == pytest.approx(1.0)
    assert m["hit_rate"] == 1.0
    assert m["precision"] == pytest.approx((3 / 10 + 10 / 10) / 2)  # min(|rel|, K) / K
    assert m["recall"] == pytest.approx((1.0 + 10 / 15) / 2)  # min(|rel|, K) / |rel|
    assert m["n_users"] == 2 and m["n_users_skipped"] == 0 and m["k"] == 10


def test_ndcg_of_truth_against_itself_is_one() -> None:
    rng = np.random.default_rng(0)
    truth = [rng.choice(100, size=n, replace=False) for n in rng.integers(1, 30, size=50)]
    rec = np.full((50, 10), -1)
    for u, t in enumerate(truth):
        rec[u, : min(len(t), 10)] = t[:10]
    m = ranking_metrics(rec, truth, k=10, n_items=100)
    assert m["ndcg"] == pytest.approx(1.0)
    assert m["map"] == pytest.approx(1.0)


def test_hand_computed_small_case() -> None:
    # K = 3, rel = {a=0, c=2}, rec = [a, b, c]: hits at ranks 1 and 3.
    m = ranking_metrics(np.array([[0, 1, 2]]), rel([0, 2]), k=3, n_items=5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(1.0)
    assert m["ndcg"] == pytest.approx((1 + 1 / 2) / (1 + 1 / LOG2_3))  # DCG 1 + 1/log2(4); IDCG over 2 ranks
    assert m["map"] == pytest.approx((1 + 2 / 3) / 2)  # P@1 = 1, P@3 = 2/3, over min(2, 3)
    assert m["hit_rate"] == 1.0


def test_hand_computed_two_users_means() -> None:
    # User 0: rec [1, 0, 3], rel {0, 2, 3, 4}, K = 3: hits at ranks 2 and 3.
    #   P = 2/3, R = 2/4, DCG = 1/log2(3) + 1/2, IDCG = 1 + 1/log2(3) + 1/2 (min(4, 3) = 3 ranks),
    #   AP = (P@2 + P@3) / 3 = (1/2 + 2/3) / 3.
    # User 1: rec [4, 3, 2], rel {0}: all miss, every metric 0.
    m = ranking_metrics(np.array([[1, 0, 3], [4, 3, 2]]), rel([0, 2, 3, 4], [0]), k=3, n_items=5)
    assert m["precision"] == pytest.approx((2 / 3) / 2)
    assert m["recall"] == pytest.approx((2 / 4) / 2)
    assert m["ndcg"] == pytest.approx(((1 / LOG2_3 + 1 / 2) / (1 + 1 / LOG2_3 + 1 / 2)) / 2)
    assert m["map"] == pytest.approx(((1 / 2 + 2 / 3) / 3) / 2)
    assert m["hit_rate"] == pytest.approx(0.5)
    assert m["n_users"] == 2


def test_ndcg_per_user_hand_computed_and_its_mean_is_the_metric() -> None:
    rec = np.array([[1, 0, 3], [4, 3, 2], [0, 1, 2]])
    relevant = rel([0, 2, 3, 4], [0], [])
    per_user = ndcg_per_user(rec, relevant, k=3, n_items=5)
    assert per_user[0] == pytest.approx((1 / LOG2_3 + 1 / 2) / (1 + 1 / LOG2_3 + 1 / 2))
    assert per_user[1] == 0.0 and np.isnan(per_user[2])  # no relevant item: NaN, as ranking_metrics skips it
    assert np.nanmean(per_user) == pytest.approx(ranking_metrics(rec, relevant, k=3, n_items=5)["ndcg"])


def test_users_with_empty_relevant_set_are_skipped_and_counted() -> None:
    rec = np.array([[0, 1], [0, 1], [2, 3]])
    m = ranking_metrics(rec, rel([0], [], []), k=2, n_items=4)
    assert m["n_users"] == 1
    assert m["n_users_skipped"] == 2
    # Only user 0 counts: hit at rank 1 of 1 relevant item.
    assert m["precision"] == pytest.approx(1 / 2)
    assert m["recall"] == m["ndcg"] == m["map"] == m["hit_rate"] == pytest.approx(1.0)


def test_no_user_with_relevant_items_gives_nan_accuracy() -> None:
    m = ranking_metrics(np.array([[0, 1]]), rel([]), k=2, n_items=3)
    assert m["n_users"] == 0 and m["n_users_skipped"] == 1
    assert all(math.isnan(m[key]) for key in ("precision", "recall", "ndcg", "map", "hit_rate"))
    assert m["coverage"] == pytest.approx(2 / 3)


def test_padding_counts_as_miss() -> None:
    # K = 3, rec [-, 0, -], rel {0}: one hit at rank 2. P = 1/3, NDCG = (1/log2(3)) / 1, AP = (1/2) / 1.
    m = ranking_metrics(np.array([[-1, 0, -1]]), rel([0]), k=3, n_items=4)
    assert m["precision"] == pytest.approx(1 / 3)
    assert m["recall"] == pytest.approx(1.0)
    assert m["ndcg"] == pytest.approx(1 / LOG2_3)
    assert m["map"] == pytest.approx(0.5)


def test_padding_never_matches_the_previous_users_last_item() -> None:
    # With keys user * n_items + item, user 1's padding -1 encodes as 1 * 4 - 1 = 3 = user 0's item 3.
    m = ranking_metrics(np.array([[0, 1], [-1, -1]]), rel([3], [2]), k=2, n_items=4)
    assert m["hit_rate"] == 0.0
    assert m["precision"] == 0.0


def test_only_the_first_k_columns_count() -> None:
    rec = np.array([[5, 6, 0, 1]])  # the relevant items sit at ranks 3 and 4
    assert ranking_metrics(rec, rel([0, 1]), k=2, n_items=8)["hit_rate"] == 0.0
    assert ranking_metrics(rec, rel([0, 1]), k=4, n_items=8)["recall"] == pytest.approx(1.0)


def test_duplicate_relevant_items_count_once_and_repeated_recommendations_are_rejected() -> None:
    m = ranking_metrics(np.array([[0, 1]]), rel([0, 0, 0]), k=2, n_items=3)
    assert m["recall"] == pytest.approx(1.0)  # |rel| = 1, not 3
    with pytest.raises(ValueError, match="repeats"):
        ranking_metrics(np.array([[0, 0]]), rel([0]), k=2, n_items=3)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError):
        ranking_metrics(np.array([[0, 1]]), rel([0]), k=3, n_items=3)  # fewer than k columns
    with pytest.raises(ValueError):
        ranking_metrics(np.array([[0, 5]]), rel([0]), k=2, n_items=3)  # item outside the catalogue
    with pytest.raises(ValueError):
        ranking_metrics(np.array([[0, 1]]), rel([0], [1]), k=2, n_items=3)  # one list too many
    with pytest.raises(ValueError):
        ranking_metrics(np.array([[0, 1]]), rel([7]), k=2, n_items=3)  # relevant item outside the catalogue


def naive_accuracy(rec: np.ndarray, relevant: list[np.ndarray], k: int) -> dict[str, float]:
    """Per-user loop written straight from the definitions, for comparison."""
    per_user: dict[str, list[float]] = {"precision": [], "recall": [], "ndcg": [], "map": [], "hit_rate": []}
    for row, r in zip(rec, relevant, strict=True):
        rs = {int(x) for x in r}
        if not rs:
            continue
        hits = [1.0 if int(x) in rs else 0.0 for x in row[:k]]
        n_hits = sum(hits)
        per_user["precision"].append(n_hits / k)
        per_user["recall"].append(n_hits / len(rs))
        dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
        idcg = sum(1 / math.log2(i + 2) for i in range(min(len(rs), k)))
        per_user["ndcg"].append(dcg / idcg)
        ap = sum(sum(hits[: i + 1]) / (i + 1) * h for i, h in enumerate(hits))
        per_user["map"].append(ap / min(len(rs), k))
        per_user["hit_rate"].append(1.0 if n_hits else 0.0)
    return {key: float(np.mean(v)) for key, v in per_user.items()}


def test_vectorised_matches_the_per_user_definitions_on_random_data() -> None:
    rng = np.random.default_rng(42)
    n_users, n_items, k = 150, 60, 10
    rec = np.stack([rng.permutation(n_items)[:12] for _ in range(n_users)])
    rec[rng.random((n_users, 12)) < 0.1] = -1  # scattered padding
    relevant = [rng.choice(n_items, size=n, replace=False) for n in rng.integers(0, 25, size=n_users)]
    m = ranking_metrics(rec, relevant, k=k, n_items=n_items)
    want = naive_accuracy(rec, relevant, k)
    for key, value in want.items():
        assert m[key] == pytest.approx(value, abs=1e-12), key
    assert m["n_users"] == sum(len(r) > 0 for r in relevant)


# --------------------------------------------------------------------------- beyond accuracy


def test_coverage_counts_distinct_items_of_all_lists() -> None:
    # Items 0, 1, 2, 7 appear (user 2 has no relevant item but its list counts); padding does not.
    rec = np.array([[0, 1, -1], [1, 2, 0], [7, -1, -1]])
    m = ranking_metrics(rec, rel([0], [5], []), k=3, n_items=10)
    assert m["coverage"] == pytest.approx(4 / 10)


def test_novelty_hand_computed() -> None:
    # 8 training users; popularity [8, 4, 1, 0] -> p = 1, 1/2, 1/8, (0 smoothed to 1) 1/8.
    # Self-information 0, 1, 3, 3 bits; the slots are items 0, 1, 2, 3 -> mean 7/4.
    pop = np.array([8, 4, 1, 0])

    def novelty(recommended: np.ndarray) -> float:
        return ranking_metrics(recommended, rel([0], [0]), k=2, n_items=4, item_popularity=pop, n_train_users=8)[
            "novelty"
        ]

    assert novelty(np.array([[0, 1], [2, 3]])) == pytest.approx(7 / 4)
    # Slots, not distinct items: item 2 recommended twice, item 0 once, padding skipped -> (3 + 3 + 0) / 3.
    assert novelty(np.array([[2, 0], [2, -1]])) == pytest.approx(2.0)


def test_novelty_needs_the_training_user_count() -> None:
    with pytest.raises(ValueError, match="n_train_users"):
        ranking_metrics(np.array([[0, 1]]), rel([0]), k=2, n_items=2, item_popularity=np.array([1, 1]))
    with pytest.raises(ValueError):  # more raters than training users
        ranking_metrics(np.array([[0, 1]]), rel([0]), k=2, n_items=2, item_popularity=np.array([5, 1]), n_train_users=3)


def test_diversity_identical_disjoint_and_mixed_genres() -> None:
    genres = np.array(
        [
            [1, 0, 0],  # 0
            [1, 0, 0],  # 1: same as 0
            [0, 1, 0],  # 2: disjoint from 0
            [0, 0, 1],  # 3: disjoint from 0 and 2
            [1, 1, 0],  # 4: cos with 0 is 1/sqrt(2)
            [0, 0, 0],  # 5: no genre
        ],
        dtype=np.float64,
    )

    def ild(row: list[int]) -> float:
        k = len(row)
        return ranking_metrics(np.array([row]), rel([0]), k=k, n_items=6, item_genres=genres)["diversity"]

    assert ild([0, 1]) == pytest.approx(0.0, abs=1e-12)
    assert ild([0, 2, 3]) == pytest.approx(1.0)
    assert ild([0, 4]) == pytest.approx(1 - 1 / math.sqrt(2))
    # Pairs (0,1): 0, (0,4) and (1,4): 1 - 1/sqrt(2) -> mean (2 - sqrt(2)) / 3.
    assert ild([0, 1, 4]) == pytest.approx((2 - math.sqrt(2)) / 3)
    assert ild([0, 5]) == pytest.approx(1.0)  # all-zero genres: similarity 0 with everything
    m = ranking_metrics(np.array([[0, 1], [0, 2], [3, -1]]), rel([0], [0], [0]), k=2, n_items=6, item_genres=genres)
    assert m["diversity"] == pytest.approx(0.5)  # rows with 0 and 1; the one-item row has no pair
    only_singles = ranking_metrics(np.array([[3, -1]]), rel([0]), k=2, n_items=6, item_genres=genres)
    assert math.isnan(only_singles["diversity"])


def test_popularity_bias() -> None:
    pop = np.array([10, 5, 1, 0])
    rec = np.array([[1, 2], [0, 3]])
    base = np.array([[0, 1], [0, 1]])

    def bias(recommended: np.ndarray, baseline: np.ndarray) -> float:
        return ranking_metrics(
            recommended,
            rel([0], [0]),
            k=2,
            n_items=4,
            item_popularity=pop,
            n_train_users=10,
            popularity_baseline=baseline,
        )["popularity_bias"]

    assert bias(base, base) == pytest.approx(1.0)
    # ARP of rec = (5 + 1 + 10 + 0) / 4 = 4; ARP of the baseline = (10 + 5 + 10 + 5) / 4 = 7.5.
    assert bias(rec, base) == pytest.approx(4 / 7.5)
    # The baseline's columns past k do not count (items 2 and 3 would lower its ARP).
    assert bias(rec, np.array([[0, 1, 2], [0, 1, 3]])) == pytest.approx(4 / 7.5)


def test_beyond_accuracy_metrics_are_nan_without_their_inputs() -> None:
    m = ranking_metrics(np.array([[0, 1]]), rel([0]), k=2, n_items=2)
    assert math.isnan(m["novelty"]) and math.isnan(m["diversity"]) and math.isnan(m["popularity_bias"])
    m = ranking_metrics(np.array([[0, 1]]), rel([0]), k=2, n_items=2, item_popularity=np.array([1, 1]), n_train_users=2)
    assert not math.isnan(m["novelty"])
    assert math.isnan(m["popularity_bias"])  # no baseline given
    assert set(m) == {
        "precision",
        "recall",
        "ndcg",
        "map",
        "hit_rate",
        "coverage",
        "novelty",
        "diversity",
        "popularity_bias",
        "n_users",
        "n_users_skipped",
        "k",
    }


def test_end_to_end_with_top_k_items_and_relevant_lists() -> None:
    # Scores rank items by index descending; user 0 has seen item 4, so its list is [3, 2].
    scores = np.tile(np.arange(5, dtype=np.float64), (2, 1))
    top = top_k_items(scores, 2, exclude=rel([4], []))
    relevant = relevant_lists(np.array([0, 1, 1]), np.array([2, 4, 0]), n_users=2)
    m = ranking_metrics(top, relevant, k=2, n_items=5)
    # User 0: [3, 2] vs {2}: hit at rank 2, P 1/2, R 1. User 1: [4, 3] vs {4, 0}: hit at rank 1, P 1/2, R 1/2.
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(0.75)
    assert m["coverage"] == pytest.approx(3 / 5)


def test_paired_bootstrap_ci_brackets_the_mean_and_separates_a_clear_gain_from_noise() -> None:
    rng = np.random.default_rng(3)
    base = rng.random(400)
    mean, lo, hi = paired_bootstrap_ci(base + 0.05 + rng.normal(0, 0.02, 400), base, seed=1)
    assert lo < mean < hi and lo > 0.04 and hi < 0.06  # a steady gain: the interval excludes 0
    mean, lo, hi = paired_bootstrap_ci(base + rng.normal(0, 0.2, 400), base, seed=1)
    assert lo < 0 < hi  # pure noise: the interval straddles 0
    assert paired_bootstrap_ci(np.array([1.0, np.nan]), np.array([0.5, 0.2]))[0] == pytest.approx(0.5)
    assert all(np.isnan(paired_bootstrap_ci(np.array([np.nan]), np.array([1.0]))))
    with pytest.raises(ValueError):
        paired_bootstrap_ci(np.zeros(2), np.zeros(3))

"""Sessions of a user's ratings (fixed time buckets) and the factorisation's session pseudo-users."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.models.sessions import session_ids, session_rows


def test_session_ids_bucket_each_users_times() -> None:
    u = np.array([0, 0, 0, 1, 1, 0])
    ts = np.array([10, 3599, 3600, 10, 20, 7300])
    session, session_user, size = session_ids(u, ts, 3600.0)
    # user 0: buckets 0 (t 10, 3599), 1 (t 3600), 2 (t 7300); user 1: bucket 0
    np.testing.assert_array_equal(session, [0, 0, 1, 3, 3, 2])
    np.testing.assert_array_equal(session_user, [0, 0, 0, 1])
    np.testing.assert_array_equal(size, [2, 1, 1, 2])
    with pytest.raises(ValueError, match="positive"):
        session_ids(u, ts, 0.0)


def test_session_rows_add_one_pseudo_user_per_session_of_two_or_more() -> None:
    u = np.array([0, 0, 0, 1, 1, 2])
    i = np.array([5, 6, 7, 5, 8, 9])
    ts = np.array([0, 60, 9000, 0, 30, 0])
    su, si, n_rows = session_rows(u, i, ts, 3, 3600.0)
    assert n_rows == 3 + 2  # user 0's first hour {5, 6}, user 1's {5, 8}; single-item sessions add nothing
    np.testing.assert_array_equal(su[:6], u)
    np.testing.assert_array_equal(si[:6], i)
    assert sorted(zip(su[6:].tolist(), si[6:].tolist(), strict=True)) == [(3, 5), (3, 6), (4, 5), (4, 8)]


def test_factorisation_trains_sessions_as_pseudo_users_and_keeps_the_real_users() -> None:
    from recsys.models.implicit_cf import ImplicitCFParams, fit_implicit_cf

    rng = np.random.default_rng(0)
    n_users, n_items = 60, 40
    u = np.repeat(np.arange(n_users), 8)
    i = np.concatenate([rng.choice(n_items, 8, replace=False) for _ in range(n_users)])
    ts = np.tile(np.r_[np.zeros(4), np.full(4, 10_000)], n_users) + u * 100_000  # two sittings of 4 per user
    p = ImplicitCFParams(n_factors=8, epochs=10, seed=3, session_seconds=3600.0)
    with_sessions = fit_implicit_cf(u, i, n_users, n_items, p, ts=ts)
    assert with_sessions.w.shape == (n_users, 8) and with_sessions.b.shape == (n_users,)
    assert with_sessions.params == p
    without = fit_implicit_cf(u, i, n_users, n_items, p)  # no times: no sessions
    assert not np.allclose(with_sessions.x, without.x)
    np.testing.assert_array_equal(fit_implicit_cf(u, i, n_users, n_items, p, ts=ts).x, with_sessions.x)
    # session_seconds=0 ignores the times
    off = ImplicitCFParams(n_factors=8, epochs=10, seed=3, session_seconds=0.0)
    np.testing.assert_array_equal(fit_implicit_cf(u, i, n_users, n_items, off, ts=ts).x, without.x)


def test_a_pair_given_twice_is_not_a_session() -> None:
    """A rating and the positive event derived from it (same user, item, time) make no session of two."""
    u = np.array([0, 0, 1, 1, 1, 1])
    i = np.array([5, 5, 5, 8, 5, 8])
    ts = np.array([0, 0, 0, 30, 0, 30])  # user 0: one item twice; user 1: {5, 8}, each twice
    su, si, n_rows = session_rows(u, i, ts, 2, 3600.0)
    assert n_rows == 2 + 1
    np.testing.assert_array_equal(su[:6], u)
    assert sorted(zip(su[6:].tolist(), si[6:].tolist(), strict=True)) == [(2, 5), (2, 8)]

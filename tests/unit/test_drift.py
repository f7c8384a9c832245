"""Volume and drift checks against the previous successful run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.validation.drift import (
    DriftTolerances,
    drift_expectations,
    previous_stats,
    save_stats,
    table_stats,
)
from recsys.validation.gate import ValidationFailed, run_gate


def _ratings(n_users: int, per_user: int, mean_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.tile(np.arange(per_user), n_users)
    rating = np.clip(np.round(rng.normal(3.5 + mean_shift, 1.0, users.size)), 1, 5)
    return pd.DataFrame(
        {
            "user_idx": users.astype("int32"),
            "item_idx": items.astype("int32"),
            "user_id": users.astype(str),
            "item_id": items.astype(str),
            "rating": rating,
            "ts": np.arange(users.size, dtype="int64"),
            "split": "train",
        }
    )


def test_stats_are_saved_and_the_latest_earlier_run_is_the_baseline(tmp_path) -> None:
    assert previous_stats(tmp_path, "2026-11-27") is None
    save_stats(tmp_path, "2026-11-25", {"rows": {"ratings": 1}})
    save_stats(tmp_path, "2026-11-26", {"rows": {"ratings": 2}})
    save_stats(tmp_path, "2026-11-28", {"rows": {"ratings": 3}})
    assert previous_stats(tmp_path, "2026-11-27") == ("2026-11-26", {"rows": {"ratings": 2}})
    assert previous_stats(tmp_path, "2026-11-26")[0] == "2026-11-25"  # a rerun compares with the run before


def test_stable_data_passes_and_drift_fails() -> None:
    base = table_stats({"ratings": _ratings(50, 4)})
    assert base["ratings"] == {"users": 50, "items": 4, "rating_mean": pytest.approx(base["ratings"]["rating_mean"])}
    tol = DriftTolerances(rows=0.5, distinct=0.5, rating_mean=0.25)
    exps = drift_expectations(base, tol)
    run_gate({"ratings": _ratings(55, 4)}, extra=exps)  # +10% users: fine
    with pytest.raises(ValidationFailed) as err:
        run_gate({"ratings": _ratings(20, 4)}, extra=exps)  # volume collapsed
    text = str(err.value)
    assert "expect_table_row_count_to_be_between" in text and "expect_column_unique_value_count_to_be_between" in text
    with pytest.raises(ValidationFailed, match="expect_column_mean_to_be_between"):
        run_gate({"ratings": _ratings(50, 4, mean_shift=1.0)}, extra=exps)  # ratings shifted

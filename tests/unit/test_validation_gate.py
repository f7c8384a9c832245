"""The validation gate (recsys.validation.gate, suites): one valid run, then one planted problem per test.

The valid frames are built from ``schemas/`` and typed through the tables' Arrow
schemas, i.e. exactly what ``read_partition`` hands the gate in a real run.
Great Expectations takes a noticeable fraction of a second per gate call, so
every test below makes at most one call.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from recsys.validation.gate import ValidationFailed, run_gate
from recsys.validation.suites import expectations_for
from schemas import table
from schemas.tables import RATINGS

GATED = ("user_map", "item_map", "ratings", "items", "users")
N_USERS, N_ITEMS, N_RATINGS = 15, 12, 150


def typed(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` as the lake stores it: the schema's columns, in order, with its Arrow types."""
    schema = table(name)
    return pa.Table.from_pandas(df[schema.names], schema=schema.arrow, preserve_index=False).to_pandas()


def make_valid_frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    user_ids = [f"u{n}" for n in range(N_USERS)]
    item_ids = [f"m{n}" for n in range(N_ITEMS)]
    users = pd.DataFrame(
        {
            "user_idx": np.arange(N_USERS),
            "user_id": user_ids,
            "age": [None if n == 3 else 18 + 3 * n for n in range(N_USERS)],  # nullable, in 1..120
            "gender": ["F", "M", None] * (N_USERS // 3),
            "occupation": ["writer"] * N_USERS,
            "country": [None] * N_USERS,
        }
    )
    items = pd.DataFrame(
        {
            "item_idx": np.arange(N_ITEMS),
            "item_id": item_ids,
            "title": [f"Film {n} ({1990 + n})" for n in range(N_ITEMS)],
            "year": [None if n == 5 else 1990 + n for n in range(N_ITEMS)],
            "genres": [["Drama"] if n % 2 else ["Comedy", "Romance"] for n in range(N_ITEMS)],
        }
    )
    pairs = rng.choice(N_USERS * N_ITEMS, size=N_RATINGS, replace=False)
    u, i = pairs // N_ITEMS, pairs % N_ITEMS
    ratings = pd.DataFrame(
        {
            "user_idx": u,
            "item_idx": i,
            "user_id": [user_ids[x] for x in u],
            "item_id": [item_ids[x] for x in i],
            "rating": rng.choice([0.5, 1.0, 2.5, 3.0, 4.5, 5.0], size=N_RATINGS),  # both bounds included
            "ts": rng.integers(0, 10**9, size=N_RATINGS),
            "split": np.where(rng.random(N_RATINGS) < 0.2, "test", "train"),
        }
    )
    frames = {
        "user_map": users[["user_id", "user_idx"]],
        "item_map": items[["item_id", "item_idx"]],
        "ratings": ratings,
        "items": items,
        "users": users,
    }
    return {name: typed(name, df) for name, df in frames.items()}


@pytest.fixture(scope="module")
def valid() -> dict[str, pd.DataFrame]:
    return make_valid_frames()


def corrupt(valid: dict[str, pd.DataFrame], name: str, df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    frames = {k: v.copy() for k, v in valid.items()}
    frames[name] = df
    return frames


def gate_failures(frames: dict[str, pd.DataFrame], **kwargs) -> list[str]:
    """Run the gate, assert it refuses, return its failure lines (checking the message lists them all)."""
    with pytest.raises(ValidationFailed) as err:
        run_gate(frames, **kwargs)
    failures = err.value.report.failures
    assert failures
    assert not err.value.report.ok
    message = str(err.value)
    assert message.startswith("validation gate failed")
    for line in failures:
        assert line in message
    return failures


def only_failure(failures: list[str], prefix: str) -> str:
    """The single failure line, which must start with ``prefix`` (table: expectation {column...})."""
    assert len(failures) == 1, failures
    assert failures[0].startswith(prefix), failures[0]
    return failures[0]


# --- the valid run ---------------------------------------------------------------------------


def test_fixture_frames_follow_the_schemas(valid):
    assert set(valid) == set(GATED)
    for name, df in valid.items():
        assert list(df.columns) == table(name).names, name
    assert len(valid["ratings"]) == N_RATINGS >= RATINGS.min_rows
    assert not valid["ratings"].duplicated(["user_idx", "item_idx"]).any()


def test_valid_tables_pass_the_gate(valid):
    report = run_gate(valid)
    assert report.ok
    assert report.failures == []
    assert report.rows == {name: len(df) for name, df in valid.items()}
    assert set(report.checked) == set(GATED)
    # the suite of every table is what expectations_for derives from its schema (+ references)
    assert report.checked["user_map"] == len(expectations_for(table("user_map")))
    refs = {"items.item_idx": [0], "users.user_idx": [0]}
    assert report.checked["ratings"] == len(expectations_for(RATINGS, reference_values=refs))


# --- one planted problem per test ------------------------------------------------------------


def test_null_key_fails(valid):
    um = valid["user_map"].copy()
    um.loc[4, "user_id"] = None
    line = only_failure(
        gate_failures(corrupt(valid, "user_map", um)),
        "user_map: expect_column_values_to_not_be_null {'column': 'user_id'}",
    )
    assert "1 unexpected rows" in line


def test_rating_out_of_range_fails(valid):
    r = valid["ratings"].copy()
    r.loc[0, "rating"] = 7.0
    r.loc[1, "rating"] = 0.0
    line = only_failure(
        gate_failures(corrupt(valid, "ratings", r)),
        "ratings: expect_column_values_to_be_between {'column': 'rating', 'min_value': 0.5, 'max_value': 5.0}",
    )
    assert "2 unexpected rows" in line
    assert "7.0" in line and "0.0" in line


def test_nan_rating_fails(valid):
    r = valid["ratings"].copy()
    r.loc[2, "rating"] = np.nan
    line = only_failure(
        gate_failures(corrupt(valid, "ratings", r)),
        "ratings: expect_column_values_to_not_be_null {'column': 'rating'}",
    )
    assert "1 unexpected rows" in line


def test_duplicate_user_item_pair_fails(valid):
    r = valid["ratings"].copy()
    r.loc[5, ["user_idx", "item_idx", "user_id", "item_id"]] = r.loc[6, ["user_idx", "item_idx", "user_id", "item_id"]]
    line = only_failure(
        gate_failures(corrupt(valid, "ratings", r)),
        "ratings: expect_compound_columns_to_be_unique {'column_list': ['user_idx', 'item_idx']}",
    )
    assert "2 unexpected rows" in line  # both copies of the pair


def test_split_outside_train_test_fails(valid):
    r = valid["ratings"].copy()
    r.loc[3, "split"] = "validation"
    line = only_failure(
        gate_failures(corrupt(valid, "ratings", r)),
        "ratings: expect_column_values_to_be_in_set {'column': 'split'}",
    )
    assert "validation" in line


def test_rating_of_an_unknown_item_fails_referential_integrity(valid):
    r = valid["ratings"].copy()
    r.loc[7, "item_idx"] = N_ITEMS + 987  # a valid-looking index with no row in items
    line = only_failure(
        gate_failures(corrupt(valid, "ratings", r)),
        "ratings: expect_column_values_to_be_in_set {'column': 'item_idx'}",
    )
    assert str(N_ITEMS + 987) in line and "1 unexpected rows" in line


def test_row_count_under_the_floor_fails(valid):
    r = valid["ratings"].iloc[: RATINGS.min_rows - 1].copy()
    line = only_failure(
        gate_failures(corrupt(valid, "ratings", r)),
        "ratings: expect_table_row_count_to_be_between {'min_value': 100",
    )
    assert f"observed {RATINGS.min_rows - 1}" in line


def test_row_floor_can_be_overridden_per_table(valid):
    r = valid["ratings"].iloc[: RATINGS.min_rows - 1].copy()
    report = run_gate(corrupt(valid, "ratings", r), min_rows={"ratings": 50})
    assert report.ok and report.rows["ratings"] == RATINGS.min_rows - 1


def test_duplicate_item_id_in_items_fails(valid):
    it = valid["items"].copy()
    it.loc[9, "item_id"] = it.loc[8, "item_id"]
    line = only_failure(
        gate_failures(corrupt(valid, "items", it)),
        "items: expect_column_values_to_be_unique {'column': 'item_id'}",
    )
    assert it.loc[8, "item_id"] in line


def test_missing_column_fails(valid):
    r = valid["ratings"].drop(columns="ts")
    failures = gate_failures(corrupt(valid, "ratings", r))
    assert all(f.startswith("ratings: ") for f in failures), failures
    match_set = [f for f in failures if "expect_table_columns_to_match_set" in f]
    assert len(match_set) == 1
    assert "'ts'" in match_set[0]  # the expected set names the column
    assert "observed" in match_set[0]
    # the checks of the missing column fail too rather than passing vacuously
    assert any("'column': 'ts'" in f for f in failures if f not in match_set)


def test_missing_key_column_fails_with_validation_failed(valid):
    it = valid["items"].drop(columns="item_idx")
    failures = gate_failures(corrupt(valid, "items", it))
    assert any(f.startswith("items: expect_table_columns_to_match_set") for f in failures)


# --- suites are derived from the schema ------------------------------------------------------


def _by_type(exps: list, type_name: str, column: str | None = None) -> list:
    return [
        e for e in exps if type(e).__name__ == type_name and (column is None or getattr(e, "column", None) == column)
    ]


def test_rating_range_expectation_comes_from_the_schema():
    col = RATINGS.column("rating")
    (between,) = _by_type(expectations_for(RATINGS), "ExpectColumnValuesToBeBetween", "rating")
    assert (between.min_value, between.max_value) == (col.min_value, col.max_value) == (0.5, 5.0)

    # Change nothing but the declared range: the suite follows.
    wider = dataclasses.replace(col, min_value=1.0, max_value=10.0)
    schema = dataclasses.replace(RATINGS, columns=tuple(wider if c.name == "rating" else c for c in RATINGS.columns))
    (between,) = _by_type(expectations_for(schema), "ExpectColumnValuesToBeBetween", "rating")
    assert (between.min_value, between.max_value) == (1.0, 10.0)

    # And without a declared range there is no range check at all.
    bare = dataclasses.replace(col, min_value=None, max_value=None)
    schema = dataclasses.replace(RATINGS, columns=tuple(bare if c.name == "rating" else c for c in RATINGS.columns))
    assert _by_type(expectations_for(schema), "ExpectColumnValuesToBeBetween", "rating") == []


def test_suite_covers_what_the_ratings_schema_declares():
    exps = expectations_for(RATINGS)
    (cols,) = _by_type(exps, "ExpectTableColumnsToMatchSet")
    assert list(cols.column_set) == RATINGS.names
    (rows,) = _by_type(exps, "ExpectTableRowCountToBeBetween")
    assert rows.min_value == RATINGS.min_rows == 100
    (rows,) = _by_type(expectations_for(RATINGS, min_rows=5), "ExpectTableRowCountToBeBetween")
    assert rows.min_value == 5
    not_null = {e.column for e in _by_type(exps, "ExpectColumnValuesToNotBeNull")}
    assert not_null == {c.name for c in RATINGS.columns if not c.nullable}
    (split,) = _by_type(exps, "ExpectColumnValuesToBeInSet", "split")
    assert sorted(split.value_set) == sorted(RATINGS.column("split").allowed)
    (key,) = _by_type(exps, "ExpectCompoundColumnsToBeUnique")
    assert list(key.column_list) == list(RATINGS.key)
    # references become set checks only when the referenced values are given
    assert _by_type(exps, "ExpectColumnValuesToBeInSet", "item_idx") == []
    with_refs = expectations_for(RATINGS, reference_values={"items.item_idx": [0, 1, 2]})
    (ref,) = _by_type(with_refs, "ExpectColumnValuesToBeInSet", "item_idx")
    assert sorted(ref.value_set) == [0, 1, 2]


def test_single_key_and_extra_unique_columns_get_uniqueness_checks():
    exps = expectations_for(table("items"))
    unique = sorted(e.column for e in _by_type(exps, "ExpectColumnValuesToBeUnique"))
    assert unique == ["item_id", "item_idx"]
    nullable_year = _by_type(exps, "ExpectColumnValuesToNotBeNull", "year")
    assert nullable_year == []  # declared nullable: no not-null check

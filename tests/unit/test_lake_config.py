"""Lake partitions (recsys.lake), run resolution (recsys.stages.resolve.resolve_run) and baselines."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.config import Settings
from recsys.lake import (
    partition_dates,
    partition_dir,
    read_partition,
    table_dir,
    write_partition,
)
from recsys.models.autorec import AutoRecParams
from recsys.models.base import Recommender
from recsys.models.baselines import GlobalMean, ItemMean, Popularity, item_means
from recsys.models.cf import CFParams
from recsys.models.implicit_cf import ImplicitCFParams
from recsys.stages.resolve import resolve_run
from schemas import table

D1, D2, D3 = "2026-11-25", "2026-11-26", "2026-11-27"


def ratings_frame(n: int = 5, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_idx": np.arange(n, dtype=np.int32) + offset,
            "item_idx": np.arange(n, dtype=np.int32)[::-1].copy(),
            "user_id": [f"u{k + offset}" for k in range(n)],
            "item_id": [f"m{k}" for k in range(n)][::-1],
            "rating": np.linspace(0.5, 5.0, n),
            "ts": np.arange(n, dtype=np.int64) * 1_000_000_007,
            "split": ["train", "test"] * (n // 2) + ["train"] * (n % 2),
        }
    )


def items_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_idx": np.array([0, 1, 2], dtype=np.int32),
            "item_id": ["m0", "m1", "m2"],
            "title": ["Amélie (2001)", "Heat (1995)", "Café"],
            "year": [2001, None, 1995],
            "genres": [["Comedy", "Romance"], [], ["Drama"]],
        }
    )


def as_arrow(name: str, df: pd.DataFrame) -> pa.Table:
    schema = table(name)
    return pa.Table.from_pandas(df[schema.names], schema=schema.arrow, preserve_index=False)


def leftovers(lake: Path, name: str) -> list[str]:
    """Anything in the table folder that is not a run_date= partition."""
    return sorted(p.name for p in table_dir(lake, name).iterdir() if not p.name.startswith("run_date="))


# --- write_partition / read_partition --------------------------------------------------------


def test_round_trip_keeps_values_and_schema_types(tmp_path):
    df = ratings_frame(7)
    path = write_partition(df, tmp_path, "ratings", D1)
    assert path == partition_dir(tmp_path, "ratings", D1) == tmp_path / "ratings" / f"run_date={D1}"
    back = read_partition(tmp_path, "ratings", D1)
    assert list(back.columns) == table("ratings").names
    assert back.dtypes.to_dict() == {
        "user_idx": np.int32,
        "item_idx": np.int32,
        "user_id": object,
        "item_id": object,
        "rating": np.float64,
        "ts": np.int64,
        "split": object,
    }
    pd.testing.assert_frame_equal(back, df)
    assert as_arrow("ratings", back).schema.equals(table("ratings").arrow)


def test_round_trip_of_lists_nulls_and_non_ascii(tmp_path):
    df = items_frame()
    write_partition(df, tmp_path, "items", D1)
    back = read_partition(tmp_path, "items", D1)
    assert as_arrow("items", back).equals(as_arrow("items", df))
    assert back["title"].tolist() == ["Amélie (2001)", "Heat (1995)", "Café"]
    assert [list(g) for g in back["genres"]] == [["Comedy", "Romance"], [], ["Drama"]]
    assert back["year"].isna().tolist() == [False, True, False]


def test_column_order_and_int64_input_are_normalised_to_the_schema(tmp_path):
    df = ratings_frame(4)
    df = df[list(reversed(df.columns))].astype({"user_idx": np.int64, "item_idx": np.int64})
    write_partition(df, tmp_path, "ratings", D1)
    back = read_partition(tmp_path, "ratings", D1)
    assert list(back.columns) == table("ratings").names
    assert back["user_idx"].dtype == np.int32
    assert back["user_idx"].tolist() == df["user_idx"].tolist()


def test_partition_of_several_part_files_reads_as_one_frame(tmp_path):
    """The layout Spark writes: several part files, _SUCCESS and hidden .crc files."""
    part = partition_dir(tmp_path, "items", D1)
    part.mkdir(parents=True)
    df = items_frame()
    pq.write_table(as_arrow("items", df.iloc[:2]), part / "part-00000-abc.snappy.parquet")
    pq.write_table(as_arrow("items", df.iloc[2:]), part / "part-00001-abc.snappy.parquet")
    (part / "_SUCCESS").touch()
    (part / ".part-00000-abc.snappy.parquet.crc").write_bytes(b"crc")
    back = read_partition(tmp_path, "items", D1)
    assert as_arrow("items", back).equals(as_arrow("items", df))


def test_rewrite_replaces_the_whole_partition_and_leaves_nothing_behind(tmp_path):
    write_partition(ratings_frame(6), tmp_path, "ratings", D1)
    write_partition(ratings_frame(3, offset=100), tmp_path, "ratings", D2)
    write_partition(ratings_frame(2, offset=50), tmp_path, "ratings", D1)  # rerun of D1
    back = read_partition(tmp_path, "ratings", D1)
    assert back["user_idx"].tolist() == [50, 51]  # only the new rows, none of the old six
    assert read_partition(tmp_path, "ratings", D2)["user_idx"].tolist() == [100, 101, 102]  # untouched
    assert [p.name for p in partition_dir(tmp_path, "ratings", D1).iterdir()] == ["part-00000.parquet"]
    assert leftovers(tmp_path, "ratings") == []  # no .tmp-* or .old-* folders


@pytest.mark.parametrize(
    "change",
    ["missing", "extra", "renamed"],
)
def test_wrong_columns_raise_and_write_nothing(tmp_path, change):
    df = ratings_frame(3)
    if change == "missing":
        df = df.drop(columns="split")
    elif change == "extra":
        df = df.assign(comment="x")
    else:
        df = df.rename(columns={"ts": "timestamp"})
    with pytest.raises(ValueError, match="ratings: columns"):
        write_partition(df, tmp_path, "ratings", D1)
    assert not partition_dir(tmp_path, "ratings", D1).exists()


@pytest.mark.parametrize(
    ("column", "value"),
    [("user_idx", 2**40), ("rating", "five"), ("user_id", None)],
    ids=["int32-overflow", "text-in-float", "null-in-non-nullable"],
)
def test_values_that_do_not_fit_the_schema_raise_value_error(tmp_path, column, value):
    df = ratings_frame(3).astype({column: object})
    df.loc[1, column] = value
    with pytest.raises(ValueError):
        write_partition(df, tmp_path, "ratings", D1)
    assert not partition_dir(tmp_path, "ratings", D1).exists()


def test_failed_rewrite_keeps_the_previous_partition(tmp_path):
    write_partition(ratings_frame(4), tmp_path, "ratings", D1)
    with pytest.raises(ValueError):
        write_partition(ratings_frame(3).drop(columns="ts"), tmp_path, "ratings", D1)
    assert len(read_partition(tmp_path, "ratings", D1)) == 4


def test_missing_partition_raises_file_not_found_naming_the_path(tmp_path):
    expected = partition_dir(tmp_path, "ratings", D3)
    with pytest.raises(FileNotFoundError) as err:
        read_partition(tmp_path, "ratings", D3)
    assert str(expected) in str(err.value)
    assert "ratings" in str(err.value) and D3 in str(err.value)

    write_partition(ratings_frame(2), tmp_path, "ratings", D1)  # table exists, that date does not
    with pytest.raises(FileNotFoundError, match=f"run_date={D3}"):
        read_partition(tmp_path, "ratings", D3)

    expected.mkdir(parents=True)  # folder without parquet files
    with pytest.raises(FileNotFoundError, match=str(expected).replace("\\", "\\\\")):
        read_partition(tmp_path, "ratings", D3)


def test_unknown_table_is_refused(tmp_path):
    with pytest.raises(KeyError, match="unknown table"):
        write_partition(ratings_frame(2), tmp_path, "ratingz", D1)


def test_partition_dates_sorted_and_only_partitions(tmp_path):
    assert partition_dates(tmp_path, "ratings") == []  # no table yet
    for d in (D3, D1, D2, "2025-12-31"):
        write_partition(ratings_frame(2), tmp_path, "ratings", d)
    (table_dir(tmp_path, "ratings") / ".tmp-deadbeef").mkdir()  # debris of a crashed writer
    (table_dir(tmp_path, "ratings") / "_SUCCESS").touch()
    assert partition_dates(tmp_path, "ratings") == ["2025-12-31", D1, D2, D3]
    assert partition_dates(tmp_path, "items") == []


# --- resolve_run -----------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """Settings read RECSYS_* variables: pin the home, drop every other override."""
    for key in list(os.environ):
        if key.startswith("RECSYS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    return tmp_path


LOGICAL = datetime(2020, 1, 2, 3, 4, tzinfo=UTC)


def test_run_date_param_wins_over_the_logical_date(clean_env):
    run = resolve_run({}, "2026-11-27", LOGICAL)
    assert run["run_date"] == "2026-11-27"
    assert run["run_id"] == "synthetic_20261127"
    assert run["generated_at"] == "2026-11-27T00:00:00+00:00"
    assert "--run-date" in run["spark_args"]["ingest"]
    assert run["spark_args"]["ingest"][run["spark_args"]["ingest"].index("--run-date") + 1] == "2026-11-27"
    assert run["spark_args"]["build_tables"][run["spark_args"]["build_tables"].index("--run-date") + 1] == "2026-11-27"


@pytest.mark.parametrize(
    ("logical", "expected"),
    [
        (datetime(2026, 11, 27, 0, 0, tzinfo=UTC), "2026-11-27"),
        (datetime(2026, 11, 27, 23, 30, tzinfo=timezone(timedelta(hours=-5))), "2026-11-28"),  # 04:30 UTC next day
        (datetime(2026, 11, 28, 3, 0, tzinfo=timezone(timedelta(hours=9))), "2026-11-27"),  # 18:00 UTC day before
    ],
)
@pytest.mark.parametrize("empty", ["", None])
def test_empty_run_date_falls_back_to_the_logical_date_in_utc(clean_env, logical, expected, empty):
    run = resolve_run({}, empty, logical)
    assert run["run_date"] == expected
    assert run["run_id"] == f"synthetic_{expected.replace('-', '')}"


def test_no_date_at_all_raises(clean_env):
    with pytest.raises(ValueError, match="no run date"):
        resolve_run({}, "", None)


@pytest.mark.parametrize("bad", ["2026-13-01", "2026-02-30", "27/11/2026", "2026-11-27T00:00", "yesterday"])
def test_invalid_run_date_raises(clean_env, bad):
    with pytest.raises(ValueError):
        resolve_run({}, bad, LOGICAL)


def test_nested_overrides_land_in_nested_settings(clean_env):
    run = resolve_run(
        {
            "synthetic_n_users": 500,
            "cf_epochs": "3",
            "ranker_loss": "logistic",
            "top_k": 5,
            "seed": None,
            "n_popular": "",
            "dataset": "",
            "tune": True,
            "tune_trials": "7",
            "autorec_epochs": 9,
            "ranker_ease_weight": 0.25,
            "rating_model": "mf",
            "two_tower_epochs": 4,
            "two_tower_layers": [64, 16],
            "cold_start_max_ratings": 3,
        },
        "2026-11-27",
        None,
    )
    s = run["settings"]
    assert s["synthetic"]["n_users"] == 500
    assert s["synthetic"]["n_items"] == 2000  # the rest of the nested config keeps its defaults
    assert s["cf"]["epochs"] == 3  # DAG params may arrive as strings
    assert s["cf"]["n_factors"] == CFParams.n_factors  # the model's default is the one default
    assert s["ranker"]["loss"] == "logistic" and s["ranker"]["n_factors"] == ImplicitCFParams.n_factors
    assert run["tune"] == {"enabled": True, "trials": 7} and "tune" not in s
    assert s["autorec"]["epochs"] == 9 and s["autorec"]["hidden"] == AutoRecParams.hidden
    assert s["ranker"]["ease_weight"] == 0.25 and s["rating_model"] == "cf"  # mf: the older name of cf
    assert s["two_tower"]["epochs"] == 4 and s["two_tower"]["layers"] == [64, 16] and s["cold_start_max_ratings"] == 3
    assert s["top_k"] == 5
    assert s["seed"] == 42 and s["n_popular"] == 50 and s["dataset"] == "synthetic"  # None / "" ignored
    assert "synthetic_n_users" not in s and "cf_epochs" not in s
    ingest = run["spark_args"]["ingest"]
    assert ingest[ingest.index("--n-users") + 1] == "500"
    assert ingest[ingest.index("--lake") + 1] == str(clean_env / "lake" / "synthetic")


def test_zero_is_a_real_override_not_an_empty_one(clean_env):
    run = resolve_run({"n_popular": 0, "seed": 0}, "2026-11-27", None)
    assert run["settings"]["n_popular"] == 0
    assert run["settings"]["seed"] == 0


def test_override_outside_its_bounds_raises(clean_env):
    with pytest.raises(ValueError):
        resolve_run({"synthetic_n_users": 3}, "2026-11-27", None)  # ge=10


@pytest.mark.parametrize(("dataset", "run_id"), [("synthetic", "synthetic_20260105"), ("ml-100k", "ml-100k_20260105")])
def test_run_id_is_dataset_and_compact_date(clean_env, dataset, run_id):
    run = resolve_run({"dataset": dataset}, "2026-01-05", None)
    assert run["run_id"] == run_id
    assert run["settings"]["dataset"] == dataset


# --- baselines -------------------------------------------------------------------------------

# item 0: 5, 4 -> 4.5; item 1: 2 -> 2.0; item 3: 1 -> 1.0; items 2, 4 unrated; global mean 12 / 4 = 3.0
OBS_ITEMS = np.array([0, 0, 1, 3])
OBS_RATINGS = np.array([5.0, 4.0, 2.0, 1.0])
OBS_USERS = np.array([0, 1, 0, 2])


def test_item_means_known_answer():
    means, mu = item_means(OBS_ITEMS, OBS_RATINGS, 5)
    assert mu == 3.0
    np.testing.assert_array_equal(means, [4.5, 2.0, 3.0, 1.0, 3.0])


def test_item_mean_predicts_item_means_and_global_mean_for_unknown_items():
    model = ItemMean().fit(OBS_USERS, OBS_ITEMS, OBS_RATINGS, n_users=3, n_items=5)
    assert isinstance(model, Recommender)
    pred = model.predict(np.zeros(8, dtype=int), np.array([0, 1, 2, 3, 4, 5, 99, 1_000_000]))
    # 2, 4: known but unrated; 5, 99, 1e6: beyond the fitted catalogue
    np.testing.assert_array_equal(pred, [4.5, 2.0, 3.0, 1.0, 3.0, 3.0, 3.0, 3.0])
    # the user does not matter, unknown users included
    np.testing.assert_array_equal(model.predict(np.array([0, 2, 500]), np.array([0, 0, 0])), [4.5, 4.5, 4.5])


def test_global_mean_known_answer():
    model = GlobalMean().fit(OBS_USERS, OBS_ITEMS, OBS_RATINGS, n_users=3, n_items=5)
    np.testing.assert_array_equal(model.predict(np.array([0, 9]), np.array([0, 77])), [3.0, 3.0])


def test_popularity_counts_and_ranking_ties_by_index():
    items = np.array([2, 2, 0, 0, 3, 1, 1, 1, 5, 5])
    model = Popularity().fit(np.zeros(items.size, dtype=int), items, np.ones(items.size), n_users=1, n_items=7)
    np.testing.assert_array_equal(model.counts_, [2, 3, 2, 1, 0, 2, 0])
    # 1 (3 ratings); 0, 2, 5 tie at 2 -> by index; 3 (1); 4, 6 tie at 0 -> by index
    np.testing.assert_array_equal(model.ranking(), [1, 0, 2, 5, 3, 4, 6])
    np.testing.assert_array_equal(model.predict(np.zeros(3, dtype=int), np.array([1, 4, 50])), [3.0, 0.0, 0.0])


def test_model_settings_derive_from_the_registry_params() -> None:
    """Every registered model has a settings section whose defaults are its params' (the only defaults)."""
    import dataclasses

    from recsys.config import MODEL_SETTINGS, RUN_LEVEL_FIELDS, params_from_settings
    from recsys.models.registry import specs

    settings = Settings()
    assert set(MODEL_SETTINGS) == {model.name for model in specs()}
    for model in specs():
        section = getattr(settings, model.name).model_dump()
        assert not set(section) & set(RUN_LEVEL_FIELDS), model.name
        rebuilt = params_from_settings(model.params, section)
        assert rebuilt == model.params(), model.name  # nothing lost or changed on the way through settings
    # the two-tower defaults are the nightly run's (softmax retrieval with cold dropout), in one place
    tower = dataclasses.asdict(params_from_settings(specs()[-1].params, settings.two_tower.model_dump()))
    assert tower["loss"] == "softmax" and tower["cold_dropout"] == 0.3


def test_model_settings_refuse_values_outside_the_params_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="epochs"):
        Settings(cf={"epochs": 0})
    with pytest.raises(ValidationError, match="cold_dropout"):
        Settings(two_tower={"cold_dropout": 1.5})
    monkeypatch.setenv("RECSYS_RANKER_EASE_L2", "-1")
    with pytest.raises(ValidationError, match="ease_l2"):
        Settings()
    monkeypatch.setenv("RECSYS_RANKER_EASE_L2", "120")
    assert Settings().ranker.ease_l2 == 120.0  # an environment variable per field, member fields prefixed


def test_older_model_names_resolve_for_one_release() -> None:
    assert Settings(ranking_model="implicit").ranking_model == "ranker"
    assert Settings(rating_model="mf").rating_model == "cf"
    # explicit: rank by the rating model, whichever it is
    assert Settings(ranking_model="explicit").ranking_model == "autorec"
    assert Settings(ranking_model="explicit", rating_model="mf").ranking_model == "cf"
    with pytest.raises(ValueError, match="registered model"):
        Settings(ranking_model="nope")
    with pytest.raises(ValueError, match="registered rating model"):
        Settings(rating_model="ranker")  # it ranks; it does not predict ratings

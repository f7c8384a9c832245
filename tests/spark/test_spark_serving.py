"""The recommend stage's Spark engine serves what its local engine serves (``retrieval.engine``).

A small synthetic lake (the ingest and build-tables jobs, in this process, on the tests'
session), CF and two-tower models trained by the train stage, the similar-items stage; then
:func:`recsys.stages.recommend.recommend` once per engine. Warm users (CF, embedding retrieval
through a faiss HNSW index), cold-start users (the two-tower model) and the reserved new-item
slots are all served, over several blocks (one Spark partition each).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recsys.config import RetrievalConfig, Settings, SyntheticConfig, run_id_for
from recsys.lake import read_partition
from recsys.retrieval import faiss_index
from recsys.stages.recommend import COLD_START_NOTE, recommend
from recsys.stages.spark_serving import map_blocks

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DATE = "2026-03-02"


def _settings(home: Path, engine: str) -> Settings:
    return Settings(
        home=home,
        dataset="synthetic",
        synthetic=SyntheticConfig(
            n_users=120, n_items=150, n_groups=3, mean_ratings_per_user=10, min_ratings_per_user=3
        ),
        ranking_model="cf",  # the serving model has retrieval vectors: the embedding source searches the index
        rating_model="cf",
        cold_start_max_ratings=4,
        top_k=5,
        n_popular=20,
        drift_checks=False,
        use_tuned=False,
        cf={"epochs": 4},
        two_tower={"epochs": 2},
        retrieval=RetrievalConfig(
            index="faiss_hnsw", recall_floor=0.0, user_block=16, experiment=False, new_item_reach=10, engine=engine
        ),
    )


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str | None], dict]:
    """``(home, models, similar-items output)`` of one small run up to the recommend stage."""
    from pyspark.sql import SparkSession

    from jobs import build_tables, ingest
    from recsys.stages.resolve import spark_job_args
    from recsys.stages.similar import build_similar_items
    from recsys.stages.train import train

    home = tmp_path_factory.mktemp("spark-serving")
    settings = _settings(home, "local")
    args = spark_job_args(settings, DATE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SparkSession, "stop", lambda self: None)  # the jobs stop their session: here, the tests' one
        ingest.main(args["ingest"])
        build_tables.main(args["build_tables"])
    run_id = run_id_for(settings.dataset, DATE)
    models = {name: train(settings, DATE, run_id, name)["model_dir"] for name in ("cf", "two_tower")}
    similar = build_similar_items(settings, DATE, models)
    return home, models, similar


@pytest.fixture(scope="module")
def served(lake, spark) -> dict[str, tuple[dict[str, Any], pd.DataFrame]]:
    """``{engine: (the stage's output, its recommendations partition)}``."""
    home, models, similar = lake
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(faiss_index, "MAX_THREADS", 1)  # one thread: each run builds the very same HNSW graph
        for engine in ("local", "spark"):
            settings = _settings(home, engine)
            result = recommend(settings, DATE, models, similar)
            out[engine] = (result, read_partition(settings.lake, "recommendations", DATE))
    return out


def test_both_engines_publish_the_same_recommendations(served) -> None:
    (local, local_recs), (spark_out, spark_recs) = served["local"], served["spark"]
    assert local["engine"] == "local" and spark_out["engine"] == "spark"
    key = ["user_idx", "rank"]
    a = local_recs.sort_values(key, kind="stable").reset_index(drop=True)
    b = spark_recs.sort_values(key, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(a.drop(columns="score"), b.drop(columns="score"), check_exact=True)
    np.testing.assert_allclose(b["score"].to_numpy(), a["score"].to_numpy(), rtol=1e-12, atol=0)
    pd.testing.assert_frame_equal(local_recs, spark_recs, check_exact=False, rtol=1e-12)  # and in the same order
    for field in ("rows", "users", "candidates_per_user", "cold_start_users", "model_version"):
        assert local[field] == spark_out[field], field


def test_both_engines_count_the_same(served) -> None:
    (local, _), (spark_out, _) = served["local"], served["spark"]

    def counters(metrics: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in metrics.items() if not k.endswith("_seconds")}

    assert counters(local["metrics"]) == counters(spark_out["metrics"])


def test_the_run_covered_warm_cold_embedding_and_reserved_users(served) -> None:
    """What the parity is worth: every serving path ran, over several blocks."""
    local, recs = served["spark"]
    m = local["metrics"]
    assert local["cold_start_users"] > 0 and local["users"] - local["cold_start_users"] > 16  # several warm blocks
    assert recs["reason"].str.endswith(COLD_START_NOTE).sum() == 5 * local["cold_start_users"]
    assert m["index_embedding_approximate"] == 1.0 and m["index_embedding_fell_back"] == 0.0  # faiss HNSW
    assert m["candidates_embedding"] > 0 and m["published_embedding"] > 0
    assert m["new_items"] > 0 and m["new_items_reserved_slots"] > 0
    assert (recs["source"] == "new").sum() >= m["new_items_reserved_slots"]


def test_the_spark_engine_leaves_the_callers_session_running_and_ships_no_tensorflow(lake, spark, caplog) -> None:
    home, models, similar = lake
    with caplog.at_level(logging.INFO, logger="recsys.stages"):
        recommend(_settings(home, "spark"), DATE, models, similar)
    assert "serving blocks with the spark engine" in caplog.text
    assert "blocks on Spark" in caplog.text and "partition 1/" in caplog.text
    assert "pickles references to" not in caplog.text  # no TensorFlow / Keras object in the serving state
    assert spark.range(3).count() == 3


def test_the_spark_engine_carries_the_columns_of_the_recommendations() -> None:
    from recsys.ranking.rank import RECOMMENDATION_COLUMNS
    from recsys.stages.recommend import BLOCK_COLUMN_TYPES

    assert list(BLOCK_COLUMN_TYPES) == RECOMMENDATION_COLUMNS


def test_map_blocks_keeps_block_order_rows_and_counters(spark) -> None:
    """Blocks with no rows, several blocks per partition: the rows and counters of a loop over the blocks."""

    def work(j: int) -> tuple[pd.DataFrame, dict[str, Any]]:
        frame = pd.DataFrame(
            {
                "k": np.arange(j, dtype=np.int32)[::-1],
                "x": np.full(j, j / 3, dtype=np.float64),
                "s": [f"b{j}r{r}" for r in range(j)],
            }
        )
        return frame, {"rows": j, "users": 1}

    columns = {"k": "int", "x": "double", "s": "string"}
    rows, counters = map_blocks(7, work, columns, spark=spark, blocks_per_partition=3, label="test")
    want = [work(j) for j in range(7)]
    expected = pd.concat([f for f, _ in want], ignore_index=True)
    pd.testing.assert_frame_equal(rows, expected, check_exact=True)
    assert counters == [c for _, c in want]
    empty, none = map_blocks(0, work, columns, spark=spark)
    assert none == [] and empty.empty and list(empty.dtypes) == [np.int32, np.float64, object]

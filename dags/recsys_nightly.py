"""
# recsys_nightly

One nightly run of the batch recommender for run date **D**:

1. `resolve`: fix D (the `run_date` param, else the run's logical date / run_after), the run id and settings.
2. `ingest` (Spark): raw source -> `stg_*` tables.
3. `build_tables` (Spark): id maps, `ratings` (with split), `items`, `users`.
4. `validate`: Great Expectations gate; a failure stops the run and nothing is published.
5. `tune` (optional, param `tune`): random search of the models' parameters on a validation split
   of the training data; the training tasks use the result (`models/<dataset>/tuned/`).
6. `train_cf`, `train_autorec`, `train_ranker` and `train_two_tower`, in parallel (TensorFlow):
   explicit CF (its item vectors give the similar items), AutoRec (the rating model; param
   `rating_model`, skipped for `mf`), the ranking model (implicit CF blended with EASE) and the
   content-based two-tower model (cold start; param `cold_start_model`, skipped for `none`), each
   evaluated on the test split (rating and top-K metrics vs baselines).
7. `similar_items`: exact nearest items by CF item vectors and by two-tower item embeddings.
8. `recommend`: candidates (similar to recent, nearest to the profile, popular) ranked by the model
   that serves each user: the two-tower model for cold-start users (at most `cold_start_max_ratings`
   training ratings), else the serving model (param `ranking_model`); top K with reasons.
9. `publish`: write-audit-publish to the store (with every evaluation metric in `runs.metrics`);
   the previous run stays live on failure.
10. `report`: the run's HTML report.

Trigger from the UI with params (run date, dataset, top K, synthetic size).
Wiring only: every task calls a function of `recsys.pipeline`.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Asset, Param, dag, get_current_context, task

PROJECT_ROOT = Path(__file__).resolve().parent.parent
JOBS = PROJECT_ROOT / "jobs"
SPARK_CONF = {
    "spark.pyspark.python": sys.executable,
    "spark.pyspark.driver.python": sys.executable,
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
}
RECOMMENDATIONS = Asset("recsys://store/recommendations_latest")
SIMILAR_ITEMS = Asset("recsys://store/similar_items_latest")
TABLE_ASSETS = [Asset(f"recsys://lake/{name}") for name in ("ratings", "items", "users")]

PARAMS = {
    "run_date": Param("", type="string", description="YYYY-MM-DD; empty = the run's logical date"),
    "dataset": Param(
        "synthetic",
        type="string",
        pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
        description="synthetic, or the name of a real data folder (ml-100k, ml-1m, ...)",
    ),
    "data_dir": Param(
        "",
        type="string",
        description="folder of real data (MovieLens layouts or an event "
        "log, detected from the files); empty = ../shared MovieLens 100K for ml-100k",
    ),
    "split": Param("auto", enum=["auto", "fold", "random", "temporal"], description="train/test split"),
    "max_bad_fraction": Param(
        0.01, type="number", minimum=0, maximum=1, description="share of unusable input rows that fails the run"
    ),
    "top_k": Param(10, type="integer", minimum=1, maximum=100, description="recommendations per user"),
    "seed": Param(42, type="integer", description="seed of every random choice"),
    "synthetic_n_users": Param(3000, type="integer", minimum=10, description="synthetic users"),
    "synthetic_n_items": Param(2000, type="integer", minimum=20, description="synthetic items"),
    "synthetic_mean_ratings_per_user": Param(45.0, type="number", minimum=1, description="synthetic density"),
    "ranking_model": Param(
        "implicit",
        enum=["implicit", "explicit"],
        description="model that ranks: implicit CF (which items users choose) or the rating model",
    ),
    "rating_model": Param(
        "autorec",
        enum=["autorec", "mf"],
        description="model that predicts ratings: AutoRec (lowest RMSE) or the course's factorisation",
    ),
    "tune": Param(False, type="boolean", description="search the models' parameters before training"),
    "tune_trials": Param(20, type="integer", minimum=1, maximum=500, description="trials per model when tuning"),
    "cf_epochs": Param(
        None, type=["null", "integer"], minimum=1, description="explicit CF epochs; empty = tuned or default"
    ),
    "autorec_epochs": Param(None, type=["null", "integer"], minimum=1, description="AutoRec epochs; empty = default"),
    "cold_start_model": Param(
        "two_tower",
        enum=["two_tower", "none"],
        description="train the two-tower model and serve cold-start users with it, or not",
    ),
    "cold_start_max_ratings": Param(
        5, type="integer", minimum=0, description="users with at most this many training ratings are cold-start users"
    ),
    "two_tower_epochs": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        description="two-tower epochs (early stopping may end sooner); empty = default",
    ),
    "ranker_epochs": Param(
        None, type=["null", "integer"], minimum=1, description="ranking model epochs; empty = tuned or default"
    ),
}


def _spark_job(name: str, args: object, outlets: list[Asset] | None = None) -> SparkSubmitOperator:
    """A Spark job of ``jobs/<name>.py``, submitted to the ``spark_default`` connection."""
    return SparkSubmitOperator(
        task_id=name,
        application=str(JOBS / f"{name}.py"),
        application_args=args,
        conn_id="spark_default",
        conf=SPARK_CONF,
        driver_memory=os.environ.get("RECSYS_SPARK_DRIVER_MEMORY", "4g"),
        name=f"recsys-{name}",
        env_vars={"PYSPARK_PYTHON": sys.executable},
        outlets=outlets or [],
    )


def _settings(resolved: dict):
    from recsys.config import Settings

    return Settings(**resolved["settings"])


@dag(
    dag_id="recsys_nightly",
    schedule="@daily",
    catchup=False,
    max_active_runs=1,
    tags=["recsys", "nightly"],
    doc_md=__doc__,
    params=PARAMS,
    default_args={
        "owner": "recsys",
        "retries": 1,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(hours=2),
    },
)
def recsys_nightly() -> None:
    """Wire the nightly run."""

    @task(multiple_outputs=False)
    def resolve() -> dict:
        from recsys.pipeline import resolve_run

        ctx = get_current_context()
        params = dict(ctx["params"])
        run_date = params.pop("run_date", "")
        fallback = ctx.get("logical_date") or ctx["dag_run"].run_after
        return resolve_run(params, run_date, fallback)

    @task
    def spark_args(resolved: dict, job: str) -> list[str]:
        return resolved["spark_args"][job]

    @task(retries=0)  # bad data does not fix itself: fail at once
    def validate(resolved: dict) -> dict:
        from recsys.pipeline import validate as run

        return run(_settings(resolved), resolved["run_date"])

    @task
    def tune(resolved: dict, _gate: dict) -> dict:
        if not resolved["tune"]["enabled"]:
            return {"skipped": True}
        from recsys.pipeline import tune as run

        return run(_settings(resolved), resolved["run_date"], trials=resolved["tune"]["trials"])

    @task
    def train_cf(resolved: dict, _tuned: dict) -> dict:
        from recsys.pipeline import train_cf as run

        return run(_settings(resolved), resolved["run_date"], resolved["run_id"])

    @task
    def train_autorec(resolved: dict, _tuned: dict) -> dict:
        from recsys.pipeline import train_autorec as run

        return run(_settings(resolved), resolved["run_date"], resolved["run_id"])

    @task
    def train_two_tower(resolved: dict, _tuned: dict) -> dict:
        from recsys.pipeline import train_two_tower as run

        return run(_settings(resolved), resolved["run_date"], resolved["run_id"])

    @task
    def train_ranker(resolved: dict, _tuned: dict) -> dict:
        from recsys.pipeline import train_ranker as run

        return run(_settings(resolved), resolved["run_date"], resolved["run_id"])

    @task
    def similar_items(resolved: dict, model: dict, tower: dict) -> dict:
        from recsys.pipeline import build_similar_items

        return build_similar_items(_settings(resolved), resolved["run_date"], model["model_dir"], tower["model_dir"])

    @task
    def recommend(resolved: dict, cf: dict, autorec: dict, ranker: dict, tower: dict, _similar: dict) -> dict:
        from recsys.pipeline import recommend as run

        return run(
            _settings(resolved),
            resolved["run_date"],
            cf["model_dir"],
            ranker["model_dir"],
            autorec["model_dir"],
            tower["model_dir"],
        )

    @task(outlets=[RECOMMENDATIONS, SIMILAR_ITEMS])
    def publish(resolved: dict, cf: dict, autorec: dict, ranker: dict, tower: dict, recs: dict) -> dict:
        from recsys.pipeline import publish as run

        metrics = {
            **cf["metrics"],
            **autorec["metrics"],
            **ranker["metrics"],
            **tower["metrics"],
            "cold_start_users_served": float(recs.get("cold_start_users", 0)),
        }
        out = run(
            _settings(resolved),
            resolved["run_date"],
            resolved["run_id"],
            metrics,
            resolved["generated_at"],
            recs["model_version"],
        )
        events = get_current_context()["outlet_events"]
        events[RECOMMENDATIONS].extra = {
            "run_id": out["run_id"],
            "rows": out["recommendations"],
            "users": out["users"],
            "model_version": recs["model_version"],
        }
        events[SIMILAR_ITEMS].extra = {"run_id": out["run_id"], "rows": out["similar_items"]}
        return {**out, "model_version": recs["model_version"]}

    @task
    def report(resolved: dict, cf: dict, autorec: dict, ranker: dict, tower: dict, published: dict) -> str:
        from recsys.pipeline import write_report

        return write_report(
            _settings(resolved),
            resolved["run_date"],
            resolved["run_id"],
            [cf["model_dir"], autorec["model_dir"], ranker["model_dir"], tower["model_dir"]],
            published,
        )

    resolved = resolve()
    ingest = _spark_job("ingest", spark_args.override(task_id="ingest_args")(resolved, "ingest"))
    build = _spark_job(
        "build_tables", spark_args.override(task_id="build_tables_args")(resolved, "build_tables"), outlets=TABLE_ASSETS
    )
    gate = validate(resolved)
    ingest >> build >> gate
    tuned = tune(resolved, gate)
    cf = train_cf(resolved, tuned)
    autorec = train_autorec(resolved, tuned)
    ranker = train_ranker(resolved, tuned)
    tower = train_two_tower(resolved, tuned)
    similar = similar_items(resolved, cf, tower)
    recs = recommend(resolved, cf, autorec, ranker, tower, similar)
    published = publish(resolved, cf, autorec, ranker, tower, recs)
    report(resolved, cf, autorec, ranker, tower, published)


recsys_nightly()

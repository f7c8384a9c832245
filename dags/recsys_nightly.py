"""
# recsys_nightly

One nightly run of the batch recommender for run date **D**:

1. `resolve`: fix D (the `run_date` param, else the run's logical date / run_after), the run id and settings.
2. `ingest` (Spark): raw source -> `stg_*` tables.
3. `build_tables` (Spark): id maps, `ratings` (with split), `items`, `users`.
4. `validate`: Great Expectations gate; a failure stops the run and nothing is published.
5. `tune` (optional, param `tune`): random search of the models' parameters on a validation split
   of the training data; the training tasks use the result (`models/<dataset>/tuned/`).
6. `train_<model>`, one task per model of the registry (`recsys.models.registry`), in parallel
   (TensorFlow): `cf` (explicit CF; its item vectors give the similar items), `autorec` (the rating
   model; param `rating_model`), `ranker` (implicit CF blended with EASE: the ranking model; param
   `ranking_model`) and `two_tower` (content-based; cold start; param `cold_start_model`), each
   evaluated on the test split (rating and top-K metrics vs baselines). A model the run does not
   need returns at once, marked skipped.
7. `similar_items`: exact nearest items by CF item vectors and by two-tower item embeddings.
8. `recommend`: candidates (similar to recent, nearest to the profile, popular) ranked by the model
   that serves each user: the two-tower model for cold-start users (at most `cold_start_max_ratings`
   training ratings), else the serving model (param `ranking_model`); top K with reasons.
9. `publish`: write-audit-publish to the store (with every evaluation metric in `runs.metrics`);
   the previous run stays live on failure.
10. `report`: the run's HTML report.

Trigger from the UI with params (run date, dataset, top K, synthetic size).
Wiring only: every task calls a function of `recsys.stages`.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Asset, Param, dag, get_current_context, task

from recsys.models.registry import MODEL_MODULES  # names only: imports no model module

PROJECT_ROOT = Path(__file__).resolve().parent.parent
JOBS = PROJECT_ROOT / "jobs"
SPARK_CONF = {
    "spark.pyspark.python": sys.executable,
    "spark.pyspark.driver.python": sys.executable,
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
}
FAST_START = "-XX:TieredStopAtLevel=1 -XX:+UseParallelGC"
"""The driver JVM's default options: the quick JIT only and a throughput GC, for short jobs on few cores (the
optimising JIT's compiler threads compete with the job; bench/README.md has the measured effect). For long jobs
on big data set ``RECSYS_SPARK_DRIVER_JAVA_OPTIONS`` (empty: the JVM's defaults)."""
RECOMMENDATIONS = Asset("recsys://store/recommendations_latest")
SIMILAR_ITEMS = Asset("recsys://store/similar_items_latest")
TABLE_ASSETS = [Asset(f"recsys://lake/{name}") for name in ("ratings", "items", "users")]

RUN, DATA, SERVING, RETRIEVAL, POLICY, MODELS, TUNING = (
    "Run",
    "Data",
    "Serving",
    "Retrieval",
    "Policy",
    "Models",
    "Tuning",
)
"""The trigger form's sections."""

PARAMS = {
    "run_date": Param(
        "", type="string", title="Run date", description="YYYY-MM-DD; empty = the run's logical date", section=RUN
    ),
    "seed": Param(42, type="integer", title="Seed", description="seed of every random choice", section=RUN),
    "dataset": Param(
        "synthetic",
        type="string",
        pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
        title="Dataset",
        description="synthetic, or the name of a real data folder (ml-100k, ml-1m, ...)",
        section=DATA,
    ),
    "data_dir": Param(
        "",
        type="string",
        title="Data folder",
        description="folder of real data (MovieLens layouts or an event "
        "log, detected from the files); empty = ../shared MovieLens 100K for ml-100k",
        section=DATA,
    ),
    "split": Param(
        "auto",
        enum=["auto", "fold", "random", "temporal"],
        title="Train/test split",
        description="auto: the source's official fold where it has one, else random",
        section=DATA,
    ),
    "max_bad_fraction": Param(
        0.01,
        type="number",
        minimum=0,
        maximum=1,
        title="Largest share of bad input rows",
        description="share of unusable input rows that fails the run",
        section=DATA,
    ),
    "synthetic_n_users": Param(3000, type="integer", minimum=10, title="Synthetic users", section=DATA),
    "synthetic_n_items": Param(2000, type="integer", minimum=20, title="Synthetic items", section=DATA),
    "synthetic_mean_ratings_per_user": Param(
        45.0, type="number", minimum=1, title="Synthetic ratings per user", description="mean", section=DATA
    ),
    "top_k": Param(
        10,
        type="integer",
        minimum=1,
        maximum=100,
        title="Top K",
        description="recommendations per user",
        section=SERVING,
    ),
    "ranking_model": Param(
        "ranker",
        enum=[*MODEL_MODULES, "implicit", "explicit"],
        title="Ranking model",
        description="the model that ranks warm users' candidates: ranker (implicit CF + EASE: which items users "
        "choose), or a rating model; implicit (= ranker) and explicit (= the rating model) are older names",
        section=SERVING,
    ),
    "rating_model": Param(
        "autorec",
        enum=[*MODEL_MODULES, "mf"],
        title="Rating model",
        description="the model that predicts ratings: autorec (lowest RMSE) or cf (the course's factorisation; "
        "mf is its older name); a model that does not predict ratings is refused when the run starts",
        section=SERVING,
    ),
    "cold_start_model": Param(
        "two_tower",
        enum=["two_tower", "none"],
        title="Cold-start model",
        description="train the two-tower model and serve cold-start users with it, or not",
        section=SERVING,
    ),
    "cold_start_max_ratings": Param(
        5,
        type="integer",
        minimum=0,
        title="Cold-start users' most ratings",
        description="users with at most this many training ratings are cold-start users",
        section=SERVING,
    ),
    "retrieval_index": Param(
        "auto",
        enum=["auto", "exact", "faiss_flat", "faiss_ivf", "faiss_hnsw"],
        title="Nearest-neighbour index",
        description="auto: exact up to the size below, approximate above (its recall is checked every run)",
        section=RETRIEVAL,
    ),
    "retrieval_exact_max_items": Param(
        200_000, type="integer", minimum=1, title="Largest catalogue searched exactly", section=RETRIEVAL
    ),
    "retrieval_recall_floor": Param(
        0.95,
        type="number",
        minimum=0,
        maximum=1,
        title="Approximate index: least recall@10",
        description="below it the run falls back to exact search (with a warning)",
        section=RETRIEVAL,
    ),
    "retrieval_new_item_reach": Param(
        20,
        type="integer",
        minimum=0,
        title="Users each new item is shown to",
        description="the last slot of the lists of the users the two-tower model scores highest for it (0: off)",
        section=RETRIEVAL,
    ),
    "retrieval_experiment": Param(
        True,
        type="boolean",
        title="Retrieval-size experiment",
        description="measure 50..1000 candidates per user on a sample of users (plotted in the report)",
        section=RETRIEVAL,
    ),
    "retrieval_engine": Param(
        "local",
        enum=["local", "spark"],
        title="Per-user stage engine",
        description="local: the blocks of users one after another in the recommend task; spark: the blocks "
        "as a Spark job (RECSYS_SPARK_MASTER, default local[2]); the same recommendations either way",
        section=RETRIEVAL,
    ),
    "policy_file": Param(
        None,
        type=["null", "string"],
        title="Policy file",
        description="JSON file: blocked_items, blocked_genres, min_item_ratings, genre_cap, mmr_weight",
        section=POLICY,
    ),
    "policy_blocked_items": Param([], type="array", items={"type": "string"}, title="Blocked item ids", section=POLICY),
    "policy_blocked_genres": Param(
        [], type="array", items={"type": "string"}, title="Blocked genres or tags", section=POLICY
    ),
    "policy_min_item_ratings": Param(
        0,
        type="integer",
        minimum=0,
        title="Least ratings of a recommended item",
        description="0: any item (new items reach users through the new-items source)",
        section=POLICY,
    ),
    "policy_genre_cap": Param(
        0, type="integer", minimum=0, title="Most items of one genre per list", description="0: no cap", section=POLICY
    ),
    "policy_mmr_weight": Param(
        0.0,
        type="number",
        minimum=0,
        maximum=0.99,
        title="Diversity weight (MMR)",
        description="0: order by score alone",
        section=POLICY,
    ),
    **{
        f"{name}_epochs": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title=f"{name} epochs",
            description=f"most training epochs of {name}; empty = tuned or default",
            section=MODELS,
        )
        for name in MODEL_MODULES
    },
    "tune": Param(
        False,
        type="boolean",
        title="Tune first",
        description="search the models' parameters before training",
        section=TUNING,
    ),
    "tune_trials": Param(
        20, type="integer", minimum=1, maximum=500, title="Trials per model", description="when tuning", section=TUNING
    ),
}


def _spark_job(name: str, args: object, outlets: list[Asset] | None = None) -> SparkSubmitOperator:
    """A Spark job of ``jobs/<name>.py``, submitted to the ``spark_default`` connection."""
    return SparkSubmitOperator(
        task_id=name,
        application=str(JOBS / f"{name}.py"),
        application_args=args,
        conn_id="spark_default",
        conf={
            **SPARK_CONF,
            "spark.driver.extraJavaOptions": os.environ.get("RECSYS_SPARK_DRIVER_JAVA_OPTIONS", FAST_START),
        },
        driver_memory=os.environ.get("RECSYS_SPARK_DRIVER_MEMORY", "4g"),
        name=f"recsys-{name}",
        env_vars={"PYSPARK_PYTHON": sys.executable},
        outlets=outlets or [],
    )


def _settings(resolved: dict):
    from recsys.config import Settings

    return Settings(**resolved["settings"])


def _dirs(trained: dict) -> dict:
    """``{model: model folder or None}`` of the training tasks' outputs."""
    return {name: out["model_dir"] for name, out in trained.items()}


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
        from recsys.stages.resolve import resolve_run

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
        from recsys.stages.validate import validate as run

        return run(_settings(resolved), resolved["run_date"])

    @task
    def tune(resolved: dict, _gate: dict) -> dict:
        if not resolved["tune"]["enabled"]:
            return {"skipped": True}
        from recsys.stages.tune import tune as run

        return run(_settings(resolved), resolved["run_date"], trials=resolved["tune"]["trials"])

    @task
    def train(resolved: dict, _tuned: dict, model: str) -> dict:
        from recsys.stages.train import train as run

        return run(_settings(resolved), resolved["run_date"], resolved["run_id"], model)

    @task
    def similar_items(resolved: dict, trained: dict) -> dict:
        from recsys.stages.similar import build_similar_items

        return build_similar_items(_settings(resolved), resolved["run_date"], _dirs(trained))

    @task
    def recommend(resolved: dict, trained: dict, similar: dict) -> dict:
        from recsys.stages.recommend import recommend as run

        return run(_settings(resolved), resolved["run_date"], _dirs(trained), similar)

    @task(outlets=[RECOMMENDATIONS, SIMILAR_ITEMS])
    def publish(resolved: dict, trained: dict, recs: dict) -> dict:
        from recsys.stages.publish import publish as run

        metrics = {key: v for out in trained.values() for key, v in out["metrics"].items()}
        metrics["cold_start_users_served"] = float(recs.get("cold_start_users", 0))
        metrics.update(recs.get("metrics", {}))
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
    def report(resolved: dict, trained: dict, published: dict, recs: dict) -> str:
        from recsys.stages.report import write_report

        return write_report(
            _settings(resolved),
            resolved["run_date"],
            resolved["run_id"],
            _dirs(trained),
            published,
            recs.get("metrics", {}),
        )

    resolved = resolve()
    ingest = _spark_job("ingest", spark_args.override(task_id="ingest_args")(resolved, "ingest"))
    build = _spark_job(
        "build_tables", spark_args.override(task_id="build_tables_args")(resolved, "build_tables"), outlets=TABLE_ASSETS
    )
    gate = validate(resolved)
    ingest >> build >> gate
    tuned = tune(resolved, gate)
    trained = {name: train.override(task_id=f"train_{name}")(resolved, tuned, name) for name in MODEL_MODULES}
    similar = similar_items(resolved, trained)
    recs = recommend(resolved, trained, similar)
    published = publish(resolved, trained, recs)
    report(resolved, trained, published, recs)


recsys_nightly()

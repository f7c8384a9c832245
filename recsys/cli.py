"""``recsys``: the pipeline's commands for humans (the DAG calls the same functions)."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from recsys.cli_data import data_app
from recsys.config import Settings

app = typer.Typer(help="Batch recommender pipeline.", no_args_is_help=True, add_completion=False)
app.add_typer(data_app, name="data")
console = Console()


def _settings(**overrides: object) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False) -> None:
    """Batch recommender pipeline."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def run(
    run_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: today, UTC)")] = None,
    dataset: Annotated[
        str, typer.Option(help="synthetic, or a name for real data (ml-100k, ml-1m, ...)")
    ] = "synthetic",
    data_dir: Annotated[Path | None, typer.Option(help="folder of real data (layout detected)")] = None,
    split: Annotated[str, typer.Option(help="auto | fold | random | temporal")] = "auto",
    top_k: Annotated[int, typer.Option(help="recommendations per user")] = 10,
    users: Annotated[int | None, typer.Option(help="synthetic users (default from settings)")] = None,
    items: Annotated[int | None, typer.Option(help="synthetic items (default from settings)")] = None,
    ratings_per_user: Annotated[float | None, typer.Option(help="synthetic mean ratings per user")] = None,
    home: Annotated[Path | None, typer.Option(help="RECSYS_HOME (default ./data)")] = None,
    ranking_model: Annotated[
        str, typer.Option(help="ranker | autorec | cf: the model that ranks (older: implicit, explicit)")
    ] = "ranker",
    rating_model: Annotated[
        str, typer.Option(help="autorec | cf: the model that predicts ratings (older: mf)")
    ] = "autorec",
    tune: Annotated[bool, typer.Option("--tune", help="search the models' parameters first (DAG task `tune`)")] = False,
    tune_trials: Annotated[int, typer.Option(help="trials per model with --tune")] = 20,
    verbose: Annotated[bool, typer.Option("--verbose", help="stream Airflow's whole output")] = False,
) -> None:
    """Run the nightly DAG once through Airflow (`airflow dags test`), then show results."""
    from recsys.orchestration import dag_run_state, dags_test, progress_line

    settings = _settings(home=home)
    date = run_date or datetime.now(UTC).date().isoformat()
    conf: dict[str, object] = {
        "run_date": date,
        "dataset": dataset,
        "top_k": top_k,
        "split": split,
        "ranking_model": ranking_model,
        "rating_model": rating_model,
        "tune": tune,
        "tune_trials": tune_trials,
    }
    if data_dir is not None:
        conf["data_dir"] = str(data_dir.resolve())
    if users is not None:
        conf["synthetic_n_users"] = users
    if items is not None:
        conf["synthetic_n_items"] = items
    if ratings_per_user is not None:
        conf["synthetic_mean_ratings_per_user"] = ratings_per_user
    log_file = settings.home / "logs" / f"recsys_nightly_{date}.log"
    console.print(f"Running recsys_nightly for {date} on {dataset} (full Airflow log: {log_file})")

    def show_progress(line: str) -> None:
        if verbose:
            console.out(line.rstrip("\n"), highlight=False)
        elif (msg := progress_line(line)) is not None:
            console.out(msg, highlight=False)

    start = time.monotonic()
    proc = dags_test(settings.home, date, conf, log_file=log_file, on_line=show_progress)
    if proc.returncode != 0 or dag_run_state(settings.home, date).get("__dag_run__") != "success":
        console.print(
            f"[red]recsys_nightly failed for {date}; the store still serves the previous run. Full log: {log_file}"
        )
        raise typer.Exit(proc.returncode or 1)
    console.print(f"[green]recsys_nightly succeeded for {date} in {time.monotonic() - start:.0f}s")
    _show(_settings(home=home, dataset=dataset), n_users=3, top=5)


def _show(settings: Settings, n_users: int, top: int) -> None:
    from recsys.lake import read_partition
    from recsys.store import open_store

    with open_store(settings.resolved_store_url) as store:
        run_id = store.latest_run_id()
        if run_id is None:
            console.print("[yellow]No run is published yet: run `make run`.")
            raise typer.Exit(1)
        recs = store.read_recommendations()
        runs = store.list_runs()
    live = runs[runs["run_id"] == run_id].iloc[0]
    items = read_partition(Settings(home=settings.home, dataset=live["dataset"]).lake, "items", str(live["run_date"]))
    titles = dict(zip(items["item_id"], items["title"], strict=True))
    console.print(f"Live run [bold]{run_id}[/] (run date {live['run_date']}, dataset {live['dataset']})")
    console.print(f"  store:   {settings.resolved_store_url}  (views recommendations_latest, similar_items_latest)")
    console.print(f"  lake:    {settings.home / 'lake' / live['dataset']}")
    console.print(f"  models:  {settings.home / 'models' / live['dataset']}")
    console.print(f"  report:  {settings.reports_dir / run_id / 'report.html'}")
    first_users = sorted(recs["user_id"].unique(), key=lambda u: (len(u), u))[:n_users]
    for user in first_users:
        t = Table(title=f"user {user}: top {top}", title_justify="left")
        for col in ("rank", "title", "score", "source", "reason"):
            t.add_column(col)
        rows = recs[(recs["user_id"] == user) & (recs["rank"] <= top)].sort_values("rank")
        for r in rows.itertuples():
            source = r.source if isinstance(r.source, str) else "-"  # runs published before schema v2 have none
            t.add_row(str(r.rank), titles.get(r.item_id, r.item_id), f"{r.score:.2f}", source, r.reason)
        console.print(t)


@app.command()
def show(
    users: Annotated[int, typer.Option(help="how many users")] = 3,
    top: Annotated[int, typer.Option(help="recommendations per user")] = 5,
    home: Annotated[Path | None, typer.Option(help="RECSYS_HOME")] = None,
) -> None:
    """Show the live run's top recommendations, with titles and reasons."""
    _show(_settings(home=home), n_users=users, top=top)


@app.command("tune")
def tune_cmd(
    run_date: Annotated[str, typer.Option(help="YYYY-MM-DD of the tables to tune on (built by a run)")],
    dataset: Annotated[str, typer.Option(help="dataset name")] = "synthetic",
    model: Annotated[
        str, typer.Option(help="cf | ranker | autorec | all (every model a run trains); older: explicit, implicit")
    ] = "all",
    trials: Annotated[int, typer.Option(help="random-search trials per model")] = 20,
    seed: Annotated[int | None, typer.Option(help="seed (default from settings)")] = None,
    home: Annotated[Path | None, typer.Option(help="RECSYS_HOME")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="progress bars")] = True,
) -> None:
    """Search model parameters on a validation split of a run's training data.

    The result (`models/<dataset>/tuned/<model>.json`, every trial and the best
    parameters) is used by the next runs' training (setting `use_tuned`).
    """
    from recsys.models.registry import canonical_name
    from recsys.models.tuning import SEARCH_SPACES
    from recsys.stages.tune import tune

    try:
        if model != "all" and canonical_name(model) not in SEARCH_SPACES:
            raise KeyError(model)
    except KeyError:
        raise typer.BadParameter(f"model must be {', '.join(SEARCH_SPACES)} or all (or an older name)") from None
    settings = _settings(home=home, dataset=dataset, seed=seed)
    models = None if model == "all" else (model,)
    out = tune(settings, run_date, trials=trials, models=models, progress=progress)
    t = Table("model", "metric", "best", "written to")
    for name, r in out.items():
        t.add_row(name, r["metric"], f"{r['best_score']:.4f}", r["path"])
    console.print(t)


@app.command()
def runs(home: Annotated[Path | None, typer.Option(help="RECSYS_HOME")] = None) -> None:
    """List the runs in the store (live one marked)."""
    from recsys.store import open_store

    with open_store(_settings(home=home).resolved_store_url) as store:
        live = store.latest_run_id()
        frame = store.list_runs()
    t = Table("run_id", "run_date", "dataset", "status", "model", "test RMSE", "NDCG@K", "published_at", "live")
    for r in frame.itertuples():
        m = r.metrics if isinstance(r.metrics, dict) else json.loads(r.metrics or "{}")
        rmse, ndcg = m.get("autorec_test_rmse", m.get("cf_test_rmse")), m.get("ranker_ndcg", m.get("cf_ndcg"))
        t.add_row(
            r.run_id,
            str(r.run_date),
            r.dataset,
            r.status,
            r.model_version,
            "" if rmse is None else f"{rmse:.4f}",
            "" if ndcg is None else f"{ndcg:.4f}",
            str(r.published_at),
            "*" if r.run_id == live else "",
        )
    console.print(t)


@app.command()
def rollback(
    run_id: Annotated[str | None, typer.Argument(help="run to make live (default: the previous one)")] = None,
    home: Annotated[Path | None, typer.Option(help="RECSYS_HOME")] = None,
) -> None:
    """Make an earlier published run live again."""
    from recsys.store import open_store

    with open_store(_settings(home=home).resolved_store_url) as store:
        live = store.rollback(run_id)
    console.print(f"live run is now {live}")


@app.command()
def airflow(home: Annotated[Path | None, typer.Option(help="RECSYS_HOME")] = None) -> None:
    """Start Airflow standalone (UI on :8080); Ctrl-C stops everything it started."""
    from recsys.orchestration import standalone

    sys.exit(standalone(_settings(home=home).home))


if __name__ == "__main__":  # pragma: no cover
    app()

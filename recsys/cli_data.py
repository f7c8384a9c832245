"""``recsys data``: raw data sources (download, verify, cache)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from recsys.config import Settings
from recsys.data.fetch import (
    BASE_URL_ENV,
    DEFAULT_MAX_EXTRACT_BYTES,
    DEFAULT_TIMEOUT,
    RELEASES,
    FetchError,
    fetch_movielens,
)

logger = logging.getLogger(__name__)

data_app = typer.Typer(help="Raw data sources: download, verify, cache.", no_args_is_help=True, add_completion=False)


def _check_name(name: str) -> str:
    """Reject an unknown release name as a usage error (exit code 2)."""
    if name not in RELEASES:
        raise typer.BadParameter(f"unknown release {name!r}; known: {', '.join(RELEASES)}")
    return name


@data_app.command()
def fetch(
    name: Annotated[str, typer.Argument(help=f"MovieLens release: {', '.join(RELEASES)}", callback=_check_name)],
    cache_dir: Annotated[Path | None, typer.Option(help="cache folder (default <RECSYS_HOME>/raw/movielens)")] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="server folder holding NAME.zip (a mirror); default GroupLens", envvar=BASE_URL_ENV),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="download and extract again")] = False,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="progress bar (default: when stdout is a TTY)")
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds per network operation")] = DEFAULT_TIMEOUT,
    max_extract_bytes: Annotated[
        int, typer.Option(help="refuse archives that unpack to more than this")
    ] = DEFAULT_MAX_EXTRACT_BYTES,
    keep_archive: Annotated[bool, typer.Option("--keep-archive/--no-keep-archive", help="keep NAME.zip")] = True,
    home: Annotated[Path | None, typer.Option(help="RECSYS_HOME (for the default cache folder)")] = None,
) -> None:
    """Download a MovieLens release, verify it, extract it safely; print its folder.

    Idempotent: a verified release already in the cache is re-hashed, not
    downloaded. An interrupted download resumes where it stopped.
    """
    cache = cache_dir if cache_dir is not None else (Settings(home=home) if home else Settings()).movielens_cache
    try:
        path = fetch_movielens(
            name,
            cache,
            base_url=base_url,
            force=force,
            progress=progress,
            timeout=timeout,
            max_extract_bytes=max_extract_bytes,
            keep_archive=keep_archive,
        )
    except (FetchError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(str(path))

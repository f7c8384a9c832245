"""One typed settings object for the whole pipeline.

Values come from (in order) explicit arguments, ``RECSYS_*`` environment
variables, and the defaults below. Functions of the package take plain values;
only entry points (CLI, jobs, DAG tasks) build a :class:`Settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MOVIELENS_DIR = PROJECT_ROOT.parent / "shared" / "data" / "movielens" / "ml-100k"

Dataset = Literal["synthetic", "ml-100k"]


class SyntheticConfig(BaseSettings):
    """Size and structure of the generated default dataset."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_SYNTHETIC_", frozen=True)

    n_users: int = Field(3000, ge=10)
    n_items: int = Field(2000, ge=20)
    n_groups: int = Field(8, ge=1, description="planted taste groups")
    mean_ratings_per_user: float = Field(45.0, gt=0)
    min_ratings_per_user: int = Field(15, ge=1)


class CFConfig(BaseSettings):
    """Collaborative filtering hyper-parameters (GUIDE section 6)."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_CF_", frozen=True)

    n_factors: int = Field(32, ge=1)
    l2: float = Field(14.0, ge=0, description="lambda of the cost function (sum form)")
    learning_rate: float = Field(0.01, gt=0)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(2048, ge=1)


class Settings(BaseSettings):
    """Pipeline settings.

    Attributes:
        home: Root of everything the pipeline writes (lake, models, store, Airflow).
        dataset: Which source feeds the run.
        movielens_dir: Folder of MovieLens 100K (``u.data``, ``u.item``, ``u.user``).
        movielens_fold: Official fold used as the train/test split (``u1`` .. ``u5``).
        test_fraction: Share of each user's ratings held out when the source has no folds.
        seed: The one seed every random choice derives from.
        store_url: Where recommendations are published; default SQLite under ``home``.
        top_k: Recommendations per user.
        n_neighbors: Similar items kept per item.
        n_recent: Recent items per user that seed neighbour candidates.
        n_popular: Popular items added to every user's candidates.
    """

    model_config = SettingsConfigDict(env_prefix="RECSYS_", frozen=True)

    home: Path = Field(default_factory=lambda: PROJECT_ROOT / "data")
    dataset: Dataset = "synthetic"
    movielens_dir: Path = DEFAULT_MOVIELENS_DIR
    movielens_fold: str = Field("u1", pattern=r"^u[1-5]$")
    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 42
    store_url: str | None = None
    top_k: int = Field(10, ge=1)
    n_neighbors: int = Field(10, ge=1)
    n_recent: int = Field(10, ge=1)
    n_popular: int = Field(50, ge=0)
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    cf: CFConfig = Field(default_factory=CFConfig)

    @property
    def lake(self) -> Path:
        """Root of the Parquet tables of this dataset."""
        return self.home / "lake" / self.dataset

    @property
    def models_dir(self) -> Path:
        """Root of the versioned model artifacts."""
        return self.home / "models" / self.dataset

    @property
    def reports_dir(self) -> Path:
        """Root of the per-run HTML reports."""
        return self.home / "reports"

    @property
    def raw_dir(self) -> Path:
        """Cache of generated or downloaded raw sources."""
        return self.home / "raw"

    @property
    def resolved_store_url(self) -> str:
        """The store URL, defaulting to the embedded SQLite file under ``home``."""
        return self.store_url or f"sqlite:///{(self.home / 'store' / 'recsys.db').resolve()}"


def run_id_for(dataset: str, run_date: str) -> str:
    """The run id of one nightly run: one per (dataset, run date), so reruns replace.

    Args:
        dataset: Dataset name.
        run_date: ISO date ``YYYY-MM-DD``.

    Returns:
        e.g. ``synthetic_20261127``.
    """
    return f"{dataset}_{run_date.replace('-', '')}"

"""One typed settings object for the whole pipeline.

Values come from (in order) explicit arguments, ``RECSYS_*`` environment
variables, and the defaults below. Functions of the package take plain values;
only entry points (CLI, jobs, DAG tasks) build a :class:`Settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys.models.autorec import AutoRecParams
from recsys.models.blend import EASE_WEIGHT
from recsys.models.cf import CFParams
from recsys.models.ease import EASEParams
from recsys.models.implicit_cf import ImplicitCFParams
from recsys.models.two_tower import TwoTowerParams

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MOVIELENS_DIR = PROJECT_ROOT.parent / "shared" / "data" / "movielens" / "ml-100k"

SplitStrategy = Literal["auto", "fold", "random", "temporal"]


class SyntheticConfig(BaseSettings):
    """Size and structure of the generated default dataset."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_SYNTHETIC_", frozen=True)

    n_users: int = Field(3000, ge=10)
    n_items: int = Field(2000, ge=20)
    n_groups: int = Field(8, ge=1, description="planted taste groups")
    mean_ratings_per_user: float = Field(45.0, gt=0)
    min_ratings_per_user: int = Field(15, ge=1)


class CFConfig(BaseSettings):
    """Explicit collaborative filtering hyper-parameters (defaults: :class:`recsys.models.cf.CFParams`)."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_CF_", frozen=True)

    n_factors: int = Field(CFParams.n_factors, ge=1)
    l2: float = Field(CFParams.l2, ge=0, description="lambda on the vectors (sum form)")
    l2_bias: float = Field(CFParams.l2_bias, ge=0, description="lambda on the biases")
    reg_weighting: float = Field(CFParams.reg_weighting, ge=0, le=2, description="regulariser weight n^a")
    item_bias: bool = CFParams.item_bias
    learning_rate: float = Field(CFParams.learning_rate, gt=0)
    epochs: int = Field(CFParams.epochs, ge=1)
    batch_size: int = Field(CFParams.batch_size, ge=1)


class AutoRecConfig(BaseSettings):
    """The rating model: item-based AutoRec (defaults: :class:`recsys.models.autorec.AutoRecParams`)."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_AUTOREC_", frozen=True)

    hidden: int = Field(AutoRecParams.hidden, ge=1)
    l2: float = Field(AutoRecParams.l2, ge=0)
    learning_rate: float = Field(AutoRecParams.learning_rate, gt=0)
    epochs: int = Field(AutoRecParams.epochs, ge=1)
    max_block_cells: int = Field(AutoRecParams.max_block_cells, ge=1)


class TwoTowerConfig(BaseSettings):
    """The content-based two-tower model (defaults: :class:`recsys.models.two_tower.TwoTowerParams`)."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_TWO_TOWER_", frozen=True)

    layers: tuple[int, ...] = Field(TwoTowerParams.layers, min_length=1, description="units per tower layer")
    loss: Literal["softmax", "mse", "logistic"] = Field(
        "softmax", description="softmax: retrieval from positives (what cold-start ranking needs); mse: ratings"
    )
    learning_rate: float = Field(TwoTowerParams.learning_rate, gt=0)
    batch_size: int = Field(TwoTowerParams.batch_size, ge=1)
    epochs: int = Field(20, ge=1, description="most epochs; training stops early on the validation loss")
    patience: int = Field(TwoTowerParams.patience, ge=0)
    negatives: int = Field(TwoTowerParams.negatives, ge=1)
    cold_dropout: float = Field(0.3, ge=0, le=1, description="share of pairs trained as if the user were new")
    item_cold_dropout: float = Field(0.1, ge=0, le=1, description="share of items trained as if unrated")
    item_bias: bool = Field(TwoTowerParams.item_bias, description="learnt item bias in the softmax logits")
    popularity_prior: bool = Field(
        TwoTowerParams.popularity_prior,
        description="rated items' bias fixed at log(1 + count); towers learn taste on top",
    )
    demographic_dropout: float = Field(
        0.8, ge=0, le=1, description="share of demographic inputs blanked in cold-dropout rows"
    )
    calibrate_cold: bool = Field(
        TwoTowerParams.calibrate_cold, description="choose new users' temperature on the validation split (NDCG@10)"
    )
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="training ratings held out for early stopping")
    cold_validation_fraction: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="users held out of training entirely, scored as new users: the cold part of "
        "early stopping and the cold temperature (0: the validation ratings' users with their history blanked)",
    )


class RankerConfig(BaseSettings):
    """The ranking model: implicit CF blended with EASE.

    Defaults: :class:`recsys.models.implicit_cf.ImplicitCFParams` and :class:`recsys.models.ease.EASEParams`.
    """

    model_config = SettingsConfigDict(env_prefix="RECSYS_RANKER_", frozen=True)

    n_factors: int = Field(ImplicitCFParams.n_factors, ge=1)
    l2: float = Field(ImplicitCFParams.l2, ge=0)
    l2_bias: float = Field(ImplicitCFParams.l2_bias, ge=0)
    learning_rate: float = Field(ImplicitCFParams.learning_rate, gt=0)
    epochs: int = Field(ImplicitCFParams.epochs, ge=1)
    loss: Literal["softmax", "logistic"] = ImplicitCFParams.loss
    negatives: Literal["all", "uniform", "popularity"] = ImplicitCFParams.negatives
    neg_ratio: int = Field(ImplicitCFParams.neg_ratio, ge=1)
    pos_weight: float = Field(ImplicitCFParams.pos_weight, gt=0)
    ease_weight: float = Field(
        EASE_WEIGHT, ge=0, le=1, description="weight of EASE blended with the factorisation (0: none)"
    )
    session_seconds: float = Field(
        ImplicitCFParams.session_seconds, ge=0, description="sessions of this length train as pseudo-users (0: none)"
    )
    ease_l2: float = Field(EASEParams.l2, gt=0, description="EASE's lambda (relative to the mean item count)")
    ease_item_weight_power: float = Field(
        EASEParams.item_weight_power, ge=0, description="EASE's item weights n_i^-a (0: none)"
    )
    ease_session_seconds: float = Field(
        EASEParams.session_seconds, ge=0, description="sessions of this length are rows of EASE's Gram matrix (0: none)"
    )
    ease_rating_weight: float = Field(
        EASEParams.rating_weight, ge=0, description="EASE inputs 1 + c (r - mid) / half (0: 0/1 inputs)"
    )


class Settings(BaseSettings):
    """Pipeline settings.

    Attributes:
        home: Root of everything the pipeline writes (lake, models, store, Airflow).
        dataset: Name of the data: ``synthetic`` (generated), or any name for a folder of
            real data (``ml-100k``, ``ml-1m``, ``shop-events``, ...); it namespaces the lake,
            the models and the run ids.
        data_dir: Folder of the real data; its layout (MovieLens 100K / 1M-10M / CSV, or an
            event log) is detected from its files. Default for ``ml-100k``: ../shared.
        fold: Official fold of MovieLens 100K used when the split is ``fold`` (``u1`` .. ``u5``).
        split: ``fold`` (the source's official fold), ``random`` (seeded, per user),
            ``temporal`` (each user's latest ratings held out), ``auto`` (fold if any, else random).
        test_fraction: Share of each user's ratings held out by the random and temporal splits.
        max_bad_fraction: Share of quarantined input lines above which the run fails.
        like_threshold: Ratings at or above it are positive binary labels.
        positive_events: Event types that make a positive label (event logs).
        exposure_events: Event types that mean "shown"; without a positive event, a negative label.
        watch_event: Event type whose ``value`` is watch seconds.
        min_watch_seconds: Watching at least this long is a positive label.
        drift_checks: Compare the run's tables with the previous successful run's.
        drift_rows: Largest relative change of row counts and distinct users/items.
        drift_rating_mean: Largest absolute change of the mean rating.
        seed: The one seed every random choice derives from.
        store_url: Where recommendations are published; default SQLite under ``home``.
        top_k: Recommendations per user.
        n_neighbors: Similar items kept per item.
        n_recent: Recent items per user that seed neighbour candidates.
        n_popular: Popular items added to every user's candidates.
        cf: The explicit CF model's hyper-parameters.
        autorec: The AutoRec rating model's hyper-parameters.
        ranker: The implicit CF (ranking) model's hyper-parameters.
        ranking_model: Which model ranks the candidates: ``implicit`` (learns which items a
            user chooses; measured far better at ranking) or ``explicit`` (predicted rating
            of the rating model).
        rating_model: Which model predicts ratings: ``autorec`` (item-based AutoRec, the
            lowest RMSE measured) or ``mf`` (the course's factorisation, always trained:
            its item vectors give the similar items).
        two_tower: The content-based two-tower model's hyper-parameters.
        cold_start_model: ``two_tower`` trains the two-tower model every run and serves
            cold-start users with it (and publishes its similar items); ``none`` skips it.
        cold_start_max_ratings: Users with at most this many training ratings (0 included)
            are cold-start users: the two-tower model ranks their candidates.
        cold_start_popularity_weight: Weight of popularity blended with the two-tower score
            for cold-start users with a few ratings (:func:`recsys.pipeline.cold_start_model`;
            0: the two-tower model alone).
        cold_start_segment_weight: Weight of segment popularity (popularity among the users
            who share their demographics, :class:`recsys.models.baselines.DemographicPopularity`)
            blended with the two-tower score for users without ratings (0: the two-tower model
            alone; ``auto``: chosen by the two-tower training on its validation users,
            :func:`recsys.models.cold_start.choose_segment_weight`).
        use_tuned: Train with the parameters of the dataset's last search (``recsys tune``,
            ``models/<dataset>/tuned/``) where present; explicit settings still win.
    """

    model_config = SettingsConfigDict(env_prefix="RECSYS_", frozen=True)

    home: Path = Field(default_factory=lambda: PROJECT_ROOT / "data")
    dataset: str = Field("synthetic", pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    data_dir: Path | None = None
    fold: str = Field("u1", pattern=r"^u[1-5]$")
    split: SplitStrategy = "auto"
    test_fraction: float = Field(0.2, gt=0, lt=1)
    max_bad_fraction: float = Field(0.01, ge=0, le=1)
    like_threshold: float = 4.0
    positive_events: tuple[str, ...] = ("purchase", "like")
    exposure_events: tuple[str, ...] = ("impression", "view", "click", "watch")
    watch_event: str = "watch"
    min_watch_seconds: float = 30.0
    drift_checks: bool = True
    drift_rows: float = Field(0.5, gt=0, description="largest relative change of row counts / distinct ids")
    drift_rating_mean: float = Field(0.25, gt=0, description="largest absolute change of the mean rating")
    seed: int = 42
    store_url: str | None = None
    top_k: int = Field(10, ge=1)
    n_neighbors: int = Field(10, ge=1)
    n_recent: int = Field(10, ge=1)
    n_popular: int = Field(50, ge=0)
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    cf: CFConfig = Field(default_factory=CFConfig)
    autorec: AutoRecConfig = Field(default_factory=AutoRecConfig)
    ranker: RankerConfig = Field(default_factory=RankerConfig)
    ranking_model: Literal["implicit", "explicit"] = "implicit"
    rating_model: Literal["autorec", "mf"] = "autorec"
    two_tower: TwoTowerConfig = Field(default_factory=TwoTowerConfig)
    cold_start_model: Literal["two_tower", "none"] = "two_tower"
    cold_start_max_ratings: int = Field(5, ge=0)
    cold_start_popularity_weight: float = Field(0.3, ge=0, lt=1)
    cold_start_segment_weight: float | Literal["auto"] = Field("auto")

    @field_validator("cold_start_segment_weight")
    @classmethod
    def _segment_weight_in_range(cls, value: float | str) -> float | str:
        if value != "auto" and not 0.0 <= float(value) < 1.0:
            raise ValueError(f"cold_start_segment_weight must be 'auto' or in [0, 1), got {value}")
        return value

    use_tuned: bool = True

    @property
    def source_dir(self) -> Path | None:
        """The folder real data is read from (``None`` for synthetic data)."""
        if self.dataset == "synthetic":
            return None
        if self.data_dir is not None:
            return Path(self.data_dir)
        if self.dataset == "ml-100k":
            return DEFAULT_MOVIELENS_DIR
        from recsys.data.fetch import RELEASES  # where `recsys data fetch NAME` extracts a release

        folder = RELEASES[self.dataset].folder if self.dataset in RELEASES else self.dataset
        return self.movielens_cache / folder

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
    def movielens_cache(self) -> Path:
        """Where ``recsys data fetch`` extracts MovieLens releases: ``<home>/raw/movielens``."""
        return self.raw_dir / "movielens"

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

"""One typed settings object for the whole pipeline.

Values come from (in order) explicit arguments, ``RECSYS_*`` environment
variables, and the defaults below. Functions of the package take plain values;
only entry points (CLI, jobs, DAG tasks) build a :class:`Settings`.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, create_model, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


IndexKind = Literal["auto", "exact", "faiss_flat", "faiss_ivf", "faiss_hnsw"]


class RetrievalConfig(BaseSettings):
    """Nearest-neighbour indexes, candidate sources and the retrieval-size experiment.

    Attributes:
        index: ``auto`` (exact faiss flat search up to ``exact_max_items`` items, the
            approximate ``ann`` index above), or one index: ``exact`` (our reference),
            ``faiss_flat``, ``faiss_ivf``, ``faiss_hnsw``.
        exact_max_items: Largest catalogue searched exactly by ``auto``.
        ann: The approximate index ``auto`` uses above ``exact_max_items``.
        hnsw_m: HNSW graph degree.
        hnsw_ef_construction: HNSW build-time beam width.
        hnsw_ef_search: HNSW query-time beam width (recall against speed: ``bench/README.md``).
        ivf_nlist: IVF cells (0: about ``4 sqrt(n)``).
        ivf_nprobe: IVF cells visited per query.
        recall_floor: An approximate index whose recall@10 against exact search (measured
            every run on a seeded sample of queries) is below this is replaced by exact search.
        recall_queries: Queries in that sample.
        similar_quota: Most ``similar`` candidates per user (neighbours of recent items).
        genre_quota: Most ``genre`` candidates per user (over all their top genres).
        n_genres: The user's most-watched genres that seed ``genre`` candidates.
        genre_rank_by: How a genre's top items are chosen: ``popularity`` or ``mean_rating``.
        genre_min_ratings: Ratings an item needs to rank by ``mean_rating`` (shrinks noise).
        segment_quota: Most ``segment`` candidates per user (popular in their demographic segment).
        embedding_quota: Most ``embedding`` candidates per user (nearest items to the user vector).
        new_quota: Most ``new`` candidates per user (items with features but no ratings).
        new_item_reach: Users each new item is shown to: the last slot of the lists of the users
            the two-tower model scores highest for it (:mod:`recsys.ranking.exploration`; 0: off).
        user_block: Users whose candidates are built and ranked at once (bounds memory).
        engine: Where the blocks of users are served: ``local`` (one after another in the
            recommend stage's process) or ``spark`` (a Spark job, one partition per block, the
            serving state broadcast once: :mod:`recsys.stages.spark_serving`; master from
            ``RECSYS_SPARK_MASTER``, default ``local[2]``). Both give the same recommendations.
        experiment: Run the retrieval-size experiment every run.
        experiment_sizes: Candidates per user compared by the experiment.
        experiment_users: Users (a seeded sample) the experiment measures.
    """

    model_config = SettingsConfigDict(env_prefix="RECSYS_RETRIEVAL_", frozen=True)

    index: IndexKind = "auto"
    exact_max_items: int = Field(200_000, ge=1)
    ann: Literal["faiss_ivf", "faiss_hnsw"] = "faiss_hnsw"
    hnsw_m: int = Field(32, ge=4)
    hnsw_ef_construction: int = Field(80, ge=8)
    hnsw_ef_search: int = Field(64, ge=8)
    ivf_nlist: int = Field(0, ge=0)
    ivf_nprobe: int = Field(32, ge=1)
    recall_floor: float = Field(0.95, ge=0, le=1)
    recall_queries: int = Field(1000, ge=10)
    similar_quota: int = Field(100, ge=0)
    genre_quota: int = Field(30, ge=0)
    n_genres: int = Field(3, ge=1)
    genre_rank_by: Literal["popularity", "mean_rating"] = "popularity"
    genre_min_ratings: int = Field(20, ge=0)
    segment_quota: int = Field(20, ge=0)
    embedding_quota: int = Field(50, ge=0)
    new_quota: int = Field(10, ge=0)
    new_item_reach: int = Field(20, ge=0)
    user_block: int = Field(4096, ge=1)
    engine: Literal["local", "spark"] = "local"
    experiment: bool = True
    experiment_sizes: tuple[int, ...] = (50, 100, 200, 500, 1000)
    experiment_users: int = Field(300, ge=1)


class PolicyConfig(BaseSettings):
    """What may be recommended, and how varied each list must be (applied after ranking, audited at publish).

    Attributes:
        file: A JSON file with any of the fields below (its lists add to these; its numbers
            replace these defaults).
        blocked_items: Item ids (as the source spells them) never recommended.
        blocked_genres: Genres (or tags) whose items are never recommended.
        min_item_ratings: Training ratings an item needs before it may be recommended
            (0: any; items nobody rated yet then reach users through the ``new`` source).
        genre_cap: Most items of one genre in one top-K list (0: no cap).
        mmr_weight: Weight of diversity in a maximal-marginal-relevance re-rank of each list
            (0: off; 1 would ignore the model's scores).
    """

    model_config = SettingsConfigDict(env_prefix="RECSYS_POLICY_", frozen=True)

    file: Path | None = None
    blocked_items: tuple[str, ...] = ()
    blocked_genres: tuple[str, ...] = ()
    min_item_ratings: int = Field(0, ge=0)
    genre_cap: int = Field(0, ge=0)
    mmr_weight: float = Field(0.0, ge=0, lt=1)


RUN_LEVEL_FIELDS: tuple[str, ...] = ("seed", "rating_min", "rating_max")
"""Params fields the run sets itself (its seed, the data's rating scale): never settings."""


def _flat_fields(params: type, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(setting name, annotated type, default)`` of a params dataclass's fields, members flattened.

    A member that is itself a params dataclass (the ranker's ``cf``, ``ease``) contributes its
    fields under the prefix in its field's ``metadata["settings_prefix"]`` (default ``<field>_``).
    """
    hints = typing.get_type_hints(params, include_extras=True)
    out: list[tuple[str, Any, Any]] = []
    for f in dataclasses.fields(params):
        kind = hints[f.name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            out += _flat_fields(kind, prefix + f.metadata.get("settings_prefix", f"{f.name}_"))
        elif f.name not in RUN_LEVEL_FIELDS:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            out.append((prefix + f.name, kind, default))
    return out


def params_settings(params: type, section: str) -> type[BaseSettings]:
    """The settings section of a model: one field per params field, its default and bounds from ``params``.

    The params dataclass is the only source of the defaults; every field can be set with
    ``RECSYS_<SECTION>_<FIELD>`` or, in a DAG run, the param ``<section>_<field>``.

    Args:
        params: The model's params dataclass (fields annotated with :mod:`recsys.models.bounds`).
        section: The model's registry name.
    """
    fields = {name: (kind, default) for name, kind, default in _flat_fields(params)}
    name = f"{params.__name__.removesuffix('Params')}Settings"
    config = SettingsConfigDict(env_prefix=f"RECSYS_{section.upper()}_", frozen=True)
    base = type(f"_{name}", (BaseSettings,), {"model_config": config, "__module__": __name__})
    doc = f"Settings of model ``{section}`` (defaults: :class:`{params.__module__}.{params.__name__}`)."
    return create_model(name, __base__=base, __doc__=doc, __module__=__name__, **fields)  # type: ignore[call-overload]


def params_from_settings(params: type, values: dict[str, Any], prefix: str = "") -> Any:
    """An instance of ``params`` from a flat settings dict (the inverse of :func:`params_settings`'s flattening).

    Keys that are not (flattened) fields are ignored; run-level fields take ``values``' entries
    when given (e.g. ``seed``) and their defaults otherwise.
    """
    hints = typing.get_type_hints(params, include_extras=True)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(params):
        kind = hints[f.name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            sub = prefix + f.metadata.get("settings_prefix", f"{f.name}_")
            member = params_from_settings(kind, {k: v for k, v in values.items() if k.startswith(sub)}, sub)
            if "seed" in values and "seed" in {g.name for g in dataclasses.fields(kind)}:
                member = dataclasses.replace(member, seed=values["seed"])
            kwargs[f.name] = member
        elif prefix + f.name in values:
            value = values[prefix + f.name]
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return params(**kwargs)


def _model_sections() -> dict[str, type[BaseSettings]]:
    from recsys.models.registry import specs

    return {model.name: params_settings(model.params, model.name) for model in specs()}


MODEL_SETTINGS: dict[str, type[BaseSettings]] = _model_sections()
"""The settings section of every registered model, by its name (``settings.<name>``)."""


class _RunSettings(BaseSettings):
    """Pipeline settings (:data:`Settings` adds one section per registered model).

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
        retrieval: Indexes, candidate sources and the retrieval-size experiment (:class:`RetrievalConfig`).
        policy: What may be recommended and each list's diversity (:class:`PolicyConfig`).
        ranking_model: The registered model that ranks warm users' candidates: ``ranker`` (the
            implicit factorisation blended with EASE: learns which items a user chooses; measured
            far better at ranking), ``autorec`` or ``cf`` (by predicted rating). The older values
            ``implicit`` (= ``ranker``) and ``explicit`` (= the rating model) still work.
        rating_model: The registered model that predicts ratings: ``autorec`` (item-based
            AutoRec, the lowest RMSE measured) or ``cf`` (the course's factorisation, always
            trained: its item vectors give the similar items). ``mf`` (= ``cf``) still works.
        cold_start_model: ``two_tower`` trains the two-tower model every run and serves
            cold-start users with it (and publishes its similar items); ``none`` skips it.
        cold_start_max_ratings: Users with at most this many training ratings (0 included)
            are cold-start users: the two-tower model ranks their candidates.
        cold_start_popularity_weight: Weight of popularity blended with the two-tower score
            for cold-start users with a few ratings (:func:`recsys.models.cold_start.cold_start_model`;
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
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    ranking_model: str = "ranker"
    rating_model: str = "autorec"
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

    @model_validator(mode="before")
    @classmethod
    def _older_model_names(cls, values: Any) -> Any:
        """The older values of one release: ``rating_model=mf``, ``ranking_model=implicit|explicit``."""
        if not isinstance(values, dict):
            return values
        values = dict(values)
        if values.get("rating_model") == "mf":
            values["rating_model"] = "cf"
        if values.get("ranking_model") == "implicit":
            values["ranking_model"] = "ranker"
        elif values.get("ranking_model") == "explicit":
            values["ranking_model"] = values.get("rating_model", "autorec")
        return values

    @field_validator("ranking_model")
    @classmethod
    def _ranking_model_registered(cls, value: str) -> str:
        from recsys.models.registry import MODEL_MODULES

        if value not in MODEL_MODULES:
            raise ValueError(f"ranking_model must be a registered model ({', '.join(MODEL_MODULES)}), got {value!r}")
        return value

    @field_validator("rating_model")
    @classmethod
    def _rating_model_registered(cls, value: str) -> str:
        from recsys.models.registry import specs

        rating = [model.name for model in specs() if model.role == "rating"]
        if value not in rating:
            raise ValueError(f"rating_model must be a registered rating model ({', '.join(rating)}), got {value!r}")
        return value

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


Settings = create_model(  # type: ignore[call-overload]
    "Settings",
    __base__=_RunSettings,
    __doc__=_RunSettings.__doc__.replace("(:data:`Settings` adds one section per registered model)", "")
    + "\n    Besides these, one section per registered model (:data:`MODEL_SETTINGS`): ``settings.cf``,\n"
    "    ``settings.autorec``, ``settings.ranker``, ``settings.two_tower``, ...\n",
    **{name: (section, Field(default_factory=section)) for name, section in MODEL_SETTINGS.items()},
)
"""Pipeline settings: the run's (:class:`_RunSettings`) and one section per registered model."""


def run_id_for(dataset: str, run_date: str) -> str:
    """The run id of one nightly run: one per (dataset, run date), so reruns replace.

    Args:
        dataset: Dataset name.
        run_date: ISO date ``YYYY-MM-DD``.

    Returns:
        e.g. ``synthetic_20261127``.
    """
    return f"{dataset}_{run_date.replace('-', '')}"

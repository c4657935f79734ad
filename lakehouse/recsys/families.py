"""Recommender families behind one fit/score interface.

Every family is a :class:`~lakehouse.recsys.base.Recommender`: ``fit`` on a
users x tracks matrix of listen counts, then ``scores`` of users over the
catalogue, so evaluation (:mod:`lakehouse.recsys.evaluate`) and batch
scoring (:mod:`lakehouse.recsys.topk`) treat all of them alike, and a
baseline is a model like any other. ``to_arrays``/``from_arrays`` save and
load one to plain arrays (no pickle) for the registry, checked on load.
Each family also owns its search: its default configuration (the first
trial), its search space, and when it cannot run.

- ``popularity``: tracks ranked by their number of listeners.
- ``recent_popularity``: tracks ranked by their listeners of the last
  ``days`` days (ties by all-time listeners): temporal data rewards recency.
- ``item_knn`` and ``ease``: item-based models in
  :mod:`lakehouse.recsys.neighbours`.
- ``als``: implicit's alternating least squares on confidence-weighted
  listen counts: ``log`` (1 + alpha * log1p(count)), ``linear``, or the
  BM25 / tf-idf weightings that matter on listening data.
- ``lightfm``: LightFM (WARP) with identity features, plus user and/or
  track metadata (``features``: ``none``, ``user``, ``item``, ``both``)
  weighted by ``meta_weight`` relative to the identity. The only family that
  scores users and tracks it has never seen, through their metadata. Its
  metadata variants are candidates of their own (``lightfm+item``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lakehouse.errors import ConfigError, ModelError
from lakehouse.recsys import base
from lakehouse.recsys.base import (
    CONFIDENCE,
    FEATURES,
    LOSSES,
    TREND,
    Config,
    EpochCallback,
    Recommender,
    TrainData,
    _lookup,
    _span,
)
from lakehouse.recsys.model import RecModel, Tokens
from lakehouse.recsys.neighbours import EASE, ItemKNN
from lakehouse.recsys.popularity import Popularity, RecentPopularity, Trended, TrendVariant
from lakehouse.recsys.topk import default_threads


class LightFMRecommender(Recommender):
    """LightFM with identity features and, per ``features``, weighted metadata."""

    family = candidate = "lightfm"
    early_stopping = True
    FEATURES_OF = "none"

    def __init__(self, config: Config, model: RecModel | None = None):
        super().__init__(config)
        p = config.params
        if p.get("features", "none") not in FEATURES:
            raise ConfigError(f"unknown LightFM features {p.get('features')!r}; "
                              f"use one of {', '.join(FEATURES)}")
        if p.get("loss", "warp") not in LOSSES:
            raise ConfigError(f"unknown loss {p.get('loss')!r}; use one of {', '.join(LOSSES)}")
        if int(p.get("components", 64)) < 1 or int(p.get("epochs", 30)) < 1:
            raise ConfigError("components and epochs must be at least 1")
        self.model = model

    @classmethod
    def candidate_name(cls, params: Mapping[str, Any]) -> str:
        features = params.get("features", "none")
        return "lightfm" if features == "none" else f"lightfm+{features}"

    @classmethod
    def default_config(cls, settings: Any, parent: Config | None = None) -> Config:
        return Config("lightfm", {
            "seed": settings.seed, "components": settings.components, "epochs": settings.epochs,
            "learning_rate": settings.learning_rate, "loss": settings.loss,
            "item_alpha": settings.item_alpha, "user_alpha": settings.user_alpha,
            "max_sampled": settings.max_sampled, "features": "none", "meta_weight": 1.0})

    @classmethod
    def first_params(cls, base: Config) -> dict[str, Any]:
        return {k: base.params[k] for k in ("components", "learning_rate", "item_alpha",
                                            "user_alpha")}

    @classmethod
    def suggest(cls, trial: Any, base: Config) -> Config:
        return base.with_params(
            components=trial.suggest_int("components",
                                         *map(int, _span(base, "components", 16, 128)),
                                         log=True),
            learning_rate=trial.suggest_float("learning_rate",
                                              *_span(base, "learning_rate", 0.01, 0.1),
                                              log=True),
            item_alpha=trial.suggest_float("item_alpha", *_span(base, "item_alpha", 1e-8, 1e-4),
                                           log=True),
            user_alpha=trial.suggest_float("user_alpha", *_span(base, "user_alpha", 1e-8, 1e-4),
                                           log=True))

    def fitted_config(self) -> Config:
        return self.config.with_params(epochs=self.epochs_run)

    @property
    def features(self) -> str:
        return str(self.config.params.get("features", "none"))

    @property
    def can_score_new_users(self) -> bool:
        return self.features in ("user", "both")

    def _lightfm(self):
        from lightfm import LightFM

        p = self.config.params
        return LightFM(no_components=int(p.get("components", 64)), loss=p.get("loss", "warp"),
                       learning_rate=float(p.get("learning_rate", 0.05)),
                       item_alpha=float(p.get("item_alpha", 0.0)),
                       user_alpha=float(p.get("user_alpha", 0.0)),
                       max_sampled=int(p.get("max_sampled", 10)),
                       random_state=int(p.get("seed", 0)))

    def fit(self, data: TrainData, on_epoch: EpochCallback | None = None,
            threads: int | None = None) -> None:
        use_user = self.features in ("user", "both")
        use_item = self.features in ("item", "both")
        user_vocab = sorted({t for v in data.user_meta.values() for t in v}) if use_user else []
        item_vocab = sorted({t for v in data.item_meta.values() for t in v}) if use_item else []
        weight = self.config.params.get("meta_weight", 1.0)
        self.model = RecModel(self._lightfm(), data.warm_users, data.warm_items, user_vocab,
                              item_vocab, meta_weight=None if weight is None else float(weight))
        user_features = self.model.user_features(data.users, data.user_meta)
        item_features = self.model.item_features(data.items, data.item_meta)
        interactions = data.matrix.tocoo()
        interactions.data = np.ones_like(interactions.data)
        threads = threads or default_threads()
        for epoch in range(1, int(self.config.params.get("epochs", 30)) + 1):
            self.model.lightfm.fit_partial(interactions, user_features=user_features,
                                           item_features=item_features, epochs=1,
                                           num_threads=threads)
            self.epochs_run = epoch
            if on_epoch is not None and on_epoch(epoch, self):
                break

    def _fitted(self) -> RecModel:
        if self.model is None:
            raise ModelError("the LightFM model is not fitted yet")
        return self.model

    def user_vectors(self, ids: np.ndarray, meta: Mapping[int, Tokens]) -> np.ndarray:
        return self._fitted().user_vectors(ids, meta)

    def item_vectors(self, ids: np.ndarray, meta: Mapping[int, Tokens]) -> np.ndarray:
        return self._fitted().item_vectors(ids, meta)

    def known_users(self) -> np.ndarray:
        return self._fitted().user_ids

    def snapshot(self) -> dict[str, np.ndarray]:
        """The learned parameters, to restore the best epoch after early stopping."""
        m = self._fitted().lightfm
        return {a: getattr(m, a).copy() for a in
                ("user_embeddings", "user_biases", "item_embeddings", "item_biases")}

    def restore(self, snapshot: Any, epochs: int) -> None:
        for name, value in snapshot.items():
            setattr(self._fitted().lightfm, name, value)
        self.epochs_run = epochs

    # What check_arrays checks (to_arrays and from_arrays are LightFM's own): the
    # embeddings have one row per feature, each warm id then each vocabulary token,
    # and the biases one value per feature.
    ARRAYS = {"user_ids": np.int64, "item_ids": np.int64, "user_embeddings": np.float32,
              "item_embeddings": np.float32, "user_biases": np.float32,
              "item_biases": np.float32}
    SAME_WIDTH = ("user_embeddings", "item_embeddings")

    @classmethod
    def check_arrays(cls, arrays: Mapping[str, np.ndarray]) -> None:
        super().check_arrays(arrays)
        for side in ("user", "item"):
            vocab = arrays.get(f"{side}_vocab")
            if not isinstance(vocab, np.ndarray) or vocab.ndim != 1 or \
                    vocab.dtype.kind not in "U":
                raise ModelError(f"{side}_vocab is missing or not a list of tokens")
            features = len(arrays[f"{side}_ids"]) + len(vocab)
            emb, bias = arrays[f"{side}_embeddings"], arrays[f"{side}_biases"]
            if emb.ndim != 2 or emb.shape[0] != features or bias.shape != (features,):
                raise ModelError(f"{side} embeddings {emb.shape} and biases {bias.shape} do not "
                                 f"match {features} features ({side}_ids and {side}_vocab)")

    def to_arrays(self) -> dict[str, np.ndarray]:
        return self._fitted().to_arrays()

    @classmethod
    def from_arrays(cls, config: Config, arrays: Mapping[str, np.ndarray]
                    ) -> LightFMRecommender:
        cls.check_arrays(arrays)
        return cls(config, RecModel.from_arrays(arrays, config.params))


class _LightFMMetadata(LightFMRecommender):
    """A metadata variant: the identity LightFM's best configuration plus metadata.

    Only the metadata weight is searched, and the epochs are the identity
    model's early-stopped ones, so the comparison with the identity model
    differs in the metadata alone.
    """

    parent = "lightfm"
    early_stopping = False
    metadata_variant = True

    @classmethod
    def default_config(cls, settings: Any, parent: Config | None = None) -> Config:
        if parent is None:
            raise ConfigError(f"{cls.candidate} extends a fitted lightfm configuration")
        return parent.with_params(features=cls.FEATURES_OF, meta_weight=0.25)

    @classmethod
    def first_params(cls, base: Config) -> dict[str, Any]:
        return {"meta_weight": 0.25}

    @classmethod
    def suggest(cls, trial: Any, base: Config) -> Config:
        return base.with_params(features=cls.FEATURES_OF,
                                meta_weight=trial.suggest_float("meta_weight", 0.01, 2.0,
                                                                log=True))

    def fitted_config(self) -> Config:
        return self.config


class LightFMItem(_LightFMMetadata):
    """LightFM with track metadata."""

    candidate, FEATURES_OF = "lightfm+item", "item"


class LightFMUser(_LightFMMetadata):
    """LightFM with user metadata (scores new users through it)."""

    candidate, FEATURES_OF = "lightfm+user", "user"
    cold_start = True


class LightFMBoth(_LightFMMetadata):
    """LightFM with user and track metadata."""

    candidate, FEATURES_OF = "lightfm+both", "both"
    cold_start = True


class ALSRecommender(Recommender):
    """implicit's ALS (CPU), threads capped to this process's CPUs."""

    family = candidate = "als"
    ARRAYS = {"user_ids": np.int64, "item_ids": np.int64, "user_factors": np.float32,
              "item_factors": np.float32}
    ROWS_PER_ID = {"user_factors": "user_ids", "item_factors": "item_ids"}
    SAME_WIDTH = ("user_factors", "item_factors")

    @classmethod
    def default_config(cls, settings: Any, parent: Config | None = None) -> Config:
        # BM25-weighted listens with alpha 1: on the hetrec-like set p@10 0.106 against
        # 0.098 for log confidence with alpha 10 (the previous default) and 0.079 for
        # BM25 with alpha 10.
        return Config(cls.family, {"seed": settings.seed, "factors": 64, "regularization": 0.01,
                                   "alpha": 1.0, "iterations": 15, "confidence": "bm25",
                                   "bm25_k1": 100.0, "bm25_b": 0.8})

    @classmethod
    def first_params(cls, base: Config) -> dict[str, Any]:
        keys = ("factors", "regularization", "iterations", "alpha", "confidence")
        return {k: base.params[k] for k in keys}

    @classmethod
    def suggest(cls, trial: Any, base: Config) -> Config:
        config = base.with_params(
            factors=trial.suggest_int("factors", *map(int, _span(base, "factors", 16, 192)),
                                      log=True),
            regularization=trial.suggest_float("regularization",
                                               *_span(base, "regularization", 1e-3, 1.0),
                                               log=True),
            iterations=trial.suggest_int("iterations", *map(int, _span(base, "iterations", 5,
                                                                        30))),
            alpha=trial.suggest_float("alpha", *_span(base, "alpha", 1.0, 100.0), log=True),
            confidence=trial.suggest_categorical("confidence", list(CONFIDENCE)))
        if config.params["confidence"] == "bm25":
            config = config.with_params(
                bm25_k1=trial.suggest_float("bm25_k1", 1.0, 1000.0, log=True),
                bm25_b=trial.suggest_float("bm25_b", 0.0, 1.0))
        return config

    def __init__(self, config: Config):
        super().__init__(config)
        p = config.params
        if p.get("confidence", "log") not in CONFIDENCE:
            raise ConfigError(f"unknown ALS confidence {p.get('confidence')!r}; "
                              f"use one of {', '.join(CONFIDENCE)}")
        if int(p.get("factors", 64)) < 1 or int(p.get("iterations", 15)) < 1:
            raise ConfigError("ALS factors and iterations must be at least 1")
        self.user_ids = np.empty(0, np.int64)
        self.item_ids = np.empty(0, np.int64)
        self.user_factors = np.empty((0, 0), np.float32)
        self.item_factors = np.empty((0, 0), np.float32)

    def fit(self, data: TrainData, on_epoch: EpochCallback | None = None,
            threads: int | None = None) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        p = self.config.params
        counts = confidence(data.matrix, p)
        # implicit's own threads do the work; BLAS threads on top would oversubscribe the
        # cores (implicit warns about exactly this).
        with threadpool_limits(limits=1, user_api="blas"):
            als = AlternatingLeastSquares(
                factors=int(p.get("factors", 64)),
                regularization=float(p.get("regularization", 0.05)),
                alpha=float(p.get("alpha", 10.0)), iterations=int(p.get("iterations", 15)),
                random_state=int(p.get("seed", 0)),
                num_threads=threads or default_threads())
            als.fit(counts, show_progress=False)
        self.epochs_run = int(p.get("iterations", 15))
        warm = np.diff(counts.indptr) > 0
        warm_items = np.diff(counts.tocsc().indptr) > 0
        self.user_ids = np.asarray(data.users[warm], np.int64)
        self.item_ids = np.asarray(data.items[warm_items], np.int64)
        self.user_factors = np.ascontiguousarray(als.user_factors[warm], np.float32)
        self.item_factors = np.ascontiguousarray(als.item_factors[warm_items], np.float32)

    def _vectors(self, ids: np.ndarray, known: np.ndarray, factors: np.ndarray) -> np.ndarray:
        pos, ok = _lookup(np.asarray(ids, np.int64), known)
        out = np.zeros((len(ids), factors.shape[1] if factors.ndim == 2 else 0), np.float32)
        if len(known):
            out[ok] = factors[pos[ok]]
        return out

    def user_vectors(self, ids: np.ndarray, meta: Mapping[int, Tokens]) -> np.ndarray:
        return self._vectors(ids, self.user_ids, self.user_factors)

    def item_vectors(self, ids: np.ndarray, meta: Mapping[int, Tokens]) -> np.ndarray:
        return self._vectors(ids, self.item_ids, self.item_factors)

    def known_users(self) -> np.ndarray:
        return self.user_ids


def confidence(matrix, params: Mapping[str, Any]):
    """Listen counts weighted as ``params["confidence"]`` says (float32 CSR, users x items).

    ``log``: log1p(count); ``linear``: count; ``bm25`` and ``tfidf``: implicit's
    weightings, which damp tracks everyone plays and users who play everything
    (``bm25_k1``, ``bm25_b``).
    """
    counts = matrix.astype(np.float32).tocsr()
    how = params.get("confidence", "log")
    if how == "log":
        counts.data = np.log1p(counts.data)
    elif how in ("bm25", "tfidf"):
        from implicit.nearest_neighbours import bm25_weight, tfidf_weight

        weighted = bm25_weight(counts, K1=float(params.get("bm25_k1", 100.0)),
                               B=float(params.get("bm25_b", 0.8))) if how == "bm25" \
            else tfidf_weight(counts)
        counts = weighted.astype(np.float32).tocsr()
    return counts



class ItemKNNTrend(TrendVariant, ItemKNN):
    """Item-kNN's best configuration blended with recent popularity."""

    candidate, parent = "item_knn+trend", "item_knn"


class ALSTrend(TrendVariant, ALSRecommender):
    """ALS's best configuration blended with recent popularity."""

    candidate, parent = "als+trend", "als"


class EASETrend(TrendVariant, EASE):
    """EASE's best configuration blended with recent popularity."""

    candidate, parent = "ease+trend", "ease"


# Every candidate of the search, simplest and cheapest first: on a tie of the primary
# metric the earlier one wins, and the first round of the search runs them in this order
# (EASE's cubic fit after ALS). The first is the baseline every other must beat.
CANDIDATES: tuple[type[Recommender], ...] = (
    Popularity, RecentPopularity, ItemKNN, ALSRecommender, EASE, ItemKNNTrend, ALSTrend,
    EASETrend, LightFMRecommender, LightFMItem, LightFMUser, LightFMBoth)
# The class that fits and loads each family's configurations.
FAMILIES: dict[str, type[Recommender]] = {c.family: c for c in CANDIDATES if not c.parent}
# Config (in recsys/base.py) names and ranks candidates through these.
base.CANDIDATES[:] = CANDIDATES
base.FAMILIES.update(FAMILIES)


def make(config: Config) -> Recommender:
    """An unfitted model of ``config``'s family.

    Raises:
        ConfigError: Unknown family or bad hyperparameter.
    """
    if config.family not in FAMILIES:
        raise ConfigError(f"unknown model family {config.family!r}; "
                          f"use one of {', '.join(FAMILIES)}")
    if config.params.get(TREND):
        return Trended(config, FAMILIES[config.family](config.without_trend()))
    return FAMILIES[config.family](config)


def load(config: Config, arrays: Mapping[str, np.ndarray]) -> Recommender:
    """The model of ``config`` saved by its ``to_arrays`` (checked as it loads).

    Raises:
        ModelError: The arrays do not make a model of ``config``.
    """
    cls = FAMILIES[config.family]
    if config.params.get(TREND):
        return Trended.load(config, cls, arrays)
    return cls.from_arrays(config, arrays)


def fit(config: Config, data: TrainData, on_epoch: EpochCallback | None = None,
        threads: int | None = None) -> Recommender:
    """A model of ``config`` fitted on ``data`` with ``threads`` (None: every CPU)."""
    model = make(config)
    model.fit(data, on_epoch, threads)
    return model


@dataclass
class Routed:
    """What the registry serves: a warm model, and the model for users it does not know.

    ``cold`` is None when the warm model also serves cold users (e.g. LightFM
    with user metadata that won on the holdout's cold-start users too).
    """

    warm: Recommender
    cold: Recommender | None = None

    @property
    def cold_model(self) -> Recommender:
        return self.cold if self.cold is not None else self.warm

    def routes(self, users: np.ndarray, history=None, items: np.ndarray | None = None
               ) -> tuple[np.ndarray, list[str]]:
        """Per user a route index (0 warm, 1 cold), and the route names.

        Args:
            users: User ids.
            history: Their listens (users x ``items``): item-based models know
                every user with a listen of a track they know.
            items: The catalogue of ``history``'s columns.
        """
        names = [f"warm:{self.warm.config.name}", f"cold:{self.cold_model.config.name}"]
        return np.where(self.warm.knows(users, history, items), 0, 1), names

    def refreshed(self, data: TrainData) -> tuple[Routed, list[str]]:
        """The bundle with its statistics of the listens recomputed on ``data`` (the scoring day's).

        Popularity, recent popularity and the trend of a ``+trend`` blend are
        counts, not learned parameters: a ranking frozen at training goes
        stale between retrains (recent popularity most: its window moves every
        day), so scoring recomputes them with the same configuration from
        today's listens (:meth:`Recommender.refreshed`).

        Returns:
            The bundle, and the routes refreshed (``warm:recent_popularity``, ...).
        """
        parts, names = [], []
        for route, part in (("warm", self.warm), ("cold", self.cold)):
            fresh = part.refreshed(data) if part is not None else None
            if fresh is not None:
                part = fresh
                names.append(f"{route}:{part.config.name}")
            parts.append(part)
        return Routed(*parts), names

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"warm__{k}": v for k, v in self.warm.to_arrays().items()}
        if self.cold is not None:
            arrays |= {f"cold__{k}": v for k, v in self.cold.to_arrays().items()}
        return arrays

    def params(self) -> dict[str, Any]:
        """The registry's ``params``: both configs, plus the warm one's flat keys."""
        out: dict[str, Any] = {"family": self.warm.config.family,
                               "candidate": self.warm.config.name,
                               "config": self.warm.config.to_json(),
                               "cold_config": None if self.cold is None
                               else self.cold.config.to_json()}
        # Flat keys keep 'lakehouse models list' (epochs, components) readable.
        return {**self.warm.config.params, **out}

    @classmethod
    def from_arrays(cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
                    ) -> Routed:
        """The bundle saved by :meth:`to_arrays` with :meth:`params` (or a legacy LightFM)."""
        warm_config, cold_config = configs_of(params)
        if "config" not in params:  # a model saved before families existed
            return cls(LightFMRecommender.from_arrays(warm_config, arrays))

        def part(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

        warm = load(warm_config, part("warm__"))
        cold = None if cold_config is None else load(cold_config, part("cold__"))
        return cls(warm, cold)


def configs_of(params: Mapping[str, Any]) -> tuple[Config, Config | None]:
    """The warm and cold configs recorded in a registry entry's ``params``.

    A legacy entry (LightFM with metadata tokens weighted like the identity)
    maps to ``lightfm`` with ``features="both"`` and ``meta_weight=None``.
    """
    if "config" in params:
        cold = params.get("cold_config")
        return Config.from_json(params["config"]), (Config.from_json(cold) if cold else None)
    keys = ("components", "epochs", "learning_rate", "loss", "item_alpha", "user_alpha",
            "max_sampled", "seed")
    legacy = {k: params[k] for k in keys if k in params}
    return Config("lightfm", {**legacy, "features": "both", "meta_weight": None}), None

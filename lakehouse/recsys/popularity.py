"""The statistics families: what is played most, all-time or lately.

- ``popularity``: tracks ranked by their number of listeners, the same for
  everyone; the baseline every other candidate must beat.
- ``recent_popularity``: tracks ranked by their listeners of the last
  ``days`` days (ties by all-time listeners): temporal data rewards recency.

They are counts, not learned parameters, so scoring recomputes them from the
scoring day's listens (:meth:`Popularity.refreshed`).

A learned model can also be blended with recent popularity: :class:`Trended`
(the ``+trend`` candidates, e.g. ``ease+trend``). On data whose tastes move
(new releases, seasons) what is played now carries information a model of
the whole history averages away, while recent popularity alone ignores the
user; the blend's weight and window are searched, so the holdout decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lakehouse.errors import ConfigError
from lakehouse.recsys.base import (
    TREND,
    TREND_DAYS,
    Config,
    EpochCallback,
    Recommender,
    TrainData,
    _lookup,
    _span,
)
from lakehouse.recsys.model import Tokens
from lakehouse.recsys.topk import Scores

# The blend's first trial and search ranges (the weight of the trend, its window).
TREND_FIRST = {TREND: 0.3, TREND_DAYS: 14.0}
TREND_RANGE = (0.05, 0.9)
TREND_DAYS_RANGE = (1.0, 120.0)
# Columns sampled for the median of a user's scores when blending (see TrendScores).
MEDIAN_SAMPLE = 256


class Popularity(Recommender):
    """Tracks ranked by their number of distinct listeners; the same for everyone."""

    family = candidate = "popularity"
    searchable = False
    ARRAYS = {"item_ids": np.int64, "listeners": np.float32, "user_ids": np.int64}
    ROWS_PER_ID = {"listeners": "item_ids"}

    def __init__(self, config: Config):
        super().__init__(config)
        self.item_ids = np.empty(0, np.int64)
        self.listeners = np.empty(0, np.float32)
        self.user_ids = np.empty(0, np.int64)

    @classmethod
    def default_config(cls, settings: Any, parent: Config | None = None) -> Config:
        return Config(cls.family, {})

    def fit(self, data: TrainData, on_epoch: EpochCallback | None = None,
            threads: int | None = None) -> None:
        self.item_ids = np.asarray(data.items, np.int64)
        self.listeners = np.asarray((data.matrix > 0).sum(axis=0), np.float32).ravel()
        self.user_ids = np.asarray(data.warm_users, np.int64)

    @property
    def ranks_new_users(self) -> bool:
        return True

    def refreshed(self, data: TrainData) -> Recommender:
        """The same configuration counted on ``data`` (the scoring day's listens)."""
        model = type(self)(self.config)
        model.fit(data)
        return model

    def user_vectors(self, ids: np.ndarray, meta: Mapping[int, Tokens]) -> np.ndarray:
        return np.ones((len(ids), 1), np.float32)

    def item_vectors(self, ids: np.ndarray, meta: Mapping[int, Tokens]) -> np.ndarray:
        pos, ok = _lookup(np.asarray(ids, np.int64), self.item_ids)
        return np.where(ok, self.listeners[pos] if len(self.listeners) else 0, 0) \
            .astype(np.float32)[:, None]

    def known_users(self) -> np.ndarray:
        return self.user_ids


class RecentPopularity(Popularity):
    """Tracks ranked by their listeners of the last ``days`` days before the newest listen.

    Ties (e.g. tracks nobody played lately) go by all-time listeners, so the
    ranking is never arbitrary. Skipped when the listens carry no time spread.
    """

    family = candidate = "recent_popularity"
    searchable = True
    max_trials = 20

    @classmethod
    def default_config(cls, settings: Any, parent: Config | None = None) -> Config:
        return Config(cls.family, {"days": 14.0})

    @classmethod
    def first_params(cls, base: Config) -> dict[str, Any]:
        return {"days": base.params["days"]}

    @classmethod
    def suggest(cls, trial: Any, base: Config) -> Config:
        return base.with_params(days=trial.suggest_float("days", *_span(base, "days", 1.0,
                                                                         365.0), log=True))

    @classmethod
    def skip_reason(cls, data: TrainData) -> str | None:
        times = None if data.last_day is None else data.last_day.data
        if times is None or not len(times) or times.max() - times.min() < 1.0:
            return "the listens span less than a day: recent popularity is popularity"
        return None

    def fit(self, data: TrainData, on_epoch: EpochCallback | None = None,
            threads: int | None = None) -> None:
        days = float(self.config.params.get("days", 14.0))
        if days <= 0:
            raise ConfigError(f"recent popularity needs days > 0, got {days}")
        super().fit(data)
        if data.last_day is None or not data.last_day.nnz:
            return
        last = data.last_day.tocsr()
        recent = last.copy()
        recent.data = (last.data >= last.data.max() - days).astype(np.float32)
        counts = np.asarray(recent.sum(axis=0), np.float64).ravel()
        # All-time listeners, scaled below 1, only break the ties of recent listeners.
        everyone = self.listeners.astype(np.float64)
        self.listeners = (counts + everyone / (everyone.max(initial=0) + 1)).astype(np.float32)


class TrendScores(Scores):
    """A model's scores blended with the trend, both scaled to 0..1.

    Per user, the model's scores are scaled so that the user's median track is 0
    and the best 1, and clipped at 0: the scale differs by family and by user,
    and only what the model prefers to a typical track is evidence (tracks
    it does not know, released after it was trained, sit at its floor: no
    evidence either, not a penalty). The median is taken over a strided
    sample of :data:`MEDIAN_SAMPLE` columns, which costs little next to the
    product. The trend (recent listeners over the catalogue) is scaled by its
    maximum. The blend is ``(1 - weight) x model + weight x trend``.
    """

    def __init__(self, base: Scores, trend: np.ndarray, weight: float):
        self.base, self.weight = base, float(weight)
        self.n_users, self.n_items = base.n_users, base.n_items
        top = float(trend.max(initial=0.0))
        self.trend = (np.asarray(trend, np.float32) * (self.weight / top if top > 0 else 0.0))
        self.stride = max(1, self.n_items // MEDIAN_SAMPLE)

    def block(self, rows: slice | np.ndarray) -> np.ndarray:
        part = np.array(self.base.block(rows)[:, :self.n_items], np.float32)
        middle = np.median(part[:, ::self.stride], axis=1, keepdims=True)
        spread = part.max(axis=1, keepdims=True, initial=-np.inf) - middle
        part -= middle
        part *= (1.0 - self.weight) / np.where(spread > 0, spread, 1.0)
        np.maximum(part, 0.0, out=part)
        part += self.trend
        return part


class Trended(Recommender):
    """A fitted model of any family whose scores are blended with recent popularity.

    ``trend`` (in [0, 1)) weighs the tracks' listeners of the last
    ``trend_days`` days before the newest listen (ties by all-time listeners,
    as :class:`RecentPopularity`); the model, whose configuration is the same
    without those two keys, weighs the rest. The trend is a count: scoring
    recomputes it from the scoring day's listens (:meth:`refreshed`), the
    model stays as trained.
    """

    def __init__(self, config: Config, base: Recommender):
        super().__init__(config)
        try:
            weight = float(config.params.get(TREND, 0.0))
            days = float(config.params.get(TREND_DAYS, TREND_FIRST[TREND_DAYS]))
        except (TypeError, ValueError):
            raise ConfigError(f"a trend blend needs numbers for {TREND} and {TREND_DAYS}, got "
                              f"{config.params.get(TREND)!r} and "
                              f"{config.params.get(TREND_DAYS)!r}") from None
        if not 0.0 < weight < 1.0:
            raise ConfigError(f"a trend blend needs 0 < {TREND} < 1, got {weight}")
        if days <= 0:
            raise ConfigError(f"a trend blend needs {TREND_DAYS} > 0, got {days}")
        self.base = base
        self.family = base.family
        self.trend = RecentPopularity(Config(RecentPopularity.family, {"days": days}))

    @classmethod
    def around(cls, config: Config, base: Recommender, data: TrainData) -> Trended:
        """The blend of an already fitted ``base`` with the trend counted on ``data``."""
        model = cls(config, base)
        model.trend.fit(data)
        model.epochs_run = base.epochs_run
        return model

    def fit(self, data: TrainData, on_epoch: EpochCallback | None = None,
            threads: int | None = None) -> None:
        self.base.fit(data, on_epoch, threads)
        self.trend.fit(data)
        self.epochs_run = self.base.epochs_run

    def fitted_config(self) -> Config:
        fitted = self.base.fitted_config()
        return fitted.with_params(**{k: self.config.params[k] for k in (TREND, TREND_DAYS)
                                     if k in self.config.params})

    def snapshot(self):
        return self.base.snapshot()

    def restore(self, snapshot, epochs: int) -> None:
        self.base.restore(snapshot, epochs)
        self.epochs_run = epochs

    def refreshed(self, data: TrainData) -> Trended:
        """The same model, its trend counted on ``data`` (the scoring day's listens)."""
        return self.around(self.config, self.base, data)

    def scores(self, user_ids: np.ndarray, history, item_ids: np.ndarray,
               user_meta: Mapping[int, Tokens], item_meta: Mapping[int, Tokens]) -> Scores:
        base = self.base.scores(user_ids, history, item_ids, user_meta, item_meta)
        trend = self.trend.item_vectors(item_ids, item_meta)[:, 0]
        return TrendScores(base, trend, float(self.config.params[TREND]))

    def known_users(self) -> np.ndarray:
        return self.base.known_users()

    def knows(self, ids: np.ndarray, history=None, items: np.ndarray | None = None
              ) -> np.ndarray:
        return self.base.knows(ids, history, items)

    @property
    def can_score_new_users(self) -> bool:
        return self.base.can_score_new_users

    # The trend's arrays are saved beside the model's, under this prefix.
    PREFIX = "trend__"

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {**self.base.to_arrays(),
                **{self.PREFIX + k: v for k, v in self.trend.to_arrays().items()}}

    @classmethod
    def load(cls, config: Config, base_cls: type[Recommender],
             arrays: Mapping[str, np.ndarray]) -> Trended:
        """The blend saved by :meth:`to_arrays` (each part checked as it loads).

        Raises:
            ModelError: The model's or the trend's arrays are unusable.
        """
        own = {k: v for k, v in arrays.items() if not k.startswith(cls.PREFIX)}
        model = cls(config, base_cls.from_arrays(config.without_trend(), own))
        model.trend = RecentPopularity.from_arrays(model.trend.config, {
            k[len(cls.PREFIX):]: v for k, v in arrays.items() if k.startswith(cls.PREFIX)})
        return model


class TrendVariant:
    """Search mixin: the parent's best configuration blended with the trend (``+trend``).

    Only the blend is searched (weight and window): the model is the parent's
    best, reused as fitted (:meth:`from_parent`), so a trial costs a scoring,
    not a fit. When the listens carry no time (one timestamp for all), the
    window holds every listen and the trend is all-time popularity: a blend
    with it still damps a model's over-personalised tail on listening data.
    A class ``EASETrend(TrendVariant, EASE)`` with its ``candidate`` and
    ``parent`` is the whole variant.
    """

    max_trials = 20
    early_stopping = False

    @classmethod
    def default_config(cls, settings: Any, parent: Config | None = None) -> Config:
        if parent is None:
            raise ConfigError(f"{cls.candidate} extends a fitted {cls.parent} configuration")
        return parent.with_params(**TREND_FIRST)

    @classmethod
    def first_params(cls, base: Config) -> dict[str, Any]:
        return dict(TREND_FIRST)

    @classmethod
    def suggest(cls, trial: Any, base: Config) -> Config:
        return base.with_params(**{
            TREND: trial.suggest_float(TREND, *TREND_RANGE),
            TREND_DAYS: trial.suggest_float(TREND_DAYS, *TREND_DAYS_RANGE, log=True)})

    @classmethod
    def skip_reason(cls, data: TrainData) -> str | None:
        """None: whatever could stop the parent (memory, time) already did."""
        return None

    @classmethod
    def estimated_seconds(cls, data: TrainData) -> float | None:
        return None

    @classmethod
    def from_parent(cls, config: Config, parent: Recommender | None,
                    data: TrainData) -> Recommender | None:
        if parent is None or not parent.fitted_config().same_as(config.without_trend()):
            return None
        return Trended.around(config, parent, data)

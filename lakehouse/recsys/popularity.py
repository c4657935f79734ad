"""The statistics families: what is played most, all-time or lately.

- ``popularity``: tracks ranked by their number of listeners, the same for
  everyone; the baseline every other candidate must beat.
- ``recent_popularity``: tracks ranked by their listeners of the last
  ``days`` days (ties by all-time listeners): temporal data rewards recency.

They are counts, not learned parameters, so scoring recomputes them from the
scoring day's listens (:meth:`Recommender.refit_when_scoring`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lakehouse.errors import ConfigError
from lakehouse.recsys.base import Config, EpochCallback, Recommender, TrainData, _lookup, _span
from lakehouse.recsys.model import Tokens


class Popularity(Recommender):
    """Tracks ranked by their number of distinct listeners; the same for everyone."""

    family = candidate = "popularity"
    searchable = False
    refit_when_scoring = True
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

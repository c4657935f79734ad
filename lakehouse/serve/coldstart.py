"""Recommendations for users the served partition does not know (cold start).

Two routes, tried in this order:

- **champion**: the registered champion model scores the whole catalogue for a
  user described only by the features the request passes (``?favorite_genre=Rock``),
  when the model uses such features;
- **popularity**: the tracks with the most distinct listeners in
  ``consumption.interactions``. Always available once the zones are built.

The dependency on the recommender is kept to one function,
:func:`load_champion`, which uses only the registry, ``load_model`` and the
model's public ``user_vectors``/``item_vectors``. A champion that cannot be
loaded that way (a damaged artifact, a model kind without user features)
leaves popularity serving, and says why in the log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.lake import Lake

log = logging.getLogger(__name__)

# The most tracks a cold-start answer can hold (and the batch k cannot exceed it either).
MAX_K = 100
# User features a request may pass, as in consumption.user_features, with allowed values.
FEATURES: dict[str, tuple[str, ...]] = {"favorite_genre": names.GENRES, "gender": names.GENDERS}
CHAMPION, POPULARITY = "champion", "popularity"
_CACHE_SIZE = 1024


@dataclass(frozen=True)
class Ranked:
    """A ranked list of tracks, best first."""

    track_ids: np.ndarray
    scores: np.ndarray

    def items(self, k: int) -> list[dict]:
        return [{"rank": r, "track_id": t, "score": s} for r, (t, s) in enumerate(
            zip(self.track_ids[:k].tolist(), self.scores[:k].tolist(), strict=True), start=1)]


def _top(track_ids: np.ndarray, scores: np.ndarray, k: int) -> Ranked:
    """The ``k`` best of ``scores``, ties broken by the smaller track id."""
    k = min(k, len(scores))
    if k == 0:
        return Ranked(track_ids[:0], scores[:0].astype(np.float32))
    cut = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    order = cut[np.lexsort((track_ids[cut], -scores[cut]))]
    return Ranked(track_ids[order].copy(), scores[order].astype(np.float32))


def load_popularity(lake: Lake, version: int | None = None) -> Ranked | None:
    """The :data:`MAX_K` tracks with the most distinct listeners, or None without listens.

    Scores are listener counts. ``consumption.interactions`` has one row per
    user and track, so counting rows per track counts listeners.
    """
    if not lake.exists(names.CONS_INTERACTIONS):
        return None
    column = (lake.delta(names.CONS_INTERACTIONS, version).to_pyarrow_dataset()
              .to_table(columns=[names.TRACK_ID]).column(names.TRACK_ID))
    if len(column) == 0:
        return None
    counts = pc.value_counts(column)
    ids = np.asarray(counts.field("values").to_numpy(zero_copy_only=False), np.int64)
    listeners = np.asarray(counts.field("counts").to_numpy(), np.float64)
    return _top(ids, listeners, MAX_K)


class ChampionScorer:
    """The champion's cold-start ranking for users known only by their features.

    The catalogue's item vectors are computed once; each distinct feature
    combination is scored once and cached (there are a few hundred at most).

    Args:
        version: The champion's model version.
        model: The loaded model (``user_vocab``, ``user_vectors``, ``item_vectors``).
        catalogue: Sorted track ids to rank.
        item_meta: Track id -> metadata tokens.
    """

    def __init__(self, version: str, model, catalogue: np.ndarray,
                 item_meta: Mapping[int, list[str]]):
        self.version = version
        self._model = model
        self._vocab = set(model.user_vocab)
        self.features = tuple(f for f in FEATURES
                              if any(t.startswith(f"{f}=") for t in self._vocab))
        self._catalogue = catalogue
        self._items = np.ascontiguousarray(model.item_vectors(catalogue, item_meta), np.float32)
        self._cache: dict[tuple[str, ...], Ranked] = {}
        self._lock = threading.Lock()

    def rank(self, features: Mapping[str, str | None]) -> Ranked | None:
        """The top :data:`MAX_K` tracks for these features, or None if the model knows none."""
        tokens = tuple(sorted(f"{name}={value}" for name, value in features.items()
                              if value is not None and f"{name}={value}" in self._vocab))
        if not tokens:
            return None
        with self._lock:
            hit = self._cache.get(tokens)
        if hit is not None:
            return hit
        user = self._model.user_vectors(np.array([-1], np.int64), {-1: list(tokens)})[0]
        ranked = _top(self._catalogue, self._items @ user, MAX_K)
        with self._lock:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[tokens] = ranked
        return ranked


def load_champion(settings: Settings, lake: Lake, version: str) -> ChampionScorer | None:
    """The champion ``version`` as a :class:`ChampionScorer`, or None if it cannot be one.

    Never raises: serving falls back to popularity, and the reason is logged.
    """
    try:
        from lakehouse.recsys.data import item_tokens
        from lakehouse.recsys.registry import Registry
        from lakehouse.recsys.train import load_model

        model = load_model(Registry(settings.models_dir), version)
        features = (lake.delta(names.CONS_TRACK_FEATURES).to_pyarrow_dataset().to_table()
                    if lake.exists(names.CONS_TRACK_FEATURES) else None)
        item_meta = item_tokens(features) if features is not None else {}
        ids = [np.asarray(features.column(names.TRACK_ID).to_numpy(), np.int64)] \
            if features is not None else []
        catalogue = np.unique(np.concatenate(ids + [np.asarray(model.item_ids, np.int64)]))
        scorer = ChampionScorer(version, model, catalogue, item_meta)
    except Exception as exc:  # noqa: BLE001 - any failure means: popularity serves
        log.warning("champion %s cannot score cold-start users (%s: %s); "
                    "unknown users get popular tracks", version, type(exc).__name__, exc)
        return None
    if not scorer.features:
        log.info("champion %s uses no user feature; unknown users get popular tracks", version)
    return scorer

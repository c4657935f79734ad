"""Recommendations for users the served partition does not know (cold start).

Two routes, tried in this order:

- **champion**: the registered champion model's ranking for a user described
  only by the features the request passes (``?favorite_genre=Rock``), when the
  model uses such features. The champion is not loaded in the serving
  process: :mod:`lakehouse.serve.worker` ranks the catalogue once for every
  combination of feature values (a few hundred) and the server keeps those
  lists (:class:`ColdStartLists`), so a request is a dictionary lookup;
- **popularity**: the tracks with the most distinct listeners in
  ``consumption.interactions``. Always available once the zones are built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.compute as pc

from lakehouse import names
from lakehouse.lake import Lake

# The most tracks a cold-start answer can hold (and the batch k cannot exceed it either).
MAX_K = 100
# User features a request may pass, as in consumption.user_features, with allowed values.
FEATURES: dict[str, tuple[str, ...]] = {"favorite_genre": names.GENRES, "gender": names.GENDERS}
CHAMPION, POPULARITY = names.CHAMPION, "popularity"
_BATCH_ROWS = 1 << 20


@dataclass(frozen=True)
class Ranked:
    """A ranked list of tracks, best first."""

    track_ids: np.ndarray
    scores: np.ndarray

    def items(self, k: int) -> list[dict]:
        return [{"rank": r, "track_id": t, "score": s} for r, (t, s) in enumerate(
            zip(self.track_ids[:k].tolist(), self.scores[:k].tolist(), strict=True), start=1)]


def top_ranked(track_ids: np.ndarray, scores: np.ndarray, k: int) -> Ranked:
    """The ``k`` best of ``scores``, ties broken by the smaller track id."""
    k = min(k, len(scores))
    if k == 0:
        return Ranked(track_ids[:0], scores[:0].astype(np.float32))
    cut = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    order = cut[np.lexsort((track_ids[cut], -scores[cut]))]
    return Ranked(track_ids[order].copy(), scores[order].astype(np.float32))


def load_popularity(lake: Lake, version: int | None = None) -> Ranked | None:
    """The :data:`MAX_K` tracks with the most distinct listeners, or None without listens.

    Scores are listener counts: ``consumption.interactions`` has one row per
    user and track, so rows per track are listeners. Counted a batch at a
    time, so memory stays bounded by the number of distinct tracks.
    """
    if not lake.exists(names.CONS_INTERACTIONS):
        return None
    dataset = lake.delta(names.CONS_INTERACTIONS, version).to_pyarrow_dataset()
    ids, counts = np.empty(0, np.int64), np.empty(0, np.int64)
    for batch in dataset.to_batches(columns=[names.TRACK_ID], batch_size=_BATCH_ROWS):
        if not batch.num_rows:
            continue
        found = pc.value_counts(batch.column(0))
        ids = np.concatenate([ids, found.field("values").to_numpy(zero_copy_only=False)])
        counts = np.concatenate([counts, found.field("counts").to_numpy()])
        ids, where = np.unique(ids, return_inverse=True)
        counts = np.bincount(where, weights=counts).astype(np.int64)
    if not len(ids):
        return None
    return top_ranked(ids.astype(np.int64), counts.astype(np.float64), MAX_K)


class ColdStartLists:
    """The champion's ranking per combination of user-feature values.

    Args:
        answer: What ``python -m lakehouse.serve.worker cold-start`` printed.
    """

    def __init__(self, answer: Mapping[str, Any]):
        self.version = str(answer["version"])
        self.features = tuple(answer["features"])
        self._lists = {
            _key(entry["features"]): Ranked(np.asarray(entry["track_ids"], np.int64),
                                            np.asarray(entry["scores"], np.float32))
            for entry in answer["lists"]}

    def __len__(self) -> int:
        return len(self._lists)

    def rank(self, features: Mapping[str, str | None]) -> Ranked | None:
        """The list for these features (those the model does not use are ignored), or None."""
        return self._lists.get(_key({f: features.get(f) for f in self.features}))


def _key(features: Mapping[str, str | None]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((f, v) for f, v in features.items() if v is not None))

"""A LightFM model together with everything needed to score any user or track.

LightFM learns one embedding per *feature*. Here a user's features are their
identity (only for users with training listens) plus their metadata
(``favorite_genre=...``, ``gender=...``); a track's are its identity (only for
tracks with training listens) plus ``genre=...``, ``artist=...`` and
``duration=...``. A user or track unseen in training is therefore still
represented, through its metadata: that is the cold start LightFM is for.

The model saves to plain arrays (no pickle): the four LightFM parameter
arrays, the warm id lists and the metadata vocabularies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# Metadata tokens of one entity, e.g. ["favorite_genre=Rock", "gender=Female"].
Tokens = Sequence[str]


def feature_matrix(ids: np.ndarray, warm_ids: np.ndarray, vocab: Mapping[str, int],
                   meta: Mapping[int, Tokens], meta_weight: float | None = None
                   ) -> sp.csr_matrix:
    """The normalised feature matrix of ``ids`` (one row each).

    Columns are ``[identity of each warm id..., metadata vocabulary...]``.
    Each row sums to 1 (LightFM's advice for mixing identity and metadata),
    unless the entity has no feature at all, when it is all zero.

    Args:
        ids: Entity ids, one per row.
        warm_ids: Sorted ids that have an identity column.
        vocab: Metadata token -> index (after the identity columns).
        meta: Entity id -> its metadata tokens; missing ids have none.
        meta_weight: The metadata's total weight relative to the identity's
            (1), shared by the row's tokens, before the row is normalised.
            None weighs every token like the identity (the original
            behaviour, kept for models saved before the weight existed):
            on real catalogues that lets uninformative shared tokens swamp
            the identity, which is why the weight is searched.
    """
    n_warm = len(warm_ids)
    rows: list[int] = []
    cols: list[int] = []
    pos = np.searchsorted(warm_ids, ids)
    pos_ok = pos < n_warm
    is_warm = np.zeros(len(ids), dtype=bool)
    is_warm[pos_ok] = warm_ids[pos[pos_ok]] == ids[pos_ok]
    for r in np.flatnonzero(is_warm):
        rows.append(int(r))
        cols.append(int(pos[r]))
    for r, entity in enumerate(ids.tolist()):
        for token in meta.get(entity, ()):
            j = vocab.get(token)
            if j is not None:
                rows.append(r)
                cols.append(n_warm + j)
    data = np.ones(len(rows), dtype=np.float32)
    mat = sp.csr_matrix((data, (rows, cols)), shape=(len(ids), n_warm + len(vocab)),
                        dtype=np.float32)
    mat.sum_duplicates()
    mat.data[:] = 1.0
    if meta_weight is not None and len(vocab):
        is_meta = mat.indices >= n_warm
        row = np.repeat(np.arange(len(ids)), np.diff(mat.indptr))
        n_meta = np.bincount(row, weights=is_meta, minlength=len(ids))
        share = np.divide(float(meta_weight), n_meta, out=np.zeros_like(n_meta),
                          where=n_meta > 0)
        per_row = share[row]
        mat.data = np.where(is_meta, per_row, 1.0).astype(np.float32)
    sums = np.asarray(mat.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / sums).astype(np.float32) @ mat)


@dataclass
class RecModel:
    """A fitted LightFM model with its id lists and metadata vocabularies."""

    lightfm: object  # lightfm.LightFM; typed loosely so importing this module stays cheap
    user_ids: np.ndarray          # warm user ids, sorted (identity columns)
    item_ids: np.ndarray          # warm track ids, sorted
    user_vocab: list[str]
    item_vocab: list[str]
    # Metadata weight relative to identity (see feature_matrix); None: the original weighting.
    meta_weight: float | None = None

    @property
    def components(self) -> int:
        return int(self.lightfm.no_components)

    def user_features(self, ids: np.ndarray, meta: Mapping[int, Tokens]) -> sp.csr_matrix:
        """The feature rows of users ``ids`` (unknown users: metadata only)."""
        return feature_matrix(ids, self.user_ids, _index(self.user_vocab), meta,
                              self.meta_weight)

    def item_features(self, ids: np.ndarray, meta: Mapping[int, Tokens]) -> sp.csr_matrix:
        """The feature rows of tracks ``ids`` (unknown tracks: metadata only)."""
        return feature_matrix(ids, self.item_ids, _index(self.item_vocab), meta,
                              self.meta_weight)

    def user_vectors(self, ids: np.ndarray, meta: Mapping[int, Tokens]) -> np.ndarray:
        """``[embedding, bias, 1]`` per user, so ``user @ item.T`` is LightFM's score."""
        bias, emb = self.lightfm.get_user_representations(self.user_features(ids, meta))
        return np.hstack([emb, bias[:, None], np.ones((len(ids), 1), np.float32)]) \
            .astype(np.float32)

    def item_vectors(self, ids: np.ndarray, meta: Mapping[int, Tokens]) -> np.ndarray:
        """``[embedding, 1, bias]`` per track (see :meth:`user_vectors`)."""
        bias, emb = self.lightfm.get_item_representations(self.item_features(ids, meta))
        return np.hstack([emb, np.ones((len(ids), 1), np.float32), bias[:, None]]) \
            .astype(np.float32)

    # ------------------------------------------------------------ persistence
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild the model, as plain arrays."""
        m = self.lightfm
        return {
            "user_embeddings": m.user_embeddings, "user_biases": m.user_biases,
            "item_embeddings": m.item_embeddings, "item_biases": m.item_biases,
            "user_ids": self.user_ids, "item_ids": self.item_ids,
            "user_vocab": np.array(self.user_vocab, dtype=str),
            "item_vocab": np.array(self.item_vocab, dtype=str),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], params: Mapping) -> RecModel:
        """The model saved by :meth:`to_arrays`, with its LightFM ``params``."""
        from lightfm import LightFM

        m = LightFM(no_components=int(params["components"]), loss=params.get("loss", "warp"),
                    learning_rate=float(params.get("learning_rate", 0.05)),
                    item_alpha=float(params.get("item_alpha", 0.0)),
                    user_alpha=float(params.get("user_alpha", 0.0)),
                    max_sampled=int(params.get("max_sampled", 10)),
                    random_state=int(params.get("seed", 0)))
        for side in ("user", "item"):
            emb = np.ascontiguousarray(arrays[f"{side}_embeddings"], dtype=np.float32)
            bias = np.ascontiguousarray(arrays[f"{side}_biases"], dtype=np.float32)
            setattr(m, f"{side}_embeddings", emb)
            setattr(m, f"{side}_biases", bias)
            # Only training reads these; zeros make predict() and fit_partial() usable.
            for suffix in ("gradients", "momentum"):
                setattr(m, f"{side}_embedding_{suffix}", np.zeros_like(emb))
                setattr(m, f"{side}_bias_{suffix}", np.zeros_like(bias))
        return cls(lightfm=m, user_ids=np.asarray(arrays["user_ids"], dtype=np.int64),
                   item_ids=np.asarray(arrays["item_ids"], dtype=np.int64),
                   user_vocab=[str(t) for t in arrays["user_vocab"]],
                   item_vocab=[str(t) for t in arrays["item_vocab"]],
                   meta_weight=None if params.get("meta_weight") is None
                   else float(params["meta_weight"]))


def _index(vocab: Sequence[str]) -> dict[str, int]:
    return {t: i for i, t in enumerate(vocab)}

"""Item-based families: a user's listens times an item-item matrix rank the catalogue.

- ``ease``: EASE (Steck 2019), the closed-form item-item regression
  ``B = I - P / diag(P)`` with ``P = (X'X + lambda I)^-1`` over binary
  listens. Its Gram matrix is items x items and dense, so the family skips
  itself (with the reason) when the tracks it would model exceed
  :data:`EASE_MAX_ITEMS` or its matrices would need more than a quarter of
  the memory available: it never runs the machine out of memory.
- ``item_knn``: sparse item-item similarity (cosine, BM25- or tf-idf-weighted;
  implicit's C++ all-pairs), the top ``neighbours`` per track: scales to
  catalogues EASE cannot hold.

Both score a user from their listening history at scoring time (the split's
training listens during the search, ``consumption.interactions`` when
recommending), so a user who listened after the model was trained is scored
on what they heard since.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from lakehouse.errors import ConfigError
from lakehouse.recsys.base import Config, EpochCallback, Recommender, TrainData, _lookup
from lakehouse.recsys.model import Tokens
from lakehouse.recsys.topk import Scores, default_threads

# Above this many modelled tracks EASE is skipped whatever the memory: its inversion
# is cubic in the tracks (25,000 take minutes on a small VM).
EASE_MAX_ITEMS = 25_000
# Dense items x items float32 matrices alive at EASE's peak (Gram/inverse, and B).
EASE_MATRICES = 2
WEIGHTINGS = ("cosine", "bm25", "tfidf")
# Up to this size the listens are made dense for the Gram product (BLAS).
DENSE_GRAM_BYTES = 512 * 2**20


def available_memory() -> int:
    """Bytes this process can still use: free RAM, capped by a cgroup memory limit."""
    free = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except OSError:
        pass
    if free is None:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(0, free)


class ItemItemScores(Scores):
    """``history @ W`` over the catalogue: W is the model's items x items matrix.

    Catalogue tracks the model does not know score below every known one.
    """

    def __init__(self, history: sp.csr_matrix, items: np.ndarray, model_items: np.ndarray,
                 weights: np.ndarray | sp.csr_matrix):
        pos, ok = _lookup(np.asarray(items, np.int64), model_items)
        self.cols = np.flatnonzero(ok)
        self.model_cols = pos[ok]
        n_model = len(model_items)
        select = sp.csr_matrix((np.ones(len(self.cols), np.float32),
                                (self.cols, self.model_cols)), shape=(len(items), n_model))
        binary = history.tocsr().astype(bool).astype(np.float32)
        self.history = (binary @ select).tocsr()
        self.weights = weights
        self.n_users, self.n_items = history.shape[0], len(items)

    def block(self, rows: slice | np.ndarray) -> np.ndarray:
        part = self.history[rows] @ self.weights
        part = part.toarray() if sp.issparse(part) else np.asarray(part)
        part = part.astype(np.float32, copy=False)
        floor = (part.min(axis=1, initial=0.0) - 1.0)[:, None]
        out = np.empty((part.shape[0], self.n_items), np.float32)
        out[:] = floor
        out[:, self.cols] = part[:, self.model_cols]
        return out


class _ItemBased(Recommender):
    """What EASE and item-kNN share: user and item ids, scoring from histories."""

    def __init__(self, config: Config):
        super().__init__(config)
        self.user_ids = np.empty(0, np.int64)
        self.item_ids = np.empty(0, np.int64)

    def known_users(self) -> np.ndarray:
        return self.user_ids

    def knows(self, ids: np.ndarray, history: sp.csr_matrix | None = None,
              items: np.ndarray | None = None) -> np.ndarray:
        if history is None or items is None:
            return super().knows(ids)
        known = np.isin(np.asarray(items, np.int64), self.item_ids)
        return np.asarray(history.tocsr()[:, known].getnnz(axis=1) > 0)

    def _weights(self) -> np.ndarray | sp.csr_matrix:
        raise NotImplementedError

    def scores(self, user_ids: np.ndarray, history: sp.csr_matrix, item_ids: np.ndarray,
               user_meta: Mapping[int, Tokens], item_meta: Mapping[int, Tokens]) -> Scores:
        return ItemItemScores(history, item_ids, self.item_ids, self._weights())

    def check(self) -> str | None:
        if len(self.item_ids) and np.any(np.diff(self.item_ids) <= 0):
            return "the track ids are not sorted and unique"
        return None


class EASE(_ItemBased):
    """EASE: ``lam`` (the L2 penalty) is searched; tracks with < ``min_users`` are not modelled."""

    family = candidate = "ease"
    max_trials = 12
    ARRAYS = {"user_ids": np.int64, "item_ids": np.int64, "weights": np.float32}

    def __init__(self, config: Config):
        super().__init__(config)
        if float(config.params.get("lam", 300.0)) <= 0:
            raise ConfigError(f"EASE needs lam > 0, got {config.params.get('lam')}")
        self.weights = np.zeros((0, 0), np.float32)

    @classmethod
    def default_config(cls, settings: Any, parent: Config | None = None) -> Config:
        return Config(cls.family, {"lam": 300.0, "min_users": 2})

    @classmethod
    def first_params(cls, base: Config) -> dict[str, Any]:
        return {"lam": base.params["lam"]}

    @classmethod
    def suggest(cls, trial: Any, base: Config) -> Config:
        low, high = (min(10.0, base.params["lam"]), max(5000.0, base.params["lam"]))
        return base.with_params(lam=trial.suggest_float("lam", low, high, log=True))

    @staticmethod
    def modelled(matrix: sp.csr_matrix, min_users: int) -> np.ndarray:
        """Columns (tracks) with at least ``min_users`` listeners: what EASE models."""
        listeners = np.asarray((matrix > 0).sum(axis=0)).ravel()
        return np.flatnonzero(listeners >= max(1, min_users))

    @classmethod
    def skip_reason(cls, data: TrainData) -> str | None:
        n = len(cls.modelled(data.matrix, int(cls.default_config(None).params["min_users"])))
        need = EASE_MATRICES * n * n * 4
        budget = available_memory() // 4
        if n > EASE_MAX_ITEMS:
            return (f"{n:,} tracks with 2+ listeners > {EASE_MAX_ITEMS:,}: the dense "
                    f"{n:,} x {n:,} item-item matrices ({need / 2**30:.1f} GiB) and their "
                    "inversion are too large; item_knn scales instead")
        if need > budget:
            return (f"{n:,} tracks need {need / 2**30:.1f} GiB of item-item matrices, more "
                    f"than a quarter of the memory available ({budget / 2**30:.1f} GiB)")
        return None

    def fit(self, data: TrainData, on_epoch: EpochCallback | None = None,
            threads: int | None = None) -> None:
        from scipy.linalg import lapack
        from threadpoolctl import threadpool_limits

        lam = float(self.config.params.get("lam", 300.0))
        cols = self.modelled(data.matrix, int(self.config.params.get("min_users", 2)))
        binary = data.matrix.tocsc()[:, cols].astype(bool).astype(np.float32)
        with threadpool_limits(limits=threads or default_threads(), user_api="blas"):
            if binary.shape[0] * len(cols) * 4 <= DENSE_GRAM_BYTES:
                # A dense product runs on BLAS; scipy's sparse one is far slower for a
                # Gram matrix this dense.
                dense = binary.toarray()
                gram = dense.T @ dense
                del dense
            else:
                gram = np.asarray((binary.T @ binary).toarray(), np.float32)
            gram[np.diag_indices_from(gram)] += lam
            # Cholesky and its in-place inverse: G + lam*I is symmetric positive definite,
            # and overwriting keeps one n x n matrix alive, not three.
            # gram.T is the same symmetric matrix in Fortran order: LAPACK takes it as is.
            factor, info = lapack.spotrf(gram.T, lower=0, overwrite_a=1)
            if info != 0:
                raise ConfigError(f"EASE: the Gram matrix is not positive definite (lam {lam})")
            inverse, info = lapack.spotri(factor, lower=0, overwrite_c=1)
        del gram, factor
        upper = np.triu(inverse)
        weights = upper + np.triu(upper, 1).T
        del inverse, upper
        diag = weights.diagonal().copy()
        weights /= -diag[None, :]
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights = np.ascontiguousarray(weights, np.float32)
        self.item_ids = np.asarray(data.items[cols], np.int64)
        self.user_ids = np.asarray(data.warm_users, np.int64)
        self.epochs_run = 1

    def _weights(self) -> np.ndarray:
        return self.weights

    def check(self) -> str | None:
        n = len(self.item_ids)
        if self.weights.shape != (n, n):
            return f"its {self.weights.shape} weights do not match {n} track ids"
        if not np.isfinite(self.weights).all():
            return "a weight is not a finite number"
        return super().check()


class ItemKNN(_ItemBased):
    """Item-kNN: the top ``neighbours`` similar tracks per track, similarity weighted."""

    family = candidate = "item_knn"
    ARRAYS = {"user_ids": np.int64, "item_ids": np.int64, "sim_indptr": np.int64,
              "sim_indices": np.int32, "sim_data": np.float32}

    def __init__(self, config: Config):
        super().__init__(config)
        p = config.params
        if p.get("weighting", "bm25") not in WEIGHTINGS:
            raise ConfigError(f"unknown item_knn weighting {p.get('weighting')!r}; use one of "
                              f"{', '.join(WEIGHTINGS)}")
        if int(p.get("neighbours", 100)) < 1:
            raise ConfigError("item_knn needs at least 1 neighbour")
        self.sim_indptr = np.zeros(1, np.int64)
        self.sim_indices = np.empty(0, np.int32)
        self.sim_data = np.empty(0, np.float32)

    @classmethod
    def default_config(cls, settings: Any, parent: Config | None = None) -> Config:
        return Config(cls.family, {"neighbours": 100, "weighting": "bm25", "bm25_k1": 1.2,
                                   "bm25_b": 0.75})

    @classmethod
    def first_params(cls, base: Config) -> dict[str, Any]:
        return {"neighbours": base.params["neighbours"], "weighting": base.params["weighting"]}

    @classmethod
    def suggest(cls, trial: Any, base: Config) -> Config:
        config = base.with_params(
            neighbours=trial.suggest_int("neighbours", 10, max(1000, base.params["neighbours"]),
                                         log=True),
            weighting=trial.suggest_categorical("weighting", list(WEIGHTINGS)))
        if config.params["weighting"] == "bm25":
            config = config.with_params(
                bm25_k1=trial.suggest_float("bm25_k1", 0.1, 100.0, log=True),
                bm25_b=trial.suggest_float("bm25_b", 0.0, 1.0))
        return config

    def fit(self, data: TrainData, on_epoch: EpochCallback | None = None,
            threads: int | None = None) -> None:
        from implicit.nearest_neighbours import (
            BM25Recommender,
            CosineRecommender,
            TFIDFRecommender,
        )
        from implicit.utils import ParameterWarning

        p = self.config.params
        k = int(p.get("neighbours", 100))
        threads = threads or default_threads()
        how = p.get("weighting", "bm25")
        if how == "bm25":
            knn = BM25Recommender(K=k, K1=float(p.get("bm25_k1", 1.2)),
                                  B=float(p.get("bm25_b", 0.75)), num_threads=threads)
        elif how == "tfidf":
            knn = TFIDFRecommender(K=k, num_threads=threads)
        else:
            knn = CosineRecommender(K=k, num_threads=threads)
        with warnings.catch_warnings():
            # implicit converts its own weighted matrix to CSR and warns about it.
            warnings.simplefilter("ignore", category=ParameterWarning)
            knn.fit(data.matrix.astype(np.float32).tocsr(), show_progress=False)
        sim = knn.similarity.tocsr().astype(np.float32)
        sim.sort_indices()
        self.sim_indptr = np.asarray(sim.indptr, np.int64)
        self.sim_indices = np.asarray(sim.indices, np.int32)
        self.sim_data = np.asarray(sim.data, np.float32)
        self.item_ids = np.asarray(data.items, np.int64)
        self.user_ids = np.asarray(data.warm_users, np.int64)
        self.epochs_run = 1

    def _weights(self) -> sp.csr_matrix:
        n = len(self.item_ids)
        return sp.csr_matrix((self.sim_data, self.sim_indices, self.sim_indptr), shape=(n, n))

    def check(self) -> str | None:
        n, ptr = len(self.item_ids), self.sim_indptr
        if len(ptr) != n + 1 or ptr[0] != 0 or np.any(np.diff(ptr) < 0) \
                or ptr[-1] != len(self.sim_indices) or len(self.sim_indices) != len(self.sim_data):
            return "its similarity matrix's row pointers do not match its entries"
        if len(self.sim_indices) and (self.sim_indices.min() < 0 or self.sim_indices.max() >= n):
            return "a similar track is outside its track ids"
        if not np.isfinite(self.sim_data).all():
            return "a similarity is not a finite number"
        return super().check()

"""Item-based families: a user's listens times an item-item matrix rank the catalogue.

- ``ease``: EASE (Steck 2019), the closed-form item-item regression
  ``B = I - P / diag(P)`` with ``P = (X'X + lambda I)^-1`` over binary
  listens. Its Gram matrix is items x items and dense, so the family skips
  itself (with the reason) when the tracks it would model exceed
  :data:`EASE_MAX_ITEMS` or its matrices would need more than a quarter of
  the memory available: it never runs the machine out of memory.
- ``item_knn``: sparse item-item similarity (shrunk asymmetric cosine over
  binary, BM25- or tf-idf-weighted listens), the top ``neighbours`` per
  track: scales to catalogues EASE cannot hold.

Both score a user from their listening history at scoring time (the split's
training listens during the search, ``consumption.interactions`` when
recommending), so a user who listened after the model was trained is scored
on what they heard since.
"""

from __future__ import annotations

import os
import time
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
WEIGHTINGS = ("binary", "bm25", "tfidf")
# LAPACK's speed on a small matrix overstates a whole EASE fit's on a busy machine
# (measured on the hetrec-like set, ~10,000 tracks: 56 s, about 10x the bare estimate at
# the multi-threaded speed, ~3x at the one-thread speed now measured): the time estimate
# is this much more cautious.
EASE_SLOWDOWN = 3.0
# Item-kNN builds the co-occurrence a block of tracks at a time, each block holding at most
# about this many co-listened pairs (~40 bytes each while it is weighted and cut to the top
# neighbours): the fit's memory stays bounded whatever the catalogue (a Zipf catalogue's
# popular tracks co-occur with nearly every other).
KNN_BLOCK_PAIRS = 5_000_000


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


_SPEED: list[float] = []


def _flops_per_second() -> float:
    """One core's speed at a Cholesky factorisation now (measured once per process).

    One BLAS thread: with several, a busy machine makes the threads wait for each
    other, and the measure (the best of a few ~10 ms runs) swung by 100x under load
    (a 63 s estimate read 10,502 s), skipping EASE for nothing. One thread's speed
    is stable, and a fit on more threads only finishes sooner than estimated.
    """
    if not _SPEED:
        from scipy.linalg import lapack
        from threadpoolctl import threadpool_limits

        n = 1000
        a = np.random.default_rng(0).random((n, n), np.float32)
        spd = np.asfortranarray(a @ a.T + n * np.eye(n, dtype=np.float32))
        best = np.inf
        with threadpool_limits(limits=1, user_api="blas"):
            for _ in range(5):
                t0 = time.perf_counter()
                lapack.spotrf(spd, lower=0, overwrite_a=0)
                best = min(best, time.perf_counter() - t0)
        _SPEED.append(n ** 3 / 3 / max(best, 1e-6))
    return _SPEED[0]


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
    ROWS_PER_ID = {"weights": "item_ids"}

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

    @classmethod
    def estimated_seconds(cls, data: TrainData) -> float:
        """A fit's expected time: its flops at this machine's measured LAPACK speed."""
        n = len(cls.modelled(data.matrix, int(cls.default_config(None).params["min_users"])))
        return EASE_SLOWDOWN * float(n) ** 3 / _flops_per_second()

    def fit(self, data: TrainData, on_epoch: EpochCallback | None = None,
            threads: int | None = None) -> None:
        from scipy.linalg import lapack
        from threadpoolctl import threadpool_limits

        lam = float(self.config.params.get("lam", 300.0))
        cols = self.modelled(data.matrix, int(self.config.params.get("min_users", 2)))
        binary = data.matrix.tocsc()[:, cols].astype(bool).astype(np.float32)
        with threadpool_limits(limits=threads or default_threads(), user_api="blas"):
            # The sparse product costs the sum of squared history lengths, far less than
            # a dense users x items^2 product on listening data.
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
    """Item-kNN: each track's top ``neighbours`` tracks by shrunk, asymmetric cosine.

    ``sim(i, j) = c_ij / (n_i^alpha * n_j^(1 - alpha) + shrink)`` over the
    (optionally BM25- or tf-idf-weighted) listens, where ``c_ij`` is the
    weighted co-listening of i and j and ``n`` each track's weight. The
    shrink term matters on long-tailed catalogues: without it, two tracks
    that one user heard together look perfectly similar and crowd out every
    real neighbour (measured on the hetrec-like set: p@10 0.02 without, 0.10
    with ``shrink`` 10).
    """

    family = candidate = "item_knn"
    ARRAYS = {"user_ids": np.int64, "item_ids": np.int64, "sim_indptr": np.int64,
              "sim_indices": np.int32, "sim_data": np.float32}

    def __init__(self, config: Config):
        super().__init__(config)
        p = config.params
        if p.get("weighting", "binary") not in WEIGHTINGS:
            raise ConfigError(f"unknown item_knn weighting {p.get('weighting')!r}; use one of "
                              f"{', '.join(WEIGHTINGS)}")
        if int(p.get("neighbours", 100)) < 1:
            raise ConfigError("item_knn needs at least 1 neighbour")
        if float(p.get("shrink", 10.0)) < 0 or not 0 <= float(p.get("alpha", 0.5)) <= 1:
            raise ConfigError("item_knn needs shrink >= 0 and alpha between 0 and 1")
        self.sim_indptr = np.zeros(1, np.int64)
        self.sim_indices = np.empty(0, np.int32)
        self.sim_data = np.empty(0, np.float32)

    @classmethod
    def default_config(cls, settings: Any, parent: Config | None = None) -> Config:
        return Config(cls.family, {"neighbours": 100, "shrink": 10.0, "alpha": 0.5,
                                   "weighting": "binary"})

    @classmethod
    def first_params(cls, base: Config) -> dict[str, Any]:
        return {k: base.params[k] for k in ("neighbours", "shrink", "alpha", "weighting")}

    @classmethod
    def suggest(cls, trial: Any, base: Config) -> Config:
        return base.with_params(
            neighbours=trial.suggest_int("neighbours", 10, max(1000, base.params["neighbours"]),
                                         log=True),
            shrink=trial.suggest_float("shrink", 0.0, max(200.0, base.params["shrink"])),
            alpha=trial.suggest_float("alpha", 0.0, 1.0),
            weighting=trial.suggest_categorical("weighting", list(WEIGHTINGS)))

    def fit(self, data: TrainData, on_epoch: EpochCallback | None = None,
            threads: int | None = None) -> None:
        p = self.config.params
        x = data.matrix.tocsr().astype(np.float32)
        how = p.get("weighting", "binary")
        if how == "binary":
            x.data[:] = 1.0
        else:
            from implicit.nearest_neighbours import bm25_weight, tfidf_weight

            x = (bm25_weight(x) if how == "bm25" else tfidf_weight(x)).tocsr() \
                .astype(np.float32)
        sim = _similarities(x, float(p.get("alpha", 0.5)), float(p.get("shrink", 10.0)),
                            int(p.get("neighbours", 100)))
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


def _similarities(x: sp.csr_matrix, alpha: float, shrink: float, k: int,
                  block_pairs: int | None = None) -> sp.csr_matrix:
    """Each track's top ``k`` shrunk asymmetric cosines, built a block of tracks at a time.

    Args:
        x: Weighted listens, users x tracks (float32 CSR).
        alpha: Exponent of the track's own weight (1 - alpha: its neighbour's).
        shrink: Added to the denominator (damps pairs co-listened by few users).
        k: Neighbours kept per track.
        block_pairs: Co-listened pairs held at once, at most about (a single track
            whose listeners heard more is a block on its own); None:
            :data:`KNN_BLOCK_PAIRS`.
    """
    block_pairs = KNN_BLOCK_PAIRS if block_pairs is None else block_pairs
    n = x.shape[1]
    weight = np.asarray(x.sum(axis=0), np.float64).ravel()
    xt = x.T.tocsr()
    # A track's co-occurrence row has at most as many entries as its listeners have
    # listened tracks, in all: the blocks are cut on that bound.
    lengths = np.diff(x.indptr).astype(np.float64)
    bound = xt.astype(bool).astype(np.float64) @ lengths
    parts = []
    for start, stop in _blocks(bound, block_pairs):
        co = (xt[start:stop] @ x).tocsr()
        rows = np.repeat(np.arange(stop - start), np.diff(co.indptr))
        off = rows + start != co.indices
        rows, cols, vals = rows[off], co.indices[off], co.data[off].astype(np.float64)
        del co
        vals /= weight[rows + start] ** alpha * weight[cols] ** (1 - alpha) + shrink + 1e-12
        parts.append(_top_per_row(rows, cols, vals, (stop - start, n), k))
    if not parts:
        return sp.csr_matrix((n, n), dtype=np.float32)
    return sp.vstack(parts, format="csr")


def _blocks(bound: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Consecutive ranges of tracks whose ``bound`` sums to at most ``limit`` (or one track)."""
    edges, total = [0], 0.0
    for i, b in enumerate(bound.tolist()):
        if total + b > limit and i > edges[-1]:
            edges.append(i)
            total = 0.0
        total += b
    edges.append(len(bound))
    return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _top_per_row(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray,
                 shape: tuple[int, int], k: int) -> sp.csr_matrix:
    """The ``k`` largest entries of each row of the (rows, cols, vals) matrix, as CSR."""
    # Sort by row, then by value descending; each row's first k entries are its top k.
    order = np.lexsort((-vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(rows, np.arange(shape[0]))
    rank = np.arange(len(rows)) - starts[rows]
    keep = rank < k
    sim = sp.csr_matrix((vals[keep].astype(np.float32), (rows[keep], cols[keep])), shape=shape)
    sim.sort_indices()
    return sim

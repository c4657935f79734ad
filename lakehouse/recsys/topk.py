"""Top-k of ``users @ items.T`` with seen items excluded, fast and in bounded memory.

The product is done a chunk of users at a time, so memory is bounded by
``chunk × n_items`` floats per thread, not by ``n_users × n_items``. The
selection, not the product, is what costs with a plain ``argpartition`` over
every row. Instead the columns are cut into groups of :data:`GROUP` strided
columns, and each row keeps only its ``k`` groups with the highest maximum:
the row's top ``k`` tracks lie in at most ``k`` groups, each of whose maximum
is at least the k-th best score, so those groups hold them all. A strided
group maximum is an elementwise ``maximum`` of contiguous slabs (SIMD fast),
and the final selection runs on ``k × GROUP`` candidates per row. Chunks run
on a small thread pool: numpy releases the GIL in the product and the
reductions.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

DEFAULT_CHUNK = 512
# Columns per candidate group: small enough that k groups are few candidates, large
# enough that the group maxima are a cheap pass.
GROUP = 32


def default_threads() -> int:
    """Worker threads for scoring: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class Scores:
    """Scores of some users over the whole catalogue, computed a block of users at a time.

    A model that ranks by a dot product of user and item vectors is a
    :class:`VectorScores`; item-based models (EASE, item-kNN) score a user's
    history times an item-item matrix instead. Ranking (:func:`top_k_scores`)
    and evaluation only see this interface.
    """

    n_users: int
    n_items: int

    def block(self, rows: slice | np.ndarray) -> np.ndarray:
        """float32 scores of ``rows``: ``len(rows) x width`` with ``width >= n_items``.

        Columns from ``n_items`` on, if any, are padding that ranking ignores.
        """
        raise NotImplementedError


class VectorScores(Scores):
    """``users @ items.T``, the catalogue padded to whole groups of :data:`GROUP` columns."""

    def __init__(self, users: np.ndarray, items: np.ndarray):
        self.users = np.ascontiguousarray(users, dtype=np.float32)
        items = np.asarray(items, dtype=np.float32)
        self.n_users, self.n_items = self.users.shape[0], items.shape[0]
        groups = -(-self.n_items // GROUP)
        self.items_t = np.zeros((items.shape[1], groups * GROUP), dtype=np.float32)
        self.items_t[:, :self.n_items] = items.T

    def block(self, rows: slice | np.ndarray) -> np.ndarray:
        return self.users[rows] @ self.items_t


def top_k(users: np.ndarray, items: np.ndarray, k: int, seen: sp.csr_matrix | None = None,
          *, chunk: int = DEFAULT_CHUNK, threads: int | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items per user by dot product, best first.

    Args:
        users: ``n_users × d`` float32 vectors.
        items: ``n_items × d`` float32 vectors.
        k: How many items per user.
        seen: Optional ``n_users × n_items`` CSR of items to exclude (any
            stored entry excludes that item for that user).
        chunk: Users per block (memory per thread ~ ``chunk × n_items × 5`` bytes).
        threads: Worker threads (default: the CPUs available).

    Returns:
        ``(indices, scores)``, both ``n_users × k``; when a user has fewer
        than ``k`` unseen items, the tail is index -1 with score -inf.
    """
    return top_k_scores(VectorScores(users, items), k, seen, chunk=chunk, threads=threads)


def top_k_scores(scores: Scores, k: int, seen: sp.csr_matrix | None = None, *,
                 chunk: int = DEFAULT_CHUNK, threads: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items per user of ``scores``, best first (see :func:`top_k`)."""
    n_users, n_items = scores.n_users, scores.n_items
    groups = -(-n_items // GROUP)
    k = int(k)
    if k < 1:
        raise ValueError("k must be at least 1")
    if seen is not None:
        seen = seen.tocsr()
        if seen.shape != (n_users, n_items):
            raise ValueError(f"seen has shape {seen.shape}, expected {(n_users, n_items)}")
    out_idx = np.full((n_users, k), -1, dtype=np.int64)
    out_val = np.full((n_users, k), -np.inf, dtype=np.float32)
    if n_users == 0 or n_items == 0:
        return out_idx, out_val

    def work(start: int) -> None:
        stop = min(start + chunk, n_users)
        raw = scores.block(slice(start, stop))
        if raw.shape[1] == groups * GROUP:
            block = np.asarray(raw, np.float32)
        else:
            # Pad the catalogue to whole groups; padded columns score -inf.
            block = np.empty((stop - start, groups * GROUP), np.float32)
            block[:, :n_items] = raw[:, :n_items]
        block[:, n_items:] = -np.inf
        if seen is not None:
            lo, hi = seen.indptr[start], seen.indptr[stop]
            rows = np.repeat(np.arange(stop - start), np.diff(seen.indptr[start:stop + 1]))
            block[rows, seen.indices[lo:hi]] = -np.inf
        idx, val = _select(block, k, groups)
        out_idx[start:stop], out_val[start:stop] = idx, val

    starts = range(0, n_users, chunk)
    threads = threads or default_threads()
    if threads <= 1 or n_users <= chunk:
        for s in starts:
            work(s)
    else:
        from threadpoolctl import threadpool_limits

        # One BLAS thread per worker: two levels of threads would fight over 2 cores.
        with threadpool_limits(limits=1, user_api="blas"), \
                ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(work, starts))
    return out_idx, out_val


def _select(scores: np.ndarray, k: int, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` columns per row of ``scores`` (-inf entries never chosen)."""
    n_rows, width = scores.shape
    if groups <= k:
        return _select_full(scores, k)
    group_max = scores.reshape(n_rows, width // groups, groups).max(axis=1)
    best = np.argpartition(group_max, groups - k, axis=1)[:, groups - k:]
    cols = (best[:, :, None] + np.arange(width // groups) * groups).reshape(n_rows, -1)
    idx, val = _select_full(np.take_along_axis(scores, cols, axis=1), k)
    return np.where(idx >= 0, np.take_along_axis(cols, np.maximum(idx, 0), axis=1), -1), val


def _select_full(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n_rows, n_cols = scores.shape
    kk = min(k, n_cols)
    part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < n_cols \
        else np.tile(np.arange(n_cols), (n_rows, 1))
    pv = np.take_along_axis(scores, part, axis=1)
    order = _row_order(pv, part)
    part = np.take_along_axis(part, order, axis=1)
    pv = np.take_along_axis(pv, order, axis=1)
    idx = np.full((n_rows, k), -1, dtype=np.int64)
    val = np.full((n_rows, k), -np.inf, dtype=np.float32)
    ok = np.isfinite(pv)
    idx[:, :kk] = np.where(ok, part, -1)
    val[:, :kk] = np.where(ok, pv, -np.inf)
    return idx, val


def _row_order(values: np.ndarray, cols: np.ndarray) -> np.ndarray:
    # Best score first; equal scores by column, so results never depend on the method.
    return np.lexsort((cols, -values), axis=1)

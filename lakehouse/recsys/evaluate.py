"""Ranking metrics on a holdout, for any scorer (a model or the popularity baseline).

For each evaluated user the whole catalogue is ranked, with the tracks they
listened to in training excluded, and compared with the tracks they first
listened to in the holdout:

- ``precision_at_10``: holdout tracks among the top 10, divided by 10;
- ``recall_at_10``: holdout tracks among the top 10, divided by the user's holdout tracks;
- ``ndcg_at_10``: binary-relevance nDCG of the top 10;
- ``auc``: probability that a holdout track is ranked above a track the user
  never listened to (ties count half), over a seeded sample of at most
  :data:`AUC_USERS` users;
- ``coverage``: share of the catalogue that appears in at least one top 10.

Every metric is the mean over users (coverage: over the catalogue).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import rankdata

from lakehouse import names
from lakehouse.names import PER_USER_METRICS
from lakehouse.recsys.topk import Scores, VectorScores, top_k_scores

K = 10
METRICS = names.METRIC_KEYS
# Users evaluated at most; a seeded sample beyond that keeps evaluation time bounded.
MAX_EVAL_USERS = 20_000
# AUC needs every score of a user ranked (n_items per user): a smaller seeded sample.
AUC_USERS = 3_000
AUC_CHUNK = 256

__all__ = ["Scores", "VectorScores", "evaluate", "per_user", "paired_bootstrap"]


def sample_users(rows: np.ndarray, limit: int = MAX_EVAL_USERS, seed: int = 0) -> np.ndarray:
    """At most ``limit`` of ``rows``, a seeded sample, sorted."""
    if len(rows) <= limit:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))


def evaluate(scores: Scores, train: sp.csr_matrix, holdout: sp.csr_matrix, *, k: int = K,
             chunk: int = 1024) -> dict[str, float]:
    """The metrics of one scorer for the users in ``train``/``holdout`` rows.

    Args:
        scores: The scorer's scores of the evaluated users (same order as
            ``train`` rows) over the catalogue (``VectorScores(users, items)``
            for user and item vectors).
        train: Tracks each user listened to in training (excluded from ranking).
        holdout: Tracks each user first listened to in the holdout.
        k: The cut-off (10 for the named metrics).
        chunk: Users scored at once (bounds memory).

    Returns:
        A dict with :data:`METRICS` as keys, plus ``users``.
    """
    n_users, n_items = train.shape
    if n_users == 0:
        return {m: None for m in METRICS} | {"users": 0}
    idx, _ = top_k_scores(scores, k, seen=train, chunk=chunk)
    hits = _hits(idx, holdout)
    n_rel = np.diff(holdout.indptr).astype(np.float64)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts).sum(axis=1)
    ideal = np.cumsum(discounts)[np.minimum(n_rel, k).astype(int) - 1]
    auc_rows = sample_users(np.arange(n_users), AUC_USERS)
    aucs = np.concatenate([
        _auc(scores.block(rows)[:, :n_items], train[rows], holdout[rows])
        for rows in np.array_split(auc_rows, max(1, -(-len(auc_rows) // AUC_CHUNK)))])
    recommended = np.unique(idx[idx >= 0])
    return {
        "precision_at_10": float(hits.sum(axis=1).mean() / k),
        "recall_at_10": float((hits.sum(axis=1) / n_rel).mean()),
        "ndcg_at_10": float((dcg / ideal).mean()),
        "auc": float(np.nanmean(aucs)) if np.isfinite(aucs).any() else None,
        "coverage": float(len(recommended) / n_items) if n_items else 0.0,
        "users": int(n_users),
    }


def _hits(idx: np.ndarray, holdout: sp.csr_matrix) -> np.ndarray:
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
    cols = idx.ravel()
    ok = cols >= 0
    hit = np.zeros(len(cols), dtype=np.float64)
    hit[ok] = np.asarray(holdout[rows[ok], cols[ok]]).ravel() > 0
    return hit.reshape(idx.shape)


def _auc(scores: np.ndarray, train: sp.csr_matrix, holdout: sp.csr_matrix) -> np.ndarray:
    scores = scores.astype(np.float64)
    seen = train.nonzero()
    scores[seen] = -np.inf
    n_seen = np.diff(train.indptr)
    n_pos = np.diff(holdout.indptr)
    n_neg = scores.shape[1] - n_seen - n_pos
    ranks = rankdata(scores, axis=1)  # average ranks: ties count half
    pos = holdout.nonzero()
    # Seen tracks (-inf) take the lowest ranks; shift them out.
    pos_rank_sum = np.bincount(pos[0], weights=ranks[pos], minlength=scores.shape[0]) \
        - n_pos * n_seen
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (pos_rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def popularity_vectors(train_all: sp.csr_matrix, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """User and item vectors whose product ranks tracks by training listeners.

    Args:
        train_all: The full training matrix (every user), to count listeners.
        n_users: How many (identical) user rows to return.
    """
    listeners = np.asarray((train_all > 0).sum(axis=0), dtype=np.float32).ravel()
    return np.ones((n_users, 1), np.float32), listeners[:, None]


def summarize(metrics: dict[str, float | None]) -> str:
    """``p@10 0.123  r@10 ...`` for one line of output."""
    short = {"precision_at_10": "p@10", "recall_at_10": "r@10", "ndcg_at_10": "ndcg@10",
             "auc": "auc", "coverage": "coverage"}
    return "  ".join(f"{short[m]} {metrics[m]:.4f}" if metrics.get(m) is not None
                     else f"{short[m]} -" for m in METRICS)



def metrics_table(metrics: dict[str, dict | None]) -> pd.DataFrame:
    """Metrics as a table: one row per scorer (model, baseline, ...), one column per metric."""
    rows = {name: {m: values.get(m) for m in (*METRICS, "users")}
            for name, values in metrics.items() if isinstance(values, dict)}
    return pd.DataFrame.from_dict(rows, orient="index")


# Metrics that are a mean over users, so a paired bootstrap over users applies to them.


def per_user(metric: str, scores: Scores, train: sp.csr_matrix, holdout: sp.csr_matrix, *,
             k: int = K) -> np.ndarray:
    """The value of ``metric`` for each evaluated user (its mean is :func:`evaluate`'s).

    Raises:
        ValueError: ``metric`` is not one of :data:`PER_USER_METRICS`.
    """
    if metric not in PER_USER_METRICS:
        raise ValueError(f"{metric} is not a per-user metric; use one of "
                         f"{', '.join(PER_USER_METRICS)}")
    if train.shape[0] == 0:
        return np.zeros(0)
    idx, _ = top_k_scores(scores, k, seen=train)
    hits = _hits(idx, holdout)
    n_rel = np.diff(holdout.indptr).astype(np.float64)
    if metric == "precision_at_10":
        return hits.sum(axis=1) / k
    if metric == "recall_at_10":
        return hits.sum(axis=1) / np.maximum(n_rel, 1)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)[np.clip(n_rel, 1, k).astype(int) - 1]
    return (hits * discounts).sum(axis=1) / ideal


def paired_bootstrap(a: np.ndarray, b: np.ndarray, *, samples: int = 2000,
                     level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean of ``a - b`` over users and its percentile bootstrap interval.

    Users are resampled with replacement, the same users for both scorers
    (paired), so what varies between the two is only the scorer.

    Returns:
        ``{"diff", "low", "high", "level", "users", "samples"}``.
    """
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    n = len(diff)
    if n == 0:
        return {"diff": 0.0, "low": 0.0, "high": 0.0, "level": level, "users": 0,
                "samples": 0}
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    # In blocks, so memory stays at block x users whatever the sample count.
    block = max(1, 2_000_000 // n)
    for start in range(0, samples, block):
        stop = min(samples, start + block)
        means[start:stop] = diff[rng.integers(0, n, (stop - start, n))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return {"diff": float(diff.mean()), "low": float(low), "high": float(high),
            "level": level, "users": int(n), "samples": samples}

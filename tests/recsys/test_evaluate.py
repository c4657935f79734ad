"""Ranking metrics on hand-made cases whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from lakehouse.recsys.evaluate import (
    PER_USER_METRICS,
    VectorScores,
    evaluate,
    paired_bootstrap,
    per_user,
    popularity_vectors,
    sample_users,
    summarize,
)


def _csr(rows: list[list[int]], n: int) -> sp.csr_matrix:
    mat = sp.lil_matrix((len(rows), n), dtype=np.float32)
    for r, cols in enumerate(rows):
        for c in cols:
            mat[r, c] = 1
    return mat.tocsr()


def test_perfect_and_reversed_scorers():
    n = 30
    train = _csr([[0, 1], [2]], n)
    holdout = _csr([[5, 6], [5]], n)
    items = np.zeros((n, 2), np.float32)
    items[:, 0] = -np.arange(n)  # later items score lower...
    items[[5, 6], 0] = [100, 99]  # ...except the holdout tracks, which come first
    users = np.array([[1, 0], [1, 0]], np.float32)
    m = evaluate(VectorScores(users, items), train, holdout)
    assert m["precision_at_10"] == pytest.approx((2 / 10 + 1 / 10) / 2)
    assert m["recall_at_10"] == pytest.approx(1.0)
    assert m["ndcg_at_10"] == pytest.approx(1.0)
    assert m["auc"] == pytest.approx(1.0)
    assert m["users"] == 2
    worst = evaluate(VectorScores(-users, items), train, holdout)
    assert worst["precision_at_10"] == 0 and worst["auc"] == pytest.approx(0.0)


def test_auc_is_half_for_constant_scores_and_ignores_training_items():
    n = 20
    train = _csr([list(range(10))], n)
    holdout = _csr([[12]], n)
    constant = VectorScores(np.ones((1, 1), np.float32), np.ones((n, 1), np.float32))
    m = evaluate(constant, train, holdout)
    assert m["auc"] == pytest.approx(0.5)


def test_ndcg_rewards_earlier_hits_and_coverage_counts_distinct_items():
    n = 12
    train = _csr([[], []], n)
    holdout = _csr([[0], [0]], n)
    items = np.eye(n, dtype=np.float32)
    first = np.zeros((2, n), np.float32)
    first[:, 0] = 2
    first[:, 1:] = 1
    late = np.zeros((2, n), np.float32)
    late[:, 1:] = 3
    late[:, 0] = 2  # rank 11: outside the top 10
    a = evaluate(VectorScores(first, items), train, holdout)
    b = evaluate(VectorScores(late, items), train, holdout)
    assert a["ndcg_at_10"] == pytest.approx(1.0) and b["ndcg_at_10"] == 0.0
    assert a["coverage"] == pytest.approx(10 / 12)


def test_popularity_ranks_by_training_listeners():
    train = _csr([[0, 1], [1], [1, 2]], 4)
    users, items = popularity_vectors(train, 2)
    assert (users @ items.T)[0].tolist() == [1, 3, 1, 0]


def test_sample_users_is_seeded_and_bounded():
    rows = np.arange(100)
    assert np.array_equal(sample_users(rows, 200), rows)
    a, b = sample_users(rows, 10, seed=1), sample_users(rows, 10, seed=1)
    assert len(a) == 10 and np.array_equal(a, b) and np.all(np.diff(a) > 0)


def test_summarize_handles_missing_values():
    line = summarize({"precision_at_10": 0.5, "recall_at_10": None, "ndcg_at_10": 0.25,
                      "auc": 0.75, "coverage": 1.0})
    assert line == "p@10 0.5000  r@10 -  ndcg@10 0.2500  auc 0.7500  coverage 1.0000"


def test_per_user_values_average_to_the_metrics():
    rng = np.random.default_rng(4)
    n_users, n_items = 40, 60
    train = sp.random(n_users, n_items, density=0.1, random_state=1, format="csr")
    holdout = sp.random(n_users, n_items, density=0.1, random_state=2, format="csr")
    holdout = (holdout - holdout.multiply(train > 0)).tocsr()
    holdout.eliminate_zeros()
    keep = np.flatnonzero(np.diff(holdout.indptr) > 0)
    train, holdout = train[keep], holdout[keep]
    users = rng.standard_normal((len(keep), 4)).astype(np.float32)
    items = rng.standard_normal((n_items, 4)).astype(np.float32)
    metrics = evaluate(VectorScores(users, items), train, holdout)
    for name in PER_USER_METRICS:
        values = per_user(name, VectorScores(users, items), train, holdout)
        assert len(values) == len(keep)
        assert values.mean() == pytest.approx(metrics[name])
    with pytest.raises(ValueError, match="not a per-user metric"):
        per_user("auc", VectorScores(users, items), train, holdout)


def test_paired_bootstrap_interval():
    rng = np.random.default_rng(0)
    base = rng.random(500)
    same = paired_bootstrap(base, base)
    assert same["diff"] == same["low"] == same["high"] == 0
    shifted = paired_bootstrap(base + 0.1 + rng.normal(0, 0.05, 500), base, seed=3)
    assert shifted["low"] < 0.1 < shifted["high"] and shifted["low"] > 0.09
    assert shifted["users"] == 500 and shifted["level"] == 0.95
    # The same seed gives the same interval; nothing to resample gives zeros.
    assert paired_bootstrap(base + 0.1, base, seed=3) == paired_bootstrap(base + 0.1, base,
                                                                            seed=3)
    assert paired_bootstrap(np.zeros(0), np.zeros(0))["users"] == 0

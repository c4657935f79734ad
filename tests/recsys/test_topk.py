"""Fast top-k equals a brute-force sort, seen items excluded, any chunking or threading."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from lakehouse.recsys.topk import top_k


def _brute(users, items, k, seen):
    scores = users @ items.T
    if seen is not None:
        scores[seen.nonzero()] = -np.inf
    order = np.lexsort((np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1)), -scores),
                       axis=1)[:, :k]
    vals = np.take_along_axis(scores, order, axis=1)
    pad = k - order.shape[1]
    if pad > 0:
        order = np.pad(order, ((0, 0), (0, pad)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, pad)), constant_values=-np.inf)
    return np.where(np.isfinite(vals), order, -1), vals


@pytest.mark.parametrize("n_items", [7, 300, 5000])
@pytest.mark.parametrize(("chunk", "threads"), [(4096, 1), (64, 2), (1, 1)])
def test_top_k_matches_brute_force(n_items, chunk, threads):
    rng = np.random.default_rng(n_items)
    users = rng.standard_normal((150, 9)).astype(np.float32)
    items = rng.standard_normal((n_items, 9)).astype(np.float32)
    seen = sp.random(150, n_items, density=0.3, format="csr", random_state=1)
    idx, val = top_k(users, items, 10, seen, chunk=chunk, threads=threads)
    ref_idx, ref_val = _brute(users, items, 10, seen)
    assert np.array_equal(idx, ref_idx)
    assert np.allclose(val, ref_val, atol=1e-5) or np.array_equal(val, ref_val)
    rows, cols = seen.nonzero()
    chosen = {(r, c) for r in range(150) for c in idx[r] if c >= 0}
    assert chosen.isdisjoint(zip(rows.tolist(), cols.tolist(), strict=True))


def test_users_with_fewer_unseen_items_than_k_are_padded():
    users = np.ones((3, 2), np.float32)
    items = np.arange(24, dtype=np.float32).reshape(12, 2)
    seen = sp.lil_matrix((3, 12))
    seen[1, :10] = 1  # user 1 has only two unseen tracks
    seen[2, :] = 1    # user 2 has heard everything
    idx, val = top_k(users, items, 5, seen.tocsr())
    assert idx[0].tolist() == [11, 10, 9, 8, 7]
    assert idx[1].tolist() == [11, 10, -1, -1, -1] and np.isneginf(val[1, 2:]).all()
    assert (idx[2] == -1).all()


def test_many_seen_items_in_the_threshold_sample_fall_back_correctly():
    rng = np.random.default_rng(0)
    users = rng.standard_normal((20, 4)).astype(np.float32)
    items = rng.standard_normal((4000, 4)).astype(np.float32)
    seen = sp.lil_matrix((20, 4000))
    seen[:, :3990] = 1  # nearly the whole catalogue heard
    idx, _ = top_k(users, items, 8, seen.tocsr())
    ref, _ = _brute(users, items, 8, seen.tocsr())
    assert np.array_equal(idx, ref)


def test_ties_give_distinct_items_deterministically_and_bad_input_is_rejected():
    items = np.ones((5000, 1), np.float32)
    items[:100] = 0.5
    idx, val = top_k(np.ones((2, 1), np.float32), items, 3)
    assert len(set(idx[0].tolist())) == 3 and (idx >= 100).all() and (val == 1).all()
    assert np.array_equal(idx, top_k(np.ones((2, 1), np.float32), items, 3)[0])
    with pytest.raises(ValueError, match="k must be"):
        top_k(np.ones((1, 1)), np.ones((2, 1)), 0)
    with pytest.raises(ValueError, match="seen has shape"):
        top_k(np.ones((1, 1)), np.ones((2, 1)), 1, sp.csr_matrix((2, 2)))

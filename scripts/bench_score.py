#!/usr/bin/env python
"""Benchmark batch scoring: top-k unseen tracks for every user.

Compares, on the same synthetic model (users x tracks, 64 components, about
20 seen tracks per user excluded, top 10), in the same run:

- ``bare matmul``: the float32 product in 1024-row chunks, result discarded
  (the floor: no exclusion, no selection);
- ``matmul + argpartition``: the plain way, 1024-row chunks, one thread
  pool-free loop (numpy's BLAS threads only);
- ``lakehouse top_k``: :func:`lakehouse.recsys.topk.top_k`, what
  ``lakehouse recommend`` uses;
- ``LightFM predict``: LightFM's batched ``predict`` on user x all-track id
  pairs, a block of users at a time, then the same exclusion and selection.

Each method runs in its own spawned process so its peak RSS is its own.

Usage:
    .venv/bin/python scripts/bench_score.py                 # 100,000 x 50,000
    .venv/bin/python scripts/bench_score.py --users 20000   # quicker
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import numpy as np
import scipy.sparse as sp

COMPONENTS = 64
K = 10
SEEN_PER_USER = 20
CHUNK = 1024


def make_model(n_users: int, n_items: int, seed: int = 0):
    """Random user/item vectors (as ``RecModel.user_vectors`` builds them) and seen pairs."""
    rng = np.random.default_rng(seed)
    user_emb = rng.standard_normal((n_users, COMPONENTS), dtype=np.float32) * 0.1
    item_emb = rng.standard_normal((n_items, COMPONENTS), dtype=np.float32) * 0.1
    user_bias = rng.standard_normal(n_users, dtype=np.float32) * 0.1
    item_bias = rng.standard_normal(n_items, dtype=np.float32) * 0.1
    rows = np.repeat(np.arange(n_users), SEEN_PER_USER)
    cols = rng.integers(0, n_items, len(rows))
    seen = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                         shape=(n_users, n_items))
    seen.sum_duplicates()
    return user_emb, user_bias, item_emb, item_bias, seen


def _vectors(user_emb, user_bias, item_emb, item_bias):
    users = np.hstack([user_emb, user_bias[:, None], np.ones((len(user_emb), 1), np.float32)])
    items = np.hstack([item_emb, np.ones((len(item_emb), 1), np.float32), item_bias[:, None]])
    return users, items


def _mask(scores: np.ndarray, seen: sp.csr_matrix, start: int, stop: int) -> None:
    rows = np.repeat(np.arange(stop - start), np.diff(seen.indptr[start:stop + 1]))
    scores[rows, seen.indices[seen.indptr[start]:seen.indptr[stop]]] = -np.inf


def bare(n_users, n_items):
    ue, ub, ie, ib, _seen = make_model(n_users, n_items)
    users, items = _vectors(ue, ub, ie, ib)
    items_t = np.ascontiguousarray(items.T)
    t0 = time.perf_counter()
    for s in range(0, n_users, CHUNK):
        users[s:s + CHUNK] @ items_t
    return time.perf_counter() - t0, None


def plain(n_users, n_items):
    ue, ub, ie, ib, seen = make_model(n_users, n_items)
    users, items = _vectors(ue, ub, ie, ib)
    items_t = np.ascontiguousarray(items.T)
    out = np.empty((n_users, K), np.int64)
    t0 = time.perf_counter()
    for s in range(0, n_users, CHUNK):
        e = min(s + CHUNK, n_users)
        scores = users[s:e] @ items_t
        _mask(scores, seen, s, e)
        part = np.argpartition(-scores, K - 1, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        out[s:e] = np.take_along_axis(part, order, axis=1)
    return time.perf_counter() - t0, out[:2000]


def ours(n_users, n_items):
    from lakehouse.recsys.topk import top_k

    ue, ub, ie, ib, seen = make_model(n_users, n_items)
    users, items = _vectors(ue, ub, ie, ib)
    t0 = time.perf_counter()
    idx, _ = top_k(users, items, K, seen)
    return time.perf_counter() - t0, idx[:2000]


def lightfm_predict(n_users, n_items):
    from lightfm import LightFM

    from lakehouse.recsys.topk import default_threads

    ue, ub, ie, ib, seen = make_model(n_users, n_items)
    model = LightFM(no_components=COMPONENTS)
    model.user_embeddings, model.user_biases = ue, ub
    model.item_embeddings, model.item_biases = ie, ib
    for side in ("user", "item"):
        for suffix in ("gradients", "momentum"):
            setattr(model, f"{side}_embedding_{suffix}",
                    np.zeros_like(getattr(model, f"{side}_embeddings")))
            setattr(model, f"{side}_bias_{suffix}", np.zeros_like(getattr(model, f"{side}_biases")))
    block = 64  # users per predict() call: 64 x 50,000 pairs
    item_ids = np.arange(n_items, dtype=np.int32)
    out = np.empty((n_users, K), np.int64)
    threads = default_threads()
    t0 = time.perf_counter()
    for s in range(0, n_users, block):
        e = min(s + block, n_users)
        uids = np.repeat(np.arange(s, e, dtype=np.int32), n_items)
        scores = model.predict(uids, np.tile(item_ids, e - s), num_threads=threads)
        scores = scores.reshape(e - s, n_items)
        _mask(scores, seen, s, e)
        part = np.argpartition(-scores, K - 1, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        out[s:e] = np.take_along_axis(part, order, axis=1)
    return time.perf_counter() - t0, out[:2000]


METHODS = {"bare matmul": bare, "matmul + argpartition": plain, "lakehouse top_k": ours,
           "LightFM predict": lightfm_predict}


def _child(name, n_users, n_items, queue):
    seconds, sample = METHODS[name](n_users, n_items)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((seconds, rss_mib, sample))


def run(name, n_users, n_items):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, n_users, n_items, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--tracks", type=int, default=50_000)
    parser.add_argument("--skip-predict", action="store_true",
                        help="Skip LightFM predict (about 2 minutes at full size).")
    args = parser.parse_args()
    print(f"top-{K} of {args.users:,} users x {args.tracks:,} tracks, {COMPONENTS} components, "
          f"~{SEEN_PER_USER} seen tracks excluded per user")
    results = {}
    for name in METHODS:
        if name == "LightFM predict" and args.skip_predict:
            continue
        results[name] = run(name, args.users, args.tracks)
        seconds, rss, _ = results[name]
        print(f"  {name:24s} {seconds:8.2f} s   peak RSS {rss:7.0f} MiB", flush=True)
    ref = results["matmul + argpartition"][2]
    mine = results["lakehouse top_k"][2]
    # Random float scores have no ties, so every method must pick the same tracks.
    assert np.array_equal(ref, mine), "lakehouse top_k disagrees with argpartition"
    if "LightFM predict" in results:
        agree = (results["LightFM predict"][2] == mine).mean()
        print(f"  agreement with LightFM predict (first {len(mine):,} users): {agree:.4f}")
    t = results["lakehouse top_k"][0]
    print(f"lakehouse top_k: {results['bare matmul'][0] and t / results['bare matmul'][0]:.2f}x "
          "the bare product, "
          f"{results['matmul + argpartition'][0] / t:.2f}x faster than matmul + argpartition"
          + (f", {results['LightFM predict'][0] / t:.1f}x faster than LightFM predict"
             if "LightFM predict" in results else ""))


if __name__ == "__main__":
    main()

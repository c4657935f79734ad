"""The mock profile ``opaque``
    The realistic profile's users, tracks, sessions, timeline and defects, but taste that
    metadata does not reveal: every track belongs to one of a few dozen hidden taste
    clusters (latent factors, one-hot), drawn independently of its artist, genres, album
    and duration, with its own Zipf-like popularity; every user likes three hidden clusters
    (weights 0.6/0.3/0.1) drawn independently of their gender and stated favourite genre.
    A listened track comes from the user's clusters (55%, Zipf-like within a cluster), a
    few personal favourites from them (20%), hidden-popularity hits (15%) or anywhere
    (10%). Collaborative filtering can learn it; metadata only adds noise, which is what
    model selection must notice.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.mockapi.realistic import _realistic_universe
from lakehouse.mockapi.universe import Universe, _log_index, _rng

if TYPE_CHECKING:
    from lakehouse.mockapi.data import MockConfig


# Where an opaque listen comes from: the user's hidden clusters, personal favourites,
# hidden-popularity hits, anywhere.
OPAQUE_MIX = (0.55, 0.20, 0.15, 0.10)


def _opaque_universe(cfg: MockConfig) -> Universe:
    """The realistic universe with every listened track redrawn from hidden taste."""
    base = _realistic_universe(cfg)
    tracks, users, listens = base.tracks, base.users, base.listens
    n_users, n_tracks = len(users.ids), len(tracks.ids)
    rng = _rng(cfg.seed, 21)
    n_clusters = int(np.clip(n_tracks // 60, 4, 64))
    cluster = rng.integers(0, n_clusters, n_tracks)
    popularity = rng.lognormal(0.0, 1.0, n_tracks)
    by_cluster = np.lexsort((-popularity, cluster))
    c_count = np.bincount(cluster, minlength=n_clusters)
    c_start = np.concatenate([[0], np.cumsum(c_count)[:-1]])
    by_pop = np.argsort(-popularity, kind="stable")
    likes = np.stack([rng.permutation(n_clusters)[:3] for _ in range(n_users)]) \
        if n_users <= 5000 else rng.integers(0, n_clusters, (n_users, 3))
    n_fav = 8
    fav_c = likes[np.arange(n_users)[:, None], rng.choice(3, (n_users, n_fav), p=[.6, .3, .1])]
    favourites = by_cluster[c_start[fav_c] + _log_index(rng, c_count[fav_c], fav_c.size)
                            .reshape(fav_c.shape)]

    # Exact duplicate records must stay exact: draw once per distinct session.
    user_ids = listens.user_ids.fill_null(-1).to_numpy()
    lengths = pc.list_value_length(listens.items).fill_null(0).to_numpy()
    old = pc.list_flatten(listens.items).to_numpy()
    item_sum = np.bincount(np.repeat(np.arange(len(lengths)), lengths), weights=old,
                           minlength=len(lengths)).astype(np.int64)
    key = np.stack([listens.created, listens.updated, user_ids, lengths, item_sum], axis=1)
    _, first_row, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(users.ids)
    pos = np.clip(np.searchsorted(users.ids, user_ids, sorter=order), 0, n_users - 1)
    session_user = np.where(users.ids[order[pos]] == user_ids, order[pos],
                            rng.integers(0, n_users, len(user_ids)))
    # One draw per item of each distinct session; duplicates reuse their original's.
    src = first_row[inverse.ravel()]
    src_len = lengths[src]
    item_session = np.repeat(src, src_len)
    offsets_src = np.concatenate([[0], np.cumsum(lengths)])
    within = np.arange(len(item_session)) - np.repeat(np.cumsum(src_len) - src_len, src_len)
    draws = _opaque_draws(_rng(cfg.seed, 22), session_user, listens.created, lengths,
                          likes, favourites, by_cluster, c_start, c_count, by_pop,
                          tracks.created)
    picks = draws[offsets_src[item_session] + within]
    # Orphan track ids (a source defect) stay orphans.
    t_order = np.argsort(tracks.ids)
    t_pos = np.clip(np.searchsorted(tracks.ids, old, sorter=t_order), 0, n_tracks - 1)
    orphan = tracks.ids[t_order[t_pos]] != old
    new_ids = np.where(orphan, old, tracks.ids[picks])
    offsets = np.concatenate([[0], np.cumsum(src_len)]).astype(np.int32)
    items = pa.ListArray.from_arrays(pa.array(offsets), pa.array(new_ids, pa.int64()),
                                     mask=listens.items.is_null())
    return Universe(users=users, tracks=tracks, listens=dataclasses.replace(listens, items=items))


def _opaque_draws(rng: np.random.Generator, session_user: np.ndarray, when: np.ndarray,
                  lengths: np.ndarray, likes: np.ndarray, favourites: np.ndarray,
                  by_cluster: np.ndarray, c_start: np.ndarray, c_count: np.ndarray,
                  by_pop: np.ndarray, created: np.ndarray) -> np.ndarray:
    """Track indices for every item slot of every record, from each user's hidden taste."""
    item_session = np.repeat(np.arange(len(lengths)), lengths)
    user = session_user[item_session]
    n = len(user)
    mode = rng.random(n)
    edges = np.cumsum(OPAQUE_MIX)
    pick = rng.integers(0, len(created), n)               # anywhere
    m = mode < edges[0]
    c = likes[user[m], rng.choice(3, int(m.sum()), p=[.6, .3, .1])]
    pick[m] = by_cluster[c_start[c] + _log_index(rng, c_count[c], c.size)]
    m = (mode >= edges[0]) & (mode < edges[1])
    pick[m] = favourites[user[m], rng.integers(0, favourites.shape[1], int(m.sum()))]
    m = (mode >= edges[1]) & (mode < edges[2])
    pick[m] = by_pop[_log_index(rng, len(by_pop), int(m.sum()))]
    # Nobody listens to a track before its release: fall back to the most popular track of
    # the same hidden cluster that predates every session (or the oldest track).
    early = created[pick] > when[item_session]
    cluster_of = np.empty(len(created), np.int64)
    cluster_of[by_cluster] = np.repeat(np.arange(len(c_count)), c_count)
    old_enough = created[by_cluster] <= when.min()
    fallback = np.full(len(c_count), int(np.argmin(created)))
    for c in range(len(c_count)):
        members = by_cluster[c_start[c]:c_start[c] + c_count[c]]
        ok = members[old_enough[c_start[c]:c_start[c] + c_count[c]]]
        if len(ok):
            fallback[c] = ok[0]
    pick[early] = fallback[cluster_of[pick[early]]]
    return pick

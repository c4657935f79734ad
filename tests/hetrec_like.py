"""A seeded data set of the shape of a real public listening data set (hetrec-like).

The real one (kept aside, never downloaded): about 1,900 users, 17,600 artists served as
"tracks", 92,800 user-artist pairs, so ~49 distinct items per user, heavy-tailed popularity.
Served through the contract, each user has ONE ``listen_history`` record holding all of
their items, every record has the same ``created_at``/``updated_at`` (the export's time),
and metadata says nothing of taste: genre "unknown", one duration, random user gender and
favourite genre. Taste comes from hidden latent factors times a Zipf popularity.

Defects on purpose: some ids in ``items`` are not tracks (dangling), some lists repeat an
id, one user has an empty list, one a single item, one 300 items, one record has a null
``user_id`` and one null ``items``.

``write_dir`` writes the files ``lakehouse mock-api --data`` serves; ``tables`` gives them
as Arrow tables for :func:`lakehouse.mockapi.testing.running_mock_api`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from lakehouse.mockapi.data import SCHEMAS
from lakehouse.names import GENDERS, GENRES, LISTEN_HISTORY, TRACKS, USERS

FULL = {"users": 1892, "items": 17632}
STAMP = "2011-05-01T00:00:00.000000"


def records(users: int = 1892, items: int = 17632, *, per_user: float = 49.0,
            factors: int = 40, zipf: float = 0.8, taste: float = 0.05, mix: float = 0.85,
            seed: int = 0) -> dict[str, list[dict]]:
    """The three endpoints' records, in the contract's JSON shape.

    Args:
        users: Number of users (each gets one listen record).
        items: Number of tracks in ``/tracks``.
        per_user: Mean number of distinct items in a user's list (log-normal).
        factors: Number of hidden taste clusters (each item is in one).
        zipf: Exponent of the popularity law (rank ** -zipf), global and within a cluster.
        taste: Dirichlet concentration of a user's cluster weights (smaller: fewer).
        mix: Share of a user's items drawn from their clusters (the rest by popularity).
        seed: Seed of everything.
    """
    rng = np.random.default_rng(seed)
    track_ids = rng.permutation(np.arange(1, items * 2 + 1))[:items]  # gaps: dangling ids
    free_ids = np.setdiff1d(np.arange(1, items * 2 + 1), track_ids)
    popularity = 1.0 / np.arange(1, items + 1) ** zipf
    rng.shuffle(popularity)
    # Each item belongs to one hidden taste cluster; a user likes a few clusters.
    cluster = rng.integers(factors, size=items)
    in_cluster = np.zeros((factors, items))
    in_cluster[cluster, np.arange(items)] = popularity
    in_cluster /= in_cluster.sum(axis=1, keepdims=True)
    user_f = rng.dirichlet(np.full(factors, taste), size=users)
    sizes = np.clip(np.round(rng.lognormal(np.log(per_user) - 0.3, 0.8, users)), 2, 300)
    listens = []
    for u in range(users):
        score = mix * (user_f[u] @ in_cluster) + (1 - mix) * popularity / popularity.sum()
        chosen = rng.choice(items, size=int(sizes[u]), replace=False, p=score / score.sum())
        # The export's order says nothing of time: shuffled, not in draw order.
        ids = track_ids[rng.permutation(chosen)].tolist()
        if rng.random() < 0.05:
            ids.append(int(rng.choice(free_ids)))       # dangling
        if rng.random() < 0.05:
            ids.insert(int(rng.integers(len(ids))), ids[0])  # repeated within the list
        listens.append(ids)
    listens[0], listens[1] = [], listens[1][:1]
    listens[2] = track_ids[rng.choice(items, 300, replace=False)].tolist()
    user_ids = (np.arange(users) + 1000).tolist()
    history = [_listen(uid, ids) for uid, ids in zip(user_ids, listens, strict=True)]
    history += [_listen(None, listens[5][:3]), _listen(user_ids[6], None)]
    return {USERS: [_user(uid, rng) for uid in user_ids],
            TRACKS: [_track(int(t)) for t in track_ids],
            LISTEN_HISTORY: history}


def _listen(user_id, ids) -> dict:
    return {"user_id": user_id, "items": ids, "created_at": STAMP, "updated_at": STAMP}


def _user(uid: int, rng: np.random.Generator) -> dict:
    return {"id": uid, "first_name": f"f{uid}", "last_name": f"l{uid}",
            "email": f"u{uid}@example.org", "gender": GENDERS[rng.integers(len(GENDERS))],
            "favorite_genres": GENRES[rng.integers(len(GENRES))],
            "created_at": STAMP, "updated_at": STAMP}


def _track(tid: int) -> dict:
    return {"id": tid, "name": f"artist {tid}", "artist": f"artist {tid}",
            "songwriters": "unknown", "duration": "00:00", "genres": "unknown",
            "album": "unknown", "created_at": STAMP, "updated_at": STAMP}


def tables(**kwargs) -> dict[str, pa.Table]:
    """:func:`records` as Arrow tables in the contract's schemas."""
    return {e: pa.Table.from_pylist(rows, schema=SCHEMAS[e])
            for e, rows in records(**kwargs).items()}


def write_dir(folder: Path, **kwargs) -> Path:
    """:func:`records` as ``<endpoint>.jsonl`` files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for endpoint, rows in records(**kwargs).items():
        with (folder / f"{endpoint}.jsonl").open("w") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
    return folder

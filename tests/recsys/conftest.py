"""Tiny in-code recommender lakes: a strong genre taste, listens spread over days."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.lake import Lake

GENRES = ("Rock", "Jazz", "Pop", "Metal")
START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
DAYS = 10
LAST_DAY = (START + dt.timedelta(days=DAYS - 1)).date()
TS = pa.timestamp("us", tz="UTC")


def write_tiny_lake(root: Path, *, users: int = 120, tracks: int = 90, listens: int = 3000,
                    seed: int = 1, taste: float = 0.9) -> Lake:
    """Users listen to their favourite genre with probability ``taste``."""
    rng = np.random.default_rng(seed)
    lake = Lake(root)
    user_ids = np.arange(1, users + 1, dtype=np.int64) * 10
    track_ids = np.arange(1, tracks + 1, dtype=np.int64) * 7
    user_genre = rng.integers(0, len(GENRES), users)
    track_genre = np.arange(tracks) % len(GENRES)
    popularity = 1.0 / np.arange(1, tracks + 1) ** 0.6
    u = rng.integers(0, users, listens)
    in_genre = rng.random(listens) < taste
    t = np.empty(listens, dtype=np.int64)
    for g in range(len(GENRES)):
        pool = np.flatnonzero(track_genre == g)
        p = popularity[pool] / popularity[pool].sum()
        sel = in_genre & (user_genre[u] == g)
        t[sel] = rng.choice(pool, sel.sum(), p=p)
    other = ~in_genre
    t[other] = rng.choice(tracks, other.sum(), p=popularity / popularity.sum())
    when = [START + dt.timedelta(seconds=int(s)) for s in
            np.sort(rng.integers(0, DAYS * 86400, listens))]
    lake.write(names.STD_LISTENS, pa.table({
        "record_id": pa.array([f"r{i}" for i in range(listens)]),
        names.USER_ID: pa.array(user_ids[u]), names.TRACK_ID: pa.array(track_ids[t]),
        "position": pa.array(np.zeros(listens, np.int64)),
        "created_at": pa.array(when, TS), "updated_at": pa.array(when, TS),
    }), mode="replace")
    pairs = {}
    for uu, tt, w in zip(user_ids[u].tolist(), track_ids[t].tolist(), when, strict=True):
        n, first, last = pairs.get((uu, tt), (0, w, w))
        pairs[(uu, tt)] = (n + 1, min(first, w), max(last, w))
    lake.write(names.CONS_INTERACTIONS, pa.table({
        names.USER_ID: pa.array([p[0] for p in pairs], pa.int64()),
        names.TRACK_ID: pa.array([p[1] for p in pairs], pa.int64()),
        "listens": pa.array([v[0] for v in pairs.values()], pa.int64()),
        "first_listen_at": pa.array([v[1] for v in pairs.values()], TS),
        "last_listen_at": pa.array([v[2] for v in pairs.values()], TS),
    }), mode="replace")
    lake.write(names.CONS_USER_FEATURES, pa.table({
        names.USER_ID: pa.array(user_ids),
        "favorite_genre": pa.array([GENRES[g] for g in user_genre]),
        "gender": pa.array(["Female" if i % 2 else "Male" for i in range(users)]),
        "created_at": pa.array([START] * users, TS),
    }), mode="replace")
    lake.write(names.CONS_TRACK_FEATURES, pa.table({
        names.TRACK_ID: pa.array(track_ids),
        "genres": pa.array([[GENRES[g]] for g in track_genre], pa.list_(pa.string())),
        "artist": pa.array([f"artist {i % 30}" for i in range(tracks)]),
        "album": pa.array([f"album {i}" for i in range(tracks)]),
        "duration_bucket": pa.array(["3-5 min"] * tracks),
    }), mode="replace")
    return lake


@pytest.fixture(scope="session")
def tiny_lake_root(tmp_path_factory) -> Path:
    """A tiny recommender lake, built once; copy it before writing."""
    root = tmp_path_factory.mktemp("tiny") / "lake"
    write_tiny_lake(root)
    return root


@pytest.fixture
def tiny_settings(tiny_lake_root, tmp_path) -> Settings:
    """Settings of a private copy of the tiny lake, with a quick search.

    One trial per family, a budget that never cuts it short, and one training
    thread, so results do not depend on how busy the machine is.
    """
    shutil.copytree(tiny_lake_root, tmp_path / "lake")
    return Settings.load(env={}, lake=tmp_path / "lake", epochs=15, components=8,
                         train_trials=1, train_budget=600, train_threads=1)

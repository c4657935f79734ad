"""The mock profile ``reference``
    Reproduces the reference server's distributions relative to its "now" (the window
    end): ids unique in 1..100000 (1..10*n above that), ``created_at`` uniform over the last
    two years, ``updated_at`` drawn independently over the last year (so it can be earlier
    than ``created_at``), track ``name``/``genres``/``album`` single random English words,
    favourite genre and gender uniform, and exactly one listen record per user (in user
    order) with 5 distinct track ids of the whole catalogue; its ``created_at`` is uniform
    over the two years and ``updated_at`` between it and "now". ``listens`` is ignored. A
    user (and their record) or track appears once its ``created_at`` is reached; the record
    and entity timestamps are the reference's, so before the window end some lie after D,
    and a record may name a track not created yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from lakehouse.mockapi.universe import (
    _US_PER_DAY,
    Universe,
    _day_us,
    _distinct_picks,
    _emails,
    _Entities,
    _join,
    _Listens,
    _pick,
    _rng,
    _uniform_us,
    _words,
)
from lakehouse.mockapi.words import _DURATIONS, FIRST_NAMES, LAST_NAMES, WORDS
from lakehouse.names import GENDERS, GENRES

if TYPE_CHECKING:
    from lakehouse.mockapi.data import MockConfig


def _reference_universe(cfg: MockConfig) -> Universe:
    now = _day_us(cfg.end) + _US_PER_DAY - 1
    two_years, one_year = 730 * _US_PER_DAY, 365 * _US_PER_DAY
    n_users, n_tracks = cfg.users, cfg.tracks
    words = _words(WORDS)

    def ids(rng: np.random.Generator, n: int) -> np.ndarray:
        high = 100_000 if n <= 100_000 else 10 * n
        return (rng.choice(high, size=n, replace=False) + 1).astype(np.int64)

    def person(rng: np.random.Generator, n: int) -> pa.Array:
        return _join(_pick(_words(FIRST_NAMES), rng.integers(0, len(FIRST_NAMES), n)),
                     _pick(_words(LAST_NAMES), rng.integers(0, len(LAST_NAMES), n)), sep=" ")

    rng = _rng(cfg.seed, 11)
    t_created = _uniform_us(rng, now - two_years, now, n_tracks)
    mm = rng.integers(0, 3600, n_tracks)
    tracks = _Entities(
        ids=ids(rng, n_tracks),
        created=t_created,
        base_updated=_uniform_us(rng, now - one_year, now, n_tracks),
        update_time=np.full(n_tracks, np.iinfo(np.int64).max),
        base={
            "name": _pick(words, rng.integers(0, len(WORDS), n_tracks)),
            "artist": person(rng, n_tracks),
            "songwriters": person(rng, n_tracks),
            "duration": _pick(_words(_DURATIONS), mm),
            "genres": _pick(words, rng.integers(0, len(WORDS), n_tracks)),
            "album": _pick(words, rng.integers(0, len(WORDS), n_tracks)),
        },
        changed={},
    )

    rng = _rng(cfg.seed, 12)
    first = _pick(_words(FIRST_NAMES), rng.integers(0, len(FIRST_NAMES), n_users))
    last = _pick(_words(LAST_NAMES), rng.integers(0, len(LAST_NAMES), n_users))
    u_created = _uniform_us(rng, now - two_years, now, n_users)
    users = _Entities(
        ids=ids(rng, n_users),
        created=u_created,
        base_updated=_uniform_us(rng, now - one_year, now, n_users),
        update_time=np.full(n_users, np.iinfo(np.int64).max),
        base={
            "first_name": first,
            "last_name": last,
            "email": _emails(rng, first, last, n_users),
            "gender": _pick(_words(GENDERS), rng.integers(0, len(GENDERS), n_users)),
            "favorite_genres": _pick(_words(GENRES), rng.integers(0, len(GENRES), n_users)),
        },
        changed={},
    )

    rng = _rng(cfg.seed, 13)
    picks = _distinct_picks(rng, n_users, n_tracks, 5)
    l_created = _uniform_us(rng, now - two_years, now, n_users)
    l_updated = _uniform_us(rng, l_created, now, n_users)
    listens = _Listens(
        user_ids=pa.array(users.ids, pa.int64()),
        items=pa.ListArray.from_arrays(pa.array(np.arange(n_users + 1, dtype=np.int32) * 5),
                                       pa.array(tracks.ids[picks.ravel()], pa.int64())),
        created=l_created,
        updated=l_updated,
        visible_from=u_created,
    )
    return Universe(users=users, tracks=tracks, listens=listens)

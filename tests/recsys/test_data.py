"""Inputs from the lake and the honest time split."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from lakehouse import names
from lakehouse.errors import ModelError
from lakehouse.lake import Lake
from lakehouse.recsys.data import (
    MIN_EVAL_USERS,
    item_tokens,
    load_inputs,
    load_scoring_inputs,
    split,
    user_tokens,
)

from .conftest import LAST_DAY, START, TS


def test_load_inputs_reads_listens_and_metadata(tiny_settings):
    inputs = load_inputs(Lake(tiny_settings.lake), LAST_DAY)
    assert len(inputs.ev_user) == 3000 and inputs.n_users == 120 and inputs.n_items == 90
    assert inputs.user_meta[10][0].startswith("favorite_genre=")
    assert any(t.startswith("artist=") for t in inputs.item_meta[7])
    assert inputs.lineage[names.STD_LISTENS]["version"] == 0
    assert inputs.lineage[names.STD_LISTENS]["rows"] == 3000


def test_load_inputs_stops_at_the_as_of_date(tiny_settings):
    lake = Lake(tiny_settings.lake)
    early = load_inputs(lake, START.date())
    assert 0 < len(early.ev_user) < 3000
    end = dt.datetime(2026, 10, 2, tzinfo=dt.UTC).timestamp() * 1e6
    assert early.ev_time.max() < end


def test_missing_tables_are_a_clear_error(lake_settings):
    lake = Lake(lake_settings.lake)
    with pytest.raises(ModelError, match="run 'lakehouse build' first"):
        load_inputs(lake)
    with pytest.raises(ModelError, match="run 'lakehouse build' first"):
        load_scoring_inputs(lake)


def test_time_split_never_trains_on_listens_after_the_cutoff(tiny_settings):
    inputs = load_inputs(Lake(tiny_settings.lake), LAST_DAY)
    data = split(inputs, 0.2)
    assert data.method == "time_cutoff"
    cutoff_us = data.cutoff.timestamp() * 1e6
    after = inputs.ev_time > cutoff_us
    assert 0.15 < after.mean() < 0.25
    # Training counts are exactly the listens up to the cutoff.
    assert data.train.sum() == (~after).sum()
    # Holdout pairs are first listened after the cutoff and never in training.
    assert data.holdout.multiply(data.train).nnz == 0
    later = set(zip(inputs.ev_user[after].tolist(), inputs.ev_item[after].tolist(), strict=True))
    rows, cols = data.holdout.nonzero()
    assert set(zip(rows.tolist(), cols.tolist(), strict=True)) <= later
    assert len(data.eval_users(True)) >= MIN_EVAL_USERS
    assert data.describe()["holdout_pairs"] == data.holdout.nnz


def test_identical_timestamps_fall_back_to_a_random_share_of_each_users_listens(lake_settings):
    """One timestamp for all: list positions say nothing of time (an export may sort them)."""
    lake = Lake(lake_settings.lake)
    n_users, per_user = 30, 5
    users = np.repeat(np.arange(n_users), per_user)
    tracks = np.tile(np.arange(per_user), n_users) + users % 3
    lake.write(names.STD_LISTENS, pa.table({
        names.USER_ID: pa.array(users, pa.int64()), names.TRACK_ID: pa.array(tracks, pa.int64()),
        "position": pa.array(np.tile(np.arange(per_user), n_users), pa.int64()),
        "created_at": pa.array([START] * len(users), TS),
    }))
    data = split(load_inputs(lake), 0.2)
    assert data.method == "per_user_latest" and data.cutoff is None
    # One track held out per user, four kept for training.
    assert (np.diff(data.holdout.indptr) == 1).all()
    assert (np.diff(data.train.indptr) == 4).all()
    assert data.holdout.multiply(data.train).nnz == 0
    inputs = load_inputs(lake)
    position = inputs.items[data.holdout.nonzero()[1]] - np.arange(n_users) % 3
    # Not the last position for everyone: every position is held out for someone...
    assert set(position.tolist()) == set(range(per_user))
    # ... and the same one on every run (seeded).
    again = split(load_inputs(lake), 0.2)
    assert (again.holdout != data.holdout).nnz == 0


@pytest.mark.parametrize("share", [0, 1, -0.5, 2])
def test_bad_holdout_share(tiny_settings, share):
    with pytest.raises(ModelError, match="holdout share"):
        split(load_inputs(Lake(tiny_settings.lake)), share)


def test_tokens_skip_nulls():
    users = pa.table({names.USER_ID: [1, 2], "favorite_genre": ["Rock", None],
                      "gender": [None, "Male"]})
    assert user_tokens(users) == {1: ["favorite_genre=Rock"], 2: ["gender=Male"]}
    tracks = pa.table({names.TRACK_ID: [5], "genres": [["Rock", "Indie"]], "artist": ["A"],
                       "duration_bucket": [None]})
    assert item_tokens(tracks) == {5: ["genre=Rock", "genre=Indie", "artist=A"]}


def test_scoring_inputs_mark_every_listened_pair_as_seen(tiny_settings):
    lake = Lake(tiny_settings.lake)
    inputs = load_scoring_inputs(lake)
    pairs = lake.to_arrow(names.CONS_INTERACTIONS)
    assert inputs.seen.nnz == pairs.num_rows
    assert set(inputs.versions) == {names.CONS_INTERACTIONS, names.CONS_USER_FEATURES,
                                    names.CONS_TRACK_FEATURES}

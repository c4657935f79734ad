"""Batch scoring into consumption.recommendations."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pytest

from lakehouse import names
from lakehouse.errors import ModelError, ValidationError
from lakehouse.lake import Lake
from lakehouse.recsys.data import load_scoring_inputs
from lakehouse.recsys.registry import Registry
from lakehouse.recsys.score import check_recommendations, recommend
from lakehouse.recsys.train import train

from .conftest import GENRES, LAST_DAY, START, TS


@pytest.fixture
def champion(tiny_settings):
    train(tiny_settings, date=LAST_DAY, promote="force")
    return tiny_settings


def _recs(settings) -> pa.Table:
    return Lake(settings.lake).to_arrow(names.CONS_RECOMMENDATIONS)


def test_k_ranked_unseen_tracks_per_user(champion):
    record = recommend(champion, k=7, date=LAST_DAY)
    assert record.ok and record.records == 120 * 7 and record.table_version == 0
    recs = _recs(champion).to_pandas()
    assert len(recs) == 120 * 7
    ranks = recs.groupby(names.USER_ID)["rank"].apply(sorted)
    assert all(r == list(range(1, 8)) for r in ranks)
    assert recs["model_version"].unique().tolist() == ["v0001"]
    assert (recs[names.SCORE_DATE] == LAST_DAY).all()
    versions = json.loads(recs["input_versions"].iat[0])
    assert versions[names.CONS_INTERACTIONS] == 0
    seen = Lake(champion.lake).to_arrow(names.CONS_INTERACTIONS).to_pandas()
    both = recs.merge(seen, on=[names.USER_ID, names.TRACK_ID])
    assert both.empty
    # Scores decrease with rank.
    assert (recs.sort_values([names.USER_ID, "rank"]).groupby(names.USER_ID)["score"]
            .apply(lambda s: s.is_monotonic_decreasing)).all()
    (run,) = [r for r in Lake(champion.lake).to_arrow(names.META_RUNS).to_pylist()
              if r["pipeline"] == "recommend"]
    assert run["status"] == names.SUCCESS and run["target"] == names.CONS_RECOMMENDATIONS
    assert json.loads(run["details"])["model_version"] == "v0001"


def test_rescoring_a_date_replaces_its_partition_only(champion):
    recommend(champion, date=LAST_DAY)
    recommend(champion, date=LAST_DAY - dt.timedelta(days=1))
    recommend(champion, date=LAST_DAY)
    recs = _recs(champion).to_pandas()
    assert recs.groupby(names.SCORE_DATE).size().tolist() == [1200, 1200]


def test_cold_start_user_gets_recommendations_from_features(champion):
    lake = Lake(champion.lake)
    new_users = pa.table({names.USER_ID: pa.array([99991, 99992], pa.int64()),
                          "favorite_genre": ["Jazz", "Metal"], "gender": ["Male", "Female"],
                          "created_at": pa.array([START, START], TS)})
    lake.write(names.CONS_USER_FEATURES, new_users)
    record = recommend(champion, date=LAST_DAY)
    assert record.details["cold_start_users"] == 2
    recs = _recs(champion).to_pandas()
    tracks = lake.to_arrow(names.CONS_TRACK_FEATURES).to_pandas()
    genre = dict(zip(tracks[names.TRACK_ID], tracks["genres"].map(lambda g: g[0]), strict=True))
    for user, fav in ((99991, "Jazz"), (99992, "Metal")):
        mine = recs[recs[names.USER_ID] == user]
        assert mine["rank"].tolist() == list(range(1, 11))
        # The taste comes through the favourite-genre feature alone.
        assert (mine[names.TRACK_ID].map(genre) == fav).mean() >= 0.8, GENRES


def test_no_champion_is_a_clear_error_and_a_failed_run(tiny_settings):
    with pytest.raises(ModelError, match="no champion model yet; run 'lakehouse train'"):
        recommend(tiny_settings, date=LAST_DAY)
    runs = Lake(tiny_settings.lake).to_arrow(names.META_RUNS).to_pylist()
    assert [(r["pipeline"], r["status"]) for r in runs] == [("recommend", names.FAILED)]


def test_tampered_champion_is_refused(champion):
    info = Registry(champion.models_dir).get("champion")
    data = bytearray(info.artifact.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    info.artifact.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its recorded sha256"):
        recommend(champion, date=LAST_DAY)
    assert not Lake(champion.lake).exists(names.CONS_RECOMMENDATIONS)


def test_checks_reject_seen_tracks_and_bad_counts(champion):
    recommend(champion, k=3, date=LAST_DAY)
    lake = Lake(champion.lake)
    good = _recs(champion)
    inputs = load_scoring_inputs(lake, LAST_DAY)
    check_recommendations(good, 3, inputs)
    frame = good.to_pandas()
    seen = lake.to_arrow(names.CONS_INTERACTIONS).to_pandas()
    u, t = seen[names.USER_ID].iat[0], seen[names.TRACK_ID].iat[0]
    bad = frame.copy()
    bad.loc[(bad[names.USER_ID] == u) & (bad["rank"] == 1), names.TRACK_ID] = t
    with pytest.raises(ValidationError, match="already listened"):
        check_recommendations(pa.Table.from_pandas(bad, schema=good.schema), 3, inputs)
    short = pa.Table.from_pandas(frame[frame["rank"] < 3], schema=good.schema)
    with pytest.raises(ValidationError, match="expected 3"):
        check_recommendations(short, 3, inputs)
    dup = frame.copy()
    dup.loc[dup["rank"] == 2, "rank"] = 1
    with pytest.raises(ValidationError, match="failed its schema"):
        check_recommendations(pa.Table.from_pandas(dup, schema=good.schema), 3, inputs)
    nan = frame.copy()
    nan["score"] = np.float32("nan")
    with pytest.raises(ValidationError, match="failed its schema"):
        check_recommendations(pa.Table.from_pandas(nan, schema=good.schema), 3, inputs)

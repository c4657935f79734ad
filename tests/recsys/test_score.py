"""Batch scoring into consumption.recommendations."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import scipy.sparse as sp

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.errors import ModelError, ValidationError
from lakehouse.lake import Lake
from lakehouse.recsys.data import load_inputs, load_scoring_inputs
from lakehouse.recsys.families import Config
from lakehouse.recsys.registry import Registry
from lakehouse.recsys.score import (
    check_recommendations,
    recommend,
    recommendations_table,
    score_users,
)
from lakehouse.recsys.train import refit, train

from .conftest import GENRES, LAST_DAY, START, TS, write_tiny_lake


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


@pytest.mark.slow
def test_rescoring_a_date_replaces_its_partition_only(champion):
    recommend(champion, date=LAST_DAY)
    recommend(champion, date=LAST_DAY - dt.timedelta(days=1))
    recommend(champion, date=LAST_DAY)
    recs = _recs(champion).to_pandas()
    assert recs.groupby(names.SCORE_DATE).size().tolist() == [1200, 1200]


def _register_routed(settings, warm: Config, cold: Config | None) -> str:
    """Fit and promote a bundle of ``warm`` and ``cold`` on the whole tiny lake."""
    inputs = load_inputs(Lake(settings.lake))
    bundle = refit(warm, cold, inputs, threads=1)
    registry = Registry(settings.models_dir)
    info = registry.save(bundle.to_arrays(), {"params": bundle.params(), "metrics": {}})
    registry.promote(info.version, "test")
    return info.version


def test_cold_start_users_get_the_cold_route_through_their_features(tiny_settings):
    cold = Config("lightfm", {"components": 8, "epochs": 15, "features": "user",
                              "meta_weight": 1.0, "seed": 1})
    _register_routed(tiny_settings, Config("als", {"factors": 8, "iterations": 5}), cold)
    lake = Lake(tiny_settings.lake)
    new_users = pa.table({names.USER_ID: pa.array([99991, 99992], pa.int64()),
                          "favorite_genre": ["Jazz", "Metal"], "gender": ["Male", "Female"],
                          "created_at": pa.array([START, START], TS)})
    lake.write(names.CONS_USER_FEATURES, new_users)
    record = recommend(tiny_settings, date=LAST_DAY)
    assert record.details["cold_start_users"] == 2
    assert record.details["routes"] == {"warm:als": 120, "cold:lightfm+user": 2}
    recs = _recs(tiny_settings).to_pandas()
    assert set(recs.loc[recs[names.USER_ID] > 99990, "route"]) == {"cold:lightfm+user"}
    assert set(recs.loc[recs[names.USER_ID] < 99990, "route"]) == {"warm:als"}
    tracks = lake.to_arrow(names.CONS_TRACK_FEATURES).to_pandas()
    genre = dict(zip(tracks[names.TRACK_ID], tracks["genres"].map(lambda g: g[0]), strict=True))
    for user, fav in ((99991, "Jazz"), (99992, "Metal")):
        mine = recs[recs[names.USER_ID] == user]
        assert mine["rank"].tolist() == list(range(1, 11))
        # The taste comes through the favourite-genre feature alone.
        assert (mine[names.TRACK_ID].map(genre) == fav).mean() >= 0.8, GENRES


def test_a_recent_popularity_champion_ranks_the_scoring_days_listens(tiny_settings):
    # Trained on the tiny lake; then, after training, 30 new listeners all play one rarely
    # played track on a later day. Scoring recomputes the counts from the interactions it
    # scores with, so that track leads every list (a ranking frozen at training would not
    # even have it in the top 10).
    version = _register_routed(tiny_settings, Config("recent_popularity", {"days": 1.0}),
                               None)
    lake = Lake(tiny_settings.lake)
    frozen = Registry(tiny_settings.models_dir).load_bundle(version).warm
    track_ids = np.sort(lake.to_arrow(names.CONS_TRACK_FEATURES)
                        .column(names.TRACK_ID).to_numpy())
    counts = frozen.item_vectors(track_ids, {})[:, 0]
    rare = int(track_ids[np.argsort(counts)[len(counts) // 4]])
    assert rare not in track_ids[np.argsort(-counts)[:10]]
    later = dt.datetime.combine(LAST_DAY + dt.timedelta(days=3), dt.time(12), tzinfo=dt.UTC)
    listeners = list(range(5000, 5030))
    lake.write(names.CONS_INTERACTIONS, pa.table({
        names.USER_ID: pa.array(listeners, pa.int64()),
        names.TRACK_ID: pa.array([rare] * 30, pa.int64()),
        "listens": pa.array([1] * 30, pa.int64()),
        "first_listen_at": pa.array([later] * 30, TS),
        "last_listen_at": pa.array([later] * 30, TS)}))
    heard = lake.to_arrow(names.CONS_INTERACTIONS).to_pandas()
    heard_rare = set(heard.loc[heard[names.TRACK_ID] == rare, names.USER_ID])
    record = recommend(tiny_settings, date=LAST_DAY + dt.timedelta(days=3))
    assert record.details["refreshed_on_scoring_day"] == ["warm:recent_popularity"]
    recs = _recs(tiny_settings).to_pandas()
    first = recs[(recs["rank"] == 1) & ~recs[names.USER_ID].isin(heard_rare)]
    assert len(first) >= 60 and (first[names.TRACK_ID] == rare).all()


def test_listens_stamped_after_the_date_are_still_never_recommended(tmp_path):
    # A source a day ahead (another time zone): every listen is later than --date.
    root = tmp_path / "lake"
    write_tiny_lake(root)
    lake = Lake(root)
    for name, cols in ((names.STD_LISTENS, ("created_at", "updated_at")),
                       (names.CONS_INTERACTIONS, ("first_listen_at", "last_listen_at"))):
        table = lake.to_arrow(name)
        for col in cols:
            later = pc.add(table.column(col), pa.scalar(dt.timedelta(days=40)))
            table = table.set_column(table.schema.get_field_index(col), col, later)
        lake.write(name, table, mode="replace")
    settings = Settings.load(env={}, lake=root, train_trials=1, train_threads=1,
                             epochs=10, components=8)
    train(settings, date=LAST_DAY)
    record = recommend(settings, k=10, date=LAST_DAY)
    assert record.records == 1200
    recs = _recs(settings).to_pandas()
    heard = lake.to_arrow(names.CONS_INTERACTIONS).to_pandas()
    assert recs.merge(heard, on=[names.USER_ID, names.TRACK_ID]).empty


def test_the_check_rereads_the_interactions_instead_of_trusting_the_mask(champion):
    lake = Lake(champion.lake)
    inputs = load_scoring_inputs(lake)
    # A scorer whose mask forgot every listen: its own check would pass.
    blind = dataclasses.replace(inputs, seen=sp.csr_matrix(inputs.seen.shape, dtype=np.float32))
    model = Registry(champion.models_dir).load_bundle("champion")
    idx, scores, route, route_names = score_users(model, blind, 10)
    table = recommendations_table(blind, idx, scores, LAST_DAY, "v0001", route, route_names)
    with pytest.raises(ValidationError, match="already listened"):
        check_recommendations(table, 10, lake, blind.users, blind.items)
    assert not lake.exists(names.CONS_RECOMMENDATIONS)


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
    inputs = load_scoring_inputs(lake)

    def check(table):
        check_recommendations(table, 3, lake, inputs.users, inputs.items)

    check(good)
    frame = good.to_pandas()
    seen = lake.to_arrow(names.CONS_INTERACTIONS).to_pandas()
    u, t = seen[names.USER_ID].iat[0], seen[names.TRACK_ID].iat[0]
    bad = frame.copy()
    bad.loc[(bad[names.USER_ID] == u) & (bad["rank"] == 1), names.TRACK_ID] = t
    with pytest.raises(ValidationError, match="already listened"):
        check(pa.Table.from_pandas(bad, schema=good.schema))
    short = pa.Table.from_pandas(frame[frame["rank"] < 3], schema=good.schema)
    with pytest.raises(ValidationError, match="expected 3"):
        check(short)
    dup = frame.copy()
    dup.loc[dup["rank"] == 2, "rank"] = 1
    with pytest.raises(ValidationError, match="failed its schema"):
        check(pa.Table.from_pandas(dup, schema=good.schema))
    nan = frame.copy()
    nan["score"] = np.float32("nan")
    with pytest.raises(ValidationError, match="failed its schema"):
        check(pa.Table.from_pandas(nan, schema=good.schema))

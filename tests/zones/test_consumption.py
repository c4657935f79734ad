"""Consumption views on tiny standardized tables."""

from __future__ import annotations

import datetime as dt

import ibis
import pyarrow as pa
import pytest

from lakehouse import names
from lakehouse.zones import consumption as cons
from lakehouse.zones import standardized as std
from lakehouse.zones.base import BuildContext, utc_date
from tests.zones.conftest import DAY1, listen, track, user

END = dt.date(2026, 10, 4)


def ts(day: int, hour: int = 12) -> str:
    return f"2026-10-{day:02d}T{hour:02d}:00:00"


@pytest.fixture
def zone(raw):
    users = std.users(raw(names.RAW_USERS, (DAY1, [
        user(1, created_at=ts(1), updated_at=ts(1)),
        user(2, created_at=ts(3), updated_at=ts(3), favorite_genres="jazz", gender="male"),
        user(3, created_at=ts(9), updated_at=ts(9)),  # created after the build date
    ])))
    tracks = std.tracks(raw(names.RAW_TRACKS, (DAY1, [
        track(10, created_at="2026-09-01T00:00:00", duration="02:59"),
        track(11, created_at=ts(2), duration="03:00", genres="Pop, Rock"),
        track(12, created_at=ts(2), duration="09:00"),
        track(13, created_at=ts(2), duration="??"),
    ])))
    history = std.listen_history(raw(names.RAW_LISTEN_HISTORY, (DAY1, [
        listen(1, [10, 11, 10], created_at=ts(2, 8)),
        listen(1, [10], created_at=ts(3, 9)),
        listen(2, [11, 12], created_at=ts(3, 10)),
    ])))
    return users, tracks, std.listens(history, users, tracks)


def test_interactions_count_listens_per_user_and_track(zone):
    _, _, listens = zone
    out = cons.interactions(listens).order_by(["user_id", "track_id"]).to_pyarrow().to_pylist()
    assert [(r["user_id"], r["track_id"], r["listens"]) for r in out] == [
        (1, 10, 3), (1, 11, 1), (2, 11, 1), (2, 12, 1)]
    first = out[0]
    assert first["first_listen_at"] == dt.datetime(2026, 10, 2, 8, tzinfo=dt.UTC)
    assert first["last_listen_at"] == dt.datetime(2026, 10, 3, 9, tzinfo=dt.UTC)


def test_features(zone):
    users, tracks, _ = zone
    uf = cons.user_features(users).order_by("user_id").to_pyarrow().to_pylist()
    assert [(r["user_id"], r["favorite_genre"], r["gender"]) for r in uf][:2] == [
        (1, "Rock", "Female"), (2, "Jazz", "Male")]
    tf = cons.track_features(tracks).order_by("track_id").to_pyarrow().to_pylist()
    assert [r["duration_bucket"] for r in tf] == ["0-3m", "3-5m", "8m+", "unknown"]
    assert tf[1]["genres"] == ["Pop", "Rock"]


def test_daily_kpis(zone):
    users, tracks, listens = zone
    out = cons.daily_kpis(users, tracks, listens, end=END, days=4).to_pyarrow().to_pylist()
    assert [r["date"] for r in out] == [dt.date(2026, 10, d) for d in (1, 2, 3, 4)]
    cols = ["total_users", "new_users", "total_tracks", "new_tracks", "listens",
            "active_listeners"]
    assert [[r[c] for c in cols] for r in out] == [
        [1, 1, 1, 0, 0, 0],
        [1, 0, 4, 3, 3, 1],
        [2, 1, 4, 0, 3, 2],
        [2, 0, 4, 0, 0, 0],
    ]
    # Listened tracks so far / users who have listened so far.
    assert [r["avg_listen_history_size"] for r in out] == [None, 3.0, 3.0, 3.0]


def test_daily_kpis_window_counts_history_before_it(zone):
    users, tracks, listens = zone
    [day] = cons.daily_kpis(users, tracks, listens, end=END, days=1).to_pyarrow().to_pylist()
    assert (day["date"], day["total_users"], day["total_tracks"]) == (END, 2, 4)


def test_views_match_their_declared_columns(zone):
    users, tracks, listens = zone
    assert cons.interactions(listens).schema() == cons.INTERACTIONS.ibis_schema
    assert cons.user_features(users).schema() == cons.USER_FEATURES.ibis_schema
    assert cons.track_features(tracks).schema() == cons.TRACK_FEATURES.ibis_schema
    kpis = cons.daily_kpis(users, tracks, listens, end=END, days=3)
    assert kpis.schema() == cons.DAILY_KPIS.ibis_schema


def test_a_view_takes_what_it_needs_from_the_build_context(zone):
    context = BuildContext(end=END, kpi_days=3)
    out = cons.DAILY_KPIS.compute(list(zone), context).to_pyarrow()
    assert out["date"].to_pylist() == [END - dt.timedelta(days=n) for n in (2, 1, 0)]
    # A view without parameters ignores the context.
    assert cons.USER_FEATURES.parameters(context) == {}


def test_utc_date_from_the_epoch_is_the_calendar_date(con):
    # The KPIs' day on DuckDB comes from epoch microseconds (its zoned CAST is slow):
    # it must be the UTC calendar date either side of midnight, before 1970 too.
    at = [dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
          dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
          dt.datetime(2026, 10, 1, 23, 59, 59, 999999, tzinfo=dt.UTC),
          dt.datetime(2026, 10, 2, tzinfo=dt.UTC), None]
    t = con.create_table("at", pa.table({"ts": pa.array(at, pa.timestamp("us", tz="UTC"))}))
    assert "EPOCH_US" in ibis.to_sql(t.select(d=utc_date(t.ts)))
    got = t.select(d=utc_date(t.ts), want=t.ts.date()).to_pyarrow().to_pylist()
    assert [r["d"] for r in got] == [r["want"] for r in got] == [
        dt.date(1969, 12, 31), dt.date(1970, 1, 1), dt.date(2026, 10, 1), dt.date(2026, 10, 2),
        None]

"""Standardized views on tiny in-code raw tables, reference quirks included."""

from __future__ import annotations

import datetime as dt

import pytest

from lakehouse import names
from lakehouse.zones import standardized as std
from tests.zones.conftest import DAY1, DAY2, LATER, TS, listen, track, user

USERS, TRACKS, HISTORY = names.RAW_USERS, names.RAW_TRACKS, names.RAW_LISTEN_HISTORY


def rows(expr, order: str | list[str]) -> list[dict]:
    return expr.order_by(order).to_pyarrow().to_pylist()


def quarantined(view, staged, *inputs) -> list[dict]:
    return view.quarantine(staged, inputs, DAY2).to_pyarrow().to_pylist()


# ---------------------------------------------------------------- users
def test_users_are_typed_trimmed_and_normalized(raw):
    t = raw(USERS, (DAY1, [user(1, gender=" non-BINARY", favorite_genres="hip-hop"),
                           user(2, gender="Robot", favorite_genres="Polka"),
                           user(3, gender=None, favorite_genres=None)]))
    out = rows(std.users(t), "user_id")
    assert [r["email"] for r in out] == ["ada1@example.org", "ada2@example.org",
                                         "ada3@example.org"]
    assert [(r["gender"], r["favorite_genre"]) for r in out] == [
        ("Non-binary", "Hip Hop"), (None, None), (None, None)]
    assert [(r["invalid_gender"], r["invalid_favorite_genre"]) for r in out] == [
        (False, False), (True, True), (False, False)]
    first = out[0]
    assert first["created_at"] == dt.datetime(2026, 10, 1, 10, 0, 0, 1, tzinfo=dt.UTC)
    assert first["first_ingest_date"] == first["last_ingest_date"] == DAY1


def test_latest_version_wins_by_updated_at_then_ingest_date(raw):
    t = raw(USERS,
            (DAY1, [user(1, last_name="Old", updated_at="2026-10-09T00:00:00"),
                    user(2, last_name="Day1")]),
            (DAY2, [user(1, last_name="Older", updated_at="2026-10-08T00:00:00"),
                    user(2, last_name="Day2")]))
    out = rows(std.users(t), "user_id")
    # User 1: the newer updated_at wins although it was ingested first.
    assert out[0]["last_name"] == "Old"
    # User 2: same updated_at, so the later snapshot wins.
    assert out[1]["last_name"] == "Day2"
    assert (out[1]["first_ingest_date"], out[1]["last_ingest_date"]) == (DAY1, DAY2)


def test_updated_before_created_is_kept_and_flagged(raw):
    t = raw(USERS, (DAY1, [user(1, updated_at="2020-01-01T00:00:00"), user(2)]))
    out = rows(std.users(t), "user_id")
    assert [r["updated_before_created"] for r in out] == [True, False]


def test_exact_copies_collapse_but_conflicting_versions_are_quarantined(raw):
    t = raw(USERS, (DAY1, [user(1), user(1),  # served twice across shifting pages
                           user(2, email="a@x.org"), user(2, email="b@x.org"),
                           user(3)]))
    staged = std.stage_users(t)
    assert [r["user_id"] for r in rows(std.select_users(staged), "user_id")] == [1, 3]
    bad = quarantined(std.USERS, staged, t)
    assert sorted(r["email"] for r in bad) == ["a@x.org", "b@x.org"]
    assert {r[names.Q_CHECK] for r in bad} == {"user_id_unique"}
    assert all(r[names.Q_BUILD_DATE] == DAY2 for r in bad)


def test_a_key_with_conflicting_versions_and_a_bad_row_quarantines_each_with_its_reason(raw):
    t = raw(USERS, (DAY1, [user(2, email="a@x.org"), user(2, email="b@x.org"),
                           user(2, email="c@x.org", created_at="soon"), user(None), user(3)]))
    staged = std.stage_users(t)
    assert [r["user_id"] for r in rows(std.select_users(staged), "user_id")] == [3]
    bad = sorted(quarantined(std.USERS, staged, t), key=lambda r: str(r["email"]))
    assert [(r["email"], r[names.Q_CHECK], r[names.Q_REASON]) for r in bad] == [
        (" AdaNone@Example.org ", "user_id_not_null", "id is null or not an integer"),
        ("a@x.org", "user_id_unique",
         "user_id has conflicting versions at the same updated_at and ingest date"),
        ("b@x.org", "user_id_unique",
         "user_id has conflicting versions at the same updated_at and ingest date"),
        ("c@x.org", "created_at_is_timestamp", "created_at is null or not an ISO timestamp"),
    ]


def test_a_newer_clean_version_overrides_an_old_conflict(raw):
    t = raw(USERS, (DAY1, [user(1, email="a@x.org"), user(1, email="b@x.org")]),
            (DAY2, [user(1, email="c@x.org", updated_at="2026-10-20T00:00:00")]))
    staged = std.stage_users(t)
    assert [r["email"] for r in rows(std.select_users(staged), "user_id")] == ["c@x.org"]
    assert quarantined(std.USERS, staged, t) == []


@pytest.mark.parametrize(("bad", "check"), [
    ({"id": None}, "user_id_not_null"),
    ({"created_at": "yesterday"}, "created_at_is_timestamp"),
    ({"created_at": "infinity"}, "created_at_is_timestamp"),  # DuckDB parses it; Spark not
    ({"updated_at": None}, "updated_at_is_timestamp"),
])
def test_unusable_users_are_quarantined_with_the_original_row(raw, bad, check):
    t = raw(USERS, (DAY1, [user(1), user(2) | bad]))
    staged = std.stage_users(t)
    assert [r["user_id"] for r in rows(std.select_users(staged), "user_id")] == [1]
    [q] = quarantined(std.USERS, staged, t)
    assert q[names.Q_CHECK] == check
    assert q[names.Q_REASON]
    # The original row: raw strings and the run metadata, not the typed values.
    assert q["email"] == " Ada2@Example.org "
    assert q[names.INGEST_DATE] == DAY1 and q[names.RUN_ID] == f"run-{DAY1}"


# ---------------------------------------------------------------- tracks
def test_tracks_parse_duration_and_split_genres(raw):
    t = raw(TRACKS, (DAY1, [
        track(1, duration="07:38", genres="Rock, Indie"),
        track(2, duration="12:05", genres=" r&b / hip hop;rock "),
        track(3, duration="7 minutes", genres="whether"),  # the reference: a random word
        track(4, duration=None, genres=None),
        track(5, duration="3:75", genres="Rock, whether"),
    ]))
    out = rows(std.tracks(t), "track_id")
    assert [r["duration_seconds"] for r in out] == [458, 725, None, None, None]
    assert [r["invalid_duration"] for r in out] == [False, False, True, False, True]
    assert [r["genres"] for r in out] == [["Indie", "Rock"], ["Hip Hop", "R&B", "Rock"], [],
                                         [], ["Rock"]]
    assert [r["unknown_genres"] for r in out] == [False, False, True, False, True]


def test_track_text_is_trimmed_and_typed(raw):
    t = raw(TRACKS, (DAY1, [track(7, name="  Song  ", artist=" Band ", album=" LP ")]))
    [out] = rows(std.tracks(t), "track_id")
    assert (out["name"], out["artist"], out["album"]) == ("Song", "Band", "LP")
    assert out["updated_at"] == dt.datetime(2026, 10, 5, 10, tzinfo=dt.UTC)


# ---------------------------------------------------------------- listen history
def test_listen_records_are_deduplicated_across_snapshots(raw):
    rec = listen(1, [10, 11])
    t = raw(HISTORY,
            (DAY1, [rec, rec, listen(2, [10])]),
            (DAY2, [rec | {"updated_at": "2026-10-06T00:00:00"}, listen(2, [10]),
                    listen(2, [10, 12], created_at="2026-10-02T00:00:00")]))
    out = rows(std.listen_history(t), ["user_id", "created_at"])
    assert [(r["user_id"], r["items"], r["n_items"]) for r in out] == [
        (1, [10, 11], 2), (2, [10], 1), (2, [10, 12], 2)]
    first = out[0]
    assert (first["first_ingest_date"], first["last_ingest_date"]) == (DAY1, DAY2)
    assert first["updated_at"] == dt.datetime(2026, 10, 6, tzinfo=dt.UTC)
    assert out[2]["first_ingest_date"] == DAY2
    assert len({r["record_id"] for r in out}) == 3


def test_record_id_is_deterministic(raw):
    a = raw(HISTORY, (DAY1, [listen(1, [10, 11]), listen(2, [3])]))
    b = raw(HISTORY, (DAY2, [listen(2, [3]), listen(1, [10, 11])]))
    ids = [sorted(r["record_id"] for r in std.listen_history(t).to_pyarrow().to_pylist())
           for t in (a, b)]
    assert ids[0] == ids[1]
    # Changing any part of the record changes its id.
    c = raw(HISTORY, (DAY1, [listen(1, [11, 10]), listen(2, [3], created_at=LATER)]))
    assert not set(ids[0]) & {r["record_id"] for r in std.listen_history(c).to_pyarrow()
                              .to_pylist()}


@pytest.mark.parametrize(("bad", "check"), [
    ({"items": None}, "items_not_null"),
    ({"user_id": None}, "user_id_not_null"),
    ({"created_at": "not a time"}, "created_at_is_timestamp"),
])
def test_unusable_listen_records_are_quarantined(raw, bad, check):
    t = raw(HISTORY, (DAY1, [listen(1, [10]), listen(2, [11]) | bad]))
    staged = std.stage_listen_history(t)
    assert len(std.select_listen_history(staged).to_pyarrow()) == 1
    [q] = quarantined(std.LISTEN_HISTORY, staged, t)
    assert q[names.Q_CHECK] == check


def test_an_empty_item_list_is_a_record_without_listens(raw):
    t = raw(HISTORY, (DAY1, [listen(1, [])]))
    [out] = std.listen_history(t).to_pyarrow().to_pylist()
    assert out["n_items"] == 0


# ---------------------------------------------------------------- listens
@pytest.fixture
def parents(raw):
    users = std.users(raw(USERS, (DAY1, [user(1), user(2)])))
    tracks = std.tracks(raw(TRACKS, (DAY1, [track(10), track(11)])))
    return users, tracks


def test_listens_explode_items_with_position(raw, parents):
    history = std.listen_history(raw(HISTORY, (DAY1, [listen(1, [11, 10, 11])])))
    out = rows(std.listens(history, *parents), "position")
    assert [(r["user_id"], r["track_id"], r["position"]) for r in out] == [
        (1, 11, 0), (1, 10, 1), (1, 11, 2)]
    assert {r["created_at"] for r in out} == {dt.datetime(2026, 10, 1, 10, 0, 0, 1,
                                                          tzinfo=dt.UTC)}
    assert len({r["record_id"] for r in out}) == 1


def test_orphan_listens_are_quarantined_with_reasons(raw, parents):
    history = std.listen_history(raw(HISTORY, (DAY1, [
        listen(1, [10, 99, None]),  # unknown track, null track id
        listen(7, [10, 11]),        # unknown user
        listen(2, [11]),
    ])))
    staged = std.stage_listens(history, *parents)
    ok = rows(std.select_listens(staged), ["user_id", "position"])
    assert [(r["user_id"], r["track_id"]) for r in ok] == [(1, 10), (2, 11)]
    bad = sorted(quarantined(std.LISTENS, staged, history, *parents), key=lambda r: (r["user_id"], r["position"]))
    assert [(r["user_id"], r["track_id"], r[names.Q_CHECK]) for r in bad] == [
        (1, 99, "fk_track_id"), (1, None, "track_id_not_null"),
        (7, 10, "fk_user_id"), (7, 11, "fk_user_id")]
    assert bad[0][names.Q_REASON] == f"track_id not in {names.STD_TRACKS}"


def test_every_view_matches_its_declared_columns(raw, parents):
    users, tracks = parents
    history = std.listen_history(raw(HISTORY, (DAY1, [listen(1, [10])])))
    assert std.users(raw(USERS, (DAY1, [user(1)]))).schema() == std.USERS.ibis_schema
    assert std.tracks(raw(TRACKS, (DAY1, [track(1)]))).schema() == std.TRACKS.ibis_schema
    assert history.schema() == std.LISTEN_HISTORY.ibis_schema
    assert std.listens(history, users, tracks).schema() == std.LISTENS.ibis_schema


def test_updated_before_created_is_not_a_reason_to_drop_a_track(raw):
    t = raw(TRACKS, (DAY1, [track(1, created_at=LATER, updated_at=TS)]))
    [out] = std.tracks(t).to_pyarrow().to_pylist()
    assert out["updated_before_created"] is True

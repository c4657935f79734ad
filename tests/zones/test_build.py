"""build(): every table written, validated, recorded, idempotent, all or nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import json

import ibis
import pyarrow as pa
import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.errors import LakeError, LockedError, ValidationError
from lakehouse.lake import Lake
from lakehouse.locking import lake_lock
from lakehouse.zones import VIEWS, standardized
from lakehouse.zones.build import build, check_table, gc_spares_what_exists
from tests.conftest import fresh_python
from tests.zones.conftest import DAY1, DAY2, listen, track, user, write_raw

USERS = [user(1), user(2, updated_at="2020-01-01T00:00:00"), user(None)]
TRACKS = [track(10), track(11, genres="whether")]
LISTENS = [listen(1, [10, 11, 99]), listen(5, [10]), listen(2, None), listen(2, [11])]


def write_two_days(lake: Lake) -> None:
    """Both days' raw snapshots: day 2 repeats day 1 and adds user 3 and a listen."""
    write_raw(lake, DAY1, USERS, TRACKS, LISTENS)
    write_raw(lake, DAY2, USERS + [user(3)], TRACKS, LISTENS + [listen(3, [10])])


@pytest.fixture
def lake_settings_with_raw(lake_settings):
    write_two_days(Lake(lake_settings.lake))
    return lake_settings


def content(lake: Lake, name: str) -> list[dict]:
    table = lake.to_arrow(name)
    return sorted(table.to_pylist(), key=repr)


@pytest.mark.slow
def test_build_writes_every_table_with_its_contract(lake_settings_with_raw):
    runs = build(lake_settings_with_raw, date=DAY2)
    lake = Lake(lake_settings_with_raw.lake)
    assert [r.target for r in runs] == [v.name for v in VIEWS]
    for view in VIEWS:
        assert lake.schema(view.name) == view.arrow_schema
    assert lake.info(names.STD_USERS).rows == 3
    assert lake.info(names.STD_LISTEN_HISTORY).rows == 4
    assert lake.info(names.STD_LISTENS).rows == 4  # (1,10) (1,11) (2,11) (3,10)
    assert lake.info(names.CONS_DAILY_KPIS).rows == lake_settings_with_raw.kpi_days


@pytest.mark.slow
def test_build_up_to_a_date_ignores_later_snapshots(lake_settings_with_raw):
    build(lake_settings_with_raw, date=DAY1)
    lake = Lake(lake_settings_with_raw.lake)
    assert lake.info(names.STD_USERS).rows == 2
    kpis = lake.to_arrow(names.CONS_DAILY_KPIS)
    assert max(kpis.column("date").to_pylist()) == DAY1


@pytest.mark.slow
def test_run_records_count_rows_and_quarantine_reasons(lake_settings_with_raw):
    build(lake_settings_with_raw, date=DAY2)
    lake = Lake(lake_settings_with_raw.lake)
    runs = {r["target"]: r for r in lake.to_arrow(names.META_RUNS).to_pylist()}
    assert set(runs) == {v.name for v in VIEWS}
    listens = runs[names.STD_LISTENS]
    assert listens["status"] == names.SUCCESS and listens["pipeline"] == "build"
    assert listens["records"] == 4
    assert listens["rows_in"] == 6  # items of the 4 clean distinct records
    assert listens["quarantined"] == 2
    assert json.loads(listens["details"])["quarantine_reasons"] == {
        f"track_id not in {names.STD_TRACKS}": 1, f"user_id not in {names.STD_USERS}": 1}
    assert listens["table_version"] == lake.version(names.STD_LISTENS)
    users = runs[names.STD_USERS]
    # The build reads distinct versions, not daily copies: users 1, 2, None and 3.
    assert (users["rows_in"], users["records"], users["quarantined"]) == (4, 3, 1)
    assert users["run_date"] == DAY2
    # A consumption view reads its first input's rows (counted with that table's checks).
    assert runs[names.CONS_INTERACTIONS]["rows_in"] == 4  # standardized.listens
    assert runs[names.CONS_DAILY_KPIS]["rows_in"] == 3  # standardized.users


@pytest.mark.slow
def test_quarantine_tables_keep_the_original_row(lake_settings_with_raw):
    build(lake_settings_with_raw, date=DAY2)
    lake = Lake(lake_settings_with_raw.lake)
    q = lake.to_arrow(names.quarantine_table(names.STD_LISTEN_HISTORY)).to_pylist()
    assert {(r["user_id"], r["items"], r[names.Q_CHECK]) for r in q} == {
        (2, None, "items_not_null")}
    # One row per bad version (not per day it was served), at the last date seen.
    assert len(q) == 1 and q[0][names.INGEST_DATE] == DAY2
    assert {r[names.Q_BUILD_DATE] for r in q} == {DAY2}
    assert lake.info(names.quarantine_table(names.STD_TRACKS)).rows == 0


@pytest.mark.slow
def test_rebuild_is_idempotent(lake_settings_with_raw):
    build(lake_settings_with_raw, date=DAY2)
    lake = Lake(lake_settings_with_raw.lake)
    before = {v.name: content(lake, v.name) for v in VIEWS}
    build(lake_settings_with_raw, date=DAY2)
    after = {v.name: content(lake, v.name) for v in VIEWS}
    assert before == after
    assert lake.version(names.STD_USERS) == 1


def failing_users(staged):
    """A broken select: every user twice."""
    out = standardized.select_users(staged)
    return out.union(out, distinct=False)


@pytest.mark.slow
def test_a_failed_table_check_writes_nothing_and_records_why(lake_settings_with_raw,
                                                            monkeypatch):
    build(lake_settings_with_raw, date=DAY1)
    lake = Lake(lake_settings_with_raw.lake)
    versions = {v.name: lake.version(v.name) for v in VIEWS}
    broken = dataclasses.replace(standardized.USERS, select=failing_users)
    monkeypatch.setattr(standardized, "VIEWS", (broken, *standardized.VIEWS[1:]))
    with pytest.raises(ValidationError, match=r"standardized\.users failed check "
                                              r"key_unique on user_id: e.g. \[\d"):
        build(lake_settings_with_raw, date=DAY2, wait=False)
    assert {v.name: lake.version(v.name) for v in VIEWS} == versions
    failed = [r for r in lake.to_arrow(names.META_RUNS).to_pylist()
              if r["status"] == names.FAILED]
    assert len(failed) == 1
    assert failed[0]["target"] == names.STD_USERS and "key_unique" in failed[0]["error"]
    # The temporary tables are gone: the connection is reusable.
    assert not [t for t in lake.con.list_tables() if t.startswith("_build_")]


def test_check_table_names_table_check_and_examples():
    con = ibis.duckdb.connect()
    view = standardized.TRACKS
    good = con.create_table("t", pa.table(
        {n: pa.array([], f.type) for n, f in zip(view.arrow_schema.names, view.arrow_schema,
                                                 strict=True)}))
    check_table(view, good, {})  # empty: nothing to fail, not even not-null checks
    row = {n: None for n in view.arrow_schema.names} | {
        "track_id": 1, "duration_seconds": -5, "genres": [],
        "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "updated_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "first_ingest_date": DAY1, "last_ingest_date": DAY1,
        "updated_before_created": False, "invalid_duration": False, "unknown_genres": False}
    neg = con.create_table("neg", pa.Table.from_pylist([row], schema=view.arrow_schema))
    with pytest.raises(ValidationError, match=r"standardized\.tracks failed check "
                                              r"greater_than_or_equal_to.*duration_seconds.*-5"):
        check_table(view, neg, {})
    with pytest.raises(ValidationError, match="columns_match_contract"):
        check_table(view, neg.drop("album"), {})


def test_foreign_key_check_names_orphans():
    con = ibis.duckdb.connect()
    view = standardized.LISTENS
    row = {"record_id": 1, "user_id": 7, "track_id": 10, "position": 0,
           "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
           "updated_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "first_ingest_date": DAY1}
    listens = con.create_table("l", pa.Table.from_pylist([row], schema=view.arrow_schema))
    users = con.create_table("u", pa.table({"user_id": [1, 2]}))
    tracks = con.create_table("t", pa.table({"track_id": [10]}))
    with pytest.raises(ValidationError, match=r"fk_user_id.*\[7\]"):
        check_table(view, listens, {names.STD_USERS: users, names.STD_TRACKS: tracks})


def test_build_without_raw_data_says_what_to_do(lake_settings):
    Lake(lake_settings.lake)
    with pytest.raises(LakeError, match="run 'lakehouse ingest'"):
        build(lake_settings, date=DAY1)


def test_build_before_the_first_snapshot_is_refused(lake_settings_with_raw):
    with pytest.raises(LakeError, match="no snapshot ingested on or before"):
        build(lake_settings_with_raw, date=DAY1 - dt.timedelta(days=1))


def test_a_running_build_blocks_another(lake_settings_with_raw):
    with lake_lock(lake_settings_with_raw.locks_dir, "build"), \
            pytest.raises(LockedError, match="build"):
        build(lake_settings_with_raw, date=DAY2, wait=False)


@pytest.mark.slow
def test_missing_raw_columns_read_as_null(lake_settings):
    lake = Lake(lake_settings.lake)
    write_raw(lake, DAY1, [user(1)], [track(10)], [listen(1, [10])])
    drifted = lake.to_arrow(names.RAW_USERS).drop(["gender"]).append_column(
        "nickname", pa.array(["ada"]))
    lake.write(names.RAW_USERS, drifted, mode="replace")
    build(lake_settings, date=DAY1)
    [out] = lake.to_arrow(names.STD_USERS).to_pylist()
    assert out["gender"] is None and out["invalid_gender"] is False


@pytest.mark.slow
def test_cli_build(lake_settings_with_raw):
    lake = str(lake_settings_with_raw.lake)
    result = CliRunner().invoke(cli, ["--lake", lake, "build", "--date", str(DAY2),
                                      "--kpi-days", "7", "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "table,status,rows_in,rows,quarantined,version,seconds"
    assert lines[1].startswith(f"{names.STD_USERS},success,4,3,1,0,")
    assert Lake(lake).info(names.CONS_DAILY_KPIS).rows == 7
    result = CliRunner().invoke(cli, ["--lake", lake, "sql", "--format", "csv",
                                      "SELECT count(*) FROM standardized.listens"])
    assert result.output.splitlines()[1] == "4"


def test_cli_build_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["--lake", str(tmp_path / "nope"), "build"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: no lake at")
    result = CliRunner().invoke(cli, ["--lake", str(tmp_path), "build", "--date", "May 1"])
    assert result.exit_code == 2
    help_text = CliRunner().invoke(cli, ["build", "--help"]).output
    assert "Example:" in help_text


@pytest.mark.slow
def test_drifted_key_type_is_quarantined_not_a_crash(lake_settings):
    lake = Lake(lake_settings.lake)
    write_raw(lake, DAY1, [user(1), user(2)], [track(10)], [listen(1, [10])])
    raw = lake.to_arrow(names.RAW_USERS)
    drifted = raw.set_column(raw.schema.get_field_index("id"), "id", pa.array(["1", "two"]))
    lake.write(names.RAW_USERS, drifted, mode="replace")
    build(lake_settings, date=DAY1)
    assert [r["user_id"] for r in lake.to_arrow(names.STD_USERS).to_pylist()] == [1]
    [q] = lake.to_arrow(names.quarantine_table(names.STD_USERS)).to_pylist()
    assert q[names.Q_CHECK] == "user_id_not_null" and q["email"] == " Ada2@Example.org "


@pytest.mark.slow
def test_no_listen_records_builds_empty_tables(lake_settings):
    lake = Lake(lake_settings.lake)
    write_raw(lake, DAY1, [user(1)], [track(10)], [])
    runs = build(lake_settings, date=DAY1)
    assert all(r.ok for r in runs)
    assert lake.info(names.STD_LISTENS).rows == 0
    assert lake.info(names.CONS_INTERACTIONS).rows == 0
    kpis = lake.to_arrow(names.CONS_DAILY_KPIS).to_pylist()
    assert kpis[-1]["total_users"] == 1 and kpis[-1]["avg_listen_history_size"] is None


def test_a_bad_memory_setting_is_a_one_line_error(lake_settings_with_raw):
    with pytest.raises(LakeError, match="bad build_memory 'lots'"):
        build(lake_settings_with_raw.replace(build_memory="lots"), date=DAY2)


@pytest.mark.slow
def test_a_clean_build_runs_the_checks_without_importing_pandera(lake_settings):
    # pandera (and the hypothesis it loads) is a third of a second of start-up:
    # a clean build runs the same checks from the views' declarations, and pandera only
    # describes a failure. Rows failing a rule are still quarantined with their reasons.
    lake = Lake(lake_settings.lake)
    write_raw(lake, DAY1, [user(1), user(None)], [track(10)], [listen(1, [10, 99])])
    script = (
        "import sys, datetime as dt\n"
        "import ibis, pyarrow as pa\n"
        "from lakehouse import names\n"
        "from lakehouse.config import Settings\n"
        "from lakehouse.errors import ValidationError\n"
        "from lakehouse.lake import Lake\n"
        "from lakehouse.zones import standardized\n"
        "from lakehouse.zones.build import build, check_table\n"
        f"root = {str(lake_settings.lake)!r}\n"
        f"build(Settings.load(env={{}}, lake=root), date=dt.date.fromisoformat({str(DAY1)!r}))\n"
        "lake = Lake(root)\n"
        "loaded = lambda: sorted(m for m in ('pandera', 'hypothesis') if m in sys.modules)\n"
        "print(loaded())\n"
        "for name in (names.STD_USERS, names.STD_LISTENS):\n"
        "    q = lake.to_arrow(names.quarantine_table(name)).to_pylist()\n"
        "    print(name, [r[names.Q_CHECK] for r in q])\n"
        "view = standardized.TRACKS\n"
        "row = lake.to_arrow(view.name).to_pylist()[0] | {'duration_seconds': -5}\n"
        "bad = ibis.duckdb.connect().create_table('bad', pa.Table.from_pylist(\n"
        "    [row], schema=view.arrow_schema))\n"
        "try:\n"
        "    check_table(view, bad, {})\n"
        "except ValidationError as exc:\n"
        "    print(exc)\n"
        "print(loaded())\n")
    done = fresh_python(script)
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "[]"
    assert lines[1] == f"{names.STD_USERS} ['user_id_not_null']"
    assert lines[2] == f"{names.STD_LISTENS} ['fk_track_id']"
    assert lines[3] == ("standardized.tracks failed check greater_than_or_equal_to: "
                        "e.g. [{'duration_seconds': -5}]")  # pandera's words
    assert "pandera" in lines[4]


def test_the_build_sets_existing_objects_aside_from_gc_and_puts_them_back():
    assert gc.get_freeze_count() == 0
    with gc_spares_what_exists():
        assert gc.get_freeze_count() > 0  # what existed is out of the collector's passes
        garbage = [[]]
        garbage[0].append(garbage)  # a cycle made inside is still collected
        del garbage
        assert gc.collect() >= 1
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), gc_spares_what_exists():
        raise RuntimeError("a failed build")
    assert gc.get_freeze_count() == 0  # restored on failure too

def test_a_process_that_froze_objects_itself_keeps_them_frozen(monkeypatch):
    # Calls are recorded, not the count: a frozen object that dies (another thread's, an
    # xdist worker's) lowers the count at any time.
    calls = []
    gc.freeze()
    try:
        monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
        monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
        with gc_spares_what_exists():
            pass
        assert calls == []
    finally:
        monkeypatch.undo()
        gc.unfreeze()

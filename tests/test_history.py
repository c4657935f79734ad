"""The history zone: exact reconstruction, idempotence, retention, resets, upgrades, kills."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import pyarrow as pa
import pytest
from click.testing import CliRunner

from lakehouse import history, names
from lakehouse.cli import cli
from lakehouse.errors import ConfigError, HistoryError, SourceResetError
from lakehouse.ingest import ingest
from lakehouse.lake import Lake
from lakehouse.mockapi.data import generate
from lakehouse.mockapi.testing import running_mock_api
from lakehouse.zones import standardized
from lakehouse.zones.build import build
from tests.conftest import copy_lake, fresh_python, settings_for

SIZE = {"users": 150, "tracks": 200, "listens": 1500, "days": 6}
WINDOW = 6


def multiset(table: pa.Table) -> Counter:
    return Counter(repr(sorted(row.items())) for row in table.to_pylist())


def served(config, day: dt.date, endpoint: str) -> Counter:
    return multiset(generate(config.replace(as_of=day)).arrow(endpoint))


@pytest.fixture(scope="module")
def churning_api():
    """A mock whose window has inserts, updates, deletions and duplicate listen records."""
    with running_mock_api(seed=11, deletions=0.08, **SIZE) as api:
        yield api


@pytest.fixture(scope="module")
def window_days(churning_api) -> list[dt.date]:
    start = churning_api.config.start
    return [start + dt.timedelta(days=i) for i in range(WINDOW)]


@pytest.fixture(scope="module")
def window_lake(tmp_path_factory, churning_api, window_days):
    """A lake with every day of the window ingested over HTTP (retention 3 days)."""
    settings = settings_for(tmp_path_factory.mktemp("window") / "lake", churning_api.url,
                            workers=2, raw_retention_days=3)
    for day in window_days:
        churning_api.set_as_of(day)
        runs = ingest(settings, date=day, progress=False)
        assert all(r.ok for r in runs), [r.error for r in runs]
    churning_api.set_as_of(churning_api.config.end)
    return settings


def test_every_day_of_the_window_is_rebuilt_exactly(window_lake, churning_api, window_days):
    lake = Lake(window_lake.lake)
    for day in window_days:
        for endpoint in names.ENDPOINTS:
            got = history.snapshot(lake, endpoint, day)
            assert multiset(got) == served(churning_api.config, day, endpoint), (endpoint, day)
    # The window really had every kind of change, duplicates included.
    notes = [n for e in names.ENDPOINTS for n in history.merged_days(lake, e).values()]
    assert sum(n["closed"] for n in notes) > 0 and sum(n["opened"] for n in notes[1:]) > 0
    last = served(churning_api.config, window_days[-1], names.LISTEN_HISTORY)
    assert max(last.values()) >= 2, "the mock serves exact duplicate listen records"
    users = history.versions(lake, names.USERS).to_pyarrow().to_pylist()
    by_id = Counter(u["id"] for u in users)
    assert max(by_id.values()) >= 2, "some user has an updated version"
    assert any(not u["_current"] for u in users), "some version ended (update or deletion)"


def test_raw_keeps_only_the_retention_window_and_old_days_live_on_in_history(
        window_lake, window_days):
    lake = Lake(window_lake.lake)
    for endpoint in names.ENDPOINTS:
        assert sorted(history.raw_partitions(lake, endpoint)) == window_days[-3:]
        assert sorted(history.merged_days(lake, endpoint)) == window_days


@pytest.mark.slow
def test_the_build_from_history_equals_the_views_over_every_snapshot(
        window_lake, churning_api, window_days, tmp_path):
    settings = copy_lake(window_lake, tmp_path)
    build(settings, date=window_days[-1])
    lake = Lake(settings.lake)
    con = lake.con
    raws = {}
    for endpoint in names.ENDPOINTS:
        days = []
        for day in window_days:
            snap = history.snapshot(lake, endpoint, day)
            days.append(snap.append_column(names.INGEST_DATE,
                                           pa.array([day] * snap.num_rows, pa.date32())))
        raws[endpoint] = con.create_table(f"every_{endpoint}", pa.concat_tables(days))
    expected = {
        names.STD_USERS: standardized.users(raws[names.USERS]),
        names.STD_TRACKS: standardized.tracks(raws[names.TRACKS]),
        names.STD_LISTEN_HISTORY: standardized.listen_history(raws[names.LISTEN_HISTORY]),
    }
    for table, expr in expected.items():
        want = sorted(map(repr, expr.to_pyarrow().to_pylist()))
        got = sorted(map(repr, lake.to_arrow(table).select(expr.columns).to_pylist()))
        assert got == want, table


def test_reingesting_a_date_adds_no_version(window_lake, churning_api, window_days, tmp_path):
    settings = copy_lake(window_lake, tmp_path).replace(api_url=churning_api.url)
    lake = Lake(settings.lake)
    day = window_days[-1]
    before = {e: history.versions(lake, e).count().execute() for e in names.ENDPOINTS}
    notes = {e: history.merged_days(lake, e)[day] for e in names.ENDPOINTS}
    churning_api.set_as_of(day)
    try:
        runs = ingest(settings, date=day, progress=False)
    finally:
        churning_api.set_as_of(churning_api.config.end)
    assert all(r.ok for r in runs), [r.error for r in runs]
    for endpoint in names.ENDPOINTS:
        assert history.versions(lake, endpoint).count().execute() == before[endpoint]
        again = history.merged_days(lake, endpoint)[day]
        assert {k: again[k] for k in ("rows", "opened", "closed")} == \
            {k: notes[endpoint][k] for k in ("rows", "opened", "closed")}
        assert again["raw"] != notes[endpoint]["raw"]  # new raw files, same content
        assert multiset(history.snapshot(lake, endpoint, day)) == \
            served(churning_api.config, day, endpoint)
    # A rerun with nothing new to merge does not commit at all.
    version = lake.version(names.history_table(names.USERS))
    assert history.sync(lake, settings, names.USERS) == []
    assert lake.version(names.history_table(names.USERS)) == version


def test_a_date_not_merged_is_a_one_line_error(window_lake):
    result = CliRunner().invoke(cli, ["--lake", str(window_lake.lake), "snapshot", "users",
                                      "--date", "2020-01-01"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: history.users has no snapshot for 2020-01-01")
    assert len(result.output.strip().splitlines()) == 1


def test_cli_snapshot_prints_and_writes_every_format(window_lake, window_days, tmp_path):
    day = str(window_days[0])
    lake = str(window_lake.lake)
    result = CliRunner().invoke(cli, ["--lake", lake, "snapshot", "tracks", "--date", day,
                                      "--limit", "2", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("id,name,artist")
    assert len(result.output.strip().splitlines()) == 3
    want = history.snapshot(Lake(lake), names.LISTEN_HISTORY, window_days[0]).num_rows
    for suffix in ("parquet", "csv", "jsonl"):
        out = tmp_path / f"lh.{suffix}"
        result = CliRunner().invoke(cli, ["--lake", lake, "snapshot", "listen_history",
                                          "--date", day, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert f"{want} listen_history records" in result.output
    assert len((tmp_path / "lh.jsonl").read_text().splitlines()) == want
    assert pa.parquet.read_table(tmp_path / "lh.parquet").num_rows == want
    result = CliRunner().invoke(cli, ["--lake", lake, "snapshot", "users", "--date", day,
                                      "--out", str(tmp_path / "x.xlsx")])
    assert result.exit_code == 1 and "use a .parquet, .csv or .jsonl" in result.output


# ------------------------------------------------------------------ retention safety
def test_a_raw_partition_that_differs_from_its_history_is_kept(window_lake, tmp_path):
    settings = copy_lake(window_lake, tmp_path)
    lake = Lake(settings.lake)
    hist = names.history_table(names.TRACKS)
    day = max(history.merged_days(lake, names.TRACKS))
    assert history.verify_day(lake, names.TRACKS, day)
    # Lose one open event of that day's versions: the history no longer holds the raw.
    [one] = lake.sql(f"SELECT _hash FROM {hist} WHERE _event = 'open' AND _first_seen = "
                     f"(SELECT min(_first_seen) FROM {hist}) LIMIT 1").fetchall()
    lake.delete(hist, f"_hash = decode('{one[0].hex()}', 'hex')")
    assert not history.verify_day(lake, names.TRACKS, day)
    far = day + dt.timedelta(days=30)
    assert history.prune_raw(lake, settings, names.TRACKS, far) != sorted(
        history.raw_partitions(lake, names.TRACKS))
    assert day in history.raw_partitions(lake, names.TRACKS)


# ------------------------------------------------------------------ source reset
@pytest.mark.slow
def test_a_reseeded_reference_source_is_refused_until_accepted(tmp_path):
    sink = tmp_path / "alerts.jsonl"
    script = tmp_path / "sink.py"
    script.write_text(f"import sys; open({str(sink)!r}, 'a').write(sys.stdin.read() + '\\n')")
    small = {"users": 120, "tracks": 150, "profile": "reference"}
    day1, day2 = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
    lake_dir = tmp_path / "lake"
    with running_mock_api(seed=1, **small) as api:
        s = settings_for(lake_dir, api.url, workers=2)
        assert all(r.ok for r in ingest(s, date=day1, progress=False))
    lake = Lake(lake_dir)
    build(s, date=day1)
    versions = {t: lake.version(t) for t in lake.table_names()
                if t.startswith((names.HISTORY, names.STANDARDIZED))}
    env = {"LAKEHOUSE_ALERT_COMMAND": f"{sys.executable} {script}"}
    with running_mock_api(seed=2, **small) as api:  # the server restarted: new random data
        args = ["--lake", str(lake_dir), "ingest", "--api-url", api.url, "--date", str(day2),
                "--workers", "2", "--format", "csv"]
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 1
        assert result.stdout.count("source reset?") == 3, result.output
        build(s, date=day2)
        for table, version in versions.items():
            if table.startswith(names.HISTORY):
                assert lake.version(table) == version, table
        assert multiset(history.snapshot(lake, names.USERS, day1)) == \
            multiset(generate(api.config.replace(seed=1)).arrow(names.USERS))
        assert lake.to_arrow(names.STD_USERS).num_rows == 120  # the seed-1 users, as before
        alerts = [json.loads(line) for line in sink.read_text().splitlines() if line]
        assert any("source reset?" in a["text"] for a in alerts)
        result = CliRunner().invoke(cli, [*args, "--accept-reset"], env=env)
        assert result.exit_code == 0, result.output
        assert multiset(history.snapshot(lake, names.USERS, day2)) == \
            multiset(generate(api.config).arrow(names.USERS))


def test_the_reset_threshold_is_configurable(window_lake, window_days, tmp_path):
    settings = copy_lake(window_lake, tmp_path).replace(reset_threshold=1.0)
    lake = Lake(settings.lake)
    day = window_days[-1]
    lake.delete(names.history_table(names.TRACKS), f"_change_date = '{day}'")
    with pytest.raises(SourceResetError, match="source reset"):
        history.sync(lake, settings, names.TRACKS)  # the mock deletes some tracks daily
    assert history.sync(lake, settings.replace(reset_threshold=0.5), names.TRACKS)


def test_bad_retention_and_threshold_settings_are_one_line_errors(window_lake, window_days):
    lake = Lake(window_lake.lake)
    with pytest.raises(ConfigError, match="LAKEHOUSE_RAW_RETENTION_DAYS"):
        history.prune_raw(lake, window_lake.replace(raw_retention_days=0), names.USERS,
                          window_days[-1])
    with pytest.raises(ConfigError, match="LAKEHOUSE_RESET_THRESHOLD"):
        history.sync(lake, window_lake.replace(reset_threshold=1.5), names.USERS)


def test_ingest_run_records_say_what_the_history_merge_did(window_lake, window_days):
    runs = Lake(window_lake.lake).to_arrow(names.META_RUNS).to_pylist()
    last = [r for r in runs if r["run_date"] == window_days[-1] and r["target"] == "users"]
    details = json.loads(last[-1]["details"])
    [merge] = details["history"]
    assert merge["day"] == str(window_days[-1]) and merge["rows"] == last[-1]["records"]
    assert details["raw_pruned"] == [str(window_days[-4])]


# ------------------------------------------------------------------ upgrade
@pytest.mark.slow
def test_a_lake_of_the_snapshot_layout_upgrades_on_its_first_run(
        window_lake, churning_api, window_days, tmp_path):
    settings = copy_lake(window_lake, tmp_path).replace(api_url=churning_api.url)
    lake = Lake(settings.lake)
    shutil.rmtree(settings.lake / names.HISTORY)  # the layout before the history existed
    raw_days = sorted(history.raw_partitions(lake, names.USERS))
    runs = build(settings, date=window_days[-1])
    assert all(r.ok for r in runs)
    for endpoint in names.ENDPOINTS:
        assert sorted(history.merged_days(lake, endpoint)) == raw_days
        for day in raw_days:
            assert multiset(history.snapshot(lake, endpoint, day)) == \
                served(churning_api.config, day, endpoint)
    shutil.rmtree(settings.lake / names.HISTORY)
    churning_api.set_as_of(window_days[-1])
    try:
        runs = ingest(settings, date=window_days[-1], progress=False)  # or ingest first
    finally:
        churning_api.set_as_of(churning_api.config.end)
    assert all(r.ok for r in runs), [r.error for r in runs]
    assert sorted(history.merged_days(lake, names.USERS)) == raw_days


def test_a_changed_older_date_is_merged_again_with_every_later_one(window_lake, tmp_path):
    settings = copy_lake(window_lake, tmp_path)
    lake = Lake(settings.lake)
    days = sorted(history.raw_partitions(lake, names.USERS))
    raw = lake.to_arrow(names.RAW_USERS)
    lake.write(names.RAW_USERS, raw, mode="replace")  # every partition: new files
    merges = history.sync(lake, settings, names.USERS)
    assert [m.day for m in merges] == days
    for day in days:
        assert history.verify_day(lake, names.USERS, day)
    # A raw date older than dates whose raw is gone cannot be replayed: said, not guessed.
    early = min(history.merged_days(lake, names.USERS))
    table = raw.filter(pa.compute.equal(raw[names.INGEST_DATE], pa.scalar(days[0])))
    table = table.set_column(table.schema.get_field_index(names.INGEST_DATE),
                             names.INGEST_DATE, pa.array([early] * table.num_rows, pa.date32()))
    lake.write(names.RAW_USERS, table, mode="replace_partition",
               partition={names.INGEST_DATE: early})
    with pytest.raises(HistoryError, match="no raw partition any more"):
        history.sync(lake, settings, names.USERS)


def _events(lake: Lake, endpoint: str, days) -> Counter:
    """The open and close events of ``days``, their day notes left out.

    Which of identical copies gets which ordinal is arbitrary, so their page
    and fetch time are left out too.
    """
    table = Lake(lake.root).to_arrow(names.history_table(endpoint))
    rows = [r for r in table.drop_columns([names.H_NOTE, names.PAGE, names.INGESTED_AT])
            .to_pylist()
            if r[names.H_CHANGE_DATE] in days and r[names.H_EVENT] != names.H_DAY]
    return Counter(repr(sorted(r.items())) for r in rows)


def test_the_merge_runs_on_its_own_capped_connection_and_writes_the_same_events(
        window_lake, tmp_path, monkeypatch):
    """No ibis connection of the lake, DuckDB capped at merge_memory and closed after;
    a replay under a small cap, written in chunks of 7 rows, writes the same events."""
    settings = copy_lake(window_lake, tmp_path).replace(merge_memory="32MB")
    lake = Lake(settings.lake)
    days = sorted(history.raw_partitions(lake, names.LISTEN_HISTORY))
    before = _events(lake, names.LISTEN_HISTORY, days)
    assert before
    opened: list = []

    class Spied(history.ScratchDb):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            (self.limit,) = self.con.execute("SELECT current_setting('memory_limit')").fetchone()
            assert not os.path.exists(self.spill)  # made by DuckDB only if it spills
            opened.append(self)

    monkeypatch.setattr(history, "ScratchDb", Spied)
    monkeypatch.setattr(history.ScratchDb, "CHUNK_ROWS", 7)
    raw = lake.to_arrow(names.RAW_LISTEN_HISTORY)
    lake = Lake(settings.lake)  # a handle whose catalog never connected
    lake.write(names.RAW_LISTEN_HISTORY, raw, mode="replace")  # new files: replayed
    merges = history.sync(lake, settings, names.LISTEN_HISTORY)
    assert [m.day for m in merges] == days
    assert _events(lake, names.LISTEN_HISTORY, days) == before
    assert lake.catalog._con is None  # neither ibis nor the lake's 1 GB connection
    assert len(opened) == 1 and opened[0].limit.endswith("MiB")
    assert float(opened[0].limit.split()[0]) < 32
    with pytest.raises(Exception, match="closed"):
        opened[0].con.execute("SELECT 1")
    assert not os.path.exists(opened[0].spill)
    for day in days:
        assert history.verify_day(lake, names.LISTEN_HISTORY, day)


def test_the_merge_loads_no_ibis(tmp_path):
    """What an ingest's merge does not use costs nothing: ibis and sqlglot weigh ~20 MB."""
    from tests.zones.conftest import DAY1, DAY2, listen, track, user, write_raw

    settings = settings_for(tmp_path / "lake")
    lake = Lake(settings.lake)
    write_raw(lake, DAY1, [user(1), user(2)], [track(10)], [listen(1, [10])])
    write_raw(lake, DAY2, [user(1), user(3)], [track(10)], [listen(1, [10]), listen(3, [10])])
    code = (
        "import datetime as dt, sys\n"
        "from lakehouse import history, names\n"
        "from lakehouse.config import Settings\n"
        "from lakehouse.lake import Lake\n"
        f"settings = Settings.load(env={{}}, lake={str(settings.lake)!r})\n"
        "lake = Lake(settings.lake)\n"
        "for endpoint in names.ENDPOINTS:\n"
        f"    history.update(lake, settings, endpoint, dt.date.fromisoformat({str(DAY2)!r}))\n"
        "print(sorted(m for m in ('ibis', 'sqlglot') if m in sys.modules))\n")
    out = fresh_python(code)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr
    assert sorted(history.merged_days(lake, names.USERS)) == [DAY1, DAY2]
    assert multiset(history.snapshot(lake, names.USERS, DAY2)).total() == 2


def test_a_bad_merge_memory_is_an_error_before_any_page_is_read(tmp_path):
    # The API URL answers nothing: an error about it would mean pages were asked for.
    settings = settings_for(tmp_path / "lake", merge_memory="lots")
    with pytest.raises(ConfigError, match="bad merge_memory 'lots' .LAKEHOUSE_MERGE_MEMORY"):
        ingest(settings, progress=False)
    result = CliRunner().invoke(cli, ["--lake", str(tmp_path / "lake"), "ingest",
                                      "--api-url", "http://127.0.0.1:9"],
                                env={"LAKEHOUSE_MERGE_MEMORY": "lots"})
    assert result.exit_code == 1
    assert result.output.startswith("Error: bad merge_memory 'lots' (LAKEHOUSE_MERGE_MEMORY)")
    assert len(result.output.strip().splitlines()) == 1


def test_copies_of_a_record_are_numbered_and_later_dates_close_the_extra_ones(tmp_path):
    """Identical records keep their multiplicity: ordinals 0..n-1, numbered without a
    window over the whole snapshot; a copy fewer the next day closes one of them."""
    from tests.zones.conftest import DAY1, DAY2, listen, track, user, write_raw

    settings = settings_for(tmp_path / "lake")
    lake = Lake(settings.lake)
    same, other = listen(1, [10]), listen(2, [10])
    write_raw(lake, DAY1, [user(1)], [track(10)], [same, same, same, other])
    write_raw(lake, DAY2, [user(1)], [track(10)], [same, same, other, listen(3, [10])])
    merges = history.sync(lake, settings, names.LISTEN_HISTORY)
    assert [(m.day, m.rows, m.opened, m.closed) for m in merges] == [
        (DAY1, 4, 4, 0), (DAY2, 4, 1, 1)]
    events = lake.to_arrow(names.history_table(names.LISTEN_HISTORY)).to_pylist()
    opens = Counter((e[names.H_HASH], e[names.H_CHANGE_DATE]) for e in events
                    if e[names.H_EVENT] == names.H_OPEN)
    ordinals: dict[bytes, list[int]] = {}
    for e in events:
        if e[names.H_EVENT] == names.H_OPEN and e[names.H_CHANGE_DATE] == DAY1:
            ordinals.setdefault(e[names.H_HASH], []).append(e[names.H_ORDINAL])
    assert sorted(sorted(o) for o in ordinals.values()) == [[0], [0, 1, 2]]
    assert sorted(opens.values()) == [1, 1, 3]
    (closed,) = [e for e in events if e[names.H_EVENT] == names.H_CLOSE]
    assert closed[names.H_ORDINAL] in (0, 1, 2) and closed[names.H_LAST_SEEN] == DAY1
    for day, rows in ((DAY1, 4), (DAY2, 4)):
        assert history.snapshot(lake, names.LISTEN_HISTORY, day).num_rows == rows
        assert history.verify_day(lake, names.LISTEN_HISTORY, day)


def test_the_first_date_writes_what_the_anti_join_would(tmp_path):
    """With nothing open before, the snapshot table is written as it stands, the event
    columns added per chunk: the same rows, columns and types as the general events SQL."""
    from tests.zones.conftest import DAY1, listen, track, user, write_raw

    settings = settings_for(tmp_path / "lake")
    lake = Lake(settings.lake)
    write_raw(lake, DAY1, [user(1), user(2)], [track(10)],
              [listen(1, [10]), listen(1, [10]), listen(2, [10, 11])])
    endpoint = names.LISTEN_HISTORY
    columns = history.source_columns(lake.schema(names.raw_table(endpoint)))
    with history.merge_db(lake, settings) as db:
        db.CHUNK_ROWS = 2  # a chunk boundary inside the rows, then the day event
        history._snapshot_table(db, endpoint, columns, f"DATE '{DAY1}'", "today")
        history._previous_state(lake, db, endpoint, None, names.H_HASH, "before")
        general = db.con.execute(history._events_sql("today", "before", columns, DAY1, None)
                                 .replace("__NOTE__", "'note'")).to_arrow_table()
        select, tail = history._first_events_sql("today", columns, DAY1, "note")
        schema, batches = db.batches("today", select=select, tail=tail)
        first = pa.Table.from_batches(list(batches), schema=schema)
    assert first.schema == general.schema
    assert first.num_rows == 4 and multiset(first) == multiset(general)


def test_the_merge_connection_gives_dropped_tables_memory_back():
    """DuckDB keeps what a dropped table freed until the connection closes; release()
    hands it back before delta-rs writes (the merge's peak is not the two stacked)."""
    code = (
        "import psutil\n"
        "from lakehouse.lake.scratch import ScratchDb\n"
        "db = ScratchDb(None, '512MB', setting='merge_memory')\n"
        "rss = lambda: psutil.Process().memory_info().rss\n"
        "db.con.execute(\"CREATE TEMP TABLE t AS SELECT i, repeat('x', 500) || i AS s \"\n"
        "               \"FROM range(150000) r(i)\")\n"
        "db.con.execute('DROP TABLE t')\n"
        "held = rss()\n"
        "db.release()\n"
        "print((held - rss()) // 2**20, db.con.execute(\"SELECT current_setting('memory_limit')\")"
        ".fetchone()[0])\n")
    freed, limit = fresh_python(code).stdout.split(maxsplit=1)
    assert int(freed) >= 40  # the table was ~75 MB
    assert limit.strip() == "488.2 MiB"  # the cap is what it was (512MB)


def test_delta_writes_give_their_memory_back_unless_the_user_tunes_it():
    """delta-rs's own jemalloc is told to return freed pages at once: RSS stays flat over
    repeated writes; a setting of the user's own is left alone."""
    code = (
        "import os, sys, tempfile, psutil\n"
        "os.environ.pop('_RJEM_MALLOC_CONF', None)\n"
        "if len(sys.argv) > 1: os.environ['_RJEM_MALLOC_CONF'] = sys.argv[1]\n"
        "import lakehouse  # noqa: F401\n"
        "import pyarrow as pa\n"
        "from deltalake import write_deltalake\n"
        "t = pa.table({'s': [f'{i:08d}' + 'x' * 200 for i in range(200_000)]})\n"
        "rss = []\n"
        "for _ in range(4):\n"
        "    with tempfile.TemporaryDirectory() as d:\n"
        "        write_deltalake(d, t)\n"
        "    rss.append(psutil.Process().memory_info().rss // 2**20)\n"
        "print(os.environ['_RJEM_MALLOC_CONF'], rss[-1] - rss[0])\n")
    conf, growth = fresh_python(code).stdout.split()
    assert conf == "dirty_decay_ms:0,muzzy_decay_ms:0"
    assert int(growth) < 15, growth
    kept = fresh_python(code.replace("sys.argv) > 1", "sys.argv) > 0")
                        .replace("sys.argv[1]", "'dirty_decay_ms:10000'"))
    assert kept.stdout.split()[0] == "dirty_decay_ms:10000"


@pytest.mark.slow
def test_an_empty_snapshot_is_a_day_of_nothing(tmp_path):
    from tests.zones.conftest import DAY1, DAY2, track, user, write_raw

    settings = settings_for(tmp_path / "lake")
    lake = Lake(settings.lake)
    write_raw(lake, DAY1, [user(1)], [track(10)], [])
    write_raw(lake, DAY2, [user(1)], [track(10)], [])
    assert all(r.ok for r in build(settings, date=DAY2))
    assert history.snapshot(lake, names.USERS, DAY2).num_rows == 1
    assert not history.merged_days(lake, names.LISTEN_HISTORY)
    assert lake.exists(names.history_table(names.LISTEN_HISTORY))


def test_missing_and_null_columns_hash_alike():
    con = __import__("duckdb").connect()
    a = con.sql(f"SELECT {history.hash_sql(['a', 'b'])} AS h FROM "
                "(SELECT 1 AS a, NULL::VARCHAR AS b)").fetchone()[0]
    b = con.sql(f"SELECT {history.hash_sql(['a'])} AS h FROM (SELECT 1 AS a)").fetchone()[0]
    c = con.sql(f"SELECT {history.hash_sql(['a', 'b'])} AS h FROM "
                "(SELECT 1 AS a, 'x' AS b)").fetchone()[0]
    d = con.sql(f"SELECT {history.hash_sql(['a', 'b'])} AS h FROM "
                "(SELECT '1' AS a, NULL AS b)").fetchone()[0]
    assert a == b and a != c and a != d and len(a) == 16


# ------------------------------------------------------------------ kill -9
def _consistent(settings, config) -> None:
    """Every merged date rebuilds what was served; every raw date merged is verified."""
    lake = Lake(settings.lake)
    for endpoint in names.ENDPOINTS:
        merged = history.merged_days(lake, endpoint)
        for day in merged:
            assert multiset(history.snapshot(lake, endpoint, day)) == \
                served(config, day, endpoint), (endpoint, day)
        raw = history.raw_partitions(lake, endpoint)
        for day, fingerprint in raw.items():
            if merged.get(day, {}).get("raw") == fingerprint:
                assert history.verify_day(lake, endpoint, day)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3])
def test_sigkill_during_ingest_leaves_history_and_raw_consistent(
        churning_api, window_days, tmp_path, delay):
    lake_dir = tmp_path / "lake"
    settings = settings_for(lake_dir, churning_api.url, workers=2, raw_retention_days=2)
    try:
        for day in window_days[:3]:
            churning_api.set_as_of(day)
            assert all(r.ok for r in ingest(settings, date=day, progress=False))
        day = window_days[3]
        churning_api.set_as_of(day)
        env = {**os.environ, "LAKEHOUSE_LAKE": str(lake_dir),
               "LAKEHOUSE_API_URL": churning_api.url, "LAKEHOUSE_WORKERS": "2",
               "LAKEHOUSE_RAW_RETENTION_DAYS": "2"}
        proc = subprocess.Popen([sys.executable, "-m", "lakehouse", "ingest", "--date",
                                 str(day), "--no-progress"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill right after raw.users commits: in its history merge, or a bit later.
        committed = Lake(lake_dir).version(names.RAW_USERS)
        deadline = time.monotonic() + 60
        while Lake(lake_dir).version(names.RAW_USERS) == committed:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        _consistent(settings, churning_api.config)
        runs = ingest(settings, date=day, wait=False, progress=False)
        assert all(r.ok for r in runs), [r.error for r in runs]
        _consistent(settings, churning_api.config)
        for endpoint in names.ENDPOINTS:
            assert max(history.merged_days(Lake(lake_dir), endpoint)) == day
    finally:
        churning_api.set_as_of(churning_api.config.end)

"""Ingest against the live bundled mock API on loopback: counts, faults,
independence, SIGKILL, idempotence, drift, the CLI."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.config import Settings
from lakehouse.ingest import ingest
from lakehouse.lake import Lake
from lakehouse.locking import lake_lock
from lakehouse.mockapi.testing import running_mock_api

RAW = (names.RAW_USERS, names.RAW_TRACKS, names.RAW_LISTEN_HISTORY)
SMALL = {"seed": 11, "users": 400, "tracks": 500, "listens": 3000}
DAY = dt.date(2026, 11, 26)


def quick(lake, url: str, **kw) -> Settings:
    opts = {"workers": 4, "max_retries": 6, "backoff_factor": 0.02, "backoff_max": 0.2,
            "connect_timeout": 2.0, "read_timeout": 5.0, **kw}
    return Settings.load(env={}, lake=lake, api_url=url, **opts)


def totals(url: str) -> dict[str, int]:
    return {e: requests.get(f"{url}/{e}", params={"size": 1}, timeout=10).json()["total"]
            for e in names.ENDPOINTS}


def content(settings: Settings, table: str, date: dt.date = DAY) -> list[tuple]:
    """The source's fields of one partition, in a stable order (no run metadata)."""
    lake = Lake(settings.lake, create=False)
    cols = [c for c in lake.schema(table).names
            if c not in names.RAW_META_COLUMNS and c != names.INGEST_DATE]
    quoted = ", ".join(f'"{c}"' for c in cols)
    return lake.sql(f"SELECT {quoted} FROM {table} WHERE ingest_date = DATE '{date}' "
                    f"ORDER BY ALL").fetchall()


def test_sample_fixture_matches_the_source_totals(raw_lake, mock_api, sample_days):
    """The session fixture every other suite builds on: three days, exact counts."""
    lake = Lake(raw_lake.lake, create=False)
    for table in RAW:
        dates = [d for (d,) in lake.sql(f"SELECT DISTINCT ingest_date FROM {table} "
                                         "ORDER BY 1").fetchall()]
        assert dates == sample_days
    runs = lake.sql("SELECT target, run_date, status, records FROM meta.runs "
                    "WHERE pipeline = 'ingest'").fetchall()
    assert len(runs) == 9 and {r[2] for r in runs} == {"success"}
    mock_api.set_as_of(sample_days[-1])
    for endpoint, total in totals(mock_api.url).items():
        got = lake.sql(f"SELECT count(*) FROM raw.{endpoint} "
                       f"WHERE ingest_date = DATE '{sample_days[-1]}'").fetchone()[0]
        assert got == total


def test_reference_profile_lands_1000_rows_each(tmp_path):
    with running_mock_api(profile="reference", seed=3, users=1000, tracks=1000) as api:
        assert totals(api.url) == {e: 1000 for e in names.ENDPOINTS}
        s = quick(tmp_path / "lake", api.url)
        runs = ingest(s, date=DAY)
    assert [(r.target, r.status, r.records, r.pages) for r in runs] == [
        (e, "success", 1000, 10) for e in names.ENDPOINTS]
    lake = Lake(s.lake)
    for table in RAW:
        assert lake.sql(f"SELECT count(*), count(DISTINCT _page) FROM {table}").fetchone() \
            == (1000, 10)
    ids = lake.sql("SELECT count(DISTINCT id) FROM raw.users").fetchone()[0]
    assert ids == 1000
    lens = lake.sql("SELECT DISTINCT len(items) FROM raw.listen_history").fetchall()
    assert lens == [(5,)]


@pytest.mark.slow
def test_every_fault_kind_gives_the_clean_result(tmp_path):
    with running_mock_api(**SMALL) as api:
        clean = quick(tmp_path / "clean", api.url)
        assert all(r.ok for r in ingest(clean, date=DAY))
    faulty_cfg = {**SMALL, "fault_rate": 0.2, "slow_seconds": 0.6, "retry_after": 0}
    with running_mock_api(**faulty_cfg) as api:
        s = quick(tmp_path / "faulty", api.url, read_timeout=0.3, max_retries=8)
        runs = ingest(s, date=DAY)
    assert all(r.ok for r in runs), [r.error for r in runs]
    assert all(not r.schema_changes for r in runs), [r.schema_changes for r in runs]
    assert sum(r.retries for r in runs) >= 10
    for table in RAW:
        assert content(s, table) == content(clean, table)


@pytest.mark.slow
def test_fail_endpoint_fails_tracks_only_and_keeps_its_partition(tmp_path):
    with running_mock_api(**SMALL) as api:
        s = quick(tmp_path / "lake", api.url)
        ingest(s, date=DAY)
    before = {t: Lake(s.lake).version(t) for t in RAW}
    kept = content(s, names.RAW_TRACKS)
    with running_mock_api(**SMALL, fail_endpoint="tracks") as api:
        runs = ingest(quick(s.lake, api.url, max_retries=2), date=DAY)
    assert [r.status for r in runs] == ["success", "failed", "success"]
    assert "500" in runs[1].error
    lake = Lake(s.lake)
    assert lake.version(names.RAW_TRACKS) == before[names.RAW_TRACKS]
    assert lake.version(names.RAW_USERS) == before[names.RAW_USERS] + 1
    assert content(s, names.RAW_TRACKS) == kept


@pytest.mark.slow
def test_rerunning_a_date_is_idempotent_and_dates_accumulate(tmp_path):
    with running_mock_api(**SMALL) as api:
        s = quick(tmp_path / "lake", api.url)
        ingest(s, date=DAY)
        first = {t: content(s, t) for t in RAW}
        ingest(s, date=DAY)
        ingest(s, date=DAY + dt.timedelta(days=1))
    lake = Lake(s.lake)
    for t in RAW:
        assert content(s, t) == first[t]
        per_day = lake.sql(f"SELECT count(*) FROM {t} GROUP BY ingest_date").fetchall()
        assert per_day == [(len(first[t]),)] * 2


@pytest.mark.slow
def test_mock_drift_on_every_read_is_confirmed_and_handled(tmp_path):
    with running_mock_api(**SMALL) as api:
        s = quick(tmp_path / "lake", api.url)
        ingest(s, date=DAY)
    before = {t: Lake(s.lake).version(t) for t in RAW}
    with running_mock_api(**SMALL, fault_rate=1.0, faults=("drift",)) as api:
        runs = ingest(quick(s.lake, api.url), date=DAY)
    lake = Lake(s.lake)
    for run, table in zip(runs, RAW, strict=True):
        if run.ok:
            assert run.schema_changes, "drift on every page must be reported"
        else:
            assert "changed type: expected integer, got string" in run.error
            assert lake.version(table) == before[table]
    assert not all(r.ok for r in runs)


@pytest.mark.slow
def test_sigkill_mid_ingest_leaves_committed_tables_and_a_rerun_completes(tmp_path):
    lake_dir = tmp_path / "lake"
    with running_mock_api(**SMALL) as api:
        s = quick(lake_dir, api.url)
        ingest(s, date=DAY - dt.timedelta(days=1))
    committed = {t: Lake(lake_dir).version(t) for t in RAW}
    kept = {t: content(s, t, DAY - dt.timedelta(days=1)) for t in RAW}
    slow = {**SMALL, "fault_rate": 1.0, "faults": ("slow",), "slow_seconds": 0.15}
    with running_mock_api(**slow) as api:
        env = {**os.environ, "LAKEHOUSE_LAKE": str(lake_dir), "LAKEHOUSE_API_URL": api.url,
               "LAKEHOUSE_WORKERS": "2"}
        proc = subprocess.Popen([sys.executable, "-m", "lakehouse", "ingest", "--date",
                                 str(DAY)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        # Kill while listen_history (the biggest) is being read, after users committed.
        while Lake(lake_dir).version(names.RAW_USERS) == committed[names.RAW_USERS]:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        lake = Lake(lake_dir)
        for t in RAW:
            assert lake.version(t) in (committed[t], committed[t] + 1)
            assert content(s, t, DAY - dt.timedelta(days=1)) == kept[t]  # readable, intact
        assert lake.version(names.RAW_LISTEN_HISTORY) == committed[names.RAW_LISTEN_HISTORY]
        # The lock died with the process: a rerun neither waits nor fails.
        runs = ingest(quick(lake_dir, api.url), date=DAY, wait=False)
    assert all(r.ok for r in runs), [r.error for r in runs]
    for t in RAW:
        assert content(s, t) == content(s, t, DAY - dt.timedelta(days=1))


# --------------------------------------------------------------------------- CLI
def invoke(args: list[str], lake) -> object:
    return CliRunner().invoke(cli, ["--lake", str(lake), *args],
                              env={"LAKEHOUSE_MAX_RETRIES": "1",
                                   "LAKEHOUSE_BACKOFF_FACTOR": "0.01"})


def test_cli_ingest_prints_a_summary_and_exits_0(tmp_path, mock_api):
    result = invoke(["ingest", "users", "tracks", "--api-url", mock_api.url, "--date",
                     str(DAY), "--workers", "2", "--format", "csv"], tmp_path / "lake")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("endpoint,status,records,pages,requests,retries,bytes,version")
    assert lines[1].startswith("users,success,") and lines[2].startswith("tracks,success,")
    assert len(lines) == 3


@pytest.mark.parametrize("flag, expect", [
    (None, "lines"), ("--progress", "bars"), ("--no-progress", "nothing")])
def test_cli_renders_the_library_progress_on_stderr(tmp_path, mock_api, flag, expect):
    result = invoke(["ingest", "users", "tracks", "--api-url", mock_api.url, "--date",
                     str(DAY), *([flag] if flag else [])], tmp_path / "lake")
    assert result.exit_code == 0, result.output
    err = result.stderr.splitlines()
    if expect == "lines":  # not a terminal: one cron-friendly line per endpoint
        assert len(err) == 2
        assert err[0].startswith(f"ingest users {DAY}: success, ")
        assert err[1].startswith(f"ingest tracks {DAY}: success, ")
    elif expect == "bars":
        assert "users" in result.stderr and "tracks" in result.stderr
        # click draws a bar's label only when stderr is not a terminal.
        assert "ingest users" not in result.stderr  # bars, not cron lines
    else:
        assert result.stderr == ""
    assert result.stdout.startswith("endpoint")


def test_cli_exits_1_when_an_endpoint_fails(tmp_path):
    with running_mock_api(**SMALL, fail_endpoint="listen_history") as api:
        result = invoke(["ingest", "--api-url", api.url, "--date", str(DAY)], tmp_path / "l")
    assert result.exit_code == 1
    table = result.stdout.splitlines()
    assert table[2].split()[:2] == ["users", "success"]
    assert table[4].split()[:2] == ["listen_history", "failed"]
    assert "500" in table[4]


@pytest.mark.parametrize("args, code, message", [
    (["ingest", "--date", "2026-02-30"], 2, "is not a date; use YYYY-MM-DD"),
    (["ingest", "songs"], 1, "Error: unknown endpoint(s) 'songs'"),
    (["ingest", "--api-url", "localhost"], 1, "Error: bad API URL (--api-url or LAKEHOUSE_API_URL)"),
    (["ingest", "--api-url", "http://127.0.0.1:9"], 1, "Error: cannot reach the API"),
    (["ingest", "--workers", "0"], 2, "--workers"),
])
def test_cli_bad_input_is_one_line_and_changes_nothing(tmp_path, args, code, message):
    result = invoke(args, tmp_path / "lake")
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "lake" / "raw").exists()
    if "cannot reach" in message:
        # A source that does not answer is a failed run of every endpoint (issue 21), so
        # status turns unhealthy; a bad option is the user's to read, and not recorded.
        failed = Lake(tmp_path / "lake").sql("SELECT count(*) FROM meta.runs "
                                             "WHERE status = 'failed'").fetchone()[0]
        assert failed == 3
    else:
        assert not (tmp_path / "lake" / "meta").exists()


def test_cli_no_wait_when_locked(tmp_path, mock_api):
    s = quick(tmp_path / "lake", mock_api.url)
    with lake_lock(s.locks_dir, "ingest"):
        result = invoke(["ingest", "--no-wait", "--api-url", mock_api.url], s.lake)
    assert result.exit_code == 1
    assert "Error: another 'ingest' run holds the lake lock" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_help_has_an_example():
    result = CliRunner().invoke(cli, ["ingest", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output
    assert "--no-wait" in result.output and "--workers" in result.output

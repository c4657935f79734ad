"""lakehouse maintain: fewer files, same rows, time travel kept inside its retention."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.errors import ConfigError, LockedError
from lakehouse.lake import Lake
from lakehouse.locking import lake_lock
from lakehouse.maintain import maintain
from tests.conftest import settings_for

APPENDED = "meta.events"
REPLACED = "standardized.things"


def rows(table: pa.Table) -> list:
    return sorted(map(repr, table.to_pylist()))


@pytest.fixture
def busy_lake(tmp_path):
    """A lake with a table appended 12 times and one replaced 4 times."""
    settings = settings_for(tmp_path / "lake")
    lake = Lake(settings.lake)
    for i in range(12):
        lake.write(APPENDED, pa.table({"n": list(range(i * 10, i * 10 + 10)),
                                       "day": [f"d{i % 3}"] * 10}), partition_by=["day"])
    for i in range(4):
        lake.write(REPLACED, pa.table({"v": [i] * 5}), mode="replace")
    return settings


def every_version(lake: Lake, name: str) -> dict[int, list]:
    return {v: rows(lake.to_arrow(name, version=v)) for v in range(lake.version(name) + 1)}


def test_maintenance_compacts_and_keeps_every_version_inside_time_travel(busy_lake):
    lake = Lake(busy_lake.lake)
    before = {t: every_version(lake, t) for t in (APPENDED, REPLACED)}
    live_before = lake.info(APPENDED).files
    report = maintain(busy_lake)
    by_name = {t.name: t for t in report.tables}
    assert set(by_name) == set(lake.table_names())
    assert lake.info(APPENDED).files == 3 < live_before  # one file per partition
    assert by_name[APPENDED].compacted == live_before and by_name[APPENDED].vacuumed == 0
    for table, versions in before.items():
        for version, content in versions.items():  # a reader of any version still reads it
            assert rows(lake.to_arrow(table, version=version)) == content
    assert rows(lake.to_arrow(APPENDED)) == before[APPENDED][max(before[APPENDED])]
    assert (lake.path(APPENDED) / "_delta_log" / "_last_checkpoint").exists()


def test_beyond_time_travel_replaced_files_are_vacuumed_and_the_latest_is_intact(busy_lake):
    lake = Lake(busy_lake.lake)
    latest = {t: rows(lake.to_arrow(t)) for t in (APPENDED, REPLACED)}
    report = maintain(busy_lake.replace(time_travel_days=0))
    by_name = {t.name: t for t in report.tables}
    assert by_name[REPLACED].files_before == 4 and by_name[REPLACED].files_after == 1
    assert by_name[APPENDED].files_after == 3 and by_name[APPENDED].vacuumed == 12
    assert by_name[REPLACED].bytes_after < by_name[REPLACED].bytes_before
    for table, content in latest.items():
        assert rows(lake.to_arrow(table)) == content
    with pytest.raises(duckdb.IOException, match="No files found"):
        lake.to_arrow(REPLACED, version=0)  # its files are gone, as asked


def test_a_second_maintenance_changes_nothing_more(busy_lake):
    maintain(busy_lake.replace(time_travel_days=0))
    again = maintain(busy_lake.replace(time_travel_days=0))
    assert all(t.files_before == t.files_after and t.compacted == 0 for t in again.tables)


def test_maintenance_waits_for_no_one_when_asked_not_to(busy_lake):
    with lake_lock(busy_lake.locks_dir, "build"), pytest.raises(LockedError):
        maintain(busy_lake, wait=False)
    with pytest.raises(ConfigError, match="time_travel_days"):
        maintain(busy_lake.replace(time_travel_days=-1))


def test_cli_maintain_reports_files_and_bytes(busy_lake):
    result = CliRunner().invoke(cli, ["--lake", str(busy_lake.lake), "maintain", APPENDED,
                                      "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == ("table,files_before,files_after,bytes_before,bytes_after,compacted,"
                        "vacuumed,version")
    assert lines[1].startswith(f"{APPENDED},12,15,")  # 3 compacted files kept beside 12 old
    table = CliRunner().invoke(cli, ["--lake", str(busy_lake.lake), "maintain"]).stdout
    assert table.splitlines()[-1].startswith("total")
    assert "Example:" in CliRunner().invoke(cli, ["maintain", "--help"]).output


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.05, 0.3, 0.8])
def test_sigkill_during_maintenance_loses_nothing_and_a_rerun_completes(busy_lake, delay):
    lake = Lake(busy_lake.lake)
    for i in range(30):  # more small files, so the kill lands mid-work
        lake.write(names.META_RUNS.replace("runs", "log"), pa.table({"i": [i]}))
    latest = {t: rows(lake.to_arrow(t)) for t in lake.table_names()}
    env = {**os.environ, "LAKEHOUSE_LAKE": str(busy_lake.lake),
           "LAKEHOUSE_TIME_TRAVEL_DAYS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "lakehouse", "maintain"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Wait until the imports are done and the first table is being worked on.
    deadline = time.monotonic() + 60
    while not any("optimize" in str(c.get("operation", "")).lower()
                  for t in lake.table_names() for c in lake.history(t, 1)):
        assert time.monotonic() < deadline
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    fresh = Lake(busy_lake.lake)
    for table, content in latest.items():
        assert rows(fresh.to_arrow(table)) == content, table
    report = maintain(busy_lake.replace(time_travel_days=0), wait=False)
    assert all(t.files_after <= 3 for t in report.tables), report
    for table, content in latest.items():
        assert rows(Lake(busy_lake.lake).to_arrow(table)) == content, table


def test_a_failed_maintenance_sends_one_job_failed_alert_like_a_step(busy_lake):
    from lakehouse.context import RunContext
    from lakehouse.errors import LakehouseError
    from tests.test_broken_table import tear_the_log
    from tests.test_steps import Sinks

    tear_the_log(Lake(busy_lake.lake), REPLACED)
    sinks = Sinks()
    with pytest.raises(LakehouseError, match=REPLACED):
        maintain(RunContext.open(busy_lake, alerts=sinks), [REPLACED])
    assert [job for job, _ in sinks.jobs] == [names.MAINTAIN]
    assert sinks.jobs[0][1].startswith("lakehouse maintain failed: ")
    # A busy lake is the user's to read, not an alert.
    with pytest.raises(LockedError), lake_lock(busy_lake.locks_dir, names.BUILD):
        maintain(RunContext.open(busy_lake, alerts=sinks), wait=False)
    assert len(sinks.jobs) == 1


def test_maintain_deletes_the_scratch_of_a_killed_spark_build(busy_lake):
    # A killed `build --engine spark` leaves its intermediate Parquet under .tmp; only the
    # next Spark build removed it, so a lake back on DuckDB kept it for good.
    scratch = busy_lake.lake / ".tmp" / "spark-build-0123456789ab" / "listens"
    scratch.mkdir(parents=True)
    (scratch / "part-00000.parquet").write_bytes(b"x" * 4096)
    other = busy_lake.lake / ".tmp" / "something-else"
    other.mkdir()
    assert maintain(busy_lake, [APPENDED]).scratch_bytes == 0  # one table: the lake is left
    assert scratch.exists()
    result = CliRunner().invoke(cli, ["--lake", str(busy_lake.lake), "maintain"])
    assert result.exit_code == 0, result.output
    assert "removed 4.0 KiB of scratch files killed builds left in .tmp" in result.stderr
    assert not scratch.parent.exists() and other.exists()

"""One unreadable table is that table's problem (issue 11, item 5).

A deleted data file or a torn Delta log of one table: the other tables still
read, a step needing it fails with one line naming it and what to do (and a
failed run and an alert), and ``status`` reports it as unhealthy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.lake import Lake
from tests.conftest import copy_lake


def delete_a_data_file(lake: Lake, name: str) -> None:
    next(lake.path(name).rglob("*.parquet")).unlink()


def tear_the_log(lake: Lake, name: str) -> None:
    last = sorted((lake.path(name) / "_delta_log").glob("*.json"))[-1]
    last.write_text("garbage\n")


DAMAGE = {"deleted-file": delete_a_data_file, "torn-log": tear_the_log}


def invoke(settings, *args, env=None):
    result = CliRunner().invoke(cli, ["--lake", str(settings.lake), *args],
                                env={"RUST_BACKTRACE": "1", **(env or {})})
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    return result


def one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.fixture(params=sorted(DAMAGE))
def broken(request, tmp_path, sample_lake):
    settings = copy_lake(sample_lake, tmp_path)
    DAMAGE[request.param](Lake(settings.lake), names.RAW_USERS)
    return settings


def test_other_tables_still_read_and_the_broken_one_says_what_to_do(broken):
    ok = invoke(broken, "sql", f"SELECT count(*) AS n FROM {names.RAW_TRACKS}", "--format", "csv")
    assert ok.exit_code == 0 and int(ok.output.split()[1]) > 0, ok.output
    lake = Lake(broken.lake, create=False)
    assert lake.table(names.STD_TRACKS).count().execute() > 0
    line = one_error_line(invoke(broken, "sql", f"SELECT count(*) FROM {names.RAW_USERS}"))
    assert "raw.users is unreadable" in line
    assert "time travel to version" in line and "lakehouse ingest" in line


@pytest.mark.slow
def test_a_broken_raw_table_does_not_stop_the_build_from_the_history(broken):
    result = invoke(broken, "build")
    assert result.exit_code == 0, result.output  # its snapshots are in history.users


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_build_needing_it_fails_with_a_record_and_an_alert(tmp_path, sample_lake, damage):
    broken = copy_lake(sample_lake, tmp_path)
    DAMAGE[damage](Lake(broken.lake), names.history_table(names.USERS))  # what build reads
    out = tmp_path / "alerts.jsonl"
    sink = f"{sys.executable} -c \"import sys; open({str(out)!r}, 'a').write(sys.stdin.read())\""
    lake = Lake(broken.lake, create=False)
    before = lake.version(names.STD_USERS)
    line = one_error_line(invoke(broken, "build", env={"LAKEHOUSE_ALERT_COMMAND": sink}))
    assert "history.users is unreadable" in line
    assert lake.version(names.STD_USERS) == before
    failed = lake.sql("SELECT target, error FROM meta.runs WHERE pipeline = 'build' "
                      "AND status = 'failed'").fetchall()
    assert names.STD_USERS in {t for t, _ in failed}
    assert all("history.users is unreadable" in e for _, e in failed)
    alerts = [json.loads(x) for x in out.read_text().splitlines()]
    assert any("history.users is unreadable" in a["text"] for a in alerts)


def test_status_reports_the_broken_table(broken):
    result = invoke(broken, "status", "--format", "json")
    assert result.exit_code == 1
    problems = json.loads(result.output)["problems"]
    mine = [p for p in problems if p["subject"] == names.RAW_USERS]
    assert mine and mine[0]["kind"] == "table_unreadable" and mine[0]["severity"] == "error"
    tables = invoke(broken, "tables")
    assert tables.exit_code == 1 and "raw.users" in tables.output.splitlines()[-1]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_broken_run_log_does_not_crash_status_kpis_or_report(tmp_path, sample_lake, damage):
    settings = copy_lake(sample_lake, tmp_path)
    DAMAGE[damage](Lake(settings.lake), names.META_RUNS)
    status = invoke(settings, "status")
    assert status.exit_code == 1 and "meta.runs is unreadable" in status.output
    kpis = invoke(settings, "kpis", "--section", "daily")
    assert kpis.exit_code == 1 and "meta.runs is unreadable" in one_error_line(kpis)
    users = invoke(settings, "kpis", "--section", "users")
    assert users.exit_code == 0, users.output
    report = invoke(settings, "report", "--out", str(tmp_path / "r.html"))
    assert report.exit_code == 0, report.output
    assert "meta.runs is unreadable" in Path(tmp_path / "r.html").read_text()


def test_a_missing_run_log_folder_is_a_lake_where_nothing_ran(tmp_path, sample_lake):
    import shutil

    settings = copy_lake(sample_lake, tmp_path)
    shutil.rmtree(Lake(settings.lake).path(names.META_RUNS))
    for args in (("status",), ("kpis",), ("report", "--out", str(tmp_path / "r.html"))):
        invoke(settings, *args)


def test_ingest_into_a_table_with_a_torn_log_fails_that_endpoint_with_the_hint(
        tmp_path, sample_lake, mock_api):
    from lakehouse.ingest import ingest

    settings = copy_lake(sample_lake, tmp_path).replace(api_url=mock_api.url)
    tear_the_log(Lake(settings.lake), names.RAW_USERS)
    tracks, users = ingest(settings, ["tracks", "users"], progress=False)
    assert tracks.ok
    assert not users.ok and "raw.users is unreadable" in users.error
    assert "time travel to version" in users.error and "\n" not in users.error

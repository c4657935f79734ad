"""The status, kpis, report and alert commands."""

from __future__ import annotations

import datetime as dt
import json
import sys

import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.lake import Lake

from .conftest import DAY1, DAY2, healthy_runs, run, write_runs


@pytest.fixture
def invoke(lake_settings, monkeypatch):
    for key in ("LAKEHOUSE_ALERT_WEBHOOK", "LAKEHOUSE_ALERT_COMMAND"):
        monkeypatch.delenv(key, raising=False)

    def call(*args, env=None):
        return CliRunner().invoke(cli, ["--lake", str(lake_settings.lake), *args], env=env)
    return call


@pytest.mark.parametrize("command", ["status", "kpis", "report", "alert"])
def test_help_has_an_example(invoke, command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "Example:" in result.output


def test_status_exit_code_follows_health(invoke, lake_settings):
    write_runs(lake_settings, *healthy_runs(DAY1))
    ok = invoke("status")
    assert ok.exit_code == 0, ok.output
    assert "HEALTHY" in ok.output and "Endpoints" in ok.output

    write_runs(lake_settings, run("ingest", "users", DAY2, names.FAILED, error="HTTP 500"))
    bad = invoke("status", "--format", "json")
    assert bad.exit_code == 1
    data = json.loads(bad.output)
    assert data["healthy"] is False
    assert data["problems"][0]["subject"] == "ingest:users"
    dt.datetime.fromisoformat(data["checked_at"])


def test_status_alert_sends_once(invoke, lake_settings, tmp_path):
    out = tmp_path / "alerts.jsonl"
    # Each alert arrives as one JSON line.
    sink = f"{sys.executable} -c \"import sys; open({str(out)!r}, 'a').write(sys.stdin.read())\""
    write_runs(lake_settings, run("ingest", "users", DAY1, records=1))
    env = {"LAKEHOUSE_ALERT_COMMAND": sink}
    first = invoke("status", "--alert", env=env)
    assert first.exit_code == 1
    subjects = [json.loads(line)["alert"]["subject"] for line in out.read_text().splitlines()]
    assert sorted(subjects) == ["build", "ingest:listen_history", "ingest:tracks"]
    assert invoke("status", "--alert", env=env).exit_code == 1
    assert len(out.read_text().splitlines()) == 3  # nothing new within the window
    listed = invoke("alert", "--format", "json")
    assert len(json.loads(listed.output)) == 6


def test_status_without_a_lake_is_a_one_line_error(invoke):
    result = invoke("status")
    assert result.exit_code == 1 and result.output.startswith("Error: no lake")


def test_kpis_formats_and_sections(invoke, lake_settings):
    write_runs(lake_settings, *healthy_runs(DAY1), *healthy_runs(DAY2))
    table = invoke("kpis")
    assert table.exit_code == 0, table.output
    assert "Pipeline runs per day" in table.output and "User KPIs per day" in table.output
    csv = invoke("kpis", "--section", "daily", "--format", "csv", "--since", str(DAY2))
    lines = csv.output.splitlines()
    assert lines[0].startswith("date,pipeline,runs,succeeded,failed")
    assert [line.split(",")[:3] for line in lines[1:]] == [
        [str(DAY2), "build", "2"], [str(DAY2), "ingest", "3"]]
    data = json.loads(invoke("kpis", "--format", "json").output)
    assert set(data) == {"users", "daily", "monthly", "tables", "lake", "outcomes"}
    assert invoke("kpis", "--format", "csv").exit_code == 2
    assert invoke("kpis", "--since", "yesterday").exit_code == 2


def test_report_prints_the_path(invoke, lake_settings, tmp_path):
    Lake(lake_settings.lake)
    result = invoke("report", "--out", str(tmp_path / "r.html"))
    assert result.exit_code == 0 and result.output.strip().endswith("r.html")
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_alert_test_and_job_messages(invoke, lake_settings, tmp_path):
    Lake(lake_settings.lake)
    no_sink = invoke("alert", "--test")
    assert no_sink.exit_code == 1 and "LAKEHOUSE_ALERT_WEBHOOK" in no_sink.output
    ok = invoke("alert", "--test", env={"LAKEHOUSE_ALERT_COMMAND": "true"})
    assert ok.exit_code == 0 and "command: ok" in ok.output
    bad = invoke("alert", "--test", env={"LAKEHOUSE_ALERT_COMMAND": "false"})
    assert bad.exit_code == 1 and "command: exit 1" in bad.output
    env = {"LAKEHOUSE_ALERT_COMMAND": "true"}
    assert "command: ok" in invoke("alert", "--message", "step x failed", env=env).output
    assert "Not sent" in invoke("alert", "--message", "step x failed", env=env).output

"""Ingest does not trust the source (issue 11): an empty answer, a lying
envelope, echoed secrets and colliding field names, each against a scripted API."""

from __future__ import annotations

import datetime as dt
import json
import sys

import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.config import Settings
from lakehouse.ingest import ingest
from lakehouse.lake import Lake
from lakehouse.monitor.alerts import notify_runs

DAY = dt.date(2026, 11, 26)
NEXT = DAY + dt.timedelta(days=1)


def settings(tmp_path, api, **kw) -> Settings:
    opts = {"workers": 3, "max_retries": 1, "backoff_factor": 0.01, "backoff_max": 0.05,
            "connect_timeout": 1.0, "read_timeout": 3.0, **kw}
    return Settings.load(env={}, lake=tmp_path / "lake", api_url=api.url, **opts)


def count(s: Settings, table: str, date: dt.date) -> int:
    lake = Lake(s.lake, create=False)
    return lake.sql(f"SELECT count(*) FROM {table} WHERE ingest_date = DATE '{date}'"
                    ).fetchone()[0]


def alert_sink(tmp_path) -> tuple[str, object]:
    out = tmp_path / "alerts.jsonl"
    command = f"{sys.executable} -c \"import sys; open({str(out)!r}, 'a').write(sys.stdin.read())\""
    return command, out


# ---------------------------------------------------------------- item 3: empty answers
@pytest.mark.parametrize("date", [DAY, NEXT], ids=["same-day", "next-day"])
def test_an_empty_answer_does_not_replace_a_good_snapshot(tmp_path, fake_api, date):
    api = fake_api()
    command, out = alert_sink(tmp_path)
    s = settings(tmp_path, api, alert_command=command)
    assert all(r.ok for r in ingest(s, ["users"], date=DAY, progress=False))
    version = Lake(s.lake).version(names.RAW_USERS)
    api.data["users"] = []
    [run] = ingest(s, ["users"], date=date, progress=False)
    assert not run.ok
    assert "served 0 users records" in run.error and "--allow-empty" in run.error
    assert Lake(s.lake).version(names.RAW_USERS) == version
    assert count(s, names.RAW_USERS, DAY) == 250
    runs = Lake(s.lake).sql("SELECT status, error FROM meta.runs ORDER BY started_at").fetchall()
    assert runs[-1][0] == names.FAILED and "served 0" in runs[-1][1]
    notify_runs(s, [run])
    sent = [json.loads(line) for line in out.read_text().splitlines()]
    assert sent[-1]["alert"]["kind"] == "run_failed" and "served 0" in sent[-1]["text"]


def test_allow_empty_accepts_an_empty_answer(tmp_path, fake_api):
    api = fake_api()
    s = settings(tmp_path, api)
    ingest(s, ["users"], date=DAY, progress=False)
    api.data["users"] = []
    runner = CliRunner()
    base = ["--lake", str(s.lake), "ingest", "users", "--api-url", api.url,
            "--date", str(DAY), "--no-progress"]
    refused = runner.invoke(cli, base, env={"LAKEHOUSE_MAX_RETRIES": "1"})
    assert refused.exit_code == 1 and "served 0" in refused.output
    accepted = runner.invoke(cli, [*base, "--allow-empty"], env={"LAKEHOUSE_MAX_RETRIES": "1"})
    assert accepted.exit_code == 0, accepted.output
    assert count(s, names.RAW_USERS, DAY) == 0


def test_an_endpoint_empty_from_the_start_is_fine(tmp_path, fake_api):
    api = fake_api()
    api.data["users"] = []
    s = settings(tmp_path, api)
    [run] = ingest(s, ["users"], date=DAY, progress=False)
    assert run.ok and run.records == 0
    [again] = ingest(s, ["users"], date=NEXT, progress=False)
    assert again.ok

"""``lakehouse daily``: the whole day on the mock, the retrain policy, failures and exit codes."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.context import RunContext
from lakehouse.daily import EXIT_BITS, daily, retrain_reason
from lakehouse.lake import Lake
from lakehouse.zones import consumption, standardized
from tests.conftest import SAMPLE_SIZE, copy_lake, settings_for
from tests.test_steps import Sinks

MONDAY, THURSDAY = dt.date(2026, 11, 23), dt.date(2026, 11, 26)
QUICK = {"LAKEHOUSE_EPOCHS": "3", "LAKEHOUSE_COMPONENTS": "8", "LAKEHOUSE_WORKERS": "4",
         "LAKEHOUSE_TRAIN_TRIALS": "1", "LAKEHOUSE_TRAIN_THREADS": "1"}


def runs_of(lake_dir, day: dt.date) -> list[tuple[str, str, str]]:
    lake = Lake(lake_dir, create=False)
    return lake.sql(f"SELECT pipeline, target, status FROM {names.META_RUNS} "
                    f"WHERE run_date = DATE '{day}' ORDER BY started_at").fetchall()


@pytest.mark.slow
def test_daily_on_the_mock_records_every_step_in_meta_runs(tmp_path, raw_lake, mock_api,
                                                           sample_days):
    settings = copy_lake(raw_lake, tmp_path)
    day = sample_days[-1]
    result = CliRunner().invoke(
        cli, ["--lake", str(settings.lake), "daily", "--api-url", mock_api.url,
              "--date", str(day)], env={**QUICK, "LAKEHOUSE_RETRAIN_WEEKDAY": "-1",
                                        "LAKEHOUSE_MAINTAIN_WEEKDAY": "-1"})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Daily job for {day} on {settings.lake}: done")
    steps = [line.split()[:2] for line in result.stdout.splitlines()[3:]]
    assert steps == [["ingest", "success"], ["build", "success"], ["train", "success"],
                     ["recommend", "success"], ["outcomes", "success"], ["report", "success"],
                     ["maintain", "skipped"],
                     ["status", "success"]]
    # No champion yet, so training was due although today is no retrain weekday.
    assert re.search(r"no champion model yet: v0001 \(\S+\) promoted", result.stdout)
    runs = runs_of(settings.lake, day)
    pipelines = [p for p, _, _ in runs]
    # The fixture's ingest of that day, then the job's: ingest, build, train, recommend,
    # outcomes.
    assert pipelines[:6] == ["ingest"] * 6
    views = len(standardized.VIEWS) + len(consumption.VIEWS)
    assert pipelines[6:-3] == ["build"] * views
    assert all(status == "success" for _, _, status in runs)
    assert pipelines[-3:] == ["train", "recommend", "outcomes"]
    # Not a terminal: one line per endpoint, trial, refit and step on stderr (the cron log).
    assert f"daily {day} status: success, healthy" in result.stderr
    assert f"ingest users {day}: success" in result.stderr and " (best " in result.stderr
    assert "refit " in result.stderr


@pytest.mark.slow
def test_a_failing_endpoint_does_not_stop_the_day_and_the_exit_code_says_so(
        tmp_path, trained_lake, sample_days):
    from lakehouse.mockapi.testing import running_mock_api

    settings = copy_lake(trained_lake, tmp_path).replace(max_retries=1, backoff_factor=0.01,
                                                         maintain_weekday=-1)
    day = sample_days[-1]
    sinks = Sinks()
    with running_mock_api(seed=7, fail_endpoint="listen_history", **SAMPLE_SIZE) as api:
        ctx = RunContext.open(settings.replace(api_url=api.url), date=day, alerts=sinks)
        result = daily(ctx, retrain=False, report=False)
    outcome = {s.name: s.status for s in result.steps}
    assert outcome == {"ingest": "failed", "build": "success", "train": "skipped",
                       "recommend": "success", "outcomes": "success", "maintain": "skipped",
                       "status": "failed"}
    assert "listen_history FAILED" in result.step("ingest").detail
    assert "users 300" in result.step("ingest").detail
    assert result.exit_code == EXIT_BITS["ingest"] + EXIT_BITS["status"] == 5
    assert [(r.target, r.status) for r in sinks.runs if not r.ok] == \
        [("listen_history", "failed")]
    assert sinks.jobs == [("daily", f"daily job for {day} failed at step(s) ingest, status "
                                    "(exit 5)")]


def test_the_retrain_policy():
    s = settings_for("lake", retrain_weekday=0)
    assert retrain_reason(s, MONDAY, "v0001") == "retrain weekday (Monday)"
    assert retrain_reason(s, THURSDAY, "v0001") is None
    assert retrain_reason(s, THURSDAY, None) == "no champion model yet"
    assert retrain_reason(s.replace(retrain_weekday=-1), MONDAY, "v0001") is None


def test_nothing_ingested_skips_the_rest_but_still_reports_status(tmp_path):
    sinks = Sinks()
    ctx = RunContext.open(settings_for(tmp_path / "lake", max_retries=0), date=THURSDAY,
                          alerts=sinks)
    result = daily(ctx, report=False)  # http://127.0.0.1:9 does not answer
    outcome = {s.name: s.status for s in result.steps}
    assert outcome == {"ingest": "failed", "build": "skipped", "train": "skipped",
                       "recommend": "skipped", "outcomes": "skipped", "maintain": "skipped",
                       "status": "failed"}
    assert result.step("ingest").detail.startswith("cannot reach the API")
    assert result.exit_code == 5
    assert [job for job, _ in sinks.jobs] == ["ingest", "daily"]


def test_daily_help_has_an_example_and_bad_dates_are_usage_errors():
    runner = CliRunner()
    assert "Example:" in runner.invoke(cli, ["daily", "--help"]).output
    assert runner.invoke(cli, ["daily", "--date", "26/11/2026"]).exit_code == 2


@pytest.mark.slow
def test_maintain_runs_on_its_weekday_after_the_report_and_never_with_minus_one(
        tmp_path, trained_lake, sample_days, mock_api):
    settings = copy_lake(trained_lake, tmp_path).replace(api_url=mock_api.url)
    day = sample_days[-1]
    due = daily(RunContext.open(settings.replace(maintain_weekday=day.weekday()), date=day),
                retrain=False, report=True)
    order = [s.name for s in due.steps]
    assert order[-3:] == ["report", "maintain", "status"]
    assert due.step("maintain").status == "success", due.step("maintain").detail
    maintained = {t.name for t in due.step("maintain").value.tables}
    assert maintained == set(Lake(settings.lake, create=False).table_names())
    assert sum(t.compacted for t in due.step("maintain").value.tables) > 0
    never = daily(RunContext.open(settings.replace(maintain_weekday=-1), date=day),
                  retrain=False, report=False)
    assert never.step("maintain").status == "skipped"
    other = (day.weekday() + 1) % 7
    not_due = daily(RunContext.open(settings.replace(maintain_weekday=other), date=day),
                    retrain=False, report=False)
    assert not_due.step("maintain").status == "skipped"
    assert "not due" in not_due.step("maintain").detail

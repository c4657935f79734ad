"""The recommendations section: KPIs over score dates, their alerts, and the report's name."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.context import RunContext
from lakehouse.errors import ConfigError
from lakehouse.lake import Lake
from lakehouse.monitor.alerts import notify_runs, read_alerts
from lakehouse.monitor.recommendations import (
    COVERAGE_CHANGE,
    OVERLAP_CHANGE,
    recommendation_alerts,
    recommendation_kpis,
)
from lakehouse.monitor.report import LATEST, write_report
from lakehouse.monitor.runs import read_runs
from lakehouse.monitor.sinks import SettingsSinks
from lakehouse.recsys.score import RECOMMENDATIONS_ARROW
from lakehouse.steps import run_step

from .conftest import DAY1, DAY2, DAY3, healthy_runs, run, write_runs

# Two users, k=2, over a catalogue of 200 tracks; track 1 and 2 are the most listened.
LISTS = {
    DAY1: {1: [1, 3], 2: [2, 4]},
    DAY2: {1: [1, 3], 2: [2, 5]},            # user 2 keeps 1 of 2: overlap (1 + 0.5) / 2
    DAY3: {1: [6, 7], 2: [8, 9], 3: [1, 2]},  # no one keeps anything; user 3 is new
}


def write_lists(lake: Lake, lists=LISTS, versions=None) -> None:
    for day, per_user in lists.items():
        version = (versions or {}).get(day, "v0001")
        rows = [(u, r, t) for u, ts in per_user.items() for r, t in enumerate(ts, start=1)]
        n = len(rows)
        lake.write(names.CONS_RECOMMENDATIONS, pa.table({
            names.SCORE_DATE: pa.array([day] * n, pa.date32()),
            names.USER_ID: pa.array([r[0] for r in rows], pa.int64()),
            "rank": pa.array([r[1] for r in rows], pa.int64()),
            names.TRACK_ID: pa.array([r[2] for r in rows], pa.int64()),
            "score": pa.array([1.0] * n, pa.float32()),
            "model_version": pa.array([version] * n),
            "input_versions": pa.array(["{}"] * n),
            "route": pa.array(["warm:lightfm"] * n),
        }, schema=RECOMMENDATIONS_ARROW), mode="replace_partition",
            partition={names.SCORE_DATE: day.isoformat()}, partition_by=[names.SCORE_DATE])
    lake.write(names.CONS_TRACK_FEATURES, pa.table({
        names.TRACK_ID: pa.array(range(1, 201), pa.int64())}), mode="replace")
    listened = [1] * 5 + [2] * 4 + list(range(3, 50))
    lake.write(names.CONS_INTERACTIONS, pa.table({
        names.USER_ID: pa.array(range(len(listened)), pa.int64()),
        names.TRACK_ID: pa.array(listened, pa.int64())}), mode="replace")


def test_kpis_per_score_date(lake_settings):
    lake = Lake(lake_settings.lake)
    write_lists(lake)
    write_runs(lake_settings, run("recommend", names.CONS_RECOMMENDATIONS, DAY3,
                                  records=6, details={"users": 3, "cold_start_users": 1}))
    kpis = recommendation_kpis(lake, read_runs(lake))
    assert kpis["score_date"].tolist() == [DAY1, DAY2, DAY3]
    assert kpis["users"].tolist() == [2, 2, 3]
    assert kpis["coverage"].tolist() == [4 / 200, 4 / 200, 6 / 200]
    # The top 1% of 200 tracks is 2 tracks (1 and 2, the most listened).
    assert kpis["top1_share"].tolist() == [0.5, 0.5, pytest.approx(2 / 6)]
    assert kpis["overlap"].isna().tolist() == [True, False, False]
    assert kpis["overlap"].tolist()[1:] == [0.75, 0.0]
    assert kpis["cold_start_share"].tolist()[2] == pytest.approx(1 / 3)
    assert kpis["cold_start_share"].isna().tolist()[:2] == [True, True]


def test_alerts_when_coverage_or_overlap_move_beyond_their_thresholds(lake_settings):
    lake = Lake(lake_settings.lake)
    write_lists(lake)
    kpis = recommendation_kpis(lake)
    alerts = recommendation_alerts(lake_settings, kpis)  # coverage +50 %, overlap -75 points
    assert sorted(a.kind for a in alerts) == [COVERAGE_CHANGE, OVERLAP_CHANGE]
    assert all(a.details["score_date"] == str(DAY3) for a in alerts)
    calm = lake_settings.replace(max_coverage_change=0.6, max_overlap_change=0.8)
    assert recommendation_alerts(calm, kpis) == []
    assert recommendation_alerts(lake_settings, kpis.head(2)) == []  # nothing moved
    assert recommendation_alerts(lake_settings, kpis.head(1)) == []


def test_a_new_model_changes_the_lists_without_an_overlap_alert(lake_settings):
    # The demo's refit day: the champion changed, so the lists did; that is not drift.
    lake = Lake(lake_settings.lake)
    write_lists(lake, versions={DAY3: "v0002"})
    alerts = recommendation_alerts(lake_settings, recommendation_kpis(lake))
    assert [a.kind for a in alerts] == [COVERAGE_CHANGE]
    assert alerts[0].message.endswith("; the model changed from v0001 to v0002")
    assert alerts[0].details["previous_model_version"] == "v0001"


def test_a_scoring_run_sends_the_recommendation_alerts(lake_settings):
    lake = Lake(lake_settings.lake)
    write_lists(lake)
    sent = notify_runs(lake_settings, [run("recommend", names.CONS_RECOMMENDATIONS, DAY3)])
    assert {a.kind for a in sent} == {COVERAGE_CHANGE, OVERLAP_CHANGE}
    again = notify_runs(lake_settings, [run("recommend", names.CONS_RECOMMENDATIONS, DAY3)])
    assert all(a.suppressed for a in again)  # de-duplicated like every other alert


@pytest.mark.parametrize(("variable", "value"), [
    ("LAKEHOUSE_MAX_COVERAGE_CHANGE", "0"), ("LAKEHOUSE_MAX_COVERAGE_CHANGE", "-1"),
    ("LAKEHOUSE_MAX_OVERLAP_CHANGE", "0"), ("LAKEHOUSE_MAX_OVERLAP_CHANGE", "1.5")])
def test_thresholds_are_validated(variable, value, lake_settings):
    # Refused when the settings are made, like every numeric setting: no report or
    # scoring run gets as far as comparing against a meaningless threshold.
    with pytest.raises(ConfigError, match=variable):
        Settings.load(env={variable: value}, lake=lake_settings.lake)
    with pytest.raises(ConfigError, match="must be a number"):
        Settings.load(env={variable: "a lot"})


def test_the_step_runner_sends_them_after_a_recommend_step(lake_settings):
    # Where every run notification goes since the step runner: so the CLI, the daily
    # job, the demo and a notebook's recommend all alert alike (each hands in the sinks).
    write_lists(Lake(lake_settings.lake))
    ctx = RunContext.open(lake_settings, date=DAY3, alerts=SettingsSinks(lake_settings))
    run_step(ctx, names.RECOMMEND, lambda step: step.start(names.CONS_RECOMMENDATIONS))
    kinds = {a["kind"] for a in read_alerts(ctx)}
    assert {COVERAGE_CHANGE, OVERLAP_CHANGE} <= kinds


def test_the_report_is_named_after_the_latest_run_and_copied_to_latest(lake_settings, tmp_path):
    lake = Lake(lake_settings.lake)
    write_lists(lake)
    write_runs(lake_settings, *healthy_runs(DAY1), *healthy_runs(DAY2))
    path = write_report(lake_settings)
    assert path.name == f"report-{DAY2}.html"
    latest = lake_settings.reports_dir / LATEST
    assert latest.read_text() == path.read_text() and not latest.is_symlink()
    html = path.read_text()
    assert 'id="recommendations"' in html and "alert</span>" in html
    assert f"report-{DAY2}.html" in {p.name for p in lake_settings.reports_dir.iterdir()}
    # A named file elsewhere leaves the lake's latest.html alone.
    before = latest.stat().st_mtime_ns
    assert write_report(lake_settings, tmp_path / "mine.html").name == "mine.html"
    assert latest.stat().st_mtime_ns == before and not (tmp_path / LATEST).exists()


def test_a_lake_without_runs_names_the_report_after_today(lake_settings):
    Lake(lake_settings.lake)
    path = write_report(lake_settings)
    assert path.name == f"report-{dt.datetime.now(dt.UTC).date()}.html"

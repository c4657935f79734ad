"""The end of ``lakehouse demo``: how to open the report, serve, and query one user."""

from __future__ import annotations

from lakehouse.cli import _demo_next_steps
from lakehouse.demo import DemoResult
from lakehouse.lake import Lake
from lakehouse.monitor.report import write_report
from tests.conftest import copy_lake


def test_the_demo_ends_with_the_report_url_the_serve_command_and_a_curl(
        tmp_path, trained_lake, capsys):
    settings = copy_lake(trained_lake, tmp_path)
    report = write_report(settings)
    _demo_next_steps(DemoResult(lake=settings.lake, days=[], report=report), "lakehouse")
    lines = capsys.readouterr().out.splitlines()
    url = f"file://{(report.parent / 'latest.html').resolve()}"
    assert lines[0] == f"Open the report in a browser: {url}"
    assert f"lakehouse --lake {settings.lake} serve --port 8080" in lines[1]
    user = Lake(settings.lake).sql("SELECT min(user_id) FROM consumption.recommendations "
                                   "WHERE score_date = (SELECT max(score_date) FROM "
                                   "consumption.recommendations)").fetchone()[0]
    assert lines[2] == f"  curl -s 'http://127.0.0.1:8080/recommendations/{user}?k=5'"


def test_without_recommendations_there_is_no_curl_to_suggest(tmp_path, sample_lake, capsys):
    _demo_next_steps(DemoResult(lake=sample_lake.lake, days=[], report=None), "lakehouse")
    assert capsys.readouterr().out == ""

"""Alert rules, sinks (a real loopback webhook, a command) and de-duplication."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from lakehouse import names
from lakehouse.errors import ConfigError
from lakehouse.monitor import alerts as al
from lakehouse.monitor.runs import read_runs

from .conftest import DAY1, DAY2, run, write_runs


def kinds(alerts):
    return sorted((a.kind, a.subject) for a in alerts)


# ---------------------------------------------------------------- rules
def test_a_failed_run_is_an_error_alert(lake_settings):
    failed = run("ingest", "users", DAY1, names.FAILED, error="HTTP 500 on page 3")
    [alert] = al.run_alerts(lake_settings, [failed])
    assert (alert.kind, alert.subject, alert.severity) == (al.RUN_FAILED, "ingest:users",
                                                           al.ERROR)
    assert "HTTP 500 on page 3" in alert.message and str(DAY1) in alert.message
    assert alert.key == "run_failed:ingest:users"


def test_quarantine_share_over_the_threshold_alerts_with_top_reasons(lake_settings):
    settings = lake_settings.replace(max_quarantine_share=0.05)
    over = run("build", names.STD_USERS, DAY1, rows_in=100, quarantined=6, records=94,
               details={"quarantine_reasons": {"bad email": 4, "unknown gender": 2}})
    at_limit = run("build", names.STD_TRACKS, DAY1, rows_in=100, quarantined=5, records=95)
    alerts = al.run_alerts(settings, [over, at_limit])
    assert kinds(alerts) == [(al.QUARANTINE_SHARE, names.STD_USERS)]
    assert "6.0%" in alerts[0].message and "bad email: 4" in alerts[0].message


def test_row_count_far_from_the_previous_day_alerts(lake_settings):
    settings = lake_settings.replace(max_row_change=0.5)
    write_runs(settings, run("ingest", "users", DAY1, records=1000),
               run("ingest", "tracks", DAY1, records=1000))
    history = read_runs(al.Lake(settings.lake))
    today = [run("ingest", "users", DAY2, records=400),    # -60 %: alert
             run("ingest", "tracks", DAY2, records=1400),  # +40 %: fine
             run("ingest", "listen_history", DAY2, records=5)]  # no previous day: fine
    alerts = al.run_alerts(settings, today, history)
    assert kinds(alerts) == [(al.ROW_CHANGE, "ingest:users")]
    assert alerts[0].details["previous_records"] == 1000
    assert "-60%" in alerts[0].message


def test_a_challenger_that_failed_its_gate_alerts_but_a_promoted_one_does_not(lake_settings):
    kept = run("train", "models", DAY1, details={
        "version": "v0002", "promoted": False, "reason": "p@10 0.10 < champion 0.12"})
    promoted = run("train", "models", DAY2, details={"version": "v0003", "promoted": True})
    alerts = al.run_alerts(lake_settings, [kept, promoted])
    assert kinds(alerts) == [(al.GATE_FAILED, "train:models")]
    assert "v0002" in alerts[0].message and "0.12" in alerts[0].message


def test_healthy_runs_raise_nothing(lake_settings):
    ok = [run("ingest", "users", DAY1, records=10), run("recommend", names.CONS_RECOMMENDATIONS,
                                                         DAY1, records=100)]
    assert al.notify_runs(lake_settings, ok) == []


# ---------------------------------------------------------------- webhook and dedup
def test_webhook_gets_the_alert_json_once_per_window(lake_settings, receiver):
    settings = lake_settings.replace(alert_webhook=receiver.url, alert_window_minutes=60)
    failed = run("ingest", "users", DAY1, names.FAILED, error="connection reset")
    write_runs(settings, failed)

    [first] = al.notify_runs(settings, [failed])
    assert first.delivered == {"webhook": "ok"} and not first.suppressed
    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert body["text"].startswith("[lakehouse ERROR] ingest users failed")
    assert body["alert"]["kind"] == "run_failed"
    assert body["alert"]["subject"] == "ingest:users"
    assert body["alert"]["details"]["error"] == "connection reset"

    again = run("ingest", "users", DAY1, names.FAILED, error="connection reset")
    [second] = al.notify_runs(settings, [again])
    assert second.suppressed and second.delivered == {}
    assert len(receiver.bodies) == 1

    # A different problem is not a repeat.
    other = run("ingest", "tracks", DAY1, names.FAILED, error="HTTP 503")
    al.notify_runs(settings, [other])
    assert [b["alert"]["subject"] for b in receiver.bodies] == ["ingest:users", "ingest:tracks"]

    recorded = al.read_alerts(settings)
    assert [(a["key"], a["suppressed"]) for a in recorded] == [
        ("run_failed:ingest:tracks", False), ("run_failed:ingest:users", True),
        ("run_failed:ingest:users", False)]


def test_after_the_window_the_alert_is_sent_again(lake_settings, receiver):
    settings = lake_settings.replace(alert_webhook=receiver.url, alert_window_minutes=0)
    failed = run("build", names.STD_USERS, DAY1, names.FAILED, error="check failed")
    al.notify_runs(settings, [failed])
    al.notify_runs(settings, [failed])
    assert len(receiver.bodies) == 2


def test_a_failing_webhook_is_logged_without_its_url_and_never_raised(
        lake_settings, receiver, caplog):
    receiver.status = 500
    settings = lake_settings.replace(alert_webhook=receiver.url)
    caplog.set_level(logging.DEBUG)
    [alert] = al.notify_runs(settings, [run("ingest", "users", DAY1, names.FAILED, error="x")])
    assert alert.delivered == {"webhook": "HTTP 500"}
    assert "answered HTTP 500" in caplog.text
    assert "s3cr3t" not in caplog.text


def test_an_unreachable_webhook_is_logged_without_its_url(lake_settings, caplog):
    settings = lake_settings.replace(alert_webhook="http://127.0.0.1:9/hooks/s3cr3t-token")
    caplog.set_level(logging.DEBUG)
    [alert] = al.notify_runs(settings, [run("ingest", "users", DAY1, names.FAILED, error="x")])
    # Issue 21: "URLError" alone said nothing; now where and why, still not the path.
    assert alert.delivered["webhook"] == "URLError: Connection refused"
    assert "alert webhook at http://127.0.0.1:9 failed: URLError: Connection refused" \
        in caplog.text
    assert "s3cr3t" not in caplog.text and "/hooks" not in caplog.text


def test_a_webhook_error_quoting_the_url_is_scrubbed():
    url = "https://hooks.example.org/services/T0/B0/s3cr3t?x=1"
    error = ValueError(f"unknown url type: {url}")
    assert "s3cr3t" not in al._webhook_reason(error, url)
    assert al._webhook_host(url) == "https://hooks.example.org"


def test_the_command_sink_gets_the_alert_json_on_stdin(lake_settings, tmp_path):
    out = tmp_path / "alert.json"
    script = tmp_path / "sink.py"
    script.write_text(f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())")
    settings = lake_settings.replace(alert_command=f"{sys.executable} {script}")
    [alert] = al.notify_runs(settings, [run("recommend", names.CONS_RECOMMENDATIONS, DAY1,
                                            names.FAILED, error="no champion")])
    assert alert.delivered == {"command": "ok"}
    body = json.loads(out.read_text())
    assert body["alert"]["kind"] == "run_failed" and "no champion" in body["text"]
    assert body["alert"]["lake"] == str(settings.lake)


def test_a_failing_command_is_logged_and_never_raised(lake_settings, caplog):
    settings = lake_settings.replace(alert_command=f"{sys.executable} -c 'raise SystemExit(4)'")
    [alert] = al.notify_runs(settings, [run("ingest", "users", DAY1, names.FAILED, error="x")])
    assert alert.delivered == {"command": "exit 4"}
    missing = lake_settings.replace(alert_command="/nonexistent/alert-sink")
    [alert] = al.send_alerts(missing, [al.Alert(al.TEST, "t", al.WARNING, "m")], dedup=False)
    assert alert.delivered == {"command": "FileNotFoundError"}


def test_a_broken_alert_log_still_sends(lake_settings, receiver):
    settings = lake_settings.replace(alert_webhook=receiver.url)
    settings.lake.mkdir(parents=True)
    settings.locks_dir.write_text("not a folder")  # the lock cannot be taken
    [alert] = al.notify_runs(settings, [run("ingest", "users", DAY1, names.FAILED, error="x")])
    assert alert.delivered == {"webhook": "ok"} and len(receiver.bodies) == 1


def test_test_alert_needs_a_sink_and_bypasses_dedup(lake_settings, receiver):
    with pytest.raises(ConfigError, match="LAKEHOUSE_ALERT_WEBHOOK"):
        al.send_test_alert(lake_settings)
    settings = lake_settings.replace(alert_webhook=receiver.url)
    al.send_test_alert(settings)
    al.send_test_alert(settings)
    assert len(receiver.bodies) == 2 and receiver.bodies[0]["alert"]["kind"] == "test"


def test_the_webhook_url_is_not_in_the_settings_repr(receiver, lake_settings):
    assert "s3cr3t" not in repr(lake_settings.replace(alert_webhook=receiver.url))

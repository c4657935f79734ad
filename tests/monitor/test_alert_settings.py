"""Alert settings are checked when settings load, and a sink never crashes a
command or shows its secret (issue 11, item 6)."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from lakehouse.cli import cli
from lakehouse.config import Settings
from lakehouse.errors import ConfigError
from lakehouse.monitor.alerts import Alert, _post_webhook, send_alerts

SECRET = "T000/B000/SECRETSECRET"
BAD = [f"hooks.slack.com/services/{SECRET}", f"ftp://hooks.example/{SECRET}",
       f"https:///{SECRET}", f"http://[::1/{SECRET}", f"https://h:port/{SECRET}", SECRET]


@pytest.mark.parametrize("url", BAD)
def test_a_webhook_that_is_not_an_http_url_is_refused_without_showing_it(url):
    with pytest.raises(ConfigError) as info:
        Settings.load(env={"LAKEHOUSE_ALERT_WEBHOOK": url})
    assert "LAKEHOUSE_ALERT_WEBHOOK" in str(info.value)
    assert "SECRET" not in str(info.value)


@pytest.mark.parametrize("args", [("ingest", "--api-url", "http://127.0.0.1:9"),
                                  ("status", "--alert"), ("alert", "--test")])
def test_commands_fail_in_one_line_and_never_print_the_secret(tmp_path, args):
    result = CliRunner().invoke(cli, ["--lake", str(tmp_path / "lake"), *args],
                                env={"LAKEHOUSE_ALERT_WEBHOOK": BAD[0]})
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "SECRET" not in result.output and "Traceback" not in result.output


def test_a_sink_failure_is_contained_and_logs_no_secret(caplog):
    caplog.set_level(logging.DEBUG)
    outcome = _post_webhook(BAD[0], "{}")
    # The class and the reason (issue 21), with the URL scrubbed out of the reason.
    assert outcome.startswith("ValueError") and "SECRET" not in outcome
    assert "SECRET" not in caplog.text


def test_send_alerts_survives_a_broken_webhook(tmp_path, caplog):
    # Settings validated the URL; a server that refuses is still only a logged outcome.
    settings = Settings.load(env={}, lake=tmp_path / "lake",
                             alert_webhook=f"http://127.0.0.1:9/{SECRET}")
    [alert] = send_alerts(settings, [Alert("test", "x", "warning", "hello")])
    assert alert.delivered["webhook"] != "ok"
    assert "SECRET" not in caplog.text


def test_good_webhooks_load():
    for url in ("https://hooks.slack.com/services/T/B/X", "http://127.0.0.1:8080/hook"):
        assert Settings.load(env={"LAKEHOUSE_ALERT_WEBHOOK": url}).alert_webhook == url


@pytest.mark.parametrize("command", ['tee -a "/tmp/unclosed', "   "])
def test_an_alert_command_that_does_not_split_is_refused_as_settings_load(command):
    with pytest.raises(ConfigError, match="LAKEHOUSE_ALERT_COMMAND"):
        Settings.load(env={}, alert_command=command)

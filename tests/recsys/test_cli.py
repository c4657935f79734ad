"""The train, recommend and models commands, driven like a user would."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lakehouse.cli import cli
from lakehouse.recsys.families import CANDIDATES

from .conftest import LAST_DAY


@pytest.fixture
def run(tiny_settings, monkeypatch):
    for var in ("LAKEHOUSE_EPOCHS", "LAKEHOUSE_COMPONENTS", "LAKEHOUSE_ALERT_WEBHOOK",
                "LAKEHOUSE_ALERT_COMMAND"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LAKEHOUSE_TRAIN_THREADS", "1")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, ["--lake", str(tiny_settings.lake), *args])

    return invoke


def test_train_recommend_and_models_commands(run):
    day = LAST_DAY.isoformat()
    trained = run("train", "--date", day, "--trials", "1", "--budget", "10m",
                  "--epochs", "5", "--components", "8")
    assert trained.exit_code == 0, trained.output
    out = trained.output
    assert "candidates on" in out and "chosen: " in out and "refit on every listen" in out
    for name in ("popularity", "als", "lightfm+both"):
        assert f"\n  {name} " in out
    assert "PROMOTED to champion: first model" in out
    assert "lightfm       trial   0" in out  # progress goes to stderr, mixed in by CliRunner

    scored = run("recommend", "--date", day, "--k", "4")
    assert scored.exit_code == 0, scored.output
    assert scored.output.startswith("Wrote 480 recommendations for 120 users")
    assert "model v0001" in scored.output and "routes warm:" in scored.output

    again = run("train", "--date", day, "--trials", "1", "--promote", "never")
    assert again.exit_code == 0 and "not promoted: --promote never" in again.output

    listed = run("models", "list", "--format", "json")
    rows = json.loads(listed.output)
    assert [(r["version"], r["alias"]) for r in rows] == [("v0001", "champion"),
                                                          ("v0002", "challenger")]
    shown = json.loads(run("models", "show", "champion").output)
    assert shown["version"] == "v0001" and shown["refit"] is True
    assert set(shown["metrics"]) >= {"model", "baseline", "cold_start"}
    assert len(shown["candidates"]) == len(CANDIDATES) and "trials" not in shown

    promoted = run("models", "promote", "v0002", "--reason", "test")
    assert promoted.output == "Champion is now v0002 (was v0001).\n"
    rolled = run("models", "rollback")
    assert rolled.output == "Champion is now v0001 (rolled back from v0002).\n"


@pytest.mark.parametrize("budget", ["soon", "-5m", "5x"])
def test_a_bad_budget_is_a_usage_error(run, budget):
    result = run("train", "--budget", budget)
    assert result.exit_code == 2 and "is not a duration" in result.output


def test_errors_are_one_line(run):
    missing = run("models", "show", "v0042")
    assert missing.exit_code == 1
    assert missing.output.startswith("Error: no model version 'v0042'")
    assert len(missing.output.strip().splitlines()) == 1
    nothing = run("recommend", "--date", LAST_DAY.isoformat())
    assert nothing.exit_code == 1 and "run 'lakehouse train'" in nothing.output
    rollback = run("models", "rollback")
    assert rollback.exit_code == 1 and "no previous champion" in rollback.output
    bad = run("train", "--promote", "maybe")
    assert bad.exit_code == 2


def test_empty_registry_listing(run):
    result = run("models", "list")
    assert result.exit_code == 0 and "No models in" in result.output


@pytest.mark.parametrize("command", [["train"], ["recommend"], ["models"], ["models", "list"],
                                     ["models", "show"], ["models", "promote"],
                                     ["models", "rollback"]])
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Example:" in result.output

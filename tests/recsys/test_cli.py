"""The train, recommend and models commands, driven like a user would."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lakehouse.cli import cli

from .conftest import LAST_DAY


@pytest.fixture
def run(tiny_settings, monkeypatch):
    for var in ("LAKEHOUSE_EPOCHS", "LAKEHOUSE_COMPONENTS", "LAKEHOUSE_ALERT_WEBHOOK",
                "LAKEHOUSE_ALERT_COMMAND"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, ["--lake", str(tiny_settings.lake), *args])

    return invoke


def test_train_recommend_and_models_commands(run):
    day = LAST_DAY.isoformat()
    trained = run("train", "--date", day, "--epochs", "5", "--components", "8")
    assert trained.exit_code == 0, trained.output
    assert "model v0001: p@10" in trained.output and "popularity:" in trained.output
    assert "PROMOTED to champion: first model" in trained.output
    assert "epoch 5/5" in trained.output  # progress goes to stderr, mixed in by CliRunner

    scored = run("recommend", "--date", day, "--k", "4")
    assert scored.exit_code == 0, scored.output
    assert scored.output.startswith("Wrote 480 recommendations for 120 users")
    assert "model v0001" in scored.output

    again = run("train", "--date", day, "--epochs", "1", "--components", "1",
                "--learning-rate", "0.0001")
    assert again.exit_code == 0 and "not promoted:" in again.output

    listed = run("models", "list", "--format", "json")
    rows = json.loads(listed.output)
    assert [(r["version"], r["alias"]) for r in rows] == [("v0001", "champion"),
                                                          ("v0002", "challenger")]
    shown = json.loads(run("models", "show", "champion").output)
    assert shown["version"] == "v0001" and shown["params"]["epochs"] == 5
    assert set(shown["metrics"]) >= {"model", "baseline", "cold_start"}

    promoted = run("models", "promote", "v0002", "--reason", "test")
    assert promoted.output == "Champion is now v0002 (was v0001).\n"
    rolled = run("models", "rollback")
    assert rolled.output == "Champion is now v0001 (rolled back from v0002).\n"


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

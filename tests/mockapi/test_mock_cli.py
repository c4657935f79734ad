"""The ``lakehouse mock-api`` command: help, option checks, and what it serves."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from lakehouse.cli import cli
from lakehouse.mockapi import server
from lakehouse.mockapi.data import FAULT_KINDS, MockConfig


@pytest.fixture
def served(monkeypatch) -> dict:
    """Capture what the command would serve instead of serving it."""
    calls: dict = {}

    def fake_serve(config, **kwargs):
        calls.update(config=config, **kwargs)

    monkeypatch.setattr(server, "serve", fake_serve)
    return calls


def run(*args: str):
    return CliRunner().invoke(cli, ["mock-api", *args])


def test_help_documents_every_option_with_an_example():
    result = run("--help")
    assert result.exit_code == 0
    for option in ("--host", "--port", "--seed", "--profile", "--users", "--tracks",
                   "--listens", "--start", "--days", "--as-of", "--admin", "--fault-rate",
                   "--faults", "--fail-endpoint", "--slow-seconds"):
        assert option in result.output
    assert "Example:\n    lakehouse mock-api --port 8000 --seed 42" in result.output
    assert "/_mock/as-of" in result.output


def test_defaults_serve_the_default_realistic_data_on_loopback(served):
    result = run()
    assert result.exit_code == 0, result.output
    assert served["config"] == MockConfig()
    assert served["host"] == "127.0.0.1" and served["port"] == 8000
    assert served["admin"] is False


def test_options_reach_the_config(served):
    result = run("--seed", "7", "--users", "50", "--tracks", "60", "--listens", "70",
                 "--start", "2026-01-01", "--days", "3", "--as-of", "2026-01-02", "--admin",
                 "--fault-rate", "0.25", "--faults", "429, reset", "--fail-endpoint", "users",
                 "--slow-seconds", "0.5", "--host", "0.0.0.0", "--port", "0")
    assert result.exit_code == 0, result.output
    config = served["config"]
    assert (config.seed, config.users, config.tracks, config.listens) == (7, 50, 60, 70)
    assert str(config.start) == "2026-01-01" and config.days == 3
    assert str(config.effective_as_of) == "2026-01-02"
    assert config.faults == ("429", "reset") and config.fault_rate == 0.25
    assert config.fail_endpoint == "users" and config.slow_seconds == 0.5
    assert served["admin"] is True and served["host"] == "0.0.0.0" and served["port"] == 0


def test_reference_profile_defaults_to_1000_per_endpoint(served):
    assert run("--profile", "reference").exit_code == 0
    config = served["config"]
    assert (config.profile, config.users, config.tracks) == ("reference", 1000, 1000)


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--faults", "429,boom"], 1, "Error: unknown fault kind(s) boom; use some of "
                                  + ",".join(FAULT_KINDS)),
    (["--tracks", "3"], 1, "Error: mock tracks must be an integer >= 17, got 3"),
    (["--fault-rate", "2"], 2, "Invalid value for '--fault-rate'"),
    (["--profile", "huge"], 2, "Invalid value for '--profile'"),
    (["--fail-endpoint", "albums"], 2, "Invalid value for '--fail-endpoint'"),
    (["--as-of", "31/10/2026"], 2, "is not a date; use YYYY-MM-DD"),
    (["--users", "0"], 2, "Invalid value for '--users'"),
])
def test_bad_options_are_one_line_errors(served, args, code, message):
    result = run(*args)
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output
    assert not served


def test_port_in_use_is_an_error_not_a_traceback():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run("--port", str(busy.getsockname()[1]), "--users", "20", "--tracks", "20",
                     "--listens", "10")
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot listen on 127.0.0.1:")
    assert "pick another --port" in result.output

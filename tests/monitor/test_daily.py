"""scripts/daily.sh, the cron wrapper, with a fake, fast ``lakehouse`` (LAKEHOUSE_BIN):
the call, the log, the lock, the exit code. The job itself is tests/test_daily_job.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

DAILY = Path(__file__).resolve().parents[2] / "scripts" / "daily.sh"
THURSDAY = "2026-11-26"

pytestmark = pytest.mark.skipif(shutil.which("flock") is None, reason="needs flock(1)")

FAKE = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_CALLS"
echo "daily ${3:-} ingest: success"
sleep "${FAKE_SLEEP:-0}"
[[ -n "${FAKE_FAIL:-}" ]] && { echo "fake job failed" >&2; exit "$FAKE_FAIL"; }
exit 0
"""


@pytest.fixture
def env(tmp_path):
    fake = tmp_path / "lakehouse"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    return {**{k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")},
            "LAKEHOUSE_BIN": str(fake), "LAKEHOUSE_LAKE": str(tmp_path / "lake"),
            "FAKE_CALLS": str(tmp_path / "calls"), "LAKEHOUSE_DATE": THURSDAY}


def daily(env, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(DAILY)], env={**env, **extra}, capture_output=True,
                          text=True, timeout=60)


def calls(env) -> list[str]:
    path = Path(env["FAKE_CALLS"])
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def test_runs_lakehouse_daily_for_the_date_and_logs_in_the_lake(env):
    done = daily(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert Path(env["FAKE_CALLS"]).read_text().splitlines() == [f"daily --date {THURSDAY}"]
    log = (Path(env["LAKEHOUSE_LAKE"]) / "logs" / f"daily-{THURSDAY}.log").read_text()
    assert f"daily {THURSDAY} ingest: success" in log and "done: healthy" in log


def test_the_date_defaults_to_today_utc(env):
    env = {k: v for k, v in env.items() if k != "LAKEHOUSE_DATE"}
    assert daily(env).returncode == 0
    today = subprocess.run(["date", "-u", "+%F"], capture_output=True, text=True).stdout.strip()
    assert Path(env["FAKE_CALLS"]).read_text().split() == ["daily", "--date", today]


@pytest.mark.slow
def test_two_runs_at_once_run_once(env):
    slow = {**env, "FAKE_SLEEP": "2"}
    first = subprocess.Popen(["bash", str(DAILY)], env=slow, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    log = Path(env["LAKEHOUSE_LAKE"]) / "logs" / f"daily-{THURSDAY}.log"
    deadline = time.monotonic() + 20
    while "start daily job" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the first run never started"
        time.sleep(0.05)
    second = daily(slow)
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 0, out
    assert second.returncode == 0 and "skipped" in second.stdout
    assert calls(env) == ["daily"]
    assert "skipped" in log.read_text()
    # Once the first is done, the next run goes ahead.
    assert daily(env).returncode == 0 and calls(env) == ["daily", "daily"]


@pytest.mark.parametrize("code", ["1", "5", "44"])
def test_the_job_exit_code_is_the_wrappers(env, code):
    done = daily(env, FAKE_FAIL=code)
    assert done.returncode == int(code)
    assert f"FAILED (exit {code})" in done.stdout and "fake job failed" in done.stdout
    assert calls(env) == ["daily"]  # the job alerted itself; the wrapper adds nothing


def test_bad_date_and_missing_command_are_refused(env):
    done = daily(env, LAKEHOUSE_DATE="26/11/2026")
    assert done.returncode == 2 and "not a date" in done.stderr
    done = daily(env, LAKEHOUSE_BIN="/nonexistent/lakehouse")
    assert done.returncode == 2 and "not executable" in done.stderr

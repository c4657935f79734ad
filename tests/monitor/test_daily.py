"""scripts/daily.sh with a fake, fast ``lakehouse`` (LAKEHOUSE_BIN): order, lock, failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

DAILY = Path(__file__).resolve().parents[2] / "scripts" / "daily.sh"
MONDAY, THURSDAY = "2026-11-23", "2026-11-26"

pytestmark = pytest.mark.skipif(shutil.which("flock") is None, reason="needs flock(1)")

FAKE = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_CALLS"
case "$1" in
  ingest) sleep "${FAKE_SLEEP:-0}";;
  models) [[ -n "${FAKE_CHAMPION:-}" ]] && echo '[{"version": "v0001", "alias": "champion"}]';;
esac
[[ "$1" == "${FAKE_FAIL:-none}" ]] && { echo "fake $1 failed" >&2; exit 3; }
exit 0
"""


@pytest.fixture
def env(tmp_path):
    fake = tmp_path / "lakehouse"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    return {**{k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")},
            "LAKEHOUSE_BIN": str(fake), "LAKEHOUSE_LAKE": str(tmp_path / "lake"),
            "FAKE_CALLS": str(tmp_path / "calls"), "LAKEHOUSE_DATE": THURSDAY,
            "FAKE_CHAMPION": "1"}


def daily(env, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(DAILY)], env={**env, **extra}, capture_output=True,
                          text=True, timeout=60)


def calls(env) -> list[str]:
    path = Path(env["FAKE_CALLS"])
    return [line.split()[0] + (" " + line.split()[1] if line.startswith("models") else "")
            for line in path.read_text().splitlines()] if path.exists() else []


def test_runs_the_steps_in_order_and_logs_in_the_lake(env):
    done = daily(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert calls(env) == ["ingest", "build", "models list", "recommend", "report", "status"]
    first = Path(env["FAKE_CALLS"]).read_text().splitlines()[0]
    assert first == f"ingest --date {THURSDAY} --no-progress"
    log = Path(env["LAKEHOUSE_LAKE"]) / "logs" / f"daily-{THURSDAY}.log"
    assert "done: healthy" in log.read_text()


def test_trains_on_the_retrain_weekday_or_when_there_is_no_champion(env):
    assert "train" in calls_of(env, LAKEHOUSE_DATE=MONDAY, LAKEHOUSE_RETRAIN_WEEKDAY="0")
    assert "train" not in calls_of(env, LAKEHOUSE_DATE=MONDAY, LAKEHOUSE_RETRAIN_WEEKDAY="3")
    assert "train" in calls_of(env, LAKEHOUSE_DATE=THURSDAY, LAKEHOUSE_RETRAIN_WEEKDAY="3")
    assert "train" in calls_of(env, FAKE_CHAMPION="")


def test_maintains_the_lake_once_a_week_after_the_report(env):
    sunday = "2026-11-29"
    steps = calls_of(env, LAKEHOUSE_DATE=sunday)
    assert steps[-3:] == ["report", "maintain", "status"]
    assert "maintain" not in calls_of(env, LAKEHOUSE_DATE=THURSDAY)
    assert "maintain" in calls_of(env, LAKEHOUSE_DATE=THURSDAY, LAKEHOUSE_MAINTAIN_WEEKDAY="3")
    assert "maintain" not in calls_of(env, LAKEHOUSE_DATE=sunday, LAKEHOUSE_MAINTAIN_WEEKDAY="-1")


def calls_of(env, **extra) -> list[str]:
    Path(env["FAKE_CALLS"]).unlink(missing_ok=True)
    assert daily(env, **extra).returncode == 0
    return calls(env)


def test_two_runs_at_once_run_once(env):
    slow = {**env, "FAKE_SLEEP": "2"}
    first = subprocess.Popen(["bash", str(DAILY)], env=slow, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    log = Path(env["LAKEHOUSE_LAKE"]) / "logs" / f"daily-{THURSDAY}.log"
    deadline = time.monotonic() + 20
    while "start ingest" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the first run never started"
        time.sleep(0.05)
    second = daily(slow)
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 0, out
    assert second.returncode == 0 and "skipped" in second.stdout
    assert calls(env).count("ingest") == 1 and calls(env).count("recommend") == 1
    assert "skipped" in log.read_text()
    # Once the first is done, the next run goes ahead.
    assert daily(env).returncode == 0 and calls(env).count("ingest") == 2


def test_a_failed_step_alerts_stops_and_exits_non_zero(env):
    done = daily(env, FAKE_FAIL="build")
    assert done.returncode == 3
    assert calls(env) == ["ingest", "build", "alert"]
    alert = Path(env["FAKE_CALLS"]).read_text().splitlines()[-1]
    assert alert.startswith("alert --job daily --message daily job for 2026-11-26 failed at "
                            "step 'build' (exit 3)")
    assert "FAILED build (exit 3)" in done.stdout and "fake build failed" in done.stdout


def test_an_unhealthy_status_exits_one(env):
    done = daily(env, FAKE_FAIL="status")
    assert done.returncode == 1 and "UNHEALTHY" in done.stdout
    assert calls(env)[-1] == "status"  # status --alert sent its own alerts


def test_bad_date_and_missing_command_are_refused(env):
    done = daily(env, LAKEHOUSE_DATE="26/11/2026")
    assert done.returncode == 2 and "not a date" in done.stderr
    done = daily(env, LAKEHOUSE_BIN="/nonexistent/lakehouse")
    assert done.returncode == 2 and "not executable" in done.stderr

"""The benchmark scripts still run against the code they measure (tiny sizes, no timing).

A schema change broke bench_serve for a day before anyone re-ran it; these
runs catch that kind of drift. They assert what each script checks, not speed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def bench(tmp_path: Path, script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_bench_score_agrees_with_lightfm(tmp_path):
    out = bench(tmp_path, "bench_score.py", "--users", "500", "--tracks", "300")
    assert "agreement with LightFM predict (first 500 users): 1.0000" in out


def test_bench_days_compares_the_history_lake_with_one_snapshot(tmp_path):
    out = bench(tmp_path, "bench_days.py", "--users", "300", "--tracks", "200", "--listens",
                "1500", "--days", "2", "--no-daily-build", "--repeat", "1", "--workdir",
                str(tmp_path / "work"))
    assert "build day 2 / one-snapshot build:" in out
    assert "live total by raw retention (newest days kept): 1:" in out
    assert not (tmp_path / "work" / "days-2").exists()  # lakes removed without --keep


def test_bench_serve_answers_like_the_baseline(tmp_path):
    out = bench(tmp_path, "bench_serve.py", "--users", "500", "--seconds", "1")
    assert "same answer for user" in out and "True" in out.split("same answer for user")[1]


def test_bench_outcomes_measures_every_score_date_and_the_daily_refresh_agrees(tmp_path):
    out = bench(tmp_path, "bench_outcomes.py", "--users", "500", "--tracks", "300",
                "--listens", "3000", "--dates", "5", "--horizon", "2", "--repeat", "1")
    assert "for 5 score dates (4 complete" in out
    assert "daily rows equal the full refresh's: True" in out


def test_bench_recsys_reports_every_candidate_skipped_ones_included(tmp_path):
    out = bench(tmp_path, "bench_recsys.py", "--profiles", "reference", "--budget", "2")
    assert "| popularity (champion) |" in out and "before: lightfm+both" in out
    assert "(skipped: " in out  # a 2 s budget leaves candidates without a trial
    assert "- reference: champion " in out

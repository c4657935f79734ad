"""train and recommend on a read-only lake: one error line, no Rust panic, no
traceback (issue 11, item 7)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pyarrow as pa
import pytest

from lakehouse.lake import Lake
from tests.conftest import settings_for


def make_read_only(path) -> callable:
    """Make ``path`` unwritable, even for root (chattr +i); returns the undo."""
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(path)], check=True)
        return lambda: subprocess.run(["chmod", "-R", "u+w", str(path)], check=True)
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "-R", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("root, and no chattr +i to make a folder read-only")
    return lambda: subprocess.run(["chattr", "-R", "-i", str(path)], check=True)


@pytest.fixture
def read_only_lake(tmp_path):
    # The check comes before any read, so a small lake does (before the fix, recording
    # the failed run on it was where delta-rs panicked).
    lake = Lake(tmp_path / "lake")
    lake.write("meta.runs", pa.table({"run_id": ["x"]}), mode="append")
    settings = settings_for(lake.root)
    undo = make_read_only(settings.lake)
    yield settings
    undo()


@pytest.mark.slow
@pytest.mark.parametrize("args", [["train", "--epochs", "1"], ["recommend"]])
def test_train_and_recommend_refuse_a_read_only_lake_in_one_line(read_only_lake, args):
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "RUST_BACKTRACE": "1"}
    done = subprocess.run([sys.executable, "-m", "lakehouse", "--lake",
                           str(read_only_lake.lake), *args], capture_output=True, text=True,
                          env=env, timeout=120)
    output = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 1, output
    assert len(output) == 1 and output[0].startswith("Error: "), output
    assert "not writable" in output[0]
    assert "panicked" not in done.stderr and "Traceback" not in done.stderr

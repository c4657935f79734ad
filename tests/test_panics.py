"""No Rust panic text on stderr (issue 21, item 10): a full disk made delta-rs's workers
panic around the one-line error, with a backtrace under RUST_BACKTRACE=1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from lakehouse.panics import PanicFilter

PANICKING = """
import logging, sys
import pyarrow as pa
from deltalake import write_deltalake
from lakehouse.panics import quiet_rust_panics
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s: %(message)s")
print("before", file=sys.stderr, flush=True)
with quiet_rust_panics():
    print("inside", file=sys.stderr, flush=True)
    try:
        write_deltalake({path!r}, pa.table({{"a": [1]}}))  # '[' makes delta-rs panic
    except BaseException as exc:
        print("raised", type(exc).__name__, file=sys.stderr, flush=True)
print("after", file=sys.stderr, flush=True)
"""


def test_a_real_delta_rs_panic_leaves_only_the_other_lines_in_order(tmp_path):
    code = PANICKING.format(path=str(tmp_path / "x[1]" / "t"))
    env = {**os.environ, "RUST_BACKTRACE": "1", "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert "panicked" not in done.stderr and "stack backtrace" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("lakehouse")]
    assert lines == ["before", "inside", "raised PanicException", "after"], done.stderr
    # The panic's message is kept for whoever turns on debug logging.
    assert "delta-rs panic, its error follows as an exception: Invalid object store url" \
        in done.stderr


def test_the_filter_passes_partial_lines_at_once_and_holds_only_a_possible_panic():
    f = PanicFilter()
    assert f.feed("\rdownloading 10%") == "\rdownloading 10%"  # a progress bar stays live
    assert f.feed("\n") == ""                                   # a blank line may open one
    assert f.feed("next\n") == "\nnext\n"
    assert f.feed("thr") == ""                                  # could open a panic block
    assert f.feed("ead 'x' panicked at a.rs:1:\nboom\nafter\n") == "after\n"
    assert f.messages == ["boom"]


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True)
    return done.returncode == 0


@pytest.mark.slow
def test_a_full_disk_is_one_error_line_without_panic_text(tmp_path, trained_lake):
    disk = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    if not _mount_tmpfs(disk, "16M"):
        pytest.skip("needs root and mount to make a small file system")
    try:
        shutil.copytree(trained_lake.lake, disk / "lake")
        with open(disk / "filler", "wb") as fh:  # the rest of the disk, to the last byte
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError:
                pass
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
        env |= {"RUST_BACKTRACE": "1", "PYTHONPATH": os.getcwd()}
        for args in (["build"], ["recommend"]):
            date = ["--date", "2026-10-30"]
            done = subprocess.run([sys.executable, "-m", "lakehouse", "--lake",
                                   str(disk / "lake"), *args, *date],
                                  capture_output=True, text=True, env=env, timeout=300)
            output = done.stdout + done.stderr
            assert done.returncode == 1, output
            assert "panicked" not in output and "Traceback" not in output, output
            assert "No space left on device" in output.splitlines()[-1], output
            assert len(output.strip().splitlines()) <= 2, output
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)

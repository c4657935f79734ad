"""Files a writer killed before its commit left in a table's folder (Lake.remove_uncommitted).

No reader sees them; the next build removes them, and nothing else: never a
file that any version of the Delta log adds or removes, nor one newer than
the build's start, nor anything when the log does not parse.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lakehouse.lake import Lake

NAME = "standardized.x"


def logged_files(lake: Lake) -> set[str]:
    """The data files of every version of the table."""
    table_dir = lake.path(NAME)
    out = set()
    for version in range(lake.version(NAME) + 1):
        out |= {Path(u).relative_to(table_dir).as_posix()
                for u in lake.delta(NAME, version).file_uris()}
    return out


def files_on_disk(lake: Lake) -> set[str]:
    table_dir = lake.path(NAME)
    return {p.relative_to(table_dir).as_posix() for p in table_dir.rglob("*")
            if p.is_file() and "_delta_log" not in p.parts}


def leave_orphan(lake: Lake, rel: str, age_s: float = 60) -> Path:
    """What a killed writer leaves: a real Parquet file no commit knows, from ``age_s`` ago."""
    source = lake.path(NAME) / sorted(logged_files(lake))[0]
    orphan = lake.path(NAME) / rel
    orphan.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, orphan)
    then = time.time() - age_s
    os.utime(orphan, (then, then))
    return orphan


@pytest.fixture
def lake(tmp_path) -> Lake:
    lake = Lake(tmp_path / "lake")
    for value in (1, 2, 3):  # three versions: the old ones' files are still needed
        lake.write(NAME, pa.table({"id": [value]}), mode="replace")
    return lake


def test_orphans_go_and_every_version_still_reads(lake):
    committed = logged_files(lake)
    assert len(committed) == 3
    leave_orphan(lake, "spark-0123abcd/part-00000-x.snappy.parquet")
    crc = lake.path(NAME) / "spark-0123abcd" / ".part-00000-x.snappy.parquet.crc"
    crc.write_bytes(b"crc")
    os.utime(crc, (time.time() - 60,) * 2)
    leave_orphan(lake, "part-00001-killed-c000.zstd.parquet")
    removed = lake.remove_uncommitted(NAME, before=time.time())
    assert sorted(removed) == ["part-00001-killed-c000.zstd.parquet",
                               "spark-0123abcd/.part-00000-x.snappy.parquet.crc",
                               "spark-0123abcd/part-00000-x.snappy.parquet"]
    assert files_on_disk(lake) == committed
    assert not (lake.path(NAME) / "spark-0123abcd").exists()
    for version, value in enumerate((1, 2, 3)):
        assert lake.to_arrow(NAME, version=version).to_pylist() == [{"id": value}]


def test_a_file_newer_than_the_lock_holders_start_is_kept(lake):
    started = time.time() - 30
    fresh = leave_orphan(lake, "spark-feed/part-00000-y.parquet", age_s=0)
    old = leave_orphan(lake, "spark-dead/part-00000-z.parquet", age_s=60)
    assert lake.remove_uncommitted(NAME, before=started) == ["spark-dead/part-00000-z.parquet"]
    assert fresh.exists() and not old.exists()


def test_a_file_logged_by_its_absolute_uri_is_kept(lake):
    kept = leave_orphan(lake, "part-00009-cloned-c000.zstd.parquet")
    # Delta allows absolute paths in add actions (a shallow clone writes them).
    commit = lake.path(NAME) / "_delta_log" / f"{lake.version(NAME) + 1:020d}.json"
    commit.write_text(json.dumps({"add": {"path": kept.as_uri(), "size": kept.stat().st_size,
                                          "partitionValues": {}, "modificationTime": 0,
                                          "dataChange": True}}) + "\n")
    assert lake.remove_uncommitted(NAME, before=time.time()) == []
    assert kept.exists()


def test_a_torn_log_removes_nothing(lake):
    orphan = leave_orphan(lake, "part-00001-killed-c000.zstd.parquet")
    on_disk = files_on_disk(lake)
    last = sorted((lake.path(NAME) / "_delta_log").glob("*.json"))[-1]
    last.write_text("garbage\n")
    assert lake.remove_uncommitted(NAME, before=time.time()) == []
    assert files_on_disk(lake) == on_disk and orphan.exists()


def test_without_a_log_only_a_spark_builds_folders_go(lake):
    spark = leave_orphan(lake, "spark-dead/part-00000-z.parquet")
    shutil.rmtree(lake.path(NAME) / "_delta_log")  # whose files these are, nobody can tell
    others = files_on_disk(lake) - {"spark-dead/part-00000-z.parquet"}
    assert lake.remove_uncommitted(NAME, before=time.time()) == [
        "spark-dead/part-00000-z.parquet"]
    assert files_on_disk(lake) == others and not spark.exists()


def test_files_only_a_checkpoint_knows_are_kept(lake):
    committed = logged_files(lake)
    leave_orphan(lake, "part-00001-killed-c000.zstd.parquet")
    delta = DeltaTable(str(lake.path(NAME)))
    delta.create_checkpoint()
    # A log clean-up deletes the commits the checkpoint stands for.
    for commit in (lake.path(NAME) / "_delta_log").glob("*.json"):
        if int(commit.stem) < delta.version():
            commit.unlink()
    assert lake.remove_uncommitted(NAME, before=time.time()) == [
        "part-00001-killed-c000.zstd.parquet"]
    assert files_on_disk(lake) >= {Path(u).relative_to(lake.path(NAME)).as_posix()
                                   for u in DeltaTable(str(lake.path(NAME))).file_uris()}
    assert files_on_disk(lake) <= committed
    assert lake.to_arrow(NAME).to_pylist() == [{"id": 3}]


def test_a_missing_table_has_nothing_to_remove(tmp_path):
    assert Lake(tmp_path / "lake").remove_uncommitted(NAME, before=time.time()) == []

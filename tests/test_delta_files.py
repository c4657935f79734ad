"""Lake.commit_files(): Parquet written by another engine, committed as one Delta commit."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.errors import SchemaError
from lakehouse.lake import Lake

NAME = "standardized.things"
SCHEMA = pa.schema([("id", pa.int64()), ("at", pa.timestamp("us", tz="UTC")),
                    ("tags", pa.list_(pa.string())), ("day", pa.date32())])
DAY = dt.date(2026, 11, 26)


def rows(n: int, start: int = 0) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                     "at": pa.array([dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * n,
                                    pa.timestamp("us", tz="UTC")),
                     "tags": pa.array([["a", "b"]] * n, pa.list_(pa.string()))})


def put(lake: Lake, rel: str, table: pa.Table) -> str:
    path = lake.path(NAME) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return rel


def test_files_become_one_commit_with_partition_values_from_their_folders(tmp_path):
    lake = Lake(tmp_path / "lake")
    files = [put(lake, "run1/day=2026-11-26/a.parquet", rows(3)),
             put(lake, "run1/day=2026-11-27/b.parquet", rows(2, start=3))]
    result = lake.commit_files(NAME, files, SCHEMA, metadata={"pipeline": "test"})
    assert (result.version, result.rows) == (0, 5)
    assert lake.info(NAME).rows == 5
    assert lake.delta(NAME).metadata().partition_columns == ["day"]
    got = sorted(lake.to_arrow(NAME).to_pylist(), key=lambda r: r["id"])
    assert [(r["id"], r["day"]) for r in got] == [(0, DAY), (1, DAY), (2, DAY),
                                                   (3, DAY + dt.timedelta(1)),
                                                   (4, DAY + dt.timedelta(1))]
    assert got[0]["tags"] == ["a", "b"]
    assert lake.history(NAME, 1)[0]["pipeline"] == "test"


def test_replace_swaps_every_file_and_reports_schema_changes(tmp_path):
    lake = Lake(tmp_path / "lake")
    lake.commit_files(NAME, [put(lake, "run1/day=2026-11-26/a.parquet", rows(3))], SCHEMA)
    narrower = pa.schema([f for f in SCHEMA if f.name != "tags"])
    result = lake.commit_files(NAME, [put(lake, "run2/day=2026-11-26/a.parquet",
                                          rows(1, start=9).drop_columns(["tags"]))], narrower)
    assert (result.version, result.rows, result.schema_changes) == (1, 1, ["dropped column tags"])
    assert lake.to_arrow(NAME).to_pylist() == [
        {"id": 9, "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "day": DAY}]
    assert lake.table(NAME, version=0).count().execute() == 3  # time travel still works


@pytest.mark.parametrize(("table", "message"), [
    (rows(2).drop_columns(["tags"]), "has columns"),
    (rows(2).set_column(0, "id", pa.array(["x", "y"])), "column id is string"),
    # Spark's default INT96 timestamps read back without a time zone.
    (rows(2).set_column(1, "at", pa.array([dt.datetime(2026, 1, 1)] * 2, pa.timestamp("ns"))),
     "outputTimestampType"),
])
def test_files_not_matching_the_schema_are_refused_and_nothing_is_committed(tmp_path, table,
                                                                           message):
    lake = Lake(tmp_path / "lake")
    lake.commit_files(NAME, [put(lake, "run1/day=2026-11-26/a.parquet", rows(3))], SCHEMA)
    with pytest.raises(SchemaError, match=message):
        lake.commit_files(NAME, [put(lake, "run2/day=2026-11-26/a.parquet", table)], SCHEMA)
    assert lake.version(NAME) == 0
    assert lake.info(NAME).rows == 3

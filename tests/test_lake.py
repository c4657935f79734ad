"""The lake module: atomic Delta writes, schema evolution, reads, time travel."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
import time

import pyarrow as pa
import pytest

import lakehouse
from lakehouse.errors import LakeError, SchemaError, TableNotFoundError
from lakehouse.lake import Lake, normalize_schema, parse_table_name

DAY1 = dt.date(2026, 11, 1)
DAY2 = dt.date(2026, 11, 2)
UTC = dt.UTC


def rows(day: dt.date, ids: list[int], tag: str = "a") -> pa.Table:
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "tag": [tag] * len(ids),
        "ingest_date": pa.array([day] * len(ids), pa.date32()),
        "at": pa.array([dt.datetime(2026, 11, 1, 12, tzinfo=UTC)] * len(ids),
                       pa.timestamp("us", tz="UTC")),
    })


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(tmp_path / "lake")


def write_day(lake: Lake, day: dt.date, ids: list[int], tag: str = "a"):
    return lake.write("raw.things", rows(day, ids, tag), mode="replace_partition",
                      partition_by=["ingest_date"], partition={"ingest_date": day})


def test_table_names_are_checked():
    assert parse_table_name("raw.users") == ("raw", "users")
    for bad in ("users", "nozone.users", "raw.", "raw.Users", "raw.a-b"):
        with pytest.raises(LakeError, match="zone.name"):
            parse_table_name(bad)


def test_replace_partition_is_idempotent_and_keeps_other_dates(lake):
    write_day(lake, DAY1, [1, 2, 3])
    write_day(lake, DAY2, [4, 5])
    result = write_day(lake, DAY1, [1, 2, 3])
    assert result.rows == 3 and result.version == 2
    counts = lake.sql("SELECT ingest_date, count(*) FROM raw.things GROUP BY 1 ORDER BY 1")
    assert counts.fetchall() == [(DAY1, 3), (DAY2, 2)]


def test_replace_partition_rejects_rows_of_another_date(lake):
    write_day(lake, DAY1, [1])
    with pytest.raises(LakeError):
        lake.write("raw.things", rows(DAY2, [9]), mode="replace_partition",
                   partition={"ingest_date": DAY1})
    assert lake.to_arrow("raw.things").column("id").to_pylist() == [1]


def test_a_write_that_fails_midway_leaves_the_old_data(lake):
    write_day(lake, DAY1, [1, 2, 3], tag="old")
    before = lake.version("raw.things")
    batch = rows(DAY1, [7, 8], tag="new").to_batches()[0]

    def broken():
        yield batch
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError, match="source died"):
        lake.write("raw.things", broken(), schema=batch.schema, mode="replace_partition",
                   partition={"ingest_date": DAY1})
    assert lake.version("raw.things") == before
    table = lake.to_arrow("raw.things")
    assert sorted(table.column("id").to_pylist()) == [1, 2, 3]
    assert set(table.column("tag").to_pylist()) == {"old"}


def test_readers_see_old_or_new_partition_never_a_mix(lake):
    write_day(lake, DAY1, list(range(100)), tag="g0")
    stop = threading.Event()
    errors: list[str] = []

    def writer():
        for gen in range(1, 8):
            write_day(lake, DAY1, list(range(100)), tag=f"g{gen}")
        stop.set()

    def reader():
        reader_lake = Lake(lake.root, create=False)
        while not stop.is_set():
            got = reader_lake.sql("SELECT tag, count(*) FROM raw.things GROUP BY tag").fetchall()
            if len(got) != 1 or got[0][1] != 100:
                errors.append(repr(got))

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert lake.sql("SELECT DISTINCT tag FROM raw.things").fetchall() == [("g7",)]


def test_append_with_a_new_column_is_reported(lake):
    write_day(lake, DAY1, [1])
    extra = rows(DAY2, [2]).append_column("genre", pa.array(["Rock"]))
    result = lake.write("raw.things", extra, mode="append")
    assert result.schema_changes == ["added column genre"]
    got = lake.sql("SELECT id, genre FROM raw.things ORDER BY id").fetchall()
    assert got == [(1, None), (2, "Rock")]


def test_append_with_a_missing_column_is_reported_as_null(lake):
    write_day(lake, DAY1, [1])
    result = lake.write("raw.things", rows(DAY2, [2]).drop_columns(["tag"]), mode="append")
    assert result.schema_changes == ["missing column tag (null)"]
    assert lake.sql("SELECT tag FROM raw.things WHERE id = 2").fetchall() == [(None,)]


def test_a_changed_type_is_refused_and_nothing_written(lake):
    write_day(lake, DAY1, [1])
    bad = rows(DAY2, [2]).set_column(0, "id", pa.array(["2"]))
    with pytest.raises(SchemaError, match="id: int64 -> string"):
        lake.write("raw.things", bad, mode="append")
    assert lake.version("raw.things") == 0


def test_naive_timestamps_are_refused():
    schema = pa.schema([("at", pa.timestamp("us"))])
    with pytest.raises(SchemaError, match="without a time zone"):
        normalize_schema(schema)


def test_tables_stay_at_reader_1_writer_2_with_utc_timestamps(lake):
    nanos = pa.table({"at": pa.array([dt.datetime(2026, 1, 1, tzinfo=UTC)],
                                     pa.timestamp("ns", tz="Europe/Paris"))})
    lake.write("meta.events", nanos, mode="append")
    protocol = lake.delta("meta.events").protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    assert lake.schema("meta.events").field("at").type == pa.timestamp("us", tz="UTC")


def test_replace_mode_rewrites_schema_and_reports_it(lake):
    lake.write("consumption.kpis", pa.table({"a": [1], "b": [2]}), mode="replace")
    result = lake.write("consumption.kpis", pa.table({"a": [3], "c": ["x"]}), mode="replace")
    assert result.schema_changes == ["added column c", "dropped column b"]
    assert lake.to_arrow("consumption.kpis").to_pylist() == [{"a": 3, "c": "x"}]


def test_time_travel_by_version_and_timestamp(lake):
    write_day(lake, DAY1, [1, 2], tag="v0")
    time.sleep(0.05)
    between = dt.datetime.now(UTC)
    time.sleep(0.05)
    write_day(lake, DAY1, [3], tag="v1")
    assert lake.to_arrow("raw.things", version=0).column("tag").to_pylist() == ["v0", "v0"]
    assert lake.to_arrow("raw.things", as_of=between).column("id").to_pylist() == [1, 2]
    assert lake.to_arrow("raw.things").column("tag").to_pylist() == ["v1"]
    with pytest.raises(TableNotFoundError):
        lake.table("raw.things", version=99)


def test_history_and_info(lake):
    write_day(lake, DAY1, [1, 2], tag="v0")
    write_day(lake, DAY2, [3])
    info = lake.info("raw.things")
    assert (info.rows, info.files, info.version) == (3, 2, 1)
    assert info.partition_by == ["ingest_date"]
    assert info.size_bytes > 0 and info.disk_bytes >= info.size_bytes
    assert info.last_modified.tzinfo is not None
    assert [h["version"] for h in lake.history("raw.things")] == [1, 0]


def test_missing_table_is_a_clear_error(lake):
    with pytest.raises(TableNotFoundError, match="lakehouse tables"):
        lake.table("raw.nothing")


def test_open_lake_sql_reaches_every_table_as_zone_name(lake):
    write_day(lake, DAY1, [1, 2, 3])
    lake.write("meta.runs", pa.table({"n": [1]}), mode="append")
    analyst = lakehouse.open_lake(lake.root)
    assert analyst.sql("SELECT count(*) FROM raw.things").fetchone() == (3,)
    assert analyst.table("raw.things").count().execute() == 3
    assert analyst.sql("SELECT n FROM meta.runs").fetchall() == [(1,)]
    assert [i.name for i in analyst.tables()] == ["raw.things", "meta.runs"]
    # A later write is visible to the same catalog without reopening it.
    write_day(lake, DAY2, [4])
    assert analyst.sql("SELECT count(*) FROM raw.things").fetchone() == (4,)


def test_bad_sql_is_a_one_line_error(lake):
    with pytest.raises(LakeError, match="query failed") as info:
        lake.sql("SELEC nonsense")
    assert "\n" not in str(info.value)


def test_open_lake_refuses_a_missing_folder_or_a_file(tmp_path):
    with pytest.raises(LakeError, match="no lake at"):
        lakehouse.open_lake(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(LakeError, match="is a file"):
        Lake(tmp_path / "file")


def _append_many(root: str, worker: int, n: int) -> None:
    lake = Lake(root)
    for i in range(n):
        lake.write("meta.log", pa.table({"worker": [worker], "i": [i]}), mode="append")


def _appenders(root: str, appends: int) -> None:
    """Two spawned processes appending ``appends`` rows each to meta.log."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(root, w, appends)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]


def _counts(root: str) -> list[tuple[int, int]]:
    got = Lake(root).sql("SELECT worker, count(DISTINCT i) FROM meta.log GROUP BY 1 ORDER BY 1")
    return got.fetchall()


@pytest.mark.slow
def test_concurrent_appends_from_two_processes_lose_nothing(tmp_path):
    root = str(tmp_path / "lake")
    Lake(root).write("meta.log", pa.table({"worker": [-1], "i": [-1]}), mode="append")
    _appenders(root, 15)
    assert _counts(root) == [(-1, 1), (1, 15), (2, 15)]


@pytest.mark.slow
def test_two_processes_creating_the_same_table_lose_nothing(tmp_path):
    root = str(tmp_path / "lake")
    _appenders(root, 5)
    assert _counts(root) == [(1, 5), (2, 5)]


def _column_chunks(lake: Lake, name: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    import pyarrow.parquet as pq

    (path,) = lake.delta(name).file_uris()
    meta = pq.ParquetFile(path).metadata.row_group(0)
    return {meta.column(i).path_in_schema: (meta.column(i).compression, meta.column(i).encodings)
            for i in range(meta.num_columns)}


def test_raw_and_history_are_written_for_size_the_other_zones_for_reading(lake):
    table = pa.table({"id": [1, 2, 3],
                      "created_at": ["2026-11-01T00:00:01", "2026-11-01T00:00:02", None],
                      "name": ["a", "b", "a"], "ingest_date": pa.array([DAY1] * 3, pa.date32())})
    for name in ("raw.users", "history.users", "standardized.users"):
        lake.write(name, table, mode="replace")
        assert lake.to_arrow(name).sort_by("id").equals(table), name
    raw = _column_chunks(lake, "raw.users")
    assert raw["created_at"][0] == "ZSTD"  # text timestamps: delta-encoded, no dictionary
    assert "DELTA_BYTE_ARRAY" in raw["created_at"][1]
    assert "RLE_DICTIONARY" not in raw["created_at"][1]
    assert raw["name"][0] == "ZSTD" and "RLE_DICTIONARY" in raw["name"][1]
    assert "DELTA_BYTE_ARRAY" in _column_chunks(lake, "history.users")["created_at"][1]
    standardized = _column_chunks(lake, "standardized.users")
    assert standardized["created_at"][0] == "SNAPPY"
    assert "RLE_DICTIONARY" in standardized["created_at"][1]

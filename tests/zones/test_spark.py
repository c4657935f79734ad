"""``lakehouse build --engine spark``: the same tables as DuckDB, all or nothing, a clear error.

One Spark session (``spark``, local[2]) serves every test; the Spark build of
the sample lake's raw zone runs once (``spark_lake``) and is compared with
the DuckDB build of the same raw zone (``sample_lake``).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import ibis
import pyarrow as pa
import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.errors import LakeError
from lakehouse.lake import Lake
from lakehouse.zones import standardized
from lakehouse.zones.build import build
from lakehouse.zones.hashing import record_hash, xxhash64_arrays
from tests.conftest import copy_lake, settings_for

ZONES_BUILT = (names.STANDARDIZED, names.CONSUMPTION, names.QUARANTINE)
pytestmark = pytest.mark.slow


# A space, a non-ASCII character and a quote: delta-rs percent-encodes its file URIs.
ODD_FOLDER = "it's my lakeé"


@pytest.fixture(scope="session")
def spark_lake(tmp_path_factory, raw_lake, sample_days, spark):
    """The sample lake's raw zone built by ``lakehouse build --engine spark`` on a lake
    path with a space, an accent and a quote: (settings, the command's rows).

    The command's session is the test session (``getOrCreate``), so Spark starts once.
    """
    settings = copy_lake(raw_lake, tmp_path_factory.mktemp("spark") / ODD_FOLDER)
    result = CliRunner().invoke(cli, ["--lake", str(settings.lake), "build", "--engine", "spark",
                                      "--date", str(sample_days[-1]), "--format", "json"])
    assert result.exit_code == 0, result.output
    return settings.replace(engine="spark"), json.loads(result.stdout)


def built_tables(lake: Lake) -> list[str]:
    return [n for n in lake.table_names() if n.split(".")[0] in ZONES_BUILT]


def sorted_rows(lake: Lake, name: str) -> tuple[pa.Schema, list[tuple]]:
    table = lake.to_arrow(name)
    # repr() orders lists and nulls too; values are compared exactly, not as text.
    rows = sorted((tuple(repr(v) for v in row.values()), tuple(row.values()))
                  for row in table.to_pylist())
    return table.schema, [values for _, values in rows]


def logged_files(lake: Lake, name: str, version: int | None = None) -> set[str]:
    """The data files of a version of ``name``, relative to its folder."""
    from urllib.parse import unquote, urlparse

    table_dir = lake.path(name).resolve()
    # delta-rs percent-encodes its URIs (the odd lake path has a space and an accent).
    return {Path(unquote(urlparse(u).path)).relative_to(table_dir).as_posix()
            for u in lake.delta(name, version).file_uris()}


def data_files(table_dir: Path) -> set[str]:
    return {p.relative_to(table_dir).as_posix() for p in table_dir.rglob("*")
            if p.is_file() and "_delta_log" not in p.parts}


def test_spark_builds_every_table_equal_to_duckdb_row_for_row_on_an_odd_lake_path(
        sample_lake, spark_lake):
    duck, spark = Lake(sample_lake.lake), Lake(spark_lake[0].lake)
    assert ODD_FOLDER in str(spark.root)
    assert built_tables(spark) == built_tables(duck)
    assert len(built_tables(duck)) == 12
    quarantined = 0
    for name in built_tables(duck):
        want_schema, want = sorted_rows(duck, name)
        got_schema, got = sorted_rows(spark, name)
        assert got_schema.equals(want_schema), name
        assert got == want, f"{name}: {len(got)} rows on Spark, {len(want)} on DuckDB"
        quarantined += len(want) if name.startswith(names.QUARANTINE) else 0
    # The sample data has faults: the comparison covered quarantine reasons too.
    assert quarantined > 0


def test_spark_build_records_its_engine_and_leaves_only_committed_files(spark_lake):
    settings, rows = spark_lake
    lake = Lake(settings.lake)
    assert [r["table"] for r in rows][:4] == [v.name for v in standardized.VIEWS]
    assert {r["status"] for r in rows} == {names.SUCCESS}
    runs = lake.sql("SELECT details FROM meta.runs WHERE pipeline = 'build'").fetchall()
    details = [json.loads(d) for (d,) in runs]
    assert {d["engine"] for d in details} == {"spark"}
    assert {d["delta"] for d in details} == {"delta-rs"}  # no Delta jars here
    for name in built_tables(lake):
        table_dir = lake.path(name)
        committed = logged_files(lake, name)
        # Only data files in the log: no Spark _SUCCESS or .crc files, no orphans.
        assert data_files(table_dir) == committed, name
        assert lake.info(name).rows == lake.table(name).count().execute()
    assert not (lake.root / ".tmp").exists()


def test_spark_build_failing_midway_leaves_every_table_at_its_previous_version(
        spark_lake, spark, sample_days, tmp_path, monkeypatch):
    settings = copy_lake(spark_lake[0], tmp_path)
    lake = Lake(settings.lake)
    before = {n: (lake.version(n), data_files(lake.path(n)))
              for n in lake.table_names() if n != names.RAW_USERS}
    stale = lake.root / ".tmp" / "spark-build-killed" / "part-0.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by a build that was killed")

    @ibis.udf.scalar.builtin(name="raise_error")
    def raise_error(message: str) -> str:
        """Spark's raise_error: fails the job that evaluates it."""

    # A Spark job fails on the data, after three tables were computed.
    listens = standardized.LISTENS

    def failing_stage(*inputs):
        t = listens.stage(*inputs)
        return t.mutate(_boom=ibis.ifelse(t.position >= 0, raise_error("disk on fire"), "ok"))

    from dataclasses import replace

    monkeypatch.setattr(standardized, "VIEWS",
                        (*standardized.VIEWS[:3], replace(listens, stage=failing_stage)))
    with pytest.raises(LakeError, match="disk on fire") as failure:
        build(settings, date=sample_days[-1], spark=spark)
    assert "\n" not in str(failure.value)
    after = {n: (lake.version(n), data_files(lake.path(n))) for n in before}
    assert after == before
    # Its own scratch files and a killed build's are gone.
    assert not (lake.root / ".tmp").exists()


def test_xxhash64_on_duckdb_equals_sparks(spark):
    rows = [(0, dt.datetime(1970, 1, 1, tzinfo=dt.UTC), []),
            (-1, dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC), [None, 7]),
            (2**63 - 1, dt.datetime(2026, 2, 7, 18, 56, 6, 369637, tzinfo=dt.UTC),
             [-2**63, 0, 2**63 - 1, 89472]),
            (None, None, None), (68919, dt.datetime(2026, 11, 26, tzinfo=dt.UTC), [1, 2, 3, 4, 5])]
    table = pa.table({
        "u": pa.array([r[0] for r in rows], pa.int64()),
        "c": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
        "i": pa.array([r[2] for r in rows], pa.list_(pa.int64()))})
    sparks = [r[0] for r in spark.createDataFrame(rows, "u bigint, c timestamp, i array<bigint>")
              .selectExpr("xxhash64(u, c, i)").collect()]
    assert xxhash64_arrays(table["u"], table["c"], table["i"]).to_pylist() == sparks
    con = ibis.duckdb.connect()
    t = con.create_table("t", table)
    # The view's expression on DuckDB runs the same algorithm.
    got = t.select(h=record_hash(t.u, t.c, t.i)).to_pyarrow()["h"].to_pylist()
    assert got == sparks
    assert len(set(sparks)) == len(sparks)


@pytest.mark.parametrize("how", ["option", "env"])
def test_spark_engine_without_pyspark_is_one_line_naming_the_extra(tmp_path, monkeypatch, how):
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    Lake(tmp_path / "lake")
    args, env = ["--lake", str(tmp_path / "lake"), "build"], {"LAKEHOUSE_ENGINE": "spark"}
    if how == "option":
        args, env = [*args, "--engine", "spark"], {}
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 1
    assert result.output == ("Error: --engine spark needs PySpark: pip install "
                             "'lakehouse[spark]' (and a Java 17 runtime for local Spark)\n")


def test_unknown_engine_is_refused(tmp_path):
    Lake(tmp_path / "lake")
    result = CliRunner().invoke(cli, ["--lake", str(tmp_path / "lake"), "build"],
                                env={"LAKEHOUSE_ENGINE": "polars"})
    assert result.exit_code == 1
    assert result.output.startswith("Error: unknown engine 'polars' (LAKEHOUSE_ENGINE)")


def test_spark_reads_a_raw_zone_behind_a_symbolic_link(raw_lake, spark, tmp_path):
    """delta-rs lists a table's files by their real path; Spark's basePath must match."""
    from lakehouse.zones.spark import SparkEngine

    root = tmp_path / "lake"
    root.mkdir()
    (root / names.RAW).symlink_to(raw_lake.lake / names.RAW, target_is_directory=True)
    lake = Lake(root)
    engine = SparkEngine.open(lake, raw_lake.replace(lake=root), spark)
    with engine.session():
        users = engine.table(names.RAW_USERS)
        assert users.count().execute() == Lake(raw_lake.lake).info(names.RAW_USERS).rows
        assert names.INGEST_DATE in users.columns


def test_a_failed_check_on_spark_fails_as_on_duckdb_and_writes_nothing(
        spark_lake, spark, sample_days, tmp_path, monkeypatch):
    from dataclasses import replace

    from lakehouse.errors import ValidationError

    settings = copy_lake(spark_lake[0], tmp_path)
    lake = Lake(settings.lake)
    versions = {n: lake.version(n) for n in built_tables(lake)}

    def every_user_twice(staged):
        out = standardized.select_users(staged)
        return out.union(out, distinct=False)

    broken = replace(standardized.USERS, select=every_user_twice)
    monkeypatch.setattr(standardized, "VIEWS", (broken, *standardized.VIEWS[1:]))
    with pytest.raises(ValidationError, match=r"standardized\.users failed check "
                                              r"key_unique on user_id: e.g. \[\d"):
        build(settings, date=sample_days[-1], spark=spark)
    assert {n: lake.version(n) for n in versions} == versions
    failed = lake.sql("SELECT target, details FROM meta.runs WHERE status = 'failed'").fetchall()
    assert [t for t, _ in failed] == [names.STD_USERS]
    assert json.loads(failed[0][1])["engine"] == "spark"
    assert not (lake.root / ".tmp").exists()


def test_a_result_on_another_file_system_is_moved_not_renamed(spark, tmp_path, monkeypatch):
    import errno

    import lakehouse.zones.spark as spark_engine

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    lake = Lake(tmp_path / "lake")
    engine = spark_engine.SparkEngine.open(lake, settings_for(lake.root), spark)
    with engine.session():
        result = engine.temp(engine.con.sql("SELECT CAST(7 AS BIGINT) AS id"), "standardized.x")
        monkeypatch.setattr(spark_engine.os, "replace", cross_device)
        written = engine.write("standardized.x", result, {"pipeline": "test"})
    assert (written.version, written.rows) == (0, 1)
    assert lake.to_arrow("standardized.x").to_pylist() == [{"id": 7}]
    assert not (lake.root / ".tmp").exists()


@pytest.mark.parametrize("damage", ["deleted-file", "torn-log"])
def test_a_broken_input_table_fails_the_spark_build_as_it_fails_the_duckdb_build(
        spark_lake, spark, sample_days, tmp_path, damage):
    from tests.test_broken_table import DAMAGE, invoke, one_error_line

    settings = copy_lake(spark_lake[0], tmp_path)
    lake = Lake(settings.lake)
    DAMAGE[damage](lake, names.history_table(names.USERS))  # what the build reads
    versions = {n: lake.version(n) for n in built_tables(lake)}
    date = ["--date", str(sample_days[-1])]
    on_duckdb = one_error_line(invoke(settings, "build", "--engine", "duckdb", *date))
    alerts = tmp_path / "alerts.jsonl"
    sink = f"{sys.executable} -c \"import sys; open({str(alerts)!r}, 'a').write(sys.stdin.read())\""
    on_spark = one_error_line(invoke(settings, "build", "--engine", "spark", *date,
                                     env={"LAKEHOUSE_ALERT_COMMAND": sink}))
    assert on_spark == on_duckdb
    assert "table history.users is unreadable" in on_spark and "lakehouse build" in on_spark
    assert {n: lake.version(n) for n in versions} == versions
    failed = lake.sql("SELECT target, error, details FROM meta.runs WHERE pipeline = 'build' "
                      "AND status = 'failed'").fetchall()
    on_spark_runs = [(t, e) for t, e, d in failed if json.loads(d or "{}").get("engine") == "spark"]
    assert names.STD_USERS in {t for t, _ in on_spark_runs}
    assert all("history.users is unreadable" in e for _, e in on_spark_runs)
    assert any("history.users is unreadable" in json.loads(a)["text"]
               for a in alerts.read_text().splitlines())
    assert not (lake.root / ".tmp").exists()


class Killed(BaseException):
    """The process dying: nothing after it runs, not even the cleanup handlers."""


@pytest.mark.parametrize("next_engine", ["spark", "duckdb"])
def test_a_build_killed_between_moving_a_result_in_and_committing_leaves_nothing_behind(
        spark, tmp_path, monkeypatch, next_engine):
    import lakehouse.zones.spark as spark_engine
    from lakehouse.zones.build import engine_for

    lake = Lake(tmp_path / "lake")
    name = "standardized.x"

    def write(engine_name: str, value: int):
        settings = settings_for(lake.root, engine=engine_name)
        engine = engine_for(lake, settings, spark if engine_name == "spark" else None)
        with engine.session():
            result = engine.temp(engine.con.sql(f"SELECT CAST({value} AS BIGINT) AS id"), name)
            return engine.write(name, result, {"pipeline": "test"})

    write("spark", 7)

    def die(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as kill:
        # Killed right after the move: no commit, and no handler removes anything.
        kill.setattr(Lake, "commit_files", die)
        kill.setattr(spark_engine.shutil, "rmtree", lambda *a, **k: None)
        with pytest.raises(Killed):
            write("spark", 8)
    table_dir = lake.path(name)
    committed_v0 = logged_files(lake, name, 0)
    orphans = data_files(table_dir) - committed_v0
    assert orphans and all(o.startswith("spark-") for o in orphans)
    assert lake.to_arrow(name).to_pylist() == [{"id": 7}]  # no reader sees them

    written = write(next_engine, 9)
    assert written.version == 1
    committed = committed_v0 | logged_files(lake, name)
    assert data_files(table_dir) == committed  # the orphans went, every logged file stayed
    assert not any((table_dir / o).parent.exists() for o in orphans)
    assert lake.to_arrow(name).to_pylist() == [{"id": 9}]
    assert lake.to_arrow(name, version=0).to_pylist() == [{"id": 7}]
    if next_engine == "spark":
        assert not (lake.root / ".tmp").exists()  # the killed build's scratch files went too

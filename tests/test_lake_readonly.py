"""`lakehouse sql` and `Lake.sql` are read-only, and a tampered table is found.

Issue 11, item 1: DuckDB statements typed at `lakehouse sql` could overwrite a
Delta log or a table's files, and `tables`/`status` then still said all was well.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from lakehouse.cli import cli
from lakehouse.errors import BrokenTableError, ReadOnlyError
from lakehouse.lake import Lake
from tests.conftest import settings_for

DAYS = [dt.date(2026, 11, 1), dt.date(2026, 11, 2)]


def make_lake(root: Path) -> Lake:
    """raw.users (2 partitions of 150 rows) and raw.tracks, both partitioned by date."""
    lake = Lake(root)
    for day in DAYS:
        for name, n in (("raw.users", 150), ("raw.tracks", 50)):
            lake.write(name, pa.table({
                "id": list(range(n)), "name": [f"n{i}" for i in range(n)],
                "ingest_date": pa.array([day] * n, pa.date32())}),
                mode="replace_partition", partition_by=["ingest_date"],
                partition={"ingest_date": day})
    return lake


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def lake(tmp_path) -> Lake:
    return make_lake(tmp_path / "lake")


def run(lake: Lake, *args: str):
    return CliRunner().invoke(cli, ["--lake", str(lake.root), *args])


def last_log(lake: Lake, name: str) -> Path:
    return sorted((lake.path(name) / "_delta_log").glob("*.json"))[-1]


def writes(lake: Lake) -> list[str]:
    """The issue's statements, and their cousins, each able to change the lake."""
    users_log = last_log(lake, "raw.users")
    tracks = lake.path("raw.tracks")
    return [
        f"COPY (SELECT 'garbage' x) TO '{users_log}' (FORMAT csv, HEADER false)",
        f"COPY (SELECT 1 a, 2 b) TO '{tracks}' (FORMAT parquet, PARTITION_BY (a), OVERWRITE)",
        f"copy (select 1 a) to '{users_log}' (format csv)",
        f"/* a comment */ COPY (SELECT 1) TO '{users_log}'",
        f"EXPLAIN ANALYZE COPY (SELECT 'garbage' x) TO '{users_log}' (FORMAT csv)",
        f"EXPORT DATABASE '{tracks}'",
        "CREATE TABLE t AS SELECT 1",
        "CREATE OR REPLACE VIEW raw.users AS SELECT 1 AS id",
        "DROP VIEW raw.users",
        "INSERT INTO raw.users VALUES (1)",
        "SET threads = 1",
        f"ATTACH '{tracks}/x.db'",
        "CALL pragma_version()",
        "PRAGMA enable_profiling",
        "LOAD delta",
        # Issue 21: statement type SELECT, yet each writes or changes the session.
        f"SELECT * FROM enable_logging(storage='file', storage_path='{users_log.parent}')",
        f"WITH x AS (SELECT * FROM ENABLE_LOGGING(storage => 'file', "
        f"storage_path => '{tracks}')) SELECT * FROM x",
        f"SELECT 1 WHERE 1 IN (SELECT 1 FROM main.enable_logging(storage='file', "
        f"storage_path='{tracks}'))",
        f"EXPLAIN ANALYZE SELECT * FROM \"enable_logging\"(storage='file', "
        f"storage_path='{tracks}')",
        "SELECT * FROM checkpoint()",
        "SELECT * FROM force_checkpoint()",
        "SELECT write_log('x')",
        "SELECT * FROM enable_profiling()",
        f"SELECT * FROM query('SELECT * FROM enable_logging(storage=''file'', "
        f"storage_path=''{tracks}'')')",
        "SELECT * FROM json_execute_serialized_sql('{}')",
        "SELECT * FROM a_table_function_duckdb_adds_later()",
    ]


def test_every_statement_that_could_write_is_refused_and_the_lake_is_unchanged(lake):
    before = snapshot(lake.root)
    for statement in writes(lake):
        result = run(lake, "sql", statement)
        assert result.exit_code == 1, (statement, result.output)
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1, \
            (statement, result.output)
        assert "Traceback" not in result.output
        with pytest.raises(ReadOnlyError):
            lake.sql(statement)
    assert snapshot(lake.root) == before
    assert run(lake, "sql", "SELECT count(*) FROM raw.users").output.splitlines()[-1] == "300"


def test_a_function_that_writes_is_refused_through_the_python_api_and_writes_nothing(lake):
    # Issue 21: through lake.sql it wrote log files into a Delta log folder.
    folder = last_log(lake, "raw.users").parent
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(ReadOnlyError, match=r"function enable_logging\(\) is refused"):
        lake.sql(f"SELECT * FROM enable_logging(storage='file', storage_path='{folder}')")
    lake.sql("SELECT count(*) FROM raw.users").fetchall()
    assert sorted(p.name for p in folder.iterdir()) == before
    assert lake.duckdb.sql("SELECT current_setting('enable_logging')").fetchone()[0] in (
        False, "false", None)


def test_the_refusal_names_the_statement_type(lake):
    result = run(lake, "sql", writes(lake)[0])
    assert "COPY statements are refused" in result.output
    assert "--format csv|json" in result.output
    assert "INSERT statements are refused" in run(lake, "sql", "INSERT INTO x VALUES (1)").output


def test_several_statements_in_one_string_are_refused(lake):
    before = snapshot(lake.root)
    statement = f"SELECT 1; COPY (SELECT 1) TO '{last_log(lake, 'raw.users')}'"
    result = run(lake, "sql", statement)
    assert result.exit_code == 1 and "2 statements in one query" in result.output
    with pytest.raises(ReadOnlyError, match="2 statements"):
        lake.sql("SELECT 1; SELECT 2")
    assert snapshot(lake.root) == before


@pytest.mark.parametrize("query", [
    "SELECT count(*) FROM raw.users",
    "WITH u AS (SELECT * FROM raw.users) SELECT count(*) FROM u",
    "FROM raw.tracks LIMIT 1",
    "VALUES (1)",
    "DESCRIBE raw.users",
    "SHOW TABLES",
    "SUMMARIZE raw.tracks",
    "EXPLAIN SELECT * FROM raw.users",
    "EXPLAIN ANALYZE SELECT count(*) FROM raw.users",
    "SELECT 1;",
    "PRAGMA version",
    "PRAGMA table_info('raw.users')",
    "SELECT * FROM range(3)",
    "SELECT * FROM duckdb_tables()",
    "SELECT lower(name), hash(id) FROM raw.users LIMIT 1",
    "SELECT 1 AS \"query\", 2 AS \"checkpoint\"",
])
def test_queries_still_run(lake, query):
    result = run(lake, "sql", query)
    assert result.exit_code == 0, result.output


def overwrite_one_partition(lake: Lake) -> None:
    """What the issue's COPY did: one partition's Parquet file rewritten with 1 row."""
    file = next((lake.path("raw.users") / f"ingest_date={DAYS[0]}").glob("*.parquet"))
    pq.write_table(pa.table({"id": [1], "name": ["x"]}), file)


def delete_one_file(lake: Lake) -> None:
    next((lake.path("raw.users") / f"ingest_date={DAYS[1]}").glob("*.parquet")).unlink()


@pytest.mark.parametrize("tamper", [overwrite_one_partition, delete_one_file])
def test_tables_and_status_detect_a_tampered_data_file(lake, tamper):
    from lakehouse.monitor.status import status

    tamper(lake)
    with pytest.raises(BrokenTableError, match="raw.users is unreadable"):
        lake.check("raw.users")
    lake.check("raw.tracks")
    result = run(lake, "tables")
    assert result.exit_code == 1
    assert "raw.users is unreadable" in result.output.splitlines()[-1]
    assert "Traceback" not in result.output
    st = status(settings_for(lake.root))
    assert not st.healthy
    assert any(p.subject == "raw.users" and p.kind == "table_unreadable" for p in st.problems)
    assert not any(p.subject == "raw.tracks" for p in st.problems)
    cli_status = run(lake, "status")
    assert cli_status.exit_code == 1 and "raw.users is unreadable" in cli_status.output


def test_the_broken_table_message_says_what_to_do(lake):
    delete_one_file(lake)
    with pytest.raises(BrokenTableError) as info:
        lake.check("raw.users")
    message = str(info.value)
    # Version 0 (day 1 only) still has all its files: the hint names it.
    assert "time travel to version 0" in message and "lakehouse ingest" in message
    assert "\n" not in message
    assert lake.table("raw.users", version=0).count().execute() == 150

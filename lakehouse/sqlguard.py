"""The read-only guard of ``lakehouse sql`` and :meth:`Lake.sql`.

DuckDB runs whatever it is given, and several of its statements write files
(``COPY ... TO``, ``EXPORT DATABASE``, ``EXPLAIN ANALYZE COPY``...): typed at
``lakehouse sql`` they could overwrite a Delta log or a table's data files.
So a query is parsed by DuckDB's own parser first (not matched as text, which
comments, quoting and case would defeat), and only one statement that DuckDB
itself classifies as a query may run.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

from lakehouse.errors import LakeError, ReadOnlyError

QUERY_KINDS = "SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN"
_EXPORT_HINT = "export with 'lakehouse sql --format csv|json' or lake.sql(...).df()"
# What follows EXPLAIN [ANALYZE] is itself a statement that must be a query:
# EXPLAIN ANALYZE runs it.
_EXPLAIN = re.compile(r"^\s*EXPLAIN(?:\s+ANALY[SZ]E)?\b", re.IGNORECASE)

# A SELECT can still write or change the session through a function: enable_logging
# wrote log files into a Delta log folder (issue 21). Table functions are allowed by
# name (what reads: files, metadata, series); any other, e.g. one a future DuckDB
# adds, is refused. query() and friends run SQL this guard would not see.
READ_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "repeat", "repeat_row", "glob", "summary",
    "read_parquet", "parquet_scan", "parquet_metadata", "parquet_file_metadata",
    "parquet_kv_metadata", "parquet_schema", "parquet_full_metadata", "parquet_bloom_probe",
    "read_csv", "read_csv_auto", "sniff_csv", "read_json", "read_json_auto",
    "read_json_objects", "read_json_objects_auto", "read_ndjson", "read_ndjson_auto",
    "read_ndjson_objects", "read_ndjson_objects_auto", "read_text", "read_blob", "json_each",
    "json_tree", "icu_calendar_names", "pg_timezone_names", "test_all_types",
    "duckdb_columns", "duckdb_constraints", "duckdb_databases", "duckdb_dependencies",
    "duckdb_extensions", "duckdb_functions", "duckdb_indexes", "duckdb_keywords",
    "duckdb_memory", "duckdb_optimizers", "duckdb_schemas", "duckdb_sequences",
    "duckdb_settings", "duckdb_tables", "duckdb_temporary_files", "duckdb_types",
    "duckdb_variables", "duckdb_views", "duckdb_table_sample", "duckdb_logs",
    "duckdb_log_contexts", "duckdb_approx_database_count", "duckdb_connection_count",
    "duckdb_external_file_cache", "duckdb_coordinate_systems", "duckdb_secret_types",
    "pragma_collations", "pragma_database_size", "pragma_metadata_info", "pragma_platform",
    "pragma_show", "pragma_storage_info", "pragma_table_info", "pragma_user_agent",
    "pragma_version",
})
# Functions that write or change the session, refused wherever they appear; also what a
# query that cannot be parsed into a tree is searched for.
WRITING_FUNCTIONS = frozenset({
    "enable_logging", "disable_logging", "truncate_duckdb_logs", "write_log",
    "enable_profiling", "disable_profiling", "checkpoint", "force_checkpoint",
    "query", "query_table", "json_execute_serialized_sql", "python_map_function",
    "pandas_scan", "arrow_scan", "arrow_scan_dumb", "seq_scan",
})
_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_PARSER: Any = None
_PARSER_LOCK = threading.Lock()


def read_only_query(query: str) -> str:
    """``query`` if it is exactly one statement that only reads; else raise.

    DuckDB parses DESCRIBE, SHOW, SUMMARIZE, PRAGMA of a table function, WITH,
    FROM-first and VALUES as SELECT statements, so the check is on DuckDB's
    statement type: SELECT, or EXPLAIN of a SELECT.

    Raises:
        ReadOnlyError: Not a query (COPY, INSERT, CREATE, SET, ATTACH...), or
            several statements.
        LakeError: The text does not parse, or is empty.
    """
    import duckdb

    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise LakeError(f"query failed: {first_line(exc)}") from None
    if not statements:
        raise LakeError(f"empty query: give one {QUERY_KINDS} statement")
    if len(statements) > 1:
        raise ReadOnlyError(f"{len(statements)} statements in one query; 'lakehouse sql' runs "
                            f"exactly one {QUERY_KINDS} statement")
    statement = statements[0]
    kind = statement.type
    if kind == duckdb.StatementType.SELECT:
        check_functions(statement.query)
        return query
    if kind == duckdb.StatementType.EXPLAIN:
        match = _EXPLAIN.match(statement.query)
        inner = statement.query[match.end():] if match else ""
        try:
            inner_statements = duckdb.extract_statements(inner) if inner.strip() else []
        except duckdb.Error:
            inner_statements = []
        if len(inner_statements) == 1 and \
                inner_statements[0].type == duckdb.StatementType.SELECT:
            check_functions(inner_statements[0].query)
            return query
        raise ReadOnlyError("EXPLAIN of a statement that is not a query is refused: "
                            f"the lake is read-only here; {_EXPORT_HINT}")
    raise ReadOnlyError(f"{kind.name} statements are refused: the lake is read-only here; "
                        f"run one {QUERY_KINDS} statement and {_EXPORT_HINT}")


def check_functions(query: str) -> None:
    """Refuse a query that calls a function that writes or changes the session.

    The query is read as DuckDB's own parse tree (``json_serialize_sql``), so
    quoting, comments, case and nesting (a CTE, a subquery, EXPLAIN) hide
    nothing. A ``PRAGMA`` that DuckDB turns into a SELECT runs one of the
    read-only ``pragma_*`` functions. A query DuckDB cannot serialize is
    searched for the names of :data:`WRITING_FUNCTIONS` called as functions.

    Raises:
        ReadOnlyError: A function of :data:`WRITING_FUNCTIONS`, or a table
            function not in :data:`READ_TABLE_FUNCTIONS`.
    """
    tree = _parse_tree(query)
    if tree is None:
        if re.match(r"\s*PRAGMA\b", query, re.IGNORECASE):
            return
        called = [(name.lower(), False) for name in _CALL.findall(query)]
    else:
        called = list(_functions(tree, table=False))
    for name, table in called:
        if name in WRITING_FUNCTIONS or (table and name not in READ_TABLE_FUNCTIONS):
            raise ReadOnlyError(
                f"function {name}() is refused: the lake is read-only here, and it "
                + ("can write files, change the session or run SQL unchecked"
                   if name in WRITING_FUNCTIONS else
                   "is not one of the table functions that only read")
                + "; read tables as zone.name, files with read_parquet/read_csv/read_json")


def _parse_tree(query: str) -> Any:
    """DuckDB's parse tree of one SELECT as JSON, or None when it cannot give one."""
    global _PARSER
    import duckdb

    with _PARSER_LOCK:  # one small in-memory connection, used by one thread at a time
        if _PARSER is None:
            _PARSER = duckdb.connect(":memory:")
        try:
            text = _PARSER.execute("SELECT json_serialize_sql(?)", [query]).fetchone()[0]
        except duckdb.Error:
            return None
    doc = json.loads(text)
    return None if doc.get("error") else doc


def _functions(node: Any, table: bool) -> Iterator[tuple[str, bool]]:
    """Every (function name, is a table function) called anywhere in the tree."""
    if isinstance(node, dict):
        if node.get("type") == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
            yield from _functions(node["function"], table=True)
            for key, value in node.items():
                if key != "function":
                    yield from _functions(value, table=False)
            return
        if node.get("class") == "FUNCTION" and isinstance(node.get("function_name"), str):
            yield node["function_name"].lower(), table
        for value in node.values():
            yield from _functions(value, table=False)
    elif isinstance(node, list):
        for value in node:
            yield from _functions(value, table=False)


def first_line(exc: BaseException | str) -> str:
    """The first non-empty line of an error, for a one-line message.

    DuckDB adds the statement and a caret on later lines, and delta-rs adds a
    Rust backtrace when RUST_BACKTRACE is set: neither belongs in an error line.
    """
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__ if isinstance(exc, BaseException) else "unknown error"

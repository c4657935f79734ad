"""The read-only guard of ``lakehouse sql`` and :meth:`Lake.sql`.

DuckDB runs whatever it is given, and several of its statements write files
(``COPY ... TO``, ``EXPORT DATABASE``, ``EXPLAIN ANALYZE COPY``...): typed at
``lakehouse sql`` they could overwrite a Delta log or a table's data files.
So a query is parsed by DuckDB's own parser first (not matched as text, which
comments, quoting and case would defeat), and only one statement that DuckDB
itself classifies as a query may run.
"""

from __future__ import annotations

import re

from lakehouse.errors import LakeError, ReadOnlyError

QUERY_KINDS = "SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN"
_EXPORT_HINT = "export with 'lakehouse sql --format csv|json' or lake.sql(...).df()"
# What follows EXPLAIN [ANALYZE] is itself a statement that must be a query:
# EXPLAIN ANALYZE runs it.
_EXPLAIN = re.compile(r"^\s*EXPLAIN(?:\s+ANALY[SZ]E)?\b", re.IGNORECASE)


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
            return query
        raise ReadOnlyError("EXPLAIN of a statement that is not a query is refused: "
                            f"the lake is read-only here; {_EXPORT_HINT}")
    raise ReadOnlyError(f"{kind.name} statements are refused: the lake is read-only here; "
                        f"run one {QUERY_KINDS} statement and {_EXPORT_HINT}")


def first_line(exc: BaseException | str) -> str:
    """The first non-empty line of an error, for a one-line message.

    DuckDB adds the statement and a caret on later lines, and delta-rs adds a
    Rust backtrace when RUST_BACKTRACE is set: neither belongs in an error line.
    """
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__ if isinstance(exc, BaseException) else "unknown error"

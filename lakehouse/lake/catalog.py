"""Catalog: every table as a DuckDB view on one shared connection, and read-only SQL.

Each table ``zone.name`` is a view ``"zone"."name"`` over the Parquet files
of its current Delta snapshot (delta-rs lists them; DuckDB cannot install
its Delta extension here), refreshed when the table's log moves. Analysts'
SQL and the pipeline's ibis reads see the same views. :meth:`Catalog.sql`
runs one query and refuses anything that could write.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
from deltalake import DeltaTable

from lakehouse import names
from lakehouse.errors import BrokenTableError, LakeError, TableNotFoundError
from lakehouse.lake.health import files_problem, repair_hint
from lakehouse.lake.naming import parse_table_name
from lakehouse.sqlguard import first_line, read_only_query
from lakehouse.sqltext import literal

if TYPE_CHECKING:
    import duckdb
    import ibis
    import ibis.expr.types as ir

    from lakehouse.lake.front import Lake


@dataclass(frozen=True)
class QueryResult:
    """The rows of one query, and how many a limit left out."""

    columns: list[str]
    rows: list[tuple]
    left_out: int


class Catalog:
    """The DuckDB views of one lake's tables, on one connection shared by every read.

    Args:
        lake: The lake whose tables it shows.
    """

    def __init__(self, lake: Lake):
        self.lake = lake
        self._con: ibis.BaseBackend | None = None
        self._views: dict[str, tuple[float, int]] = {}
        self._con_lock = threading.RLock()

    @property
    def con(self) -> ibis.BaseBackend:
        """The shared ibis DuckDB connection every read goes through."""
        with self._con_lock:
            if self._con is None:
                import ibis

                self._con = ibis.duckdb.connect()
                self._con.raw_sql("SET TimeZone = 'UTC'")
                for zone in names.ZONES:
                    self._con.raw_sql(f'CREATE SCHEMA IF NOT EXISTS "{zone}"')
            return self._con

    @property
    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """The raw DuckDB connection behind :attr:`con`."""
        return self.con.con

    def table(self, name: str, *, version: int | None = None,
              as_of: dt.datetime | str | None = None) -> ir.Table:
        """Table ``name`` as an ibis expression, optionally time travelled.

        Documented at :meth:`~lakehouse.lake.Lake.table`.
        """
        if version is None and as_of is None:
            self._refresh(name)
            zone, table = parse_table_name(name)
            return self.con.table(table, database=zone)
        when = version if version is not None else _parse_when(as_of)
        delta = self.lake.delta(name, when)
        return self.con.sql(self._select_sql(name, delta))

    def to_arrow(self, name: str, **kwargs) -> pa.Table:
        """Table ``name`` as an Arrow table (see :meth:`table` for options).

        Documented at :meth:`~lakehouse.lake.Lake.to_arrow`.
        """
        return self.table(name, **kwargs).to_pyarrow()

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """Run DuckDB SQL where every table is reachable as ``zone.name``.

        Documented at :meth:`~lakehouse.lake.Lake.sql`.
        """
        import duckdb

        read_only_query(query)
        # A broken table is that table's problem: the others still read.
        broken: dict[str, LakeError] = {}
        for name in self.lake.table_names():
            try:
                self._refresh(name)
            except TableNotFoundError:
                continue  # dropped meanwhile
            except LakeError as exc:
                broken[name] = exc
                self._drop_view(name)
        try:
            return self.duckdb.sql(query)
        except duckdb.Error as exc:
            for name, error in broken.items():
                if _mentions(query, name):
                    raise error from None
            raise LakeError(f"query failed: {first_line(exc)}") from None

    def query(self, query: str, limit: int | None = None) -> QueryResult:
        """Run one read-only query (see :meth:`sql`) and fetch its rows.

        Documented at :meth:`~lakehouse.lake.Lake.query`.
        """
        import duckdb

        rel = self.sql(query)
        if rel is None:
            return QueryResult([], [], 0)
        try:
            columns = list(rel.columns)
            rows = rel.fetchall() if limit is None else rel.fetchmany(limit)
            left_out = 0
            if limit is not None and len(rows) == limit:
                while batch := rel.fetchmany(10_000):
                    left_out += len(batch)
        except duckdb.Error as exc:
            raise LakeError(f"query failed: {first_line(exc)}") from None
        return QueryResult(columns, rows, left_out)

    def _refresh(self, name: str) -> None:
        """(Re)create the DuckDB view of ``name`` if its Delta log moved.

        Raises:
            TableNotFoundError: No such table.
            BrokenTableError: Its log does not parse or a data file is not as
                logged (checked each time the view is made).
        """
        import duckdb

        log_dir = self.lake.path(name) / "_delta_log"
        try:
            stamp = log_dir.stat().st_mtime
        except FileNotFoundError:
            raise TableNotFoundError(f"table {name} does not exist in {self.lake.root}; "
                                     "'lakehouse tables' lists what does") from None
        delta = self.lake.delta(name)  # BrokenTableError when the log does not load
        key = (stamp, delta.version())
        with self._con_lock:
            if self._views.get(name) == key:
                return
            problem = files_problem(self.lake.path(name), delta)
            if problem:
                raise BrokenTableError(f"table {name} is unreadable: {problem}; "
                                       f"{repair_hint(self.lake, name, delta.version())}")
            zone, table = parse_table_name(name)
            body = self._select_sql(name, delta, view=f"{zone}__{table}")
            try:
                self.con.raw_sql(f'CREATE OR REPLACE VIEW "{zone}"."{table}" AS {body}')
            except duckdb.Error as exc:
                raise BrokenTableError(f"table {name} is unreadable: {first_line(exc)}; "
                                       f"{repair_hint(self.lake, name, delta.version())}") from None
            self._views[name] = key

    def checked_select(self, name: str, con: duckdb.DuckDBPyConnection) -> str:
        """SQL selecting the current snapshot of ``name`` on another connection ``con``.

        The same files and the same checks as the view :meth:`table` reads, for
        work that runs on a DuckDB connection of its own (the history merge,
        with its own memory cap, closed after).

        Raises:
            TableNotFoundError: No such table.
            BrokenTableError: Its log does not parse or a data file is not as logged.
        """
        delta = self.lake.delta(name)  # BrokenTableError when the log does not load
        problem = files_problem(self.lake.path(name), delta)
        if problem:
            raise BrokenTableError(f"table {name} is unreadable: {problem}; "
                                   f"{repair_hint(self.lake, name, delta.version())}")
        zone, table = parse_table_name(name)
        return self._select_sql(name, delta, view=f"{zone}__{table}", con=con)

    def _drop_view(self, name: str) -> None:
        """Forget the view of a table that no longer reads, so no query sees stale data."""
        zone, table = parse_table_name(name)
        with self._con_lock:
            self._views.pop(name, None)
            self.con.raw_sql(f'DROP VIEW IF EXISTS "{zone}"."{table}"')

    def _select_sql(self, name: str, delta: DeltaTable, view: str | None = None,
                    con: duckdb.DuckDBPyConnection | None = None) -> str:
        """SQL selecting the snapshot ``delta`` of table ``name`` (on ``con``, default ours)."""
        schema = pa.schema(delta.schema().to_arrow())
        uris = delta.file_uris()
        config = delta.metadata().configuration or {}
        protocol = delta.protocol()
        features = set(protocol.reader_features or [])
        needs_arrow = ("deletionVectors" in features or "columnMapping" in features
                       or config.get("delta.columnMapping.mode", "none") != "none")
        if not uris or needs_arrow:
            # No files, or files DuckDB cannot read faithfully: let delta-rs scan.
            source = delta.to_pyarrow_dataset() if uris else schema.empty_table()
            reg = f"__arrow_{view or name.replace('.', '__')}_{delta.version()}"
            if con is not None:
                con.register(reg, source)
            else:
                with self._con_lock:
                    self.duckdb.register(reg, source)
            return f'SELECT * FROM "{reg}"'
        parts = set(delta.metadata().partition_columns)
        files = ", ".join(literal(file_path(u)) for u in uris)
        hive_types = ", ".join(f"'{c}': '{_duck_type(schema.field(c).type)}'" for c in parts)
        opts = "union_by_name = true"
        if parts:
            opts += f", hive_partitioning = true, hive_types = {{{hive_types}}}"
        else:
            opts += ", hive_partitioning = false"
        cols = ", ".join(f'"{c}"' for c in schema.names)
        return f"SELECT {cols} FROM read_parquet([{files}], {opts})"

    def forget(self, name: str) -> None:
        """Forget the view of a dropped table (it is made again if the table comes back)."""
        self._views.pop(name, None)


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    return "VARCHAR"


def _parse_when(value: dt.datetime | str | None) -> dt.datetime:
    if isinstance(value, dt.datetime):
        when = value
    else:
        try:
            when = dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise LakeError(f"bad timestamp {value!r}: use ISO 8601, "
                            "e.g. 2026-11-26T08:00:00+00:00") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _mentions(query: str, name: str) -> bool:
    """Whether ``query`` names table ``name`` (``zone.name``, quoted or not)."""
    zone, table = name.split(".", 1)
    pattern = rf'(?<!\w)"?{zone}"?\s*\.\s*"?{table}"?(?!\w)'
    return re.search(pattern, query, re.IGNORECASE) is not None


def file_path(uri: str) -> str:
    """A path DuckDB can open for one of delta-rs's ``file_uris``.

    delta-rs percent-encodes them (``my%20lake``, ``lake%C3%A9``) and DuckDB
    takes the text literally, so a lake path with a space or a non-ASCII
    character would find no files.
    """
    from urllib.parse import unquote, urlparse

    if uri.startswith("file://"):
        return unquote(urlparse(uri).path)
    if "://" in uri:
        return uri  # an object store URI: DuckDB takes it as it is
    return unquote(uri)


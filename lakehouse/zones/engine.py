"""Where a build runs: the engine behind the same views, schemas and rules.

:mod:`lakehouse.zones.build` decides what to compute, validate and write; an
:class:`Engine` decides where. It gives the build its ibis connection, the
lake's tables on that connection, somewhere to materialize intermediate
results, and a way to commit a result as one Delta commit. Two engines:

- :class:`DuckDBEngine` (default): the lake's own DuckDB connection, results
  as DuckDB temporary tables, streamed to delta-rs;
- :class:`lakehouse.zones.spark.SparkEngine`: a Spark session, results as
  Parquet files that are committed as they are (``lakehouse[spark]``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from lakehouse.config import ENGINES
from lakehouse.errors import LakeError
from lakehouse.sqlguard import first_line
from lakehouse.sqltext import ident, literal

if TYPE_CHECKING:
    import ibis
    import ibis.expr.types as ir

    from lakehouse.lake import Lake, WriteResult

DUCKDB, SPARK = ENGINES
# Where DuckDB keeps a connection's temporary tables and views.
_TEMP_CATALOG, _TEMP_SCHEMA = "temp", "main"


class Engine:
    """The interface a build runs on. Subclasses implement every method."""

    name: str = ""
    lake: Lake
    # When this build's session began (POSIX time): it holds the build lock by then.
    started: float = 0.0

    @property
    def con(self) -> ibis.BaseBackend:
        """The ibis connection the views run on."""
        raise NotImplementedError

    def details(self) -> dict[str, Any]:
        """What ``meta.runs`` records about the engine (``details``)."""
        return {"engine": self.name}

    @contextmanager
    def session(self) -> Iterator[None]:
        """Set up for one build and clean up after it, failed or not."""
        yield

    def table(self, name: str) -> ir.Table:
        """The current snapshot of lake table ``name`` on :attr:`con`."""
        raise NotImplementedError

    def temp(self, expr: ir.Table, label: str) -> ir.Table:
        """Compute ``expr`` once and return it as a table that can be read repeatedly."""
        raise NotImplementedError

    def view(self, expr: ir.Table, label: str) -> ir.Table:
        """``expr`` under a name, for a query several others read; computed where read.

        What it saves is ibis compiling ``expr`` again into each of them
        (compiling is a tenth of a small build). By default ``expr`` itself.
        """
        return expr

    def drop(self, table: ir.Table) -> None:
        """Free a table made by :meth:`temp` (it will not be written)."""
        raise NotImplementedError

    def write(self, name: str, table: ir.Table, metadata: Mapping[str, str]) -> WriteResult:
        """Replace lake table ``name`` with ``table`` (made by :meth:`temp`) in one commit."""
        raise NotImplementedError

    def remove_uncommitted(self, name: str) -> list[str]:
        """Before writing ``name``: delete files a build killed before its commit left there.

        Safe here: builds hold the lake's build lock, and only builds write
        these tables; files from after this build's start are kept, and so
        is every file any version of the log knows.
        """
        return self.lake.remove_uncommitted(name, before=self.started)


class DuckDBEngine(Engine):
    """The lake's DuckDB connection; results as temporary tables, spilled beyond a memory limit."""

    name = DUCKDB

    def __init__(self, lake: Lake, memory: str):
        self.lake = lake
        self.memory = memory
        self._temps: list[str] = []
        self._views: list[str] = []

    @property
    def con(self) -> ibis.BaseBackend:
        return self.lake.con

    @contextmanager
    def session(self) -> Iterator[None]:
        import duckdb

        self.started = time.time()
        spill = tempfile.mkdtemp(prefix="lakehouse-build-")
        try:
            # Bounded memory: DuckDB spills the temporary tables beyond it.
            self.con.raw_sql(f"SET memory_limit = {literal(self.memory)}")
            self.con.raw_sql(f"SET temp_directory = {literal(spill)}")
        except duckdb.Error as exc:
            shutil.rmtree(spill, ignore_errors=True)
            raise LakeError(f"bad build_memory {self.memory!r} "
                            f"(LAKEHOUSE_BUILD_MEMORY): {first_line(exc)}; "
                            "use a DuckDB size such as 1GB") from None
        try:
            yield
        finally:
            for name in self._temps:
                self.con.raw_sql(f"DROP TABLE IF EXISTS {_temp(name)}")
            self._temps.clear()
            for name in self._views:
                self.con.raw_sql(f"DROP VIEW IF EXISTS {_temp(name)}")
            self._views.clear()
            shutil.rmtree(spill, ignore_errors=True)

    def table(self, name: str) -> ir.Table:
        return self.lake.table(name)

    def temp(self, expr: ir.Table, label: str) -> ir.Table:
        # The statements ibis's create_table() runs, less two costs: with
        # overwrite=True it fills a table under another name and copies it to
        # this one (a second pass over every row: seconds at 10M rows), and each
        # call asks DuckDB for the current catalog, schema and the new table's
        # columns, which are ``expr``'s schema.
        name = _name(label)
        schema = expr.schema()
        columns = ", ".join(c.sql(DUCKDB) for c in schema.to_sqlglot_column_defs(DUCKDB))
        self.con._run_pre_execute_hooks(expr)  # as ibis does: registers Python UDFs
        self.con.raw_sql(f"CREATE OR REPLACE TEMP TABLE {_temp(name)} ({columns})")
        self._temps.append(name)
        self.con.raw_sql(f"INSERT INTO {_temp(name)} ({', '.join(map(ident, schema.names))}) "
                         f"{self.con.compile(expr)}")
        return self._named(name, schema)

    def view(self, expr: ir.Table, label: str) -> ir.Table:
        name = _name(label)
        self.con._run_pre_execute_hooks(expr)
        self.con.raw_sql(f"CREATE OR REPLACE TEMP VIEW {_temp(name)} AS {self.con.compile(expr)}")
        self._views.append(name)
        return self._named(name, expr.schema())

    def _named(self, name: str, schema: ibis.Schema) -> ir.Table:
        """Temporary table or view ``name`` as an ibis table of ``schema``, without asking DuckDB.

        What ``con.table(name)`` returns (DuckDB describes a table made from a
        schema as that schema), so the queries reading it compile the same.
        """
        import ibis.expr.operations as ops

        namespace = ops.Namespace(catalog=_TEMP_CATALOG, database=_TEMP_SCHEMA)
        return ops.DatabaseTable(name, schema=schema, source=self.con,
                                 namespace=namespace).to_expr()

    def drop(self, table: ir.Table) -> None:
        name = table.get_name().rsplit(".", 1)[-1]
        self.con.raw_sql(f"DROP TABLE IF EXISTS {_temp(name)}")
        self._temps.remove(name)

    def write(self, name: str, table: ir.Table, metadata: Mapping[str, str]) -> WriteResult:
        self.remove_uncommitted(name)
        return self.lake.write(name, table.to_pyarrow_batches(), mode="replace",
                               metadata=metadata)


def _name(label: str) -> str:
    """The temporary table or view holding a build's result ``label`` (``standardized.users``)."""
    return f"_build_{label.replace('.', '__')}"


def _temp(name: str) -> str:
    """``name`` qualified as one of the connection's temporary tables or views."""
    return f"{_TEMP_CATALOG}.{_TEMP_SCHEMA}.{ident(name)}"

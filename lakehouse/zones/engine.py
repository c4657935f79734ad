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
from lakehouse.sqltext import literal

if TYPE_CHECKING:
    import ibis
    import ibis.expr.types as ir

    from lakehouse.lake import Lake, WriteResult

DUCKDB, SPARK = ENGINES


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
            for name in list(self._temps):
                self.con.drop_table(name, force=True)
            self._temps.clear()
            shutil.rmtree(spill, ignore_errors=True)

    def table(self, name: str) -> ir.Table:
        return self.lake.table(name)

    def temp(self, expr: ir.Table, label: str) -> ir.Table:
        name = f"_build_{label.replace('.', '__')}"
        table = self.con.create_table(name, expr, temp=True, overwrite=True)
        self._temps.append(name)
        return table

    def drop(self, table: ir.Table) -> None:
        name = table.get_name().rsplit(".", 1)[-1]
        self.con.drop_table(name, force=True)
        self._temps.remove(name)

    def write(self, name: str, table: ir.Table, metadata: Mapping[str, str]) -> WriteResult:
        self.remove_uncommitted(name)
        return self.lake.write(name, table.to_pyarrow_batches(), mode="replace",
                               metadata=metadata)

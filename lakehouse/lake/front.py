"""The lake: the only package that reads and writes tables; :class:`Lake` is its front door.

A table is named ``zone.name`` (``raw.users``, ``standardized.listens``,
``meta.runs``) and stored as a Delta table at ``<lake>/<zone>/<name>/``.
Writes go through :meth:`Lake.write`, one atomic Delta commit each; reads
come back as ibis tables on one shared DuckDB connection, so analysts and the
pipeline see the same thing::

    lake = open_lake("lake")
    users = lake.table("standardized.users")          # ibis
    lake.sql("SELECT count(*) FROM raw.users").df()   # DuckDB SQL
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError
from deltalake.exceptions import TableNotFoundError as _DeltaMissing

from lakehouse import names
from lakehouse.errors import BrokenTableError, ConfigError, LakeError, TableNotFoundError
from lakehouse.lake import external, health, storage
from lakehouse.lake.catalog import Catalog, QueryResult
from lakehouse.lake.naming import _NAME, parse_table_name
from lakehouse.lake.storage import WriteMode, WriteResult
from lakehouse.sqlguard import first_line

if TYPE_CHECKING:
    import duckdb
    import ibis
    import ibis.expr.types as ir

# Characters delta-rs cannot take in a table's path (measured with deltalake 1.x: [ ] ^ |
# panic, a backslash fails, %XX is decoded to another folder).
_UNSUPPORTED_PATH = re.compile(r"[\[\]^|\\]|%[0-9A-Fa-f]{2}")


@dataclass(frozen=True)
class TableInfo:
    """One line of the lake's table listing."""

    name: str
    rows: int
    files: int
    size_bytes: int
    disk_bytes: int
    version: int
    last_modified: dt.datetime | None
    partition_by: list[str]
    problem: str | None = None  # why the table cannot be read (see Lake.check)


def utc_now() -> dt.datetime:
    """The current time as a UTC-aware datetime (the only kind the lake stores)."""
    return dt.datetime.now(dt.UTC)


def check_outside_lake(root: str | os.PathLike[str], path: str | os.PathLike[str],
                       what: str, option: str = "--out") -> Path:
    """``path`` if writing ``what`` there cannot touch the lake at ``root``; else raise.

    Every command that writes a path the user gives (``snapshot --out``,
    ``report --out``, their library functions) goes through here: a file
    written inside the lake could replace a table's data file or Delta log, a
    model, a lock or the run log, and the next read would fail. Only the
    lake's ``reports`` folder (where ``report`` writes by default) is open.
    Symbolic links are followed, so a link out of the lake pointing back in
    is refused too.

    Args:
        root: The lake's folder.
        path: The file (or folder) about to be written.
        what: What would be written, for the message (``the report``).
        option: The option the path came from, for the message.

    Returns:
        ``path``, with ``~`` expanded.

    Raises:
        ConfigError: ``path`` is inside the lake (and not in its reports folder).
    """
    target = Path(path).expanduser()
    lake = Path(root).expanduser().resolve()
    resolved = target.resolve()
    if resolved.is_relative_to(lake) and not resolved.is_relative_to(lake / "reports"):
        raise ConfigError(f"refusing to write {what} to {target}: it is inside the lake "
                          f"{root}, where it could replace table, log or model files; "
                          f"choose an {option} outside the lake")
    return target


class Lake:
    """A lake rooted at one folder: the front door to its tables.

    Storage (writes, deletes, external commits), the catalog (DuckDB views,
    SQL) and health (checks, repair hints, clean-up) live in the modules of
    this package; a ``Lake`` hands each call to the one that owns it.

    Args:
        root: The lake's folder.
        create: Create the folder if it does not exist (writers do; readers
            get a clear error instead).

    Raises:
        LakeError: The root is a file, or cannot be created.
    """

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True):
        if not str(os.fspath(root)).strip():
            # Path("") is the working directory: the lake would be whatever folder this runs in.
            raise LakeError("the lake path is empty; give a folder, e.g. open_lake('lake') or "
                            "--lake ./lake")
        self.root = Path(root).expanduser()
        odd = _UNSUPPORTED_PATH.search(str(self.root.absolute()))
        if odd:
            # delta-rs panics on these ("Invalid object store url") or decodes %XX.
            raise LakeError(f"lake path {self.root.absolute()} contains {odd.group()!r}, which "
                            "Delta tables cannot be stored under; rename the folder or point "
                            "--lake (LAKEHOUSE_LAKE) elsewhere")
        if self.root.exists() and not self.root.is_dir():
            raise LakeError(f"lake path {self.root} is a file, not a folder; "
                            "point --lake (LAKEHOUSE_LAKE) at a folder")
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LakeError(f"cannot create lake folder {self.root}: {exc.strerror}; "
                                "point --lake at a writable folder") from None
        elif not self.root.exists():
            raise LakeError(f"no lake at {self.root}; run 'lakehouse ingest' first "
                            "or point --lake at an existing lake")
        self.catalog = Catalog(self)

    def __repr__(self) -> str:
        return f"Lake({str(self.root)!r})"

    def path(self, name: str) -> Path:
        """The folder of table ``name``."""
        zone, table = parse_table_name(name)
        return self.root / zone / table

    def exists(self, name: str) -> bool:
        """Whether table ``name`` has at least one commit."""
        return (self.path(name) / "_delta_log").is_dir() and DeltaTable.is_deltatable(
            str(self.path(name)))

    def check_writable(self) -> None:
        """Fail early, before any work, if the lake cannot be written.

        Raises:
            LakeError: The folder is not writable.
        """
        probe = self.root / f".write-probe-{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise LakeError(f"lake folder {self.root} is not writable ({exc.strerror}); "
                            "fix its permissions or point --lake elsewhere") from None

    def table_names(self) -> list[str]:
        """Every table in the lake, sorted by zone then name."""
        found = []
        for zone in names.ZONES:
            zdir = self.root / zone
            if not zdir.is_dir():
                continue
            for tdir in sorted(zdir.iterdir()):
                if (tdir / "_delta_log").is_dir() and _NAME.match(tdir.name):
                    found.append(f"{zone}.{tdir.name}")
        return found

    def delta(self, name: str, version: int | str | dt.datetime | None = None) -> DeltaTable:
        """The Delta table ``name``, optionally as of a version or a timestamp.

        Raises:
            TableNotFoundError: No such table, or no such version.
            BrokenTableError: Its Delta log does not load (torn or garbled).
        """
        path = self.path(name)
        try:
            table = DeltaTable(str(path))
            if version is not None:
                table.load_as_version(version)
        except _DeltaMissing:
            raise TableNotFoundError(
                f"table {name} does not exist in {self.root}; "
                f"'lakehouse tables' lists what does") from None
        except (DeltaError, ValueError, OSError) as exc:
            if version is None:
                raise BrokenTableError(
                    f"table {name} is unreadable: its Delta log does not load "
                    f"({first_line(exc)}); {health.repair_hint(self, name)}") from None
            raise TableNotFoundError(
                f"table {name} has no version as of {version}: {first_line(exc)}") from None
        return table

    def schema(self, name: str) -> pa.Schema:
        """The current Arrow schema of table ``name``."""
        return pa.schema(self.delta(name).schema().to_arrow())

    def version(self, name: str) -> int | None:
        """The current version of ``name``, or None if it does not exist."""
        return self.delta(name).version() if self.exists(name) else None

    # ------------------------------------------------------------------ storage
    def write(
        self,
        name: str,
        data: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch],
        *,
        mode: WriteMode = "append",
        schema: pa.Schema | None = None,
        partition_by: list[str] | None = None,
        partition: Mapping[str, object] | None = None,
        metadata: Mapping[str, str] | None = None,
        allow_missing: bool = True,
    ) -> WriteResult:
        """Write ``data`` to table ``name`` as one atomic commit.

        Args:
            name: ``zone.name``.
            data: An Arrow table, a record batch reader, or an iterable of
                batches (then ``schema`` is required). Streams are written
                without being held in memory.
            mode: ``append``; ``replace_partition`` (every row must belong to
                ``partition``; readers see the old partition or the new one,
                never a mix); ``replace`` (the whole table, schema included).
            schema: The batches' schema, when ``data`` is an iterable.
            partition_by: Partition columns, used when the table is created.
            partition: For ``replace_partition``: column -> value to replace.
            metadata: Extra key/values recorded in the commit (e.g. run id).
            allow_missing: On append, accept data lacking existing columns
                (they read as null); otherwise raise.

        Returns:
            The version written, the rows, and any schema change, in words.

        Raises:
            SchemaError: A column changed type, or a timestamp has no time zone.
            LakeError: The write failed; the table is left at its last version.
        """
        return storage.write(self, name, data, mode=mode, schema=schema, partition_by=partition_by,
                             partition=partition, metadata=metadata,
                             allow_missing=allow_missing)

    def delete(self, name: str, predicate: str, *,
               metadata: Mapping[str, str] | None = None) -> int:
        """Delete the rows of ``name`` matching a SQL ``predicate``, as one atomic commit.

        Returns:
            The number of rows deleted (no commit is made when it is 0).

        Raises:
            LakeError: The delete failed; the table is left at its last version.
        """
        return storage.delete(self, name, predicate, metadata=metadata)

    def commit_files(self, name: str, files: list[str], schema: pa.Schema, *,
                     mode: Literal["append", "replace"] = "replace",
                     metadata: Mapping[str, str] | None = None) -> WriteResult:
        """Commit Parquet files another engine wrote inside the table's folder, as one commit.

        For writers that cannot write Delta themselves (Spark without the
        Delta jars): they write plain Parquet under :meth:`path`, and this
        adds exactly those files to the log. Only file footers are read.

        Args:
            name: ``zone.name``.
            files: The files, relative to the table folder; ``col=value``
                folders give partition values.
            schema: The table's schema (the files must match it).
            mode: ``append``, or ``replace`` (the whole table, schema included).
            metadata: Extra key/values recorded in the commit.

        Raises:
            SchemaError: A file's columns or types differ from ``schema``.
            LakeError: The commit failed; the table is left at its last version.
        """
        return external.commit_files(self, name, files, schema, mode=mode, metadata=metadata)

    def partition_fingerprints(self, name: str, column: str) -> dict[dt.date, str]:
        """Each date of date-partitioned table ``name`` -> a fingerprint of its data files.

        Replacing a partition writes new files, hence a new fingerprint; only
        the Delta log is read, no data. An absent table has no partitions.

        Args:
            name: ``zone.name``.
            column: The date partition column (``ingest_date``, ``score_date``).
        """
        if not self.exists(name):
            return {}
        paths: dict[dt.date, list[str]] = {}
        actions = health.add_actions(self.delta(name))
        key = f"partition.{column}"
        if key not in actions.column_names:
            return {}
        # Only the two columns: converting the file statistics' zoned timestamps
        # to Python imports pandas.
        for path, value in zip(actions.column("path").to_pylist(),
                               actions.column(key).to_pylist(), strict=True):
            if value is None:
                continue
            day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
            paths.setdefault(day, []).append(path)
        return {day: hashlib.md5("\n".join(sorted(p)).encode()).hexdigest()
                for day, p in paths.items()}

    def history(self, name: str, limit: int | None = None) -> list[dict]:
        """The commits of table ``name``, newest first."""
        return self.delta(name).history(limit)

    def drop(self, name: str) -> None:
        """Delete table ``name`` and its history (tests and ``--rebuild`` only)."""
        shutil.rmtree(self.path(name), ignore_errors=True)
        self.catalog.forget(name)

    # ------------------------------------------------------------------ health
    def info(self, name: str) -> TableInfo:
        """Row count, sizes, version and last change of table ``name``."""
        table = self.delta(name)
        actions = health.add_actions(table)
        rows = sum(v or 0 for v in actions.column("num_records").to_pylist()) \
            if actions.num_rows else 0
        size = sum(actions.column("size_bytes").to_pylist()) if actions.num_rows else 0
        last = table.history(1)
        modified = (dt.datetime.fromtimestamp(last[0]["timestamp"] / 1000, dt.UTC)
                    if last else None)
        return TableInfo(
            name=name, rows=int(rows), files=actions.num_rows, size_bytes=int(size),
            disk_bytes=health.du(self.path(name)), version=table.version(),
            last_modified=modified, partition_by=list(table.metadata().partition_columns),
        )

    def tables(self) -> list[TableInfo]:
        """Every table with its rows, sizes, version and last change.

        Each table is checked (:meth:`check`); a damaged one is listed with
        its ``problem`` (and what its log says, if the log reads) rather than
        failing the listing.
        """
        out = []
        for name in self.table_names():
            try:
                info = self.info(name)
            except LakeError as exc:
                out.append(TableInfo(name, 0, 0, 0, health.du(self.path(name)), -1, None, [],
                                     problem=str(exc)))
                continue
            try:
                self.check(name)
            except BrokenTableError as exc:
                info = dataclasses.replace(info, problem=str(exc))
            out.append(info)
        return out

    def check(self, name: str) -> DeltaTable:
        """Prove that table ``name`` reads, cheaply: its Delta log parses, and every
        data file the log lists exists with the logged size and row count.

        Only Parquet footers are read, never the data. A file deleted,
        truncated or overwritten by something other than the lake shows here,
        where a row count taken from the log alone would still look right.

        Returns:
            The snapshot that was checked, for a reader that lists its files
            itself (the Spark engine).

        Raises:
            TableNotFoundError: No such table.
            BrokenTableError: The log does not parse or a data file is missing,
                resized or rewritten; the message says what to do.
        """
        return health.check(self, name)

    def remove_uncommitted(self, name: str, before: float) -> list[str]:
        """Delete the data files of ``name`` that no version of its Delta log knows.

        A writer killed between writing its files and committing them (a
        Spark result moved into the folder, a delta-rs write cut short)
        leaves files no reader sees. Only a file that no commit or checkpoint
        adds or removes, last changed before ``before``, goes: a file any
        version still needs is never touched, nor one a writer running now
        may be about to commit. Call it holding the lock of the table's
        writers, with ``before`` no later than when that lock was taken.

        Args:
            name: ``zone.name``.
            before: A POSIX time; newer files are kept.

        Returns:
            The files removed, relative to the table's folder.
        """
        return health.remove_uncommitted(self, name, before)

    def size_bytes(self) -> int:
        """The lake's whole size on disk, models and logs included."""
        return health.du(self.root)

    # ------------------------------------------------------------------ reads
    @property
    def con(self) -> ibis.BaseBackend:
        """The shared ibis DuckDB connection every read goes through."""
        return self.catalog.con

    @property
    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """The raw DuckDB connection behind :attr:`con`."""
        return self.catalog.duckdb

    def table(self, name: str, *, version: int | None = None,
              as_of: dt.datetime | str | None = None) -> ir.Table:
        """Table ``name`` as an ibis expression, optionally time travelled.

        Args:
            name: ``zone.name``.
            version: Read this Delta version instead of the latest.
            as_of: Read the version current at this timestamp (datetime or
                ISO string) instead of the latest.
        """
        return self.catalog.table(name, version=version, as_of=as_of)

    def to_arrow(self, name: str, **kwargs) -> pa.Table:
        """Table ``name`` as an Arrow table (see :meth:`table` for options)."""
        return self.catalog.to_arrow(name, **kwargs)

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """Run DuckDB SQL where every table is reachable as ``zone.name``.

        Returns:
            A DuckDB relation: ``.df()``, ``.arrow()``, ``.fetchall()``, or
            print it.

        Only one query runs: a statement that could write (COPY, INSERT,
        CREATE, SET, ATTACH, EXPORT...) or several statements are refused,
        so nothing typed here can change a file of the lake.

        Raises:
            ReadOnlyError: The text is not exactly one query.
            LakeError: The query is not valid SQL or names a missing table.
        """
        return self.catalog.sql(query)

    def query(self, query: str, limit: int | None = None) -> QueryResult:
        """Run one read-only query (see :meth:`sql`) and fetch its rows.

        Args:
            query: The SQL.
            limit: Fetch at most this many rows (None: all); the rest are
                counted, in batches, never held.

        Returns:
            The columns, the rows, and how many rows ``limit`` left out.

        Raises:
            ReadOnlyError: The text is not exactly one query.
            LakeError: The query fails, while planning or while running.
        """
        return self.catalog.query(query, limit)


def open_lake(path: str | os.PathLike[str] | None = None) -> Lake:
    """Open the lake at ``path`` (default: the settings' lake) for analysis.

    Example:
        >>> lake = open_lake("lake")
        >>> lake.table("standardized.users").count().execute()
    """
    if path is None:
        from lakehouse.config import Settings

        path = Settings.load().lake
    return Lake(path, create=False)


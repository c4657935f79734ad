"""The lake: the only module that reads and writes tables.

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

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
from deltalake import (
    ColumnProperties,
    CommitProperties,
    DeltaTable,
    WriterProperties,
    write_deltalake,
)
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.exceptions import TableNotFoundError as _DeltaMissing

from lakehouse import names
from lakehouse.errors import (
    BrokenTableError,
    ConfigError,
    LakeError,
    SchemaError,
    TableNotFoundError,
)
from lakehouse.sqlguard import first_line, read_only_query

if TYPE_CHECKING:
    import duckdb
    import ibis
    import ibis.expr.types as ir

log = logging.getLogger(__name__)

WriteMode = Literal["append", "replace_partition", "replace"]
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# Characters delta-rs cannot take in a table's path (measured with deltalake 1.x: [ ] ^ |
# panic, a backslash fails, %XX is decoded to another folder).
_UNSUPPORTED_PATH = re.compile(r"[\[\]^|\\]|%[0-9A-Fa-f]{2}")
_COMMIT_TRIES = 8
_ROW_GROUP_ROWS = 20_000  # measured: peak RSS flat from 100k to 900k streamed rows
# Raw and history: the retained snapshots are most of the lake's bytes (see writer_properties).
_ARCHIVE_ROW_GROUP_ROWS = 250_000
_TARGET_FILE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class WriteResult:
    """What one write did."""

    table: str
    version: int
    rows: int
    mode: str
    schema_changes: list[str] = field(default_factory=list)


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


@dataclass(frozen=True)
class QueryResult:
    """The rows of one query, and how many a limit left out."""

    columns: list[str]
    rows: list[tuple]
    left_out: int


def writer_properties(name: str, schema: pa.Schema | None = None) -> WriterProperties:
    """Parquet settings for table ``name`` (of ``schema``, when known).

    Raw and history hold most of the lake's bytes (raw keeps a window of full
    daily snapshots) and are read once a day, so they are written for size:
    ZSTD, row groups of 250,000 rows, and timestamps sent as text (``*_at``
    string columns) delta-encoded without a dictionary. Measured on a
    1.24 M-record snapshot (scripts/bench_days.py sizes): raw 39.7 MiB and
    history 69 MiB, against 50.9 and 80 with 20,000-row groups; a streamed
    write of 900,000 rows grows 25-35 MB more (scripts/bench_lake_write.py),
    below an ingest's peak (1.68 GiB either way, its history merge). ZSTD
    level 9 saved 2.5% more for another 40 MB, so the default level it is.
    Other zones are read all day: small row groups and Snappy, Spark's default
    (without a ``compression`` delta-rs writes them uncompressed).
    """
    zone = name.partition(".")[0]
    if zone not in (names.RAW, names.HISTORY):
        return WriterProperties(max_row_group_size=_ROW_GROUP_ROWS, compression="SNAPPY")
    columns = {
        f.name: ColumnProperties(dictionary_enabled=False, encoding="DELTA_BYTE_ARRAY")
        for f in (schema or ())
        if f.name.endswith("_at") and (pa.types.is_string(f.type)
                                       or pa.types.is_large_string(f.type))}
    return WriterProperties(max_row_group_size=_ARCHIVE_ROW_GROUP_ROWS, compression="ZSTD",
                            column_properties=columns or None)


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


def parse_table_name(name: str) -> tuple[str, str]:
    """Split ``zone.name`` and check both parts.

    Raises:
        LakeError: The name is not ``zone.name`` with a known zone.
    """
    zone, _, table = name.partition(".")
    if zone not in names.ZONES or not _NAME.match(table or ""):
        raise LakeError(
            f"bad table name {name!r}: use zone.name with zone one of "
            f"{', '.join(names.ZONES)} (e.g. raw.users)"
        )
    return zone, table


def normalize_schema(schema: pa.Schema) -> pa.Schema:
    """The schema the lake stores for ``schema``.

    Timestamps become microsecond UTC (Delta's only timestamp with a reader-1
    protocol); a naive timestamp is refused, since writing it would need the
    ``timestampNtz`` feature and lose the time zone. View types become plain.

    Raises:
        SchemaError: A column is a timestamp without a time zone.
    """
    return pa.schema([_normalize_field(f) for f in schema], metadata=schema.metadata)


def _normalize_type(name: str, t: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(t):
        if t.tz is None:
            raise SchemaError(
                f"column {name!r} is a timestamp without a time zone; "
                "convert it to UTC before writing"
            )
        return pa.timestamp("us", tz="UTC")
    if pa.types.is_string_view(t) or pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return pa.list_(_normalize_type(name, t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([_normalize_field(f) for f in t])
    if pa.types.is_dictionary(t):
        return _normalize_type(name, t.value_type)
    return t


def _normalize_field(f: pa.Field) -> pa.Field:
    return pa.field(f.name, _normalize_type(f.name, f.type), nullable=True)


def _same_type(a: pa.DataType, b: pa.DataType) -> bool:
    try:
        return _normalize_type("", a) == _normalize_type("", b)
    except SchemaError:
        return False


def schema_diff(old: pa.Schema, new: pa.Schema) -> tuple[list[str], list[str], list[str]]:
    """Columns added, missing, and changed in type, going from ``old`` to ``new``."""
    old_types = {f.name: f.type for f in old}
    new_types = {f.name: f.type for f in new}
    added = [n for n in new_types if n not in old_types]
    missing = [n for n in old_types if n not in new_types]
    changed = [
        f"{n}: {old_types[n]} -> {new_types[n]}"
        for n in new_types
        if n in old_types and not _same_type(old_types[n], new_types[n])
    ]
    return added, missing, changed


def describe_schema_changes(old: pa.Schema, new: pa.Schema) -> list[str]:
    """What replacing a table of schema ``old`` by one of schema ``new`` changes, in words."""
    added, missing, changed = schema_diff(old, new)
    return ([f"added column {c}" for c in added] + [f"dropped column {c}" for c in missing]
            + [f"changed column {c}" for c in changed])


def _as_reader(data: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch],
               schema: pa.Schema | None) -> pa.RecordBatchReader:
    if isinstance(data, pa.Table):
        return data.to_reader()
    if isinstance(data, pa.RecordBatchReader):
        return data
    if schema is None:
        raise TypeError("writing an iterable of batches needs its schema")
    return pa.RecordBatchReader.from_batches(schema, data)


@dataclass
class _WritePlan:
    """What one write does to its table's schema (see :meth:`Lake._plan`)."""

    exists: bool
    target: pa.Schema
    partition_by: list[str] | None
    changes: list[str] = field(default_factory=list)
    schema_mode: str | None = None


def _delta_arguments(name: str, plan: _WritePlan, mode: WriteMode,
                     partition: Mapping[str, object] | None,
                     metadata: Mapping[str, str] | None) -> tuple[dict, str | None]:
    """delta-rs ``write_deltalake`` arguments, and the partition predicate if any.

    The predicate is returned apart: a new table is written without it, but
    a writer that lost the race to create the table must use it.
    """
    kwargs: dict = {"partition_by": plan.partition_by, "schema_mode": plan.schema_mode,
                    "commit_properties": CommitProperties(
                        custom_metadata=dict(metadata or {}), max_commit_retries=50),
                    # Bounded row groups and files keep a streamed write's memory flat:
                    # delta-rs buffers a whole row group before flushing it.
                    "writer_properties": writer_properties(name, plan.target),
                    "target_file_size": _TARGET_FILE_BYTES}
    if mode == "append":
        kwargs["mode"] = "append"
        return kwargs, None
    if mode == "replace":
        kwargs["mode"] = "overwrite"
        return kwargs, None
    if mode != "replace_partition":
        raise ValueError(f"unknown write mode {mode!r}")
    if not partition:
        raise ValueError("replace_partition needs partition={column: value}")
    predicate = " AND ".join(f"{col} = '{_sql_literal(val)}'" for col, val in partition.items())
    kwargs["mode"] = "overwrite"
    if plan.exists:
        kwargs["predicate"] = predicate
    return kwargs, predicate


class _Counted:
    """Streams batches cast to the stored schema, counting rows.

    Columns the stored schema has and the data lacks are filled with nulls.
    An exception raised by the source while streaming is kept in ``error``:
    delta-rs wraps it, and the caller re-raises the original.
    """

    def __init__(self, reader: pa.RecordBatchReader, schema: pa.Schema):
        self.reader = reader
        self.schema = schema
        self.rows = 0
        self.error: BaseException | None = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        incoming = self.reader.schema.names
        try:
            for batch in self.reader:
                if incoming != self.schema.names:
                    batch = pa.RecordBatch.from_arrays(
                        [batch.column(f.name) if f.name in incoming
                         else pa.nulls(batch.num_rows, f.type) for f in self.schema],
                        names=self.schema.names)
                if batch.schema != self.schema:
                    batch = batch.cast(self.schema)
                self.rows += batch.num_rows
                yield batch
        except BaseException as exc:
            self.error = exc
            raise

    def as_reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self.batches())


class Lake:
    """A lake rooted at one folder.

    Args:
        root: The lake's folder.
        create: Create the folder if it does not exist (writers do; readers
            get a clear error instead).

    Raises:
        LakeError: The root is a file, or cannot be created.
    """

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True):
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
        self._con: ibis.BaseBackend | None = None
        self._views: dict[str, tuple[float, int]] = {}
        self._con_lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Lake({str(self.root)!r})"

    # ------------------------------------------------------------------ paths
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

    # ------------------------------------------------------------------ Delta
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
                    f"({first_line(exc)}); {self._repair_hint(name)}") from None
            raise TableNotFoundError(
                f"table {name} has no version as of {version}: {first_line(exc)}") from None
        return table

    def schema(self, name: str) -> pa.Schema:
        """The current Arrow schema of table ``name``."""
        return pa.schema(self.delta(name).schema().to_arrow())

    def version(self, name: str) -> int | None:
        """The current version of ``name``, or None if it does not exist."""
        return self.delta(name).version() if self.exists(name) else None

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
        reader = _as_reader(data, schema)
        plan = self._plan(name, normalize_schema(reader.schema), mode, partition_by,
                          allow_missing)
        kwargs, predicate = _delta_arguments(name, plan, mode, partition, metadata)
        rows = self._commit(name, data, reader, plan.target, kwargs, predicate)
        version = DeltaTable(str(self.path(name))).version()
        if plan.changes:
            log.warning("schema of %s changed: %s", name, "; ".join(plan.changes))
        return WriteResult(name, version, rows, mode, plan.changes)

    def _plan(self, name: str, target: pa.Schema, mode: WriteMode,
              partition_by: list[str] | None, allow_missing: bool) -> _WritePlan:
        """How the data meets the stored table: the schema to write, and what changes.

        Raises:
            SchemaError: A column changed type, or a column is missing and
                ``allow_missing`` is False.
        """
        plan = _WritePlan(exists=self.exists(name), target=target, partition_by=partition_by)
        if mode == "replace":
            if plan.exists:
                plan.changes = describe_schema_changes(self.schema(name), target)
            plan.schema_mode = "overwrite"
            return plan
        if not plan.exists:
            return plan
        current = self.schema(name)
        added, missing, changed = schema_diff(current, target)
        if changed:
            raise SchemaError(f"cannot write {name}: column {changed[0]} changed type; "
                              "rebuild the table with mode='replace' or fix the data")
        if missing and not allow_missing:
            raise SchemaError(f"cannot write {name}: missing column(s) {', '.join(missing)}")
        plan.changes = [f"added column {c}" for c in added] + [
            f"missing column {c} (null)" for c in missing]
        if added or missing:
            plan.schema_mode = "merge"
        if missing:
            target = _with_missing(target, current, missing)
        # Match the stored types (e.g. a list<int32> arriving for list<int64>).
        plan.target = pa.schema([current.field(f.name) if f.name in current.names else f
                                 for f in target])
        if partition_by is None:
            plan.partition_by = self.delta(name).metadata().partition_columns or None
        return plan

    def _commit(self, name: str, data: object, reader: pa.RecordBatchReader,
                target: pa.Schema, kwargs: dict, predicate: str | None) -> int:
        """Write the stream as one Delta commit; returns the rows written.

        A materialized table is written again after a commit conflict or a
        lost race to create the table; a stream cannot be replayed.

        Raises:
            LakeError: The write failed, or conflicts kept coming.
            Whatever the source raised while streaming, as it was raised.
        """
        path = str(self.path(name))
        replayable = isinstance(data, pa.Table)
        counted = _Counted(reader, target)
        for attempt in range(1, _COMMIT_TRIES + 1):
            try:
                write_deltalake(path, counted.as_reader(), **kwargs)
                return counted.rows
            except CommitFailedError as exc:
                if not replayable or attempt == _COMMIT_TRIES:
                    raise LakeError(f"cannot commit to {name}: concurrent writers kept "
                                    f"conflicting ({first_line(exc)}); retry the run") from None
                log.info("commit conflict on %s, retrying (%d)", name, attempt)
                time.sleep(0.05 * attempt)
            except Exception as exc:
                if counted.error is not None:
                    raise counted.error from None  # delta-rs wrapped the source's own error
                lost_race = (isinstance(exc, DeltaError) and replayable
                             and "already exists" in str(exc) and attempt < _COMMIT_TRIES)
                if isinstance(exc, DeltaError) and not lost_race:
                    raise LakeError(f"cannot write {name}: {first_line(exc)}") from None
                if isinstance(exc, OSError):
                    raise LakeError(f"cannot write {name} under {self.root}: "
                                    f"{first_line(exc)}") from None
                if not lost_race:
                    raise
                # Two writers raced to create the table: write into the winner's.
                if predicate is not None:
                    kwargs["predicate"] = predicate
            counted = _Counted(data.to_reader(), target)  # type: ignore[attr-defined]
        raise AssertionError("unreachable")  # pragma: no cover

    def delete(self, name: str, predicate: str, *,
               metadata: Mapping[str, str] | None = None) -> int:
        """Delete the rows of ``name`` matching a SQL ``predicate``, as one atomic commit.

        Returns:
            The number of rows deleted (no commit is made when it is 0).

        Raises:
            LakeError: The delete failed; the table is left at its last version.
        """
        try:
            metrics = self.delta(name).delete(
                predicate, commit_properties=CommitProperties(
                    custom_metadata=dict(metadata or {}), max_commit_retries=50))
        except (DeltaError, OSError) as exc:
            raise LakeError(f"cannot delete from {name}: {first_line(exc)}") from None
        return int(metrics.get("num_deleted_rows", 0))

    def history(self, name: str, limit: int | None = None) -> list[dict]:
        """The commits of table ``name``, newest first."""
        return self.delta(name).history(limit)

    def info(self, name: str) -> TableInfo:
        """Row count, sizes, version and last change of table ``name``."""
        table = self.delta(name)
        actions = pa.table(table.get_add_actions(flatten=True))
        rows = sum(v or 0 for v in actions.column("num_records").to_pylist()) \
            if actions.num_rows else 0
        size = sum(actions.column("size_bytes").to_pylist()) if actions.num_rows else 0
        last = table.history(1)
        modified = (dt.datetime.fromtimestamp(last[0]["timestamp"] / 1000, dt.UTC)
                    if last else None)
        return TableInfo(
            name=name, rows=int(rows), files=actions.num_rows, size_bytes=int(size),
            disk_bytes=_du(self.path(name)), version=table.version(),
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
                out.append(TableInfo(name, 0, 0, 0, _du(self.path(name)), -1, None, [],
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
        delta = self.delta(name)  # BrokenTableError when the log does not load
        problem = _files_problem(self.path(name), delta)
        if problem:
            raise BrokenTableError(f"table {name} is unreadable: {problem}; "
                                   f"{self._repair_hint(name, delta.version())}")
        return delta

    def _repair_hint(self, name: str, current: int | None = None) -> str:
        """What to do about a broken table: its last version that reads, and a rerun."""
        zone = name.split(".", 1)[0]
        rerun = {names.RAW: "re-ingest it with 'lakehouse ingest'",
                 names.HISTORY: f"move {self.path(name)} aside and 'lakehouse build' rebuilds "
                                "it from the raw snapshots still kept",
                 names.META: f"move {self.path(name)} aside to start it afresh"}.get(
                     zone, "rebuild it with 'lakehouse build'")
        good = self._last_good_version(name, current)
        if good is None:
            return rerun
        return (f"time travel to version {good}, the last that reads "
                f"(lake.table({name!r}, version={good})), or {rerun}")

    def _last_good_version(self, name: str, current: int | None, tries: int = 20) -> int | None:
        path = str(self.path(name))
        if current is None:
            versions = sorted((int(p.stem) for p in (self.path(name) / "_delta_log").glob(
                "*.json") if p.stem.isdigit()), reverse=True)
            current = versions[0] + 1 if versions else 0
        for version in range(current - 1, max(current - 1 - tries, -1), -1):
            try:
                old = DeltaTable(path, version=version)
            except Exception:  # noqa: BLE001 - any failure means this version does not read
                continue
            if _files_problem(self.path(name), old) is None:
                return version
        return None

    def size_bytes(self) -> int:
        """The lake's whole size on disk, models and logs included."""
        return _du(self.root)

    def drop(self, name: str) -> None:
        """Delete table ``name`` and its history (tests and ``--rebuild`` only)."""
        shutil.rmtree(self.path(name), ignore_errors=True)
        self._views.pop(name, None)

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
        from lakehouse.delta_files import uncommitted_files

        table_dir = self.path(name)
        if not table_dir.is_dir():
            return []
        removed = []
        for path in uncommitted_files(table_dir, before):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path.relative_to(table_dir).as_posix())
        # Folders the removed files leave empty (partition folders, a Spark result's).
        for folder in sorted((p for p in table_dir.rglob("*") if p.is_dir()
                              and "_delta_log" not in p.relative_to(table_dir).parts),
                             key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if removed:
            log.warning("removed %d uncommitted file(s) from %s, left by a writer that died "
                        "before committing", len(removed), name)
        return removed

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
        from lakehouse.delta_files import add_actions, delta_schema

        target = normalize_schema(schema)
        actions, rows, partition_by = add_actions(self.path(name), files, target)
        exists = self.exists(name)
        changes: list[str] = []
        if exists and mode == "replace":
            changes = describe_schema_changes(self.schema(name), target)
        props = CommitProperties(custom_metadata=dict(metadata or {}), max_commit_retries=50)
        try:
            if exists:
                self.delta(name).create_write_transaction(
                    actions, "overwrite" if mode == "replace" else "append", target,
                    partition_by=partition_by or None, commit_properties=props)
            else:
                from deltalake.transaction import create_table_with_add_actions

                create_table_with_add_actions(str(self.path(name)), delta_schema(target),
                                              actions, mode="error",
                                              partition_by=partition_by or None,
                                              commit_properties=props)
        except (DeltaError, OSError) as exc:
            raise LakeError(f"cannot commit files to {name}: {exc}") from None
        return WriteResult(name, DeltaTable(str(self.path(name))).version(), rows, mode, changes)

    # ------------------------------------------------------------------ reads
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

        Args:
            name: ``zone.name``.
            version: Read this Delta version instead of the latest.
            as_of: Read the version current at this timestamp (datetime or
                ISO string) instead of the latest.
        """
        if version is None and as_of is None:
            self._refresh(name)
            zone, table = parse_table_name(name)
            return self.con.table(table, database=zone)
        when = version if version is not None else _parse_when(as_of)
        delta = self.delta(name, when)
        return self.con.sql(self._select_sql(name, delta))

    def to_arrow(self, name: str, **kwargs) -> pa.Table:
        """Table ``name`` as an Arrow table (see :meth:`table` for options)."""
        return self.table(name, **kwargs).to_pyarrow()

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
        import duckdb

        read_only_query(query)
        # A broken table is that table's problem: the others still read.
        broken: dict[str, LakeError] = {}
        for name in self.table_names():
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

        log_dir = self.path(name) / "_delta_log"
        try:
            stamp = log_dir.stat().st_mtime
        except FileNotFoundError:
            raise TableNotFoundError(f"table {name} does not exist in {self.root}; "
                                     "'lakehouse tables' lists what does") from None
        delta = self.delta(name)  # BrokenTableError when the log does not load
        key = (stamp, delta.version())
        with self._con_lock:
            if self._views.get(name) == key:
                return
            problem = _files_problem(self.path(name), delta)
            if problem:
                raise BrokenTableError(f"table {name} is unreadable: {problem}; "
                                       f"{self._repair_hint(name, delta.version())}")
            zone, table = parse_table_name(name)
            body = self._select_sql(name, delta, view=f"{zone}__{table}")
            try:
                self.con.raw_sql(f'CREATE OR REPLACE VIEW "{zone}"."{table}" AS {body}')
            except duckdb.Error as exc:
                raise BrokenTableError(f"table {name} is unreadable: {first_line(exc)}; "
                                       f"{self._repair_hint(name, delta.version())}") from None
            self._views[name] = key

    def _drop_view(self, name: str) -> None:
        """Forget the view of a table that no longer reads, so no query sees stale data."""
        zone, table = parse_table_name(name)
        with self._con_lock:
            self._views.pop(name, None)
            self.con.raw_sql(f'DROP VIEW IF EXISTS "{zone}"."{table}"')

    def _select_sql(self, name: str, delta: DeltaTable, view: str | None = None) -> str:
        """SQL selecting the snapshot ``delta`` of table ``name``."""
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
            with self._con_lock:
                self.duckdb.register(reg, source)
            return f'SELECT * FROM "{reg}"'
        parts = set(delta.metadata().partition_columns)
        files = ", ".join(_sql_string(_file_path(u)) for u in uris)
        hive_types = ", ".join(f"'{c}': '{_duck_type(schema.field(c).type)}'" for c in parts)
        opts = "union_by_name = true"
        if parts:
            opts += f", hive_partitioning = true, hive_types = {{{hive_types}}}"
        else:
            opts += ", hive_partitioning = false"
        cols = ", ".join(f'"{c}"' for c in schema.names)
        return f"SELECT {cols} FROM read_parquet([{files}], {opts})"


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


def _with_missing(target: pa.Schema, current: pa.Schema, missing: list[str]) -> pa.Schema:
    for col in missing:
        target = target.append(current.field(col))
    return target


def _sql_literal(value: object) -> str:
    return str(value).replace("'", "''")


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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


def _files_problem(root: Path, delta: DeltaTable) -> str | None:
    """The first data file of ``delta``'s snapshot that is missing or not as logged."""
    import pyarrow.parquet as pq

    actions = pa.table(delta.get_add_actions(flatten=True))
    columns = actions.column_names
    paths = actions.column("path").to_pylist() if actions.num_rows else []
    sizes = actions.column("size_bytes").to_pylist() if "size_bytes" in columns else []
    counts = (actions.column("num_records").to_pylist() if "num_records" in columns
              else [None] * len(paths))
    for rel, size, count in zip(paths, sizes, counts, strict=False):
        path = _local_file(root, rel)
        try:
            actual = path.stat().st_size
        except OSError:
            return f"data file {rel} is missing"
        if size is not None and actual != size:
            return f"data file {rel} has {actual} bytes where its log says {size}"
        if count is not None:
            try:
                rows = pq.read_metadata(path).num_rows
            except (OSError, pa.ArrowException) as exc:
                return f"data file {rel} is not readable Parquet ({first_line(exc)})"
            if rows != count:
                return f"data file {rel} has {rows} rows where its log says {count}"
    return None


def _mentions(query: str, name: str) -> bool:
    """Whether ``query`` names table ``name`` (``zone.name``, quoted or not)."""
    zone, table = name.split(".", 1)
    pattern = rf'(?<!\w)"?{zone}"?\s*\.\s*"?{table}"?(?!\w)'
    return re.search(pattern, query, re.IGNORECASE) is not None


def _file_path(uri: str) -> str:
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


def _local_file(root: Path, path: str) -> Path:
    """A data file's local path: add-action paths are relative to the table, or URIs."""
    from urllib.parse import unquote, urlparse

    if "://" in path:
        return Path(unquote(urlparse(path).path))
    return root / path


BUILD_SCRATCH_PREFIX = "spark-build-"  # <lake>/.tmp/spark-build-*: a Spark build's scratch


def remove_build_scratch(root: Path) -> int:
    """Delete the scratch folders killed builds left under ``root/.tmp``; bytes freed.

    The caller holds the lake's build lock: no build is running, so nothing
    reads them.
    """
    freed = 0
    for stale in (Path(root) / ".tmp").glob(BUILD_SCRATCH_PREFIX + "*"):
        freed += _du(stale)
        shutil.rmtree(stale, ignore_errors=True)
    return freed


def _du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total

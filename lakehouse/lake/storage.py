"""Storage: Delta writes and deletes, each one atomic commit, and schema evolution.

:meth:`lakehouse.lake.Lake.write` and :meth:`~lakehouse.lake.Lake.delete`
land here: how incoming data meets the stored table (:func:`schema_diff`, the
write plan), the Parquet settings per zone (:func:`writer_properties`), and
the commit loop that retries conflicts and never leaves half a write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
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

from lakehouse import names
from lakehouse.errors import LakeError, SchemaError
from lakehouse.panics import quiet_rust_panics
from lakehouse.sqlguard import first_line
from lakehouse.sqltext import literal

if TYPE_CHECKING:
    from lakehouse.lake.front import Lake

log = logging.getLogger("lakehouse.lake")

WriteMode = Literal["append", "replace_partition", "replace"]
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


def same_type(a: pa.DataType, b: pa.DataType) -> bool:
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
        if n in old_types and not same_type(old_types[n], new_types[n])
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
    """What one write does to its table's schema (see :func:`plan_write`)."""

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
    predicate = " AND ".join(f"{col} = {literal(val)}" for col, val in partition.items())
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


def _with_missing(target: pa.Schema, current: pa.Schema, missing: list[str]) -> pa.Schema:
    for col in missing:
        target = target.append(current.field(col))
    return target


def write(lake: Lake, name: str, data: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch],
          *, mode: WriteMode = "append", schema: pa.Schema | None = None,
          partition_by: list[str] | None = None, partition: Mapping[str, object] | None = None,
          metadata: Mapping[str, str] | None = None, allow_missing: bool = True) -> WriteResult:
    """Write ``data`` to table ``name`` as one atomic commit.

    Documented at :meth:`~lakehouse.lake.Lake.write`.
    """
    reader = _as_reader(data, schema)
    planned = plan_write(lake, name, normalize_schema(reader.schema), mode, partition_by,
                         allow_missing)
    kwargs, predicate = _delta_arguments(name, planned, mode, partition, metadata)
    rows = commit_stream(lake, name, data, reader, planned.target, kwargs, predicate)
    version = DeltaTable(str(lake.path(name))).version()
    if planned.changes:
        log.warning("schema of %s changed: %s", name, "; ".join(planned.changes))
    return WriteResult(name, version, rows, mode, planned.changes)


def plan_write(lake: Lake, name: str, target: pa.Schema, mode: WriteMode,
          partition_by: list[str] | None, allow_missing: bool) -> _WritePlan:
    """How the data meets the stored table: the schema to write, and what changes.

    Raises:
        SchemaError: A column changed type, or a column is missing and
            ``allow_missing`` is False.
    """
    plan = _WritePlan(exists=lake.exists(name), target=target, partition_by=partition_by)
    if mode == "replace":
        if plan.exists:
            plan.changes = describe_schema_changes(lake.schema(name), target)
        plan.schema_mode = "overwrite"
        return plan
    if not plan.exists:
        return plan
    current = lake.schema(name)
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
        plan.partition_by = lake.delta(name).metadata().partition_columns or None
    return plan


def commit_stream(lake: Lake, name: str, data: object, reader: pa.RecordBatchReader,
            target: pa.Schema, kwargs: dict, predicate: str | None) -> int:
    """Write the stream as one Delta commit; returns the rows written.

    A materialized table is written again after a commit conflict or a
    lost race to create the table; a stream cannot be replayed.

    Raises:
        LakeError: The write failed, or conflicts kept coming.
        Whatever the source raised while streaming, as it was raised.
    """
    path = str(lake.path(name))
    replayable = isinstance(data, pa.Table)
    counted = _Counted(reader, target)
    for attempt in range(1, _COMMIT_TRIES + 1):
        try:
            with quiet_rust_panics():  # a full disk: one error line, no panic text
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
                raise LakeError(f"cannot write {name} under {lake.root}: "
                                f"{first_line(exc)}") from None
            if not lost_race:
                raise
            # Two writers raced to create the table: write into the winner's.
            if predicate is not None:
                kwargs["predicate"] = predicate
        counted = _Counted(data.to_reader(), target)  # type: ignore[attr-defined]
    raise AssertionError("unreachable")  # pragma: no cover


def delete(lake: Lake, name: str, predicate: str, *,
           metadata: Mapping[str, str] | None = None) -> int:
    """Delete the rows of ``name`` matching a SQL ``predicate``, as one atomic commit.

    Documented at :meth:`~lakehouse.lake.Lake.delete`.
    """
    try:
        with quiet_rust_panics():
            metrics = lake.delta(name).delete(
                predicate, commit_properties=CommitProperties(
                    custom_metadata=dict(metadata or {}), max_commit_retries=50))
    except (DeltaError, OSError) as exc:
        raise LakeError(f"cannot delete from {name}: {first_line(exc)}") from None
    return int(metrics.get("num_deleted_rows", 0))


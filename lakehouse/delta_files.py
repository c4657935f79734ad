"""Delta add actions for Parquet files written by another engine (see :meth:`Lake.commit_files`).

Spark without the Delta jars can write Parquet but not a Delta log; delta-rs
can commit files it did not write. What it needs for each file is an add
action: the path, size, modification time, partition values and stats. All
of it comes from the file system and the files' footers: no data is read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import Schema
from deltalake.transaction import AddAction

from lakehouse.errors import LakeError, SchemaError


def add_actions(table_dir: Path, files: list[str],
                schema: pa.Schema) -> tuple[list[AddAction], int, list[str]]:
    """The add actions of ``files`` (relative to ``table_dir``), their rows, and partition columns.

    Raises:
        SchemaError: A file's columns or types differ from ``schema``, or the
            files disagree on partition columns.
        LakeError: A file is missing or is not Parquet.
    """
    actions, rows = [], 0
    partition_by: list[str] | None = None
    for rel in files:
        parts = _partition_values(rel)
        if partition_by is None:
            partition_by = list(parts)
        elif list(parts) != partition_by:
            raise SchemaError(f"{rel}: partition folders {list(parts)} differ from "
                              f"{partition_by} of the other files")
        path = table_dir / rel
        try:
            stat = os.stat(path)
            meta = pq.read_metadata(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise LakeError(f"cannot commit {path}: {exc}") from None
        _check_schema(rel, meta.schema.to_arrow_schema(), schema, set(parts))
        rows += meta.num_rows
        actions.append(AddAction(
            path=rel, size=stat.st_size, partition_values=parts,
            modification_time=int(stat.st_mtime * 1000), data_change=True,
            stats=json.dumps({"numRecords": meta.num_rows})))
    return actions, rows, partition_by or []


def delta_schema(schema: pa.Schema) -> Schema:
    """``schema`` as delta-rs's schema type."""
    return Schema.from_arrow(schema)


def _partition_values(rel: str) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for folder in Path(rel).parts[:-1]:
        if "=" in folder:
            key, _, value = folder.partition("=")
            # Hive's spelling of a null partition value.
            values[unquote(key)] = None if value == "__HIVE_DEFAULT_PARTITION__" else unquote(value)
    return values


def _check_schema(rel: str, found: pa.Schema, want: pa.Schema, partitions: set[str]) -> None:
    from lakehouse.lake import _same_type

    expected = [f for f in want if f.name not in partitions]
    if found.names != [f.name for f in expected]:
        raise SchemaError(f"{rel} has columns {found.names}, the table "
                          f"{[f.name for f in expected]}")
    for f in expected:
        got = found.field(f.name).type
        if not _same_type(got, f.type):
            hint = (" (Spark writes INT96 timestamps unless spark.sql.parquet."
                    "outputTimestampType is TIMESTAMP_MICROS)" if pa.types.is_timestamp(got) else "")
            raise SchemaError(f"{rel}: column {f.name} is {got}, the table has {f.type}{hint}")

"""External commits: Parquet files another engine wrote, committed to Delta by delta-rs.

Spark without the Delta jars can write Parquet but not a Delta log; delta-rs
can commit files it did not write. What it needs for each file is an add
action: the path, size, modification time, partition values and stats. All
of it comes from the file system and the files' footers: no data is read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema
from deltalake.exceptions import DeltaError
from deltalake.transaction import AddAction

from lakehouse.errors import LakeError, SchemaError
from lakehouse.lake.storage import WriteResult, describe_schema_changes, normalize_schema, same_type
from lakehouse.panics import quiet_rust_panics

if TYPE_CHECKING:
    from lakehouse.lake.front import Lake

# The folder a Spark build moves one result into, inside the table's folder.
SPARK_FOLDER_PREFIX = "spark-"


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
    expected = [f for f in want if f.name not in partitions]
    if found.names != [f.name for f in expected]:
        raise SchemaError(f"{rel} has columns {found.names}, the table "
                          f"{[f.name for f in expected]}")
    for f in expected:
        got = found.field(f.name).type
        if not same_type(got, f.type):
            hint = (" (Spark writes INT96 timestamps unless spark.sql.parquet."
                    "outputTimestampType is TIMESTAMP_MICROS)" if pa.types.is_timestamp(got) else "")
            raise SchemaError(f"{rel}: column {f.name} is {got}, the table has {f.type}{hint}")


def logged_paths(log_dir: Path) -> set[str] | None:
    """Every data file path any version of a Delta log adds or removes (as logged and decoded).

    Reads the JSON commits and the checkpoints (whose add and remove actions
    stand for the commits a log clean-up deleted). None when a commit or a
    checkpoint does not parse: then nobody can tell which files a version
    needs, and nothing may be removed.
    """
    paths: set[str] = set()
    try:
        for commit in sorted(log_dir.glob("*.json")):
            for line in commit.read_text().splitlines():
                if line.strip():
                    action = json.loads(line)
                    for kind in ("add", "remove"):
                        if isinstance(action.get(kind), dict):
                            paths.add(action[kind]["path"])
        for checkpoint in sorted(log_dir.rglob("*.parquet")):
            table = pq.read_table(checkpoint)
            for kind in ("add", "remove"):
                if kind in table.column_names:
                    column = table.column(kind).combine_chunks()
                    paths.update(p for p in column.field("path").to_pylist() if p)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, pa.ArrowException):
        return None
    # Delta logs paths as URIs (percent-encoded); writers differ in how they spell them.
    return paths | {unquote(p) for p in paths}


def uncommitted_files(table_dir: Path, before: float) -> list[Path]:
    """Data files in ``table_dir`` that no version of its log knows, last changed before ``before``.

    What a writer killed between writing (or moving) its files and committing
    them leaves: no reader sees them. Only ``*.parquet`` files count, and
    Spark's bookkeeping files in the folders a Spark build moves in
    (``spark-<id>/``). With no readable log, only those Spark folders are
    candidates: files of a table whose log was lost are not ours to judge.
    """
    log_dir = table_dir / "_delta_log"
    logged = logged_paths(log_dir) if log_dir.is_dir() else set()
    if logged is None:
        return []
    logged |= _as_relative(logged, table_dir)
    has_log = any(log_dir.glob("*.json")) if log_dir.is_dir() else False
    found = []
    for path in sorted(table_dir.rglob("*")):
        rel = path.relative_to(table_dir)
        top = rel.parts[0]
        if top == "_delta_log" or not path.is_file() or path.is_symlink():
            continue
        in_spark_folder = len(rel.parts) > 1 and top.startswith(SPARK_FOLDER_PREFIX)
        if not (in_spark_folder or (has_log and path.suffix == ".parquet")):
            continue
        if path.suffix != ".parquet" and not (in_spark_folder and path.name.startswith((".", "_"))):
            continue
        if rel.as_posix() in logged:
            continue
        try:
            if path.stat().st_mtime >= before:
                continue  # a writer that is running now may be about to commit it
        except OSError:
            continue
        found.append(path)
    return found


def _as_relative(logged: set[str], table_dir: Path) -> set[str]:
    """Logged absolute paths (``file://`` URIs, which Delta allows) inside ``table_dir``, made relative."""
    from urllib.parse import urlsplit

    out = set()
    roots = {table_dir, table_dir.resolve()}
    for path in logged:
        if "://" not in path and not path.startswith("/"):
            continue
        local = Path(unquote(urlsplit(path).path) if "://" in path else path)
        for root in roots:
            if local.is_relative_to(root):
                out.add(local.relative_to(root).as_posix())
    return out


def commit_files(lake: Lake, name: str, files: list[str], schema: pa.Schema, *,
                 mode: Literal["append", "replace"] = "replace",
                 metadata: Mapping[str, str] | None = None) -> WriteResult:
    """Commit Parquet files another engine wrote inside the table's folder, as one commit.

    Documented at :meth:`~lakehouse.lake.Lake.commit_files`.
    """
    target = normalize_schema(schema)
    actions, rows, partition_by = add_actions(lake.path(name), files, target)
    exists = lake.exists(name)
    changes: list[str] = []
    if exists and mode == "replace":
        changes = describe_schema_changes(lake.schema(name), target)
    props = CommitProperties(custom_metadata=dict(metadata or {}), max_commit_retries=50)
    try:
        with quiet_rust_panics():
            if exists:
                lake.delta(name).create_write_transaction(
                    actions, "overwrite" if mode == "replace" else "append", target,
                    partition_by=partition_by or None, commit_properties=props)
            else:
                from deltalake.transaction import create_table_with_add_actions

                create_table_with_add_actions(str(lake.path(name)), delta_schema(target),
                                              actions, mode="error",
                                              partition_by=partition_by or None,
                                              commit_properties=props)
    except (DeltaError, OSError) as exc:
        raise LakeError(f"cannot commit files to {name}: {exc}") from None
    return WriteResult(name, DeltaTable(str(lake.path(name))).version(), rows, mode, changes)

"""``lakehouse maintain``: compact small files, checkpoint, vacuum beyond time travel.

Every daily commit adds files: a raw partition per endpoint, a few history
events, a new build of every standardized and consumption table, run
records. Left alone, the file count of every table grows without bound and
replaced files stay on disk for ever. Once a week (the daily job's
``maintain`` step) each table is:

1. compacted (``optimize.compact``): small files of a partition are rewritten
   into files of up to 32 MiB, in one commit that changes no row;
2. checkpointed, so opening it reads one Parquet file instead of every JSON
   commit, and its expired log entries are cleaned up;
3. vacuumed: files no version needs are deleted, but only once they were
   replaced more than ``time_travel_days`` ago (``LAKEHOUSE_TIME_TRAVEL_DAYS``,
   default 30), so any version of the last ``time_travel_days`` days stays
   readable. Files that a killed writer left behind (never committed) go the
   same way, by age.

Example::

    from lakehouse.maintain import maintain
    report = maintain(Settings.load())
    print(report.files_before, "->", report.files_after)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties
from deltalake.exceptions import DeltaError

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.context import RunContext
from lakehouse.errors import ConfigError, LakeError, LakehouseError, LockedError
from lakehouse.lake import Lake, remove_build_scratch, writer_properties
from lakehouse.lake.storage import _TARGET_FILE_BYTES
from lakehouse.locking import lake_lock
from lakehouse.monitor.sinks import step_context
from lakehouse.panics import quiet_rust_panics
from lakehouse.sqlguard import first_line
from lakehouse.steps import alert_failed

log = logging.getLogger(__name__)

PIPELINE = names.MAINTAIN
# delta-rs keeps log entries for 30 days by default (delta.logRetentionDuration);
# cleaning the log up with a longer time travel would cut it short.
LOG_RETENTION_DAYS = 30


@dataclass(frozen=True)
class TableMaintenance:
    """One table before and after maintenance."""

    name: str
    files_before: int
    files_after: int
    bytes_before: int    # data files on disk, referenced or not (the log is not counted)
    bytes_after: int
    version: int
    compacted: int       # files rewritten by compaction
    vacuumed: int        # files deleted


def _total(attribute: str) -> property:
    """A read-only attribute: the sum of ``attribute`` over the report's tables."""
    return property(lambda self: sum(getattr(t, attribute) for t in self.tables),
                    doc=f"{attribute.replace('_', ' ').capitalize()}, all tables together.")


@dataclass
class MaintenanceReport:
    """What ``maintain`` did, table by table."""

    tables: list[TableMaintenance] = field(default_factory=list)
    time_travel_days: int = 30
    scratch_bytes: int = 0   # left under .tmp by killed builds, deleted

    # Totals over the tables.
    files_before = _total("files_before")
    files_after = _total("files_after")
    bytes_before = _total("bytes_before")
    bytes_after = _total("bytes_after")


def maintain(target: RunContext | Settings | None = None,
             tables: Sequence[str] | None = None, *,
             wait: bool | None = None) -> MaintenanceReport:
    """Compact, checkpoint and vacuum the lake's tables.

    Holds the lake's ingest and build locks, so no pipeline writes meanwhile
    (run records may still be appended: compaction does not conflict with
    appends). Safe to kill at any point: each step is one commit or deletes
    only files that no version inside the time travel window needs; a rerun
    finishes the work.

    Like a pipeline step, a failure (not a bad setting or a busy lake) sends
    a ``job_failed`` alert through the context's sinks, whoever calls it.

    Args:
        target: The run context (its lake handle and alert sinks), or settings
            (the lake and ``time_travel_days``) to build one from.
        tables: ``zone.name`` of the tables to maintain (default: all).
        wait: Wait for a running ingest or build instead of failing
            (default: the context's lock policy).

    Returns:
        Files and bytes before and after, per table.

    Raises:
        LockedError: A pipeline holds the lake and ``wait`` is False.
        LakeError: A table could not be maintained (the others are done).
    """
    ctx = step_context(target, wait=wait)
    settings = ctx.settings
    try:
        lake = ctx.lake(create=False)
        lake.check_writable()
        return _maintain(lake, settings, tables, ctx.wait)
    except (ConfigError, LockedError):
        raise  # a typo or a deliberate --no-wait: the user is there to read it
    except LakehouseError as exc:
        alert_failed(ctx, PIPELINE, exc)
        raise


def _maintain(lake: Lake, settings: Settings, tables: Sequence[str] | None,
              wait: bool) -> MaintenanceReport:
    """Maintain ``tables`` under the lake's ingest and build locks."""
    timeout = settings.lock_timeout if wait else None
    report = MaintenanceReport(time_travel_days=settings.time_travel_days)
    with lake_lock(settings.locks_dir, names.INGEST, wait=wait, timeout=timeout), \
            lake_lock(settings.locks_dir, names.BUILD, wait=wait, timeout=timeout):
        if not tables:
            report.scratch_bytes = remove_build_scratch(lake.root)
        names_ = list(tables) if tables else lake.table_names()
        for name in names_:
            report.tables.append(maintain_table(lake, name, settings.time_travel_days))
    return report


def maintain_table(lake: Lake, name: str, time_travel_days: int) -> TableMaintenance:
    """Compact, checkpoint and vacuum one table (the caller holds the locks).

    Raises:
        LakeError: A Delta operation failed; the table is left readable.
    """
    path = lake.path(name)
    files_before, bytes_before = _files(path)
    meta = CommitProperties(custom_metadata={"pipeline": PIPELINE}, max_commit_retries=50)
    try:
        with quiet_rust_panics():
            table = lake.delta(name)
            metrics = table.optimize.compact(
                target_size=_TARGET_FILE_BYTES, commit_properties=meta,
                writer_properties=writer_properties(name, pa.schema(table.schema().to_arrow())))
            table = lake.delta(name)
            table.create_checkpoint()
            if time_travel_days <= LOG_RETENTION_DAYS:
                table.cleanup_metadata()
            removed = table.vacuum(retention_hours=int(time_travel_days * 24), dry_run=False,
                                   enforce_retention_duration=False, full=True,
                                   commit_properties=meta)
    except (DeltaError, OSError) as exc:
        raise LakeError(f"cannot maintain {name}: {first_line(exc)}; the table is unchanged or "
                        "compacted, rerun 'lakehouse maintain'") from None
    files_after, bytes_after = _files(path)
    result = TableMaintenance(
        name=name, files_before=files_before, files_after=files_after,
        bytes_before=bytes_before, bytes_after=bytes_after, version=lake.delta(name).version(),
        compacted=int(metrics.get("numFilesRemoved", 0)), vacuumed=len(removed))
    log.info("maintain %s: %d -> %d files, %d -> %d bytes", name, result.files_before,
             result.files_after, result.bytes_before, result.bytes_after)
    return result


def _files(path: Path) -> tuple[int, int]:
    """Count and bytes of a table's data files (Parquet outside the log), referenced or not."""
    sizes = [p.stat().st_size for p in path.rglob("*.parquet") if "_delta_log" not in p.parts]
    return len(sizes), sum(sizes)


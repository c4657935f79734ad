"""The run log, ``meta.runs``: one record per pipeline step, success or not.

Ingest writes one per endpoint, build one per table, train and recommend one
each. Monitoring reads it for pipeline KPIs, status and alerts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from lakehouse import names
from lakehouse.lake import Lake, utc_now
from lakehouse.tablespec import Column, TableSpec

RUNS = TableSpec(names.META_RUNS, (
    Column("run_id", pa.string()),
    Column("pipeline", pa.string(), doc="ingest | build | train | recommend"),
    Column("target", pa.string(), doc="endpoint or table name"),
    Column("run_date", pa.date32(), doc="the ingest / build / score date"),
    *(Column(n, pa.timestamp("us", tz="UTC")) for n in ("started_at", "finished_at")),
    *(Column(n, pa.float64()) for n in ("duration_s", "cpu_s")),
    Column("status", pa.string(), doc="success | failed"),
    Column("records", pa.int64(), doc="rows written (ingest: records read)"),
    *(Column(n, pa.int64()) for n in ("rows_in", "quarantined", "pages", "requests", "retries",
                                      "bytes", "table_version")),
    Column("schema_changes", pa.string(), doc="JSON list of strings"),
    Column("details", pa.string(), doc="JSON object, pipeline-specific"),
    Column("error", pa.string()),
    Column("host", pa.string()),
    Column("pid", pa.int64()),
))
RUNS_SCHEMA = RUNS.arrow()


def new_run_id() -> str:
    """A sortable, unique run id: UTC time then random hex."""
    return utc_now().strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def _cpu_seconds() -> float:
    # Threads share the process's CPU clock; children (e.g. none here) are excluded.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class RunRecord:
    """One row of ``meta.runs``; start it, fill it, then :func:`record_run` it."""

    pipeline: str
    target: str
    run_date: dt.date
    run_id: str = field(default_factory=new_run_id)
    started_at: dt.datetime = field(default_factory=utc_now)
    finished_at: dt.datetime | None = None
    duration_s: float | None = None
    cpu_s: float | None = None
    status: str = names.FAILED
    records: int | None = None
    rows_in: int | None = None
    quarantined: int | None = None
    pages: int | None = None
    requests: int | None = None
    retries: int | None = None
    bytes: int | None = None
    table_version: int | None = None
    schema_changes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    host: str = field(default_factory=lambda: os.uname().nodename)
    pid: int = field(default_factory=os.getpid)
    _t0: float = field(default_factory=time.perf_counter, repr=False)
    _cpu0: float = field(default_factory=_cpu_seconds, repr=False)

    def finish(self, status: str, error: str | None = None) -> RunRecord:
        """Stamp the end time, duration, CPU time and outcome."""
        self.finished_at = utc_now()
        self.duration_s = round(time.perf_counter() - self._t0, 3)
        self.cpu_s = round(_cpu_seconds() - self._cpu0, 3)
        self.status = status
        self.error = error
        return self

    @property
    def ok(self) -> bool:
        return self.status == names.SUCCESS

    def to_row(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        row["schema_changes"] = json.dumps(self.schema_changes) if self.schema_changes else None
        row["details"] = json.dumps(self.details, default=str) if self.details else None
        return row


def record_run(lake: Lake, *records: RunRecord) -> None:
    """Append run records to ``meta.runs`` (safe with concurrent writers)."""
    if not records:
        return
    table = pa.Table.from_pylist([r.to_row() for r in records], schema=RUNS_SCHEMA)
    lake.write(names.META_RUNS, table, mode="append")

"""KPIs: what the users do (from the consumption zone) and how the pipeline runs.

User KPIs are defined once, in ``consumption.daily_kpis`` (built by
``lakehouse build``); this module only reads them. Pipeline KPIs are computed
from the run log ``meta.runs``, grouped by the run's logical date
(``run_date``: the ingest, build or score date), so a back-filled or simulated
day lands on the day it is about.

Table size over time is derived, not recorded: each successful ingest, build
and recommend run records the Delta version it wrote (``table_version``), and
the table's rows and bytes at that version are read back by time travel. This
works on any lake, including ones built before monitoring existed, and costs no
extra write in the pipeline. Versions are immutable, so their sizes are cached
in ``<lake>/.monitor/table_versions.json`` (delete it at will); a version
whose Delta log was cleaned up is skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.context import RunContext, as_context
from lakehouse.errors import ConfigError, LakehouseError
from lakehouse.lake import Lake, parse_table_name
from lakehouse.monitor.runs import read_runs

log = logging.getLogger(__name__)

USER_KPI_COLUMNS = [
    "date", "total_users", "new_users", "total_tracks", "new_tracks", "listens",
    "active_listeners", "avg_listen_history_size",
]
RUN_KPI_COLUMNS = [
    "runs", "succeeded", "failed", "avg_duration_s", "p95_duration_s", "records",
    "avg_records", "cpu_s", "cost",
]
TABLE_SIZE_COLUMNS = ["date", "table", "version", "rows", "size_bytes"]
LAKE_SIZE_COLUMNS = ["date", "tables", "rows", "size_bytes"]
_CACHE_NAME = "table_versions.json"


@dataclass
class PipelineKpis:
    """Pipeline KPIs, each a frame ready to print or chart.

    Attributes:
        daily: One row per run date and pipeline: runs, succeeded, failed,
            avg and p95 duration (s), records written (sum and mean per run),
            CPU seconds and estimated cost.
        monthly: The same per month (``YYYY-MM``) and pipeline.
        table_sizes: Rows and bytes of each table at the version written on
            each run date.
        lake_size: Per run date, the sum over tables of their latest known
            rows and bytes (live data files, not older versions).
        cost_per_cpu_hour: The rate the cost columns used.
    """

    daily: pd.DataFrame
    monthly: pd.DataFrame
    table_sizes: pd.DataFrame
    lake_size: pd.DataFrame
    cost_per_cpu_hour: float

    @property
    def total_cost(self) -> float:
        """The estimated cost of every run in the period."""
        return float(self.daily["cost"].sum()) if not self.daily.empty else 0.0


def user_kpis(target: RunContext | Settings | None = None,
              since: dt.date | None = None) -> pd.DataFrame:
    """Daily user KPIs from ``consumption.daily_kpis``, oldest first.

    Columns: date, total_users, new_users, total_tracks, new_tracks, listens,
    active_listeners, avg_listen_history_size (definitions: the zones'
    ``daily_kpis`` view). Empty, with these columns, before the first build.

    Args:
        target: The run context (its lake handle is used), or settings.
        since: Only dates on or after this one.

    Raises:
        LakeError: There is no lake at ``settings.lake``.
    """
    lake = as_context(target).lake()
    if not lake.exists(names.CONS_DAILY_KPIS):
        return pd.DataFrame(columns=USER_KPI_COLUMNS)
    frame = lake.to_arrow(names.CONS_DAILY_KPIS).to_pandas()
    frame["date"] = pd.to_datetime(frame["date"]).dt.date
    if since is not None:
        frame = frame[frame["date"] >= since]
    ordered = [c for c in USER_KPI_COLUMNS if c in frame.columns]
    rest = [c for c in frame.columns if c not in ordered]
    return frame[ordered + rest].sort_values("date").reset_index(drop=True)


def pipeline_kpis(target: RunContext | Settings | None = None, since: dt.date | None = None,
                  *, runs: pd.DataFrame | None = None) -> PipelineKpis:
    """Pipeline KPIs from ``meta.runs`` and the tables' Delta history.

    Args:
        target: The run context (its lake handle is used), or settings:
            which lake, and ``cost_per_cpu_hour`` for the cost estimate.
        since: Only runs whose run date is on or after this one.
        runs: ``meta.runs`` as :func:`read_runs` returns it, when the caller
            has read it already (the report); else it is read here.

    Raises:
        LakeError: There is no lake at ``settings.lake``.
    """
    ctx = as_context(target)
    settings, lake = ctx.settings, ctx.lake()
    if runs is None:
        runs = read_runs(lake, since)
    elif since is not None:
        runs = runs[runs["run_date"] >= since].reset_index(drop=True)
    daily = _aggregate(runs, runs["run_date"], "date", settings.cost_per_cpu_hour)
    months = pd.Series([d.strftime("%Y-%m") for d in runs["run_date"]], index=runs.index,
                       dtype=object)
    monthly = _aggregate(runs, months, "month", settings.cost_per_cpu_hour)
    table_sizes = _table_sizes(lake, runs)
    return PipelineKpis(daily=daily, monthly=monthly, table_sizes=table_sizes,
                        lake_size=_lake_size(table_sizes),
                        cost_per_cpu_hour=settings.cost_per_cpu_hour)


def _aggregate(runs: pd.DataFrame, period: pd.Series, period_name: str,
               rate: float) -> pd.DataFrame:
    columns = [period_name, "pipeline", *RUN_KPI_COLUMNS]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (when, pipeline), group in runs.groupby([period, runs["pipeline"]], sort=True):
        durations = group["duration_s"].dropna().to_numpy(dtype=float)
        records = group["records"].dropna()
        cpu = float(group["cpu_s"].fillna(0).sum())
        ok = int((group["status"] == names.SUCCESS).sum())
        rows.append({
            period_name: when, "pipeline": pipeline, "runs": len(group), "succeeded": ok,
            "failed": len(group) - ok,
            "avg_duration_s": round(float(durations.mean()), 3) if durations.size else None,
            "p95_duration_s": (round(float(np.quantile(durations, 0.95)), 3)
                               if durations.size else None),
            "records": int(records.sum()),
            "avg_records": round(float(records.mean()), 1) if len(records) else None,
            "cpu_s": round(cpu, 3), "cost": round(cpu / 3600 * rate, 6),
        })
    return pd.DataFrame(rows, columns=columns)


def _written_table(pipeline: str, target: str) -> str | None:
    name = target if "." in target else (names.raw_table(target) if pipeline == names.INGEST
                                         else None)
    if name is None:
        return None
    try:
        parse_table_name(name)
    except LakehouseError:
        return None
    return name


def _table_sizes(lake: Lake, runs: pd.DataFrame) -> pd.DataFrame:
    ok = runs[(runs["status"] == names.SUCCESS) & runs["table_version"].notna()]
    points: dict[tuple[dt.date, str], int] = {}
    for row in ok.itertuples(index=False):
        table = _written_table(row.pipeline, row.target)
        if table is not None:
            # Later runs of the same day win (runs are sorted by start time).
            points[(row.run_date, table)] = int(row.table_version)
    if not points:
        return pd.DataFrame(columns=TABLE_SIZE_COLUMNS)
    cache_path = lake.root / ".monitor" / _CACHE_NAME
    cache = _load_cache(cache_path)
    dirty = False
    rows = []
    for (day, table), version in sorted(points.items()):
        key = f"{table}@{version}"
        if key not in cache:
            size = _size_at(lake, table, version)
            if size is None:
                continue
            cache[key] = size
            dirty = True
        rows.append({"date": day, "table": table, "version": version,
                     "rows": cache[key][0], "size_bytes": cache[key][1]})
    if dirty:
        _save_cache(cache_path, cache)
    return pd.DataFrame(rows, columns=TABLE_SIZE_COLUMNS)


def _size_at(lake: Lake, table: str, version: int) -> tuple[int, int] | None:
    try:
        delta = lake.delta(table, version)
        actions = pa.table(delta.get_add_actions(flatten=True))
    except (LakehouseError, OSError, ValueError) as exc:
        log.info("no size for %s version %s: %s", table, version, exc)
        return None
    if not actions.num_rows:
        return (0, 0)
    rows = sum(v or 0 for v in actions.column("num_records").to_pylist())
    size = sum(v or 0 for v in actions.column("size_bytes").to_pylist())
    return (int(rows), int(size))


def _load_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_cache(path: Path, cache: dict[str, Any]) -> None:
    # A read-only lake just means no cache: never fail a report over it.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, path)
    except OSError as exc:
        log.info("cannot cache table sizes in %s: %s", path, exc)


def _lake_size(table_sizes: pd.DataFrame) -> pd.DataFrame:
    if table_sizes.empty:
        return pd.DataFrame(columns=LAKE_SIZE_COLUMNS)
    latest: dict[str, tuple[int, int]] = {}
    rows = []
    for day, group in table_sizes.groupby("date", sort=True):
        for row in group.itertuples(index=False):
            latest[row.table] = (row.rows, row.size_bytes)
        rows.append({"date": day, "tables": len(latest),
                     "rows": sum(r for r, _ in latest.values()),
                     "size_bytes": sum(b for _, b in latest.values())})
    return pd.DataFrame(rows, columns=LAKE_SIZE_COLUMNS)


def frame_rows(frame: pd.DataFrame) -> list[tuple]:
    """A frame's rows as plain Python values (None for missing), for rendering."""
    out = []
    for row in frame.itertuples(index=False):
        out.append(tuple(_plain(v) for v in row))
    return out


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
        if isinstance(value, float) and np.isnan(value):
            return None
    return value


KPI_SECTIONS = {
    "users": "User KPIs per day",
    "daily": "Pipeline runs per day",
    "monthly": "Pipeline runs per month",
    "tables": "Table sizes over time",
    "lake": "Lake size over time",
    "outcomes": "Online outcomes per score date (served top-k against popularity's)",
}


def kpi_tables(target: RunContext | Settings | None, since: dt.date | None = None,
               sections: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """User and pipeline KPIs as named frames (what ``lakehouse kpis`` prints).

    Args:
        target: The run context, or settings: which lake.
        since: Only dates on or after this one.
        sections: Some of :data:`KPI_SECTIONS` (default: all), in that order.

    Raises:
        LakeError: There is no lake at ``settings.lake``.
        ConfigError: An unknown section.
    """
    wanted = list(sections or KPI_SECTIONS)
    unknown = [s for s in wanted if s not in KPI_SECTIONS]
    if unknown:
        raise ConfigError(f"unknown KPI section(s) {', '.join(unknown)}; "
                          f"use {', '.join(KPI_SECTIONS)}")
    out: dict[str, pd.DataFrame] = {}
    ctx = as_context(target)
    ctx.lake()  # one handle for both kinds of KPIs
    if "users" in wanted:
        out["users"] = user_kpis(ctx, since)
    if "outcomes" in wanted:
        from lakehouse.monitor.outcomes import outcome_kpis

        out["outcomes"] = outcome_kpis(ctx.lake(), since)
    if set(wanted) - {"users", "outcomes"}:
        pipe = pipeline_kpis(ctx, since)
        frames = {"daily": pipe.daily, "monthly": pipe.monthly, "tables": pipe.table_sizes,
                  "lake": pipe.lake_size}
        out.update({s: frames[s] for s in wanted if s in frames})
    return {s: out[s] for s in wanted}

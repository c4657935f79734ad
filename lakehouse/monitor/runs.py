"""Reading the run log, ``meta.runs``, as a pandas frame for the monitor."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd

from lakehouse import names
from lakehouse.lake import Lake
from lakehouse.runlog import RUNS_SCHEMA


def read_runs(lake: Lake, since: dt.date | None = None) -> pd.DataFrame:
    """Every run in ``meta.runs`` (run_date >= ``since``), oldest first.

    An absent run log is an empty frame with the run log's columns, so a new
    lake reads as "nothing ran yet" rather than as an error.

    Raises:
        BrokenTableError: ``meta.runs`` exists but does not read.
    """
    if not lake.exists(names.META_RUNS):
        return empty_runs()
    frame = lake.to_arrow(names.META_RUNS).to_pandas()
    return _typed(frame, since)


def empty_runs() -> pd.DataFrame:
    """A run log with no run, typed as :func:`read_runs` returns it."""
    return _typed(RUNS_SCHEMA.empty_table().to_pandas(), None)


def _typed(frame: pd.DataFrame, since: dt.date | None) -> pd.DataFrame:
    for col in ("started_at", "finished_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    frame["run_date"] = pd.to_datetime(frame["run_date"]).dt.date
    if since is not None:
        frame = frame[frame["run_date"] >= since]
    return frame.sort_values(["started_at", "run_id"], kind="stable").reset_index(drop=True)


def details_of(value: Any) -> dict[str, Any]:
    """The ``details`` JSON of a run as a dict (empty when absent or unreadable)."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}

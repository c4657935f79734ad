"""Dropping a wrong date: a score date of the recommendations, or an ingest date.

A date written by mistake (``recommend --date 2026-12-31`` typed for
``2025-12-31``, an ingest run for the wrong day) must be removable without
leaving the lake half-changed. Both functions are steps
(:func:`lakehouse.steps.run_step`): they take the lock of the step that
writes what they drop, delete in atomic Delta commits, and append a
``drop_date`` run record to ``meta.runs`` per table changed.

Dropping an **ingest date** D of an endpoint removes the snapshot of D from
both places it lives:

- ``raw.<endpoint>``: partition D is deleted (one commit);
- ``history.<endpoint>``: the events of D are removed, and every merged date
  after D is merged again from its raw partition, against the date before D,
  as if D had never been ingested (the history stays the exact record of the
  remaining snapshots: ``snapshot`` rebuilds each of them as served).

So it is refused when a merged date after D has no raw partition any more
(raw retention dropped it): its events could not be rebuilt without D, and
the history would no longer match its snapshots. Dropping the newest date
needs nothing else. The rows stay readable by Delta time travel until
``lakehouse maintain`` vacuums them; the standardized and consumption zones
keep what they were built from until the next ``lakehouse build``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from lakehouse import history, names
from lakehouse.config import Settings, parse_date
from lakehouse.context import RunContext
from lakehouse.errors import ConfigError, HistoryError, TableNotFoundError
from lakehouse.monitor.sinks import step_context
from lakehouse.runlog import RunRecord
from lakehouse.steps import StepRun, run_step

log = logging.getLogger(__name__)

PIPELINE = "drop_date"


def drop_score_date(target: RunContext | Settings | None, day: dt.date | str, *,
                    wait: bool | None = None) -> RunRecord:
    """Delete score date ``day`` from ``consumption.recommendations`` in one commit.

    Takes the ``recommend`` lock, so it never interleaves with a scoring run.
    ``lakehouse serve`` then serves the newest remaining date.

    Args:
        target: The run context, or settings.
        day: The ``score_date`` to delete.
        wait: Wait for a running ``recommend`` (default: the context's policy).

    Returns:
        The ``drop_date`` run record (``records``: rows deleted), also in ``meta.runs``.

    Raises:
        TableNotFoundError: There are no recommendations.
        ConfigError: ``day`` is not a score date of the table.
        LockedError: A scoring run holds the lock (and not waiting).
    """
    ctx = step_context(target, wait=wait)
    day = parse_date(day)
    table = names.CONS_RECOMMENDATIONS

    def body(run: StepRun) -> RunRecord:
        lake = run.lake
        if not lake.exists(table):
            raise TableNotFoundError(f"table {table} does not exist in {lake.root}; "
                                     "nothing to drop")
        known = _dates(lake, table, names.SCORE_DATE)
        if day not in known:
            raise ConfigError(f"{table} has no score_date {day} (score dates: "
                              f"{_span(known)}); nothing dropped")
        record = RunRecord(pipeline=PIPELINE, target=table, run_date=run.date)
        record.details = {"dropped": str(day)}
        record.records = lake.delete(table, f"{names.SCORE_DATE} = '{day}'",
                                     metadata={"pipeline": PIPELINE, "dropped": str(day)})
        record.table_version = lake.version(table)
        record.finish(names.SUCCESS)
        run.record(record)
        return record

    return run_step(ctx, PIPELINE, body, lock=names.RECOMMEND)


def drop_ingest_date(target: RunContext | Settings | None, day: dt.date | str,
                     endpoints: Sequence[str] | None = None, *,
                     wait: bool | None = None) -> list[RunRecord]:
    """Remove ingest date ``day`` of ``endpoints`` from raw and history (see the module).

    Every endpoint is checked before anything is deleted; each is then done
    in order: raw partition first (a kill after it leaves a history with one
    more merged date, as after raw retention; running the command again
    finishes), then the history's events from ``day`` on, then the later
    dates merged again.

    Args:
        target: The run context, or settings.
        day: The ingest date to drop.
        endpoints: Endpoint names (default: every endpoint that has ``day``).
        wait: Wait for a running ingest (default: the context's policy).

    Returns:
        One ``drop_date`` run record per endpoint changed (``records``: raw
        rows deleted; ``details``: the dates merged again), also in ``meta.runs``.

    Raises:
        ConfigError: An unknown endpoint, or none has ``day``.
        HistoryError: A later merged date of an endpoint has no raw partition
            left to merge it again; nothing was deleted.
        SourceResetError: A later date, merged again, looks like a source
            reset against the date before ``day``; the history then ends
            before it, and ``lakehouse ingest --accept-reset`` merges the rest.
        LockedError: An ingest holds the lock (and not waiting).
    """
    ctx = step_context(target, wait=wait)
    day = parse_date(day)
    unknown = [e for e in endpoints or () if e not in names.ENDPOINTS]
    if unknown:
        raise ConfigError(f"unknown endpoint {unknown[0]!r}: use "
                          f"{', '.join(names.ENDPOINTS)}")

    def body(run: StepRun) -> list[RunRecord]:
        plans = _plan_ingest_drop(run.lake, day, endpoints)
        records = []
        for endpoint, (in_raw, in_history) in plans.items():
            records.append(_drop_ingest(run, ctx.settings, endpoint, day, in_raw, in_history))
        return records

    return run_step(ctx, PIPELINE, body, lock=names.INGEST)


def _plan_ingest_drop(lake, day: dt.date, endpoints: Sequence[str] | None
                      ) -> dict[str, tuple[bool, bool]]:
    """Endpoint -> (``day`` in raw, in history), once every endpoint is known droppable.

    Raises:
        HistoryError: A later merged date has no raw partition left.
        ConfigError: No endpoint has ``day``.
    """
    plans = {}
    for endpoint in endpoints or names.ENDPOINTS:
        raw = history.raw_partitions(lake, endpoint)
        merged = history.merged_days(lake, endpoint)
        if day not in raw and day not in merged:
            continue
        pruned = sorted(d for d in merged if d > day and d not in raw)
        if pruned:
            raise HistoryError(
                f"cannot drop ingest date {day} of {endpoint}: the later merged date(s) "
                f"{pruned[0]}{', ...' if len(pruned) > 1 else ''} have no raw snapshot "
                "left (raw retention), so the history after it could not be rebuilt "
                "without it; nothing was dropped")
        plans[endpoint] = (day in raw, day in merged)
    if not plans:
        which = ", ".join(endpoints or names.ENDPOINTS)
        raise ConfigError(f"no endpoint ({which}) has ingest date {day} in raw or history; "
                          "nothing dropped")
    return plans


def _drop_ingest(run: StepRun, settings: Settings, endpoint: str, day: dt.date,
                 in_raw: bool, in_history: bool) -> RunRecord:
    """Raw partition first, then the history from ``day`` on, then the later dates again."""
    lake = run.lake
    record = RunRecord(pipeline=PIPELINE, target=names.raw_table(endpoint), run_date=run.date)
    meta = {"pipeline": PIPELINE, "dropped": str(day)}
    deleted = 0
    if in_raw:
        deleted = lake.delete(names.raw_table(endpoint), f"{names.INGEST_DATE} = '{day}'",
                              metadata=meta)
    replayed: list[str] = []
    if in_history:
        lake.delete(names.history_table(endpoint), f"{names.H_CHANGE_DATE} >= '{day}'",
                    metadata=meta)
        replayed = [m.day.isoformat() for m in history.sync(lake, settings, endpoint)]
    record.records = deleted
    record.details = {"dropped": str(day), "history_replayed": replayed}
    record.finish(names.SUCCESS)
    run.record(record)
    log.info("dropped ingest date %s of %s: %d raw rows, %d later date(s) merged again",
             day, endpoint, deleted, len(replayed))
    return record


def _dates(lake, table: str, column: str) -> list[dt.date]:
    rows = lake.sql(f"SELECT DISTINCT {column} FROM {table} ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def _span(days: list[dt.date]) -> str:
    return f"{days[0]} .. {days[-1]}, {len(days)} in all" if days else "none"

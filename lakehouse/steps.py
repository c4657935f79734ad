"""The step runner: what every pipeline step does the same way around its own work.

:func:`run_step` owns, for ingest, build, train and recommend alike:

- the writable check (before any work, and before the lock);
- the lock: one per lake and step name; wait up to ``settings.lock_timeout``
  seconds, or fail at once when the context says ``wait=False``;
- the run records: a step starts them with :meth:`StepRun.start` or appends
  finished ones with :meth:`StepRun.record`; the runner appends whatever was
  started and not recorded, as ``success`` or, if the step raised, as
  ``failed`` with the error;
- alerts: the finished runs go to the context's sinks
  (:meth:`~lakehouse.context.AlertSinks.runs_finished`); a step stopped by
  an error sends a ``job_failed`` alert instead. A bad option and a busy lock
  are not alerted: whoever asked reads the error.

So a step called from the CLI, the daily job, the demo or a notebook
records and alerts the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from lakehouse import names
from lakehouse.context import RunContext, check_not_future
from lakehouse.errors import ConfigError, LakehouseError, LockedError
from lakehouse.lake import Lake
from lakehouse.locking import lake_lock
from lakehouse.runlog import RunRecord, record_run
from lakehouse.source.scrub import scrub
from lakehouse.sqlguard import first_line

log = logging.getLogger(__name__)

T = TypeVar("T")


class StepRun:
    """One run of one step: its context, its lake, and the run records it made."""

    def __init__(self, ctx: RunContext, name: str, lake: Lake):
        self.ctx = ctx
        self.name = name
        self.lake = lake
        self.recorded: list[RunRecord] = []
        self._started: list[RunRecord] = []

    @property
    def date(self):
        """The run date."""
        return self.ctx.date

    def start(self, target: str) -> RunRecord:
        """A new record for ``target``, appended to ``meta.runs`` when the step ends."""
        record = RunRecord(pipeline=self.name, target=target, run_date=self.ctx.date)
        self._started.append(record)
        return record

    def record(self, *records: RunRecord) -> None:
        """Append finished records to ``meta.runs`` now.

        Raises:
            LakeError: The run log cannot be written.
        """
        for record in records:
            if record in self._started:
                self._started.remove(record)
        record_run(self.lake, *records)
        self.recorded.extend(records)

    def _close(self, error: BaseException | None) -> None:
        """Finish and append the records the step started but did not record."""
        pending, self._started = self._started, []
        if not pending:
            return
        for record in pending:
            if error is not None:
                record.finish(names.FAILED, _error_text(error))
            elif record.finished_at is None:
                record.finish(names.SUCCESS)
        if error is None:
            self.record(*pending)
            return
        try:
            self.record(*pending)
        except LakehouseError as exc:
            # Expected when the lake cannot be written (a full disk): one line, the
            # step's own error follows; a traceback here would bury it.
            log.error("could not record the failed %s run: %s", self.name, first_line(exc))


def run_step(ctx: RunContext, name: str, body: Callable[[StepRun], T], *,
             create: bool = False, lock: str | None = None) -> T:
    """Run ``body`` as the pipeline step ``name``: checked, locked, recorded, alerted.

    Args:
        ctx: The run context.
        name: The step (``names.INGEST``...); also the lock's name.
        body: The step's own work, given the :class:`StepRun`.
        create: Create the lake if it does not exist yet (ingest); the other
            steps refuse a missing lake.
        lock: The lock to take, when it is another step's (``drop-date``
            takes the lock of the step that writes what it drops); default ``name``.

    Returns:
        What ``body`` returned.

    Raises:
        ConfigError: The run date is more than a day after today (UTC).
        LakeError: No lake, or it is not writable.
        LockedError: Another run of this step holds the lock (``ctx.wait``
            False, or the wait timed out).
        Whatever ``body`` raised, after its records were appended.
    """
    check_not_future(ctx.date, f"{name} date")
    try:
        lake = ctx.lake(create=create)
        lake.check_writable()
        timeout = ctx.settings.lock_timeout if ctx.wait else None
        with lake_lock(ctx.settings.locks_dir, lock or name, wait=ctx.wait, timeout=timeout):
            run = StepRun(ctx, name, lake)
            try:
                result = body(run)
            except BaseException as exc:
                run._close(exc)
                raise
            run._close(None)
    except (ConfigError, LockedError):
        raise  # a typo or a deliberate --no-wait: the user is there to read it
    except LakehouseError as exc:
        alert_failed(ctx, name, exc)
        raise
    _safely(ctx.alerts.runs_finished, run.recorded)
    return result


def alert_failed(ctx: RunContext, name: str, exc: BaseException) -> None:
    """Send the ``job_failed`` alert of a failed command ``name``; never raises.

    For commands that are not steps (``maintain``) as for steps. The message
    can quote the server: no secret or control character goes out.
    """
    message = scrub(f"lakehouse {name} failed: {exc}", [ctx.settings.api_token])
    _safely(ctx.alerts.job_failed, name, message)


def _safely(send: Callable, *args: object) -> None:
    # A monitoring failure must never fail the pipeline it watches.
    try:
        send(*args)
    except Exception:  # noqa: BLE001
        log.exception("could not send the alert")


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, LakehouseError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"

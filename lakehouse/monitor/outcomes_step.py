"""The ``outcomes`` step: refresh the online outcomes under the step runner.

Apart from :mod:`lakehouse.monitor.outcomes` (computing and reading them)
because a step takes the settings' alert sinks
(:func:`lakehouse.monitor.sinks.step_context`), and the alert rules read the
outcomes: in one module, the two would import each other.
"""

from __future__ import annotations

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.context import RunContext
from lakehouse.monitor.outcomes import TABLE, refresh
from lakehouse.monitor.sinks import step_context
from lakehouse.runlog import RunRecord
from lakehouse.steps import StepRun, run_step


def refresh_outcomes(target: RunContext | Settings | None = None, *, full: bool = False,
                     wait: bool | None = None) -> RunRecord:
    """The ``outcomes`` step: refresh the online outcomes, recorded in ``meta.runs``.

    A pipeline step (:func:`lakehouse.steps.run_step`): takes the lake's
    ``outcomes`` lock, records the run (failed ones too) and alerts.

    Example::

        from lakehouse.monitor.outcomes_step import refresh_outcomes
        refresh_outcomes(RunContext.open(date="2026-11-26"))

    Args:
        target: The run context, or settings.
        full: Recompute every score date (see :func:`refresh`).
        wait: Wait for another run holding the lock (default: the context's policy).

    Returns:
        The run record; ``details`` holds the dates computed and the last
        ingest date counted.

    Raises:
        LockedError: Another refresh holds the lock.
        LakeError: The lake is missing or not writable.
    """
    ctx = step_context(target, wait=wait)

    def body(run: StepRun) -> RunRecord:
        record = run.start(TABLE)
        done = refresh(run.lake, ctx.settings, full=full)
        record.records = done.rows
        record.rows_in = len(done.computed)
        record.table_version = done.version if done.written else None
        record.details = {
            "observed_through": done.observed_through.isoformat()
            if done.observed_through else None,
            "computed": [d.isoformat() for d in done.computed], "written": done.written,
            "horizon_days": ctx.settings.online_horizon_days}
        record.finish(names.SUCCESS)
        return record

    return run_step(ctx, names.OUTCOMES, body)

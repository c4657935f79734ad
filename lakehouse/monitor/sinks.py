"""Alert sinks: where a step's alerts go, handed to the run context from above the core.

The core's :class:`~lakehouse.context.RunContext` knows only the
:class:`~lakehouse.context.AlertSinks` protocol (and alerts nobody by
default); it never imports the monitor. The sinks configured in the settings
(webhook, command) are :class:`SettingsSinks`: the CLI, the daily job and the
demo hand them in, and every step function called with plain settings (a
notebook's ``ingest(settings)``) gets them through :func:`step_context`, so a
step alerts the same whoever runs it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings
from lakehouse.context import RunContext, as_context

if TYPE_CHECKING:
    from lakehouse.runlog import RunRecord


@dataclass(frozen=True)
class SettingsSinks:
    """The sinks configured in the settings (webhook, command), de-duplicated in the lake."""

    settings: Settings

    def runs_finished(self, records: Sequence[RunRecord]) -> None:
        """Alert on finished runs (failed runs, quarantine share, row change...)."""
        from lakehouse.monitor.alerts import notify_runs

        notify_runs(self.settings, records)

    def job_failed(self, job: str, message: str) -> None:
        """Alert that a job stopped with an error before or instead of a run record."""
        # Without a sink the error line the caller sees is all there is to say.
        if self.settings.alert_webhook or self.settings.alert_command:
            from lakehouse.monitor.alerts import job_failed_alert

            job_failed_alert(self.settings, job, message)


def step_context(target: RunContext | Settings | None, *, date: dt.date | str | None = None,
                 **changes: Any) -> RunContext:
    """The context a step runs in: ``target`` itself, or one with the settings' sinks.

    A context is used as it was handed in (its sinks are the caller's
    choice); plain settings or None (a notebook's call) get a context whose
    alerts go to the settings' webhook and command, as the CLI's do.

    Args:
        target: A context, settings, or None (the environment's settings).
        date: Overrides the context's date.
        **changes: ``progress`` and ``wait``, as :func:`~lakehouse.context.as_context` takes.
    """
    ctx = as_context(target, date=date, **changes)
    if isinstance(target, RunContext):
        return ctx
    return ctx.replace(alerts=SettingsSinks(ctx.settings))

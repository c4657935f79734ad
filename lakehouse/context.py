"""The run context: what every pipeline step is handed instead of ``Settings``.

One :class:`RunContext` holds the lake handle (one ``Lake``, hence one DuckDB
connection, for the whole command, daily job or notebook session), the
settings, the run date, the alert sinks, the lock policy and the progress
callback. Build it once and pass it to every step::

    from lakehouse.context import RunContext
    from lakehouse.ingest import ingest
    from lakehouse.zones.build import build

    ctx = RunContext.open(date="2026-11-26", progress=notebook_progress())
    ingest(ctx)
    build(ctx)

A step given plain :class:`~lakehouse.config.Settings` builds a context of
its own (:func:`as_context`), so it records the same way. Alerts go to the
sinks handed in: the CLI, the daily job and the demo hand in the settings'
webhook and command (:class:`lakehouse.monitor.alerts.SettingsSinks`); a
notebook passes ``alerts=SettingsSinks(settings)`` if its runs should alert.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lakehouse.config import Settings, parse_date
from lakehouse.errors import ConfigError
from lakehouse.lake import Lake, utc_now

if TYPE_CHECKING:
    from lakehouse.runlog import RunRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressEvent:
    """One step of progress, for whoever renders it (terminal bar, log line, widget).

    Attributes:
        step: The pipeline step (``ingest``, ``train``...).
        task: What is progressing within it (an endpoint, ``epochs``).
        done: Units done so far (pages, epochs).
        total: Units expected, when known.
        finished: The task ended; ``message`` then says how, in one line.
        message: A one-line summary (with ``finished``) or a note.
    """

    step: str
    task: str
    done: int = 0
    total: int | None = None
    finished: bool = False
    message: str | None = None


ProgressFn = Callable[[ProgressEvent], None]


class AlertSinks(Protocol):
    """Where a step's alerts go: run notifications and job failures."""

    def runs_finished(self, records: Sequence[RunRecord]) -> None:
        """Alert on finished runs (failed runs, quarantine share, row change...)."""

    def job_failed(self, job: str, message: str) -> None:
        """Alert that a job stopped with an error before or instead of a run record."""


class NoSinks:
    """Alert nobody: the sinks of a context opened without any.

    The sinks configured in the settings (webhook, command) are
    :class:`lakehouse.monitor.alerts.SettingsSinks`; the CLI, the daily job
    and the demo hand them in. The core never reaches up to the monitor.
    """

    def runs_finished(self, records: Sequence[RunRecord]) -> None:
        """Nothing to alert."""

    def job_failed(self, job: str, message: str) -> None:
        """Nothing to alert."""


# A run may be for tomorrow (UTC): a job scheduled east of UTC starts "its" day before
# UTC does. Anything later is a typo, and would take over serving and status for good.
FUTURE_DAYS = 1


def check_not_future(day: dt.date, what: str = "date") -> dt.date:
    """``day`` if it is at most :data:`FUTURE_DAYS` after today (UTC).

    Every step's date passes here (a context's date, and
    :func:`lakehouse.steps.run_step` checks it again), so a date in the future
    is refused in one place.

    Raises:
        ConfigError: It is later (9999-12-31 included).
    """
    today = utc_now().date()
    if (day - today).days > FUTURE_DAYS:
        raise ConfigError(f"{what} {day} is out of range: it is more than {FUTURE_DAYS} day "
                          f"after today ({today}, UTC); use --date {today} or earlier")
    return day


@dataclass
class RunContext:
    """Everything a pipeline step needs besides its own arguments.

    Attributes:
        settings: The settings (lake root, API, tunables, sinks).
        date: The run date: ingest partition, build date, score date.
        alerts: The alert sinks (:class:`NoSinks` unless some are handed in).
        progress: Called with :class:`ProgressEvent`; None: nobody watches.
        wait: Wait for a step of the same name holding the lake's lock (up
            to ``settings.lock_timeout`` seconds); False: fail at once.
    """

    settings: Settings
    date: dt.date
    alerts: AlertSinks
    progress: ProgressFn | None = None
    wait: bool = True
    _lake: Lake | None = field(default=None, repr=False)

    @classmethod
    def open(cls, settings: Settings | None = None, *, date: dt.date | str | None = None,
             alerts: AlertSinks | None = None, progress: ProgressFn | None = None,
             wait: bool = True) -> RunContext:
        """A context for ``settings`` (default: defaults < ``LAKEHOUSE_*`` environment).

        Raises:
            ConfigError: A bad date or setting.
        """
        settings = settings or Settings.load()
        return cls(settings=settings, date=check_not_future(parse_date(date)),
                   alerts=alerts or NoSinks(), progress=progress, wait=wait)

    def replace(self, **changes: Any) -> RunContext:
        """A copy with some fields changed (``None`` ignored), sharing the lake handle."""
        given = {k: v for k, v in changes.items() if v is not None}
        if "date" in given:
            given["date"] = check_not_future(parse_date(given["date"]))
        if "settings" in given and given["settings"].lake != self.settings.lake:
            given["_lake"] = None
        return dataclasses.replace(self, **given)

    def _silenced(self) -> RunContext:
        self.progress = None
        return self

    def lake(self, *, create: bool = False) -> Lake:
        """The lake handle, opened on first use and then shared.

        Args:
            create: Create the lake folder if missing (only ingest starts a lake).

        Raises:
            LakeError: No lake there (and not ``create``), or the path is a file.
        """
        if self._lake is None:
            self._lake = Lake(self.settings.lake, create=create)
        return self._lake

    def report(self, step: str, task: str, done: int = 0, total: int | None = None, *,
               finished: bool = False, message: str | None = None) -> None:
        """Send one progress event to the callback, if any; a renderer bug never stops a step."""
        if self.progress is None:
            return
        try:
            self.progress(ProgressEvent(step, task, done, total, finished, message))
        except Exception:  # noqa: BLE001 - progress is cosmetic
            log.exception("progress callback failed")


def as_context(target: RunContext | Settings | None, *, date: dt.date | str | None = None,
               progress: ProgressFn | bool | None = None,
               wait: bool | None = None) -> RunContext:
    """The context a step runs in: ``target`` itself, or a new one for plain settings.

    Args:
        target: A context, settings (a notebook's call), or None (the environment's).
        date: Overrides the context's date.
        progress: Overrides the context's progress callback. ``False`` (or
            ``True``, from callers of the days the library drew bars itself)
            means no callback: the library never draws.
        wait: Overrides the context's lock policy.
    """
    if isinstance(progress, bool):
        ctx = as_context(target, date=date, wait=wait)
        return ctx if ctx.progress is None else ctx.replace()._silenced()
    if not isinstance(target, RunContext):
        return RunContext.open(target, date=date, progress=progress,
                               wait=True if wait is None else wait)
    if date is None and progress is None and wait is None:
        return target  # the same context: its lake handle opens once and is shared
    return target.replace(date=date, progress=progress, wait=wait)

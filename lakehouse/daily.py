"""The daily job: ingest -> build -> train (when due) -> recommend -> outcomes -> report -> status.

``lakehouse daily`` (``make daily``, cron through ``scripts/daily.sh``) and
``lakehouse demo`` (once per simulated day) run :func:`daily`; a notebook can
too::

    from lakehouse.context import RunContext
    from lakehouse.daily import daily

    result = daily(RunContext.open(date="2026-11-26"))
    result.exit_code, [s.status for s in result.steps]

Policy:

- every endpoint is ingested, one failing does not stop the others;
- the build runs when at least one endpoint was ingested (a failed endpoint
  keeps its last snapshot); train and recommend need a successful build;
- training is due on ``settings.retrain_weekday`` (0 = Monday; -1: never by
  weekday) or whenever there is no champion model;
- recommend runs when there is a champion (after training);
- outcomes (:mod:`lakehouse.monitor.outcomes`) runs after a successful build,
  whatever recommend did: the new ingest date may judge earlier days' lists;
- the report and the status always run; the status sends its alerts
  (stale data, missed scoring);
- ``lakehouse maintain`` (compaction, checkpoints, vacuum) runs after the
  report on ``settings.maintain_weekday`` (6 = Sunday; -1: never);
- a step that fails is recorded and alerted by the step itself
  (:func:`lakehouse.steps.run_step`); the job then sends one ``job_failed``
  alert naming the failed steps.

The exit code says what failed: 0 when every step succeeded and the lake is
healthy, else the sum of :data:`EXIT_BITS` of what failed (e.g. 4 + 1 = 5:
an endpoint failed to ingest and the lake is unhealthy).
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.context import RunContext
from lakehouse.errors import LakehouseError
from lakehouse.runlog import RunRecord

log = logging.getLogger(__name__)

REPORT = "report"
STATUS = "status"
SUCCESS, FAILED, SKIPPED = names.SUCCESS, names.FAILED, "skipped"
# What failed, as bits of the exit code (1 is also click's "Error:", 2 its usage error).
EXIT_BITS = {STATUS: 1, names.INGEST: 4, names.BUILD: 8, names.TRAIN: 16,
             names.RECOMMEND: 32, REPORT: 64, names.MAINTAIN: 128, names.OUTCOMES: 256}
JOB_STEPS = (names.INGEST, names.BUILD, names.TRAIN, names.RECOMMEND, names.OUTCOMES, REPORT,
             names.MAINTAIN, STATUS)


@dataclass
class StepOutcome:
    """How one step of the daily job went.

    Attributes:
        name: The step (``ingest``, ..., ``report``, ``status``).
        status: ``success``, ``failed`` or ``skipped``.
        detail: One line: what it did, why it failed, or why it was skipped.
        records: The run records it appended to ``meta.runs``.
        value: What the step returned (a train result, the report path, the status).
    """

    name: str
    status: str
    detail: str
    records: list[RunRecord] = field(default_factory=list)
    value: Any = None

    @property
    def line(self) -> str:
        """The step's line in the job's log."""
        return f"{self.name}: {self.status}, {self.detail}" if self.detail else \
            f"{self.name}: {self.status}"


@dataclass
class DailyResult:
    """What the daily job did, step by step."""

    date: dt.date
    steps: list[StepOutcome] = field(default_factory=list)

    def step(self, name: str) -> StepOutcome | None:
        """The outcome of step ``name``, or None if the job did not get to it."""
        return next((s for s in self.steps if s.name == name), None)

    @property
    def failed(self) -> list[StepOutcome]:
        """The steps that failed (an unhealthy status counts)."""
        return [s for s in self.steps if s.status == FAILED]

    @property
    def exit_code(self) -> int:
        """0 if all went well, else the sum of the failed steps' :data:`EXIT_BITS`."""
        return sum(EXIT_BITS[s.name] for s in self.failed)

    @property
    def report(self) -> Path | None:
        """The report written, if any."""
        done = self.step(REPORT)
        return done.value if done is not None and done.status == SUCCESS else None


def retrain_reason(settings: Settings, date: dt.date, champion: str | None) -> str | None:
    """Why training is due on ``date``, or None if it is not."""
    if champion is None:
        return "no champion model yet"
    if settings.retrain_weekday == date.weekday():
        return f"retrain weekday ({calendar.day_name[date.weekday()]})"
    return None


def daily(target: RunContext | Settings | None = None, *, date: dt.date | str | None = None,
          retrain: bool | None = None, report: bool = True) -> DailyResult:
    """Run the daily job for the context's date (see the module's policy).

    Args:
        target: The run context (its lake, settings, date, sinks, progress
            and lock policy serve every step), or settings to build one.
        date: Overrides the context's date.
        retrain: True: train today; False: do not; None: the policy
            (retrain weekday, or no champion).
        report: Write the HTML report (the demo writes only the last day's).

    Returns:
        Every step's outcome; ``exit_code`` says what failed. Nothing is
        raised for a failed step: the job goes on to the report and status.

    Raises:
        ConfigError: A bad date or setting, before any step runs.
    """
    from lakehouse.monitor.sinks import step_context

    ctx = step_context(target, date=date)
    job = _Job(ctx, DailyResult(ctx.date))
    ingested = job.run(names.INGEST, _ingest)
    no_data = None if any(r.ok for r in ingested.records) else "nothing was ingested"
    built = job.run(names.BUILD, _build, skip=no_data)
    no_build = None if built.status == SUCCESS else "the build did not succeed"
    champion = _champion(ctx)
    due = retrain_reason(ctx.settings, ctx.date, champion) if retrain is None else \
        ("asked to retrain" if retrain else None)
    not_due = None if due else (f"not due (retrain weekday {ctx.settings.retrain_weekday}, "
                                f"champion {champion})")
    job.run(names.TRAIN, _train, skip=no_build or not_due, why=due)
    no_model = None if _champion(ctx) else "no champion model to score with"
    job.run(names.RECOMMEND, _recommend, skip=no_build or no_model)
    job.run(names.OUTCOMES, _outcomes, skip=no_build)
    if report:
        job.run(REPORT, _report)
    maintain_day = ctx.settings.maintain_weekday == ctx.date.weekday()
    job.run(names.MAINTAIN, _maintain, skip=None if maintain_day else
            f"not due (maintain weekday {ctx.settings.maintain_weekday})")
    job.run(STATUS, _status)
    failed = [s.name for s in job.result.failed]
    if failed:
        message = (f"daily job for {ctx.date} failed at step(s) {', '.join(failed)} "
                   f"(exit {job.result.exit_code})")
        try:
            ctx.alerts.job_failed(names.DAILY, message)
        except Exception:  # noqa: BLE001 - alerting must not crash the job it reports on
            log.exception("could not send the daily job_failed alert")
    return job.result


class _Job:
    """Runs the job's steps one after the other, each failure contained."""

    def __init__(self, ctx: RunContext, result: DailyResult):
        self.ctx = ctx
        self.result = result

    def run(self, name: str, fn: Callable[..., StepOutcome], *, skip: str | None = None,
            **kwargs: Any) -> StepOutcome:
        if skip:
            outcome = StepOutcome(name, SKIPPED, skip)
        else:
            try:
                outcome = fn(self.ctx, **kwargs)
            except LakehouseError as exc:
                outcome = StepOutcome(name, FAILED, str(exc))
            except Exception as exc:  # noqa: BLE001 - a bug in one step must not stop the report
                log.exception("daily step %s failed unexpectedly", name)
                outcome = StepOutcome(name, FAILED, f"{type(exc).__name__}: {exc}")
        self.result.steps.append(outcome)
        done = JOB_STEPS.index(name) + 1
        self.ctx.report(names.DAILY, "steps", done, len(JOB_STEPS),
                        finished=name == STATUS, message=f"daily {self.ctx.date} {outcome.line}")
        return outcome


def _champion(ctx: RunContext) -> str | None:
    from lakehouse.recsys.registry import Registry

    try:
        return Registry(ctx.settings.models_dir).alias(names.CHAMPION)
    except LakehouseError as exc:
        log.warning("cannot read the model registry: %s", exc)
        return None


def _ingest(ctx: RunContext) -> StepOutcome:
    from lakehouse.ingest import ingest

    records = ingest(ctx)
    parts = [f"{r.target} {r.records}" if r.ok else f"{r.target} FAILED ({r.error})"
             for r in records]
    status = SUCCESS if all(r.ok for r in records) else FAILED
    return StepOutcome(names.INGEST, status, ", ".join(parts), records)


def _build(ctx: RunContext) -> StepOutcome:
    from lakehouse.zones.build import build

    records = build(ctx)
    quarantined = sum(r.quarantined or 0 for r in records)
    return StepOutcome(names.BUILD, SUCCESS,
                       f"{len(records)} tables, {quarantined} rows quarantined", records)


def _train(ctx: RunContext, why: str | None = None) -> StepOutcome:
    from lakehouse.recsys.train import train

    result = train(ctx)
    decision = "promoted" if result.promoted else \
        f"kept the champion's configuration, refit as {result.champion}"
    if not result.evaluated:  # no holdout: the reason says what happened, in one line
        decision = result.reason
    if result.previous_champion:
        from lakehouse.monitor.outcomes import champion_lift_line

        line = champion_lift_line(ctx.lake(), ctx.settings, result.previous_champion)
        decision += f"; in production: {line}"
    return StepOutcome(names.TRAIN, SUCCESS, f"{why}: {result.version} ({result.chosen}) "
                                             f"{decision}",
                       [result.run] if result.run else [], result)


def _recommend(ctx: RunContext) -> StepOutcome:
    from lakehouse.recsys.score import recommend

    record = recommend(ctx)
    detail = (f"{record.records} rows for {record.details['users']} users with "
              f"{record.details['model_version']}")
    return StepOutcome(names.RECOMMEND, SUCCESS, detail, [record])


def _outcomes(ctx: RunContext) -> StepOutcome:
    from lakehouse.monitor.outcomes_step import refresh_outcomes

    record = refresh_outcomes(ctx)
    computed = record.details["computed"]
    detail = (f"{len(computed)} score date(s) measured through "
              f"{record.details['observed_through']}" if computed else
              "no score date to measure")
    return StepOutcome(names.OUTCOMES, SUCCESS, detail, [record])


def _report(ctx: RunContext) -> StepOutcome:
    from lakehouse.monitor.report import write_report

    path = write_report(ctx)
    return StepOutcome(REPORT, SUCCESS, str(path), value=path)


def _maintain(ctx: RunContext) -> StepOutcome:
    from lakehouse.maintain import maintain

    done = maintain(ctx)
    return StepOutcome(names.MAINTAIN, SUCCESS,
                       f"{len(done.tables)} tables, files {done.files_before} -> "
                       f"{done.files_after}", value=done)


def _status(ctx: RunContext) -> StepOutcome:
    from lakehouse.monitor.alerts import send_alerts
    from lakehouse.monitor.status import status

    st = status(ctx)
    send_alerts(ctx.settings, st.alerts())
    if st.healthy:
        return StepOutcome(STATUS, SUCCESS, "healthy", value=st)
    first = st.errors[0].message
    return StepOutcome(STATUS, FAILED, f"UNHEALTHY, {len(st.errors)} error(s), first: {first}",
                       value=st)

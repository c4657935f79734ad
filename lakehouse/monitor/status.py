"""Pipeline health: is the lake fresh, did the last runs succeed, is scoring on time?

The lake is **unhealthy** when any of these holds (each is a problem of
severity ``error``; warnings never make it unhealthy):

- an endpoint was never ingested, or its last ingest failed, or its last
  successful ingest finished more than ``settings.stale_hours`` ago (stale);
- the build never ran, its last run of some table failed, or its last success
  is stale;
- the last training run failed (the champion keeps serving, but the weekly
  retraining is broken);
- a champion model exists but the last scoring run failed or no successful
  scoring finished within ``stale_hours`` (missed scoring);
- the champion alias points to a version that does not read (missing or
  damaged ``model.json``, artifact failing its checksum);
- a table does not read: its Delta log does not parse, or a data file it
  lists is missing or not as logged (:meth:`Lake.check`).

Without a champion there is nothing to score, which is a warning only (a new
lake before its first training).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.context import RunContext, as_context
from lakehouse.errors import BrokenTableError, LakehouseError
from lakehouse.lake import Lake, TableInfo, utc_now
from lakehouse.monitor import alerts as al
from lakehouse.monitor.runs import empty_runs, read_runs
from lakehouse.sqlguard import first_line

log = logging.getLogger(__name__)

INGEST, BUILD, TRAIN, RECOMMEND = names.INGEST, names.BUILD, names.TRAIN, names.RECOMMEND
TABLE_UNREADABLE = "table_unreadable"
MODEL_UNREADABLE = "model_unreadable"
METRIC_KEYS = names.METRIC_KEYS


@dataclass
class Problem:
    """Something wrong (``error``) or worth a look (``warning``)."""

    kind: str
    subject: str
    severity: str
    message: str


@dataclass
class StepStatus:
    """The last run of one pipeline step (an endpoint's ingest, a table's build...)."""

    pipeline: str
    target: str
    last_status: str | None = None
    last_run_at: dt.datetime | None = None
    run_date: dt.date | None = None
    records: int | None = None
    error: str | None = None
    last_success_at: dt.datetime | None = None
    age_hours: float | None = None  # since the last success

    @property
    def fresh(self) -> bool:
        return self.age_hours is not None


@dataclass
class ModelStatus:
    """The champion model and how it compares with the popularity baseline."""

    version: str
    created_at: dt.datetime | None
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    versions: int


@dataclass
class Status:
    """The lake's health and what it is made of.

    Attributes:
        healthy: No problem of severity ``error``.
        checked_at: When the status was computed (UTC).
        endpoints: The last ingest of each source endpoint.
        steps: The last build of each table, then the last train and recommend.
        tables: Each table's rows, size and version.
        lake_bytes: The lake folder's size on disk (models and logs included).
        model: The champion, or None.
        last_recommendations: The newest ``score_date`` in
            ``consumption.recommendations``, or None.
        problems: Everything wrong, errors first.
    """

    healthy: bool
    checked_at: dt.datetime
    lake: Path
    stale_hours: float
    endpoints: list[StepStatus] = field(default_factory=list)
    steps: list[StepStatus] = field(default_factory=list)
    tables: list[TableInfo] = field(default_factory=list)
    lake_bytes: int = 0
    model: ModelStatus | None = None
    last_recommendations: dt.date | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == al.ERROR]

    def alerts(self) -> list[al.Alert]:
        """The problems as alerts, keyed like :func:`notify_runs`'s so they de-duplicate."""
        return [al.Alert(p.kind, p.subject, p.severity, p.message,
                         {"lake": str(self.lake), "checked_at": self.checked_at.isoformat()})
                for p in self.problems if p.severity == al.ERROR]


def status(target: RunContext | Settings | None = None, now: dt.datetime | None = None, *,
           runs: pd.DataFrame | None = None, tables: bool = True) -> Status:
    """The lake's health: freshness, last runs, tables, model, recommendations.

    Args:
        target: The run context (its lake handle is used), or settings:
            which lake, ``stale_hours``, and the models folder.
        now: The time to judge freshness against (default: now, UTC).
        runs: ``meta.runs`` as :func:`read_runs` returns it, when the caller
            has read it already (the report); else it is read here.
        tables: Also list every table and measure the lake on disk (what
            costs the most on a big lake; ``lakehouse serve`` skips it).

    Returns:
        A :class:`Status`; ``healthy`` is False if any problem is an error.

    Raises:
        LakeError: There is no lake at ``settings.lake``.
    """
    ctx = as_context(target)
    settings, lake = ctx.settings, ctx.lake()
    now = now or utc_now()
    st = Status(healthy=True, checked_at=now, lake=lake.root, stale_hours=settings.stale_hours)
    if runs is None:
        try:
            runs = read_runs(lake)
        except BrokenTableError as exc:
            runs = empty_runs()  # meta.runs itself is reported unreadable with the tables
            if not tables:  # ... which are not listed this time, so say it here
                st.problems.append(Problem(TABLE_UNREADABLE, names.META_RUNS, al.ERROR,
                                           first_line(exc)))
    limit = dt.timedelta(hours=settings.stale_hours)
    _judge_ingest(st, runs, limit)
    _judge_build(st, runs, limit)
    _judge_train(st, runs)
    st.model, model_problem = _champion(settings)
    st.last_recommendations = _last_score_date(lake)
    _judge_scoring(st, runs, limit, model_problem)
    if tables:
        _list_tables(st, lake)
    st.problems.sort(key=lambda p: p.severity != al.ERROR)
    st.healthy = not st.errors
    return st


def _judge_ingest(st: Status, runs: pd.DataFrame, limit: dt.timedelta) -> None:
    """Each endpoint: ingested, its last run not failed, its last success fresh."""
    for endpoint in names.ENDPOINTS:
        step = _step(runs, INGEST, endpoint, st.checked_at)
        st.endpoints.append(step)
        _judge(st, step, f"{INGEST}:{endpoint}", f"ingest of {endpoint}", limit,
               st.checked_at, never=f"{endpoint} was never ingested; run 'lakehouse ingest'")


def _judge_build(st: Status, runs: pd.DataFrame, limit: dt.timedelta) -> None:
    """Each built table's last run not failed; the build as a whole ran and is fresh."""
    build_runs = runs[runs["pipeline"] == BUILD]
    for target in sorted(build_runs["target"].unique()):
        st.steps.append(_step(runs, BUILD, target, st.checked_at))
    for step in st.steps:
        if step.last_status == names.FAILED:
            st.problems.append(Problem(
                al.RUN_FAILED, f"{BUILD}:{step.target}", al.ERROR,
                f"last build of {step.target} ({step.run_date}) failed: {step.error}"))
    build_all = _step(runs, BUILD, None, st.checked_at)
    if build_all.last_status is None:
        st.problems.append(Problem(al.STALE, BUILD, al.ERROR,
                                   "the zones were never built; run 'lakehouse build'"))
    else:
        _judge_fresh(st, build_all, BUILD, "build", limit)


def _judge_train(st: Status, runs: pd.DataFrame) -> None:
    """The last training, if any, did not fail (the weekly retraining works)."""
    train = _step(runs, TRAIN, None, st.checked_at)
    if train.last_status is None:
        return
    st.steps.append(train)
    if train.last_status == names.FAILED:
        st.problems.append(Problem(
            al.RUN_FAILED, f"{TRAIN}:{train.target}", al.ERROR,
            f"last training ({train.run_date}) failed: {train.error}"))


def _judge_scoring(st: Status, runs: pd.DataFrame, limit: dt.timedelta,
                   model_problem: str | None) -> None:
    """A usable champion, whose last scoring did not fail and succeeded within the limit."""
    now = st.checked_at
    scoring = _step(runs, RECOMMEND, None, now)
    if scoring.last_status is not None:
        st.steps.append(scoring)
    if model_problem:
        st.problems.append(Problem(MODEL_UNREADABLE, "models", al.ERROR, model_problem))
    elif st.model is None:
        st.problems.append(Problem("no_model", "models", al.WARNING,
                                   "no champion model yet, so nothing is scored; "
                                   "run 'lakehouse train'"))
    elif scoring.last_status == names.FAILED:
        st.problems.append(Problem(
            al.RUN_FAILED, f"{RECOMMEND}:{scoring.target}", al.ERROR,
            f"last scoring ({scoring.run_date}) failed: {scoring.error}"))
    elif scoring.last_success_at is None or now - scoring.last_success_at > limit:
        when = (f"the last one finished {_hours(now - scoring.last_success_at)} ago"
                if scoring.last_success_at else "it never ran")
        st.problems.append(Problem(
            al.MISSED_SCORING, RECOMMEND, al.ERROR,
            f"no scoring run within {st.stale_hours:g} h ({when}); "
            "run 'lakehouse recommend'"))


def _list_tables(st: Status, lake: Lake) -> None:
    try:
        st.tables = lake.tables()
        st.lake_bytes = lake.size_bytes()
    except Exception as exc:  # a broken table is a problem to report, not a crash
        st.problems.append(Problem(TABLE_UNREADABLE, "lake", al.ERROR,
                                   f"cannot list the lake's tables: {first_line(exc)}"))
    for info in st.tables:
        if info.problem:
            st.problems.append(Problem(TABLE_UNREADABLE, info.name, al.ERROR, info.problem))


def _step(runs: pd.DataFrame, pipeline: str, target: str | None,
          now: dt.datetime) -> StepStatus:
    mine = runs[runs["pipeline"] == pipeline]
    if target is not None:
        mine = mine[mine["target"] == target]
    step = StepStatus(pipeline, target or "")
    if mine.empty:
        return step
    last = mine.iloc[-1]
    step.target = str(last["target"])
    step.last_status = str(last["status"])
    step.last_run_at = _ts(last["finished_at"]) or _ts(last["started_at"])
    step.run_date = last["run_date"]
    step.records = None if pd.isna(last["records"]) else int(last["records"])
    if step.last_status == names.FAILED and not pd.isna(last["error"]):
        step.error = str(last["error"])
    ok = mine[mine["status"] == names.SUCCESS]
    if not ok.empty:
        last_ok = ok.iloc[-1]
        step.last_success_at = _ts(last_ok["finished_at"]) or _ts(last_ok["started_at"])
        step.age_hours = round((now - step.last_success_at).total_seconds() / 3600, 2)
    return step


def _judge(st: Status, step: StepStatus, subject: str, what: str, limit: dt.timedelta,
           now: dt.datetime, never: str) -> None:
    if step.last_status is None:
        st.problems.append(Problem(al.STALE, subject, al.ERROR, never))
        return
    if step.last_status == names.FAILED:
        st.problems.append(Problem(al.RUN_FAILED, subject, al.ERROR,
                                   f"last {what} ({step.run_date}) failed: {step.error}"))
    _judge_fresh(st, step, subject, what, limit)


def _judge_fresh(st: Status, step: StepStatus, subject: str, what: str,
                 limit: dt.timedelta) -> None:
    if step.last_success_at is None:
        st.problems.append(Problem(al.STALE, subject, al.ERROR,
                                   f"{what} never succeeded"))
    elif st.checked_at - step.last_success_at > limit:
        st.problems.append(Problem(
            al.STALE, subject, al.ERROR,
            f"{what} is stale: last success {_hours(st.checked_at - step.last_success_at)} "
            f"ago (limit {st.stale_hours:g} h)"))


def _champion(settings: Settings) -> tuple[ModelStatus | None, str | None]:
    """The champion, and what keeps it from scoring (a damaged registry), if anything."""
    try:
        from lakehouse.recsys.registry import Registry
    except ImportError as exc:  # no recommender installed: nothing to judge
        log.warning("cannot read the model registry: %s", exc)
        return None, None
    registry = Registry(settings.models_dir)
    try:
        version = registry.alias(names.CHAMPION)
        if not version:
            return None, None
        registry.verify(version)  # model.json parses and the artifact matches its sha256
        info = registry.get(version)
        count = len(registry.versions())
    except LakehouseError as exc:
        return None, f"the champion model cannot be used: {first_line(exc)}"
    metrics = info.metrics or {}
    return ModelStatus(version=info.version, created_at=info.created_at,
                       metrics=dict(metrics.get("model") or {}),
                       baseline=dict(metrics.get("baseline") or {}), versions=count), None


def _last_score_date(lake: Lake) -> dt.date | None:
    if not lake.exists(names.CONS_RECOMMENDATIONS):
        return None
    try:
        value = lake.sql(f"SELECT max({names.SCORE_DATE}) FROM "
                         f"{names.CONS_RECOMMENDATIONS}").fetchone()[0]
    except Exception as exc:  # reported as unknown rather than failing the status
        log.warning("cannot read the last score date: %s", exc)
        return None
    return value


def _ts(value: Any) -> dt.datetime | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).to_pydatetime()


def _hours(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def status_sections(st: Status) -> list[tuple[str, list[str], list[tuple]]]:
    """The status as titled tables (title, columns, rows), for printing."""
    def step_row(s: StepStatus) -> tuple:
        return (s.pipeline, s.target, s.last_status or "never", s.run_date, s.last_run_at,
                s.age_hours, s.records, (s.error or "")[:80])

    step_cols = ["pipeline", "target", "last_status", "run_date", "last_run_at",
                 "hours_since_success", "records", "error"]
    sections = [
        ("Endpoints", step_cols, [step_row(s) for s in st.endpoints]),
        ("Pipeline steps", step_cols, [step_row(s) for s in st.steps]),
        ("Tables", ["table", "rows", "size_bytes", "version", "last_modified"],
         [(t.name, t.rows, t.size_bytes, t.version, t.last_modified) for t in st.tables]),
    ]
    if st.model is not None:
        sections.append((
            f"Champion model {st.model.version} (of {st.model.versions})",
            ["metric", "model", "baseline"],
            [(k, st.model.metrics.get(k), st.model.baseline.get(k)) for k in METRIC_KEYS]))
    sections.append(("Problems", ["severity", "kind", "subject", "message"],
                     [(p.severity, p.kind, p.subject, p.message) for p in st.problems]))
    return sections

"""The monitoring report: one self-contained HTML file that opens offline.

Charts are inline SVG (:mod:`lakehouse.monitor.charts`), styles are inline,
there is no script, font or image to fetch: the file can be mailed, archived
or opened from a laptop with no network. Contents: health, user KPIs, pipeline
KPIs (runs, durations, records, cost, table and lake sizes), recent failures,
quarantine by reason, the recommendations over score dates (coverage,
popularity concentration, overlap, cold-start share, holdout metrics, with
alerts), the online outcomes (served precision against popularity's over score
dates, per model version, with the online-lift alert), model metrics per
version against the popularity baseline, and recent alerts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from lakehouse import __version__, names
from lakehouse.config import Settings
from lakehouse.context import RunContext, as_context
from lakehouse.errors import BrokenTableError, ConfigError
from lakehouse.lake import check_outside_lake, utc_now
from lakehouse.monitor import charts
from lakehouse.monitor import outcomes as online
from lakehouse.monitor.alerts import read_alerts
from lakehouse.monitor.kpis import (
    USER_KPI_COLUMNS,
    PipelineKpis,
    frame_rows,
    pipeline_kpis,
    user_kpis,
)
from lakehouse.monitor.recommendations import COLUMNS as REC_COLUMNS
from lakehouse.monitor.recommendations import recommendation_alerts, recommendation_kpis
from lakehouse.monitor.runs import details_of, empty_runs, read_runs
from lakehouse.monitor.status import METRIC_KEYS, Status, status
from lakehouse.output import format_cell, human_bytes

log = logging.getLogger(__name__)
T = TypeVar("T")

# Every chart the report draws (``id="chart-<name>"``), drawn even when empty.
CHARTS = (
    "users", "new_users", "listens", "history_size",
    "runs", "duration_avg", "duration_p95", "records", "cost", "lake_size", "table_sizes",
    "quarantine_reasons", "quarantine_trend",
    "recs_coverage", "recs_concentration", "recs_cold_start", "online_precision",
    *(f"model_{k}" for k in METRIC_KEYS),
)
LATEST = "latest.html"
MAX_TABLE_LINES = 8


def write_report(target: RunContext | Settings | None = None, out: Path | None = None) -> Path:
    """Write the HTML monitoring report of the lake.

    Args:
        target: The run context, or settings: which lake (and its thresholds
            and cost rate).
        out: The file to write, or a folder to write it in (default:
            ``<lake>/reports/``); the file name defaults to
            ``report-<date>.html``, the date being the lake's latest run date
            (today, UTC, before any run). A report written into a folder is
            also copied to that folder's ``latest.html`` (it is the newest: it
            shows the lake as it is now). A copy, not a symlink: it opens in
            any browser from any copy of the folder (a zip, a mail, a share).

    Returns:
        The path written.

    Raises:
        LakeError: There is no lake at ``settings.lake``.
        ConfigError: ``out`` cannot be written.
    """
    ctx = as_context(target)
    settings = ctx.settings
    into_folder = out is None or Path(out).expanduser().is_dir()
    if out is not None:
        out = Path(out).expanduser()
        # Refused before the (slow) render; a folder's report and latest.html go in it.
        check_outside_lake(settings.lake, out / LATEST if into_folder else out, "the report")
    html, latest_run = _render(ctx)
    default_name = f"report-{(latest_run or utc_now().date()).isoformat()}.html"
    if out is None:
        path = settings.reports_dir / default_name
    else:
        path = out / default_name if into_folder else out
    _write_atomic(path, html)
    if into_folder:
        _write_atomic(path.parent / LATEST, html)
    return path


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the report to {path}: {exc.strerror}; "
                          "choose another --out") from None


def render_report(target: RunContext | Settings | None = None) -> str:
    """The report as an HTML string (see :func:`write_report`).

    The lake is opened once and ``meta.runs`` read once, for every section.
    """
    return _render(as_context(target))[0]


def _render(ctx: RunContext) -> tuple[str, dt.date | None]:
    """The report, and the lake's latest run date (what its data is as of; None: no run)."""
    settings, lake = ctx.settings, ctx.lake()
    # A broken table is shown as a problem in the health section (status found
    # it); the sections that read it are then empty rather than the report lost.
    runs = _unless_broken(lambda: read_runs(lake), lambda: None)
    st = status(ctx, runs=runs)  # with runs None, status reads and reports meta.runs
    runs = empty_runs() if runs is None else runs
    users = _unless_broken(lambda: user_kpis(ctx), lambda: pd.DataFrame(
        columns=USER_KPI_COLUMNS))
    pipe = _unless_broken(lambda: pipeline_kpis(ctx, runs=runs),
                          lambda: pipeline_kpis(ctx, runs=empty_runs()))
    models, champion = _models(settings)
    recs = _unless_broken(lambda: recommendation_kpis(lake, runs, models),
                          lambda: pd.DataFrame(columns=REC_COLUMNS))
    outcomes = _unless_broken(lambda: online.read_outcomes(lake),
                              lambda: pd.DataFrame(columns=online.COLUMNS))
    sections = [
        _health(st),
        _section("User KPIs", "users", _user_charts(users)),
        _section("Pipeline KPIs", "pipeline", _pipeline_charts(pipe) + _monthly_table(pipe)),
        _section("Recent failures", "failures", _failures(runs)),
        _section("Quarantine", "quarantine", _quarantine(runs)),
        _section("Recommendations", "recommendations",
                 _recommendations(recs, recommendation_alerts(settings, recs))),
        _section("Online outcomes", "outcomes", _online_outcomes(settings, outcomes, champion)),
        _section("Models", "models", _model_charts(models, champion)),
        _section("Recent alerts", "alerts", _alerts(ctx)),
    ]
    title = f"Lakehouse report: {lake.root.name}"
    latest_run = max(runs["run_date"]) if not runs.empty else None
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title>"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p class=\"muted\">Lake {escape(str(lake.root))}"
        f" &middot; generated {escape(st.checked_at.isoformat(timespec='seconds'))}"
        f" &middot; lakehouse {escape(__version__)}</p></header>"
        + "".join(sections) + "</body></html>\n"
    ), latest_run


# ---------------------------------------------------------------- sections
def _unless_broken(read: Callable[[], T], empty: Callable[[], T]) -> T:
    try:
        return read()
    except BrokenTableError as exc:
        log.warning("report section left empty: %s", exc)
        return empty()


def _section(title: str, anchor: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(format_cell(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _health(st: Status) -> str:
    badge = ('<span class="badge ok">healthy</span>' if st.healthy
             else '<span class="badge bad">unhealthy</span>')
    problems = _table(["severity", "kind", "subject", "message"],
                      [(p.severity, p.kind, p.subject, p.message) for p in st.problems],
                      "No problem found.")
    steps = _table(
        ["pipeline", "target", "last status", "run date", "last run", "hours since success",
         "records"],
        [(s.pipeline, s.target, s.last_status or "never", s.run_date, s.last_run_at,
          s.age_hours, s.records) for s in st.endpoints + st.steps], "Nothing ran yet.")
    tables = _table(["table", "rows", "size", "version", "last modified"],
                    [(t.name, t.rows, human_bytes(t.size_bytes), t.version,
                      t.last_modified) for t in st.tables], "No table yet.")
    champion = (f"Champion model <b>{escape(st.model.version)}</b>" if st.model
                else "No champion model yet")
    recs = (f"last recommendations for <b>{st.last_recommendations}</b>"
            if st.last_recommendations else "no recommendations yet")
    return _section("Health", "health",
                    f"<p>{badge} Lake size {escape(human_bytes(st.lake_bytes))} on disk; "
                    f"{champion}; {recs}. Stale after {st.stale_hours:g} h.</p>"
                    f"{problems}<h3>Last runs</h3>{steps}<h3>Tables</h3>{tables}")


def _series(frame: pd.DataFrame, column: str) -> list[float | None]:
    return [None if pd.isna(v) else float(v) for v in frame[column]] \
        if column in frame.columns else [None] * len(frame)


def _user_charts(users: pd.DataFrame) -> str:
    days = [str(d) for d in users["date"]]
    empty = "no consumption.daily_kpis yet: run 'lakehouse build'"
    return "".join([
        charts.line_chart("users", "Total users and tracks", days,
                          {"users": _series(users, "total_users"),
                           "tracks": _series(users, "total_tracks")}, empty=empty),
        charts.bar_chart("new_users", "New users and tracks per day", days,
                         {"new users": _series(users, "new_users"),
                          "new tracks": _series(users, "new_tracks")}, empty=empty),
        charts.line_chart("listens", "Listens and active listeners per day", days,
                          {"listens": _series(users, "listens"),
                           "active listeners": _series(users, "active_listeners")},
                          empty=empty),
        charts.line_chart("history_size", "Average listen-history size", days,
                          {"tracks per listener": _series(users, "avg_listen_history_size")},
                          empty=empty),
    ])


def _pivot(frame: pd.DataFrame, index: str, column: str, value: str,
           fill: float | None = None) -> tuple[list[str], dict[str, list[float | None]]]:
    if frame.empty:
        return [], {}
    wide = frame.pivot_table(index=index, columns=column, values=value, aggfunc="sum",
                             dropna=False).sort_index()
    cats = [str(i) for i in wide.index]
    return cats, {str(c): [fill if pd.isna(v) else float(v) for v in wide[c]]
                  for c in wide.columns}


def _pipeline_charts(pipe: PipelineKpis) -> str:
    daily = pipe.daily
    empty = "no runs yet"
    if daily.empty:
        days: list[str] = []
        outcome: dict[str, list] = {}
    else:
        per_day = daily.groupby("date", sort=True)[["succeeded", "failed"]].sum()
        days = [str(d) for d in per_day.index]
        outcome = {"succeeded": per_day["succeeded"].tolist(),
                   "failed": per_day["failed"].tolist()}
    avg_days, avg = _pivot(daily, "date", "pipeline", "avg_duration_s")
    p95_days, p95 = _pivot(daily, "date", "pipeline", "p95_duration_s")
    rec_days, records = _pivot(daily, "date", "pipeline", "records")
    cost_days, cost = _pivot(daily, "date", "pipeline", "cost", fill=0.0)
    lake = pipe.lake_size
    sizes = pipe.table_sizes
    size_days, per_table = _pivot(sizes, "date", "table", "size_bytes")
    if len(per_table) > MAX_TABLE_LINES:
        biggest = sorted(per_table, key=lambda t: -max(v or 0 for v in per_table[t]))
        per_table = {t: per_table[t] for t in biggest[:MAX_TABLE_LINES]}
    rate = pipe.cost_per_cpu_hour
    return "".join([
        charts.bar_chart("runs", "Runs per day", days, outcome, stacked=True, empty=empty),
        charts.line_chart("duration_avg", "Average run duration per pipeline", avg_days, avg,
                          y_fmt=charts.fmt_seconds, empty=empty),
        charts.line_chart("duration_p95", "p95 run duration per pipeline", p95_days, p95,
                          y_fmt=charts.fmt_seconds, empty=empty),
        charts.line_chart("records", "Records written per day", rec_days, records,
                          empty=empty),
        charts.bar_chart("cost", f"Estimated cost per day (CPU hours x {rate:g})", cost_days,
                         cost, stacked=True, y_fmt=charts.fmt_money, empty=empty,
                         note=f"Total for the period: {pipe.total_cost:.4g}"),
        charts.line_chart("lake_size", "Lake size (live data files)",
                          [str(d) for d in lake["date"]],
                          {"bytes": _series(lake, "size_bytes")}, y_fmt=human_bytes,
                          empty=empty),
        charts.line_chart("table_sizes", "Table sizes", size_days, per_table,
                          y_fmt=human_bytes, empty=empty,
                          note="At the version each day's run wrote; the "
                               f"{MAX_TABLE_LINES} largest tables."),
    ])


def _monthly_table(pipe: PipelineKpis) -> str:
    return "<h3>Per month</h3>" + _table(list(pipe.monthly.columns), frame_rows(pipe.monthly),
                                         "No runs yet.")


def _failures(runs: pd.DataFrame, limit: int = 20) -> str:
    failed = runs[runs["status"] == names.FAILED].tail(limit).iloc[::-1]
    rows = [(r.started_at.to_pydatetime() if not pd.isna(r.started_at) else None,
             r.pipeline, r.target, r.run_date, r.error) for r in failed.itertuples()]
    return _table(["started", "pipeline", "target", "run date", "error"], rows,
                  "No failed run.")


def _quarantine(runs: pd.DataFrame) -> str:
    builds = runs[(runs["pipeline"] == names.BUILD) & (runs["status"] == names.SUCCESS)]
    reasons: dict[str, float] = {}
    if not builds.empty:
        # The latest build of each table says what is in quarantine now.
        latest = builds.groupby("target").tail(1)
        for row in latest.itertuples():
            for reason, n in details_of(row.details).get("quarantine_reasons", {}).items():
                reasons[f"{row.target}: {reason}"] = float(n)
    trend: dict[str, dict[str, float]] = defaultdict(dict)
    for row in builds.itertuples():
        if not pd.isna(row.quarantined) and row.quarantined:
            trend[row.target][str(row.run_date)] = float(row.quarantined)
    days = sorted({d for per in trend.values() for d in per})
    return (charts.hbar_chart("quarantine_reasons", "Quarantined rows by reason (latest build)",
                              list(reasons), list(reasons.values()),
                              empty="nothing quarantined")
            + charts.bar_chart("quarantine_trend", "Quarantined rows per build day", days,
                               {t: [per.get(d, 0.0) for d in days]
                                for t, per in sorted(trend.items())},
                               stacked=True, empty="nothing quarantined"))


def _recommendations(recs: pd.DataFrame, alerts: list[Any]) -> str:
    days = [str(d) for d in recs["score_date"]]
    empty = "no recommendations yet: run 'lakehouse recommend'"
    flagged = "".join(f'<p><span class="badge bad">alert</span> {escape(a.message)}</p>'
                      for a in alerts)
    table = _table(
        ["score date", "model", "users", "tracks", "coverage", "top 1% share", "overlap",
         "cold start", "holdout p@10", "holdout ndcg@10"],
        [(r.score_date, r.model_version, r.users, r.tracks, _pct(r.coverage),
          _pct(r.top1_share), _pct(r.overlap), _pct(r.cold_start_share),
          r.holdout_precision_at_10, r.holdout_ndcg_at_10)
         for r in recs.iloc[::-1].head(30).itertuples()], empty)
    return flagged + "".join([
        charts.line_chart("recs_coverage", "Catalogue coverage and overlap with the previous day",
                          days, {"coverage": _series(recs, "coverage"),
                                 "overlap": _series(recs, "overlap")},
                          y_fmt=_pct, empty=empty,
                          note="Coverage: distinct tracks recommended / catalogue. Overlap: "
                               "share of a user's tracks also in their previous list."),
        charts.line_chart("recs_concentration", "Share of slots going to the top 1% of tracks",
                          days, {"top 1% by listeners": _series(recs, "top1_share")},
                          y_fmt=_pct, empty=empty),
        charts.line_chart("recs_cold_start", "Cold-start share of scored users", days,
                          {"cold start": _series(recs, "cold_start_share")},
                          y_fmt=_pct, empty=empty,
                          note="Users without training listens, scored through their "
                               "features."),
    ]) + "<h3>Per score date (newest first)</h3>" + table


def _online_outcomes(settings: Settings, frame: pd.DataFrame, champion: str | None) -> str:
    days = [str(d) for d in frame[names.SCORE_DATE]]
    empty = "no outcome yet: lists need a later ingest date ('lakehouse outcomes')"
    series: dict[str, list[float | None]] = {}
    for version in dict.fromkeys(frame[names.MODEL_VERSION]):
        mine = frame[names.MODEL_VERSION] == version
        series[f"served {version}"] = [None if not m or pd.isna(v) else float(v) for m, v in
                                       zip(mine, frame[names.O_PRECISION], strict=True)]
    series["popularity"] = _series(frame, names.O_POP_PRECISION)
    flagged = "".join(f'<p><span class="badge bad">alert</span> {escape(a.message)}</p>'
                      for a in online.online_alerts(settings, frame, champion))
    latest = frame[frame[names.O_COMPLETE].astype(bool)].tail(1)
    if not latest.empty and int(latest[names.O_USERS].iloc[0]) < online.MIN_USERS:
        flagged += (f'<p><span class="badge warn">note</span> only '
                    f"{int(latest[names.O_USERS].iloc[0])} users had new listens after "
                    f"{latest[names.SCORE_DATE].iloc[0]}: too few (under {online.MIN_USERS}) "
                    "to judge the lists</p>")
    lift = online.lift_summary(frame, champion, settings.online_lift_days)
    summary = f'<p class="note">{escape(lift)}.</p>' if champion else ""
    table = _table(
        ["score date", "model", "k", "users", "precision", "popularity precision", "lift",
         "recall", "hit rate", "ndcg", "note"],
        [(r[names.SCORE_DATE], r[names.MODEL_VERSION], r["k"], r[names.O_USERS],
          r[names.O_PRECISION], r[names.O_POP_PRECISION], r[names.O_LIFT], r[names.O_RECALL],
          r[names.O_HIT_RATE], r[names.O_NDCG], online.note(r))
         for _, r in frame.iloc[::-1].head(30).iterrows()], empty)
    return flagged + summary + charts.line_chart(
        "online_precision", "Online precision@k: the served lists against popularity's",
        days, series, empty=empty,
        note=f"Per score date: the served top-k against what users started playing in the "
             f"next {settings.online_horizon_days} ingest days, beside popularity's top-k "
             "as of that date for the same users. Recent dates are open (partial). The "
             "served lists influence what users play, so this favours the served "
             "model.") + "<h3>Per score date (newest first)</h3>" + table


def _pct(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):.1%}"


def _models(settings: Settings) -> tuple[list[Any], str | None]:
    try:
        from lakehouse.recsys.registry import Registry

        registry = Registry(settings.models_dir)
        return registry.versions(), registry.alias(names.CHAMPION)
    except Exception as exc:  # no registry yet, or a damaged one: the report still renders
        log.warning("cannot read the model registry: %s", exc)
        return [], None


def _model_charts(models: list[Any], champion: str | None) -> str:
    versions = [m.version + (" *" if m.version == champion else "") for m in models]
    parts = []
    for key in METRIC_KEYS:
        series = {
            "model": [_metric(m, "model", key) for m in models],
            "popularity baseline": [_metric(m, "baseline", key) for m in models],
        }
        parts.append(charts.bar_chart(f"model_{key}", f"{key} per model version", versions,
                                      series, empty="no model trained yet"))
    rows = [(m.version, names.CHAMPION if m.version == champion else "",
             m.created_at, *(_metric(m, "model", k) for k in METRIC_KEYS),
             *(_metric(m, "baseline", k) for k in METRIC_KEYS[:3])) for m in models]
    cols = ["version", "alias", "created", *METRIC_KEYS,
            *(f"baseline {k}" for k in METRIC_KEYS[:3])]
    return ("".join(parts) + '<p class="note">* = champion.</p>'
            + _table(cols, rows, "No model trained yet."))


def _metric(model: Any, which: str, key: str) -> float | None:
    value = ((getattr(model, "metrics", None) or {}).get(which) or {}).get(key)
    return None if value is None else float(value)


def _alerts(ctx: RunContext) -> str:
    try:
        alerts = read_alerts(ctx, limit=20)
    except Exception as exc:  # the alert log is optional for the report
        log.warning("cannot read alerts: %s", exc)
        alerts = []
    rows = [(a["created_at"], a["severity"], a["kind"], a["subject"],
             "suppressed (repeat)" if a["suppressed"] else "sent", a["message"])
            for a in alerts]
    return _table(["when", "severity", "kind", "subject", "delivery", "message"], rows,
                  "No alert raised.")


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;
max-width:1340px;color:#222;padding:0 16px}
h1{margin-bottom:4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
.muted{color:#777}.note{color:#555;font-size:12px;margin:2px 0}
figure.chart{display:inline-block;vertical-align:top;margin:8px 12px 16px 0;
border:1px solid #eee;padding:8px;border-radius:6px}
figcaption{font-weight:600;margin-bottom:4px}
svg text{font-size:11px;fill:#444}svg .grid{stroke:#eee}svg .axis{stroke:#999}
svg .empty{fill:#fafafa}svg .muted{fill:#999;font-size:14px}
.legend{font-size:12px}.key{margin-right:12px}
.key i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5}td{max-width:520px;overflow-wrap:anywhere}
.badge{padding:2px 10px;border-radius:10px;color:#fff;font-weight:600}
.ok{background:#1a7f37}.bad{background:#cf222e}.warn{background:#9a6700}
"""

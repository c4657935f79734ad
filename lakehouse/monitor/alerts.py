"""Alerts: what deserves a human's attention, sent once per window to the sinks.

Rules (:func:`notify_runs`, called by the CLI after every pipeline command):

- ``run_failed``: a run ended with status ``failed``;
- ``quarantine_share``: a build quarantined more than
  ``settings.max_quarantine_share`` of a table's input rows;
- ``row_change``: an ingest or build wrote a row count that differs from the
  previous day's (same pipeline and target) by more than
  ``settings.max_row_change`` (0.5 = +-50 %);
- ``gate_failed``: a trained challenger was not promoted;
- ``recommendation_coverage_change`` / ``recommendation_overlap_change``: after
  a scoring run, the lists' catalogue coverage or their overlap with the
  previous day's moved beyond a threshold
  (:mod:`lakehouse.monitor.recommendations`).

:func:`lakehouse.monitor.status.status` adds ``stale`` and ``missed_scoring``
alerts (``lakehouse status --alert``, run by ``scripts/daily.sh``).

De-duplication: an alert's identity is its ``key`` (kind and subject, e.g.
``run_failed:ingest:users``), not its wording, so a problem that keeps failing
with slightly different messages is announced once per
``settings.alert_window_minutes``. Every alert, sent or suppressed, is appended
to ``meta.alerts``, which is also the de-duplication state: it survives
restarts, is readable with SQL, and is shared by concurrent runs (the check
and the append happen under the lake's ``alerts`` lock).

Sinks: ``settings.alert_webhook`` receives a POST of ``{"text": ..., "alert":
{...}}`` (Slack and Microsoft Teams incoming webhooks show ``text``), and
``settings.alert_command`` (split like a shell would, run without a shell)
receives the same JSON on stdin. A sink failure is logged and never raised;
the webhook URL is a secret and never logged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shlex
import subprocess
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.context import RunContext, as_context
from lakehouse.errors import LakehouseError
from lakehouse.lake import Lake, utc_now
from lakehouse.locking import lake_lock
from lakehouse.monitor.alert import (  # noqa: F401 - kinds re-exported for callers
    ERROR,
    GATE_FAILED,
    JOB_FAILED,
    MISSED_SCORING,
    QUARANTINE_SHARE,
    ROW_CHANGE,
    RUN_FAILED,
    STALE,
    TEST,
    WARNING,
    Alert,
)
from lakehouse.runlog import RunRecord
from lakehouse.tablespec import Column, TableSpec

log = logging.getLogger(__name__)


WEBHOOK_TIMEOUT = 10.0
COMMAND_TIMEOUT = 30.0
_LOCK_TIMEOUT = 60.0

ALERTS = TableSpec(names.META_ALERTS, (
    *(Column(n, pa.string()) for n in ("alert_id", "key", "kind", "severity", "subject",
                                       "message")),
    Column("details", pa.string(), doc="JSON object"),
    Column("created_at", pa.timestamp("us", tz="UTC")),
    Column("suppressed", pa.bool_(),
           doc="True: an alert with this key was sent within the window"),
    Column("delivered", pa.string(), doc='JSON object: sink -> "ok" | error class'),
    Column("host", pa.string()),
))
ALERTS_SCHEMA = ALERTS.arrow()


# ---------------------------------------------------------------- rules
def run_alerts(
    settings: Settings, records: Sequence[RunRecord], history: pd.DataFrame | None = None
) -> list[Alert]:
    """The alerts ``records`` deserve, without sending anything.

    Args:
        settings: Thresholds (``max_quarantine_share``, ``max_row_change``).
        records: Runs that just finished.
        history: ``meta.runs`` as read by
            :func:`lakehouse.monitor.runs.read_runs`, for the previous day's
            row counts; without it there is no ``row_change`` rule.
    """
    alerts: list[Alert] = []
    for rec in records:
        subject = f"{rec.pipeline}:{rec.target}"
        base = {"run_id": rec.run_id, "pipeline": rec.pipeline, "target": rec.target,
                "run_date": str(rec.run_date)}
        if not rec.ok:
            alerts.append(Alert(
                RUN_FAILED, subject, ERROR,
                f"{rec.pipeline} {rec.target} failed for {rec.run_date}: "
                f"{rec.error or 'no error message'}",
                {**base, "error": rec.error}))
            continue
        if rec.pipeline == names.BUILD and rec.rows_in and rec.quarantined:
            share = rec.quarantined / rec.rows_in
            if share > settings.max_quarantine_share:
                reasons = (rec.details or {}).get("quarantine_reasons") or {}
                top = ", ".join(f"{r}: {n}" for r, n in sorted(
                    reasons.items(), key=lambda kv: -kv[1])[:3])
                alerts.append(Alert(
                    QUARANTINE_SHARE, rec.target, WARNING,
                    f"build {rec.target} quarantined {rec.quarantined} of {rec.rows_in} rows "
                    f"({share:.1%} > {settings.max_quarantine_share:.1%})"
                    + (f"; top reasons: {top}" if top else ""),
                    {**base, "quarantined": rec.quarantined, "rows_in": rec.rows_in,
                     "share": round(share, 4), "threshold": settings.max_quarantine_share,
                     "reasons": reasons}))
        if rec.pipeline in (names.INGEST, names.BUILD) and rec.records is not None:
            alert = _row_change_alert(settings, rec, base, history)
            if alert:
                alerts.append(alert)
        if rec.pipeline == names.TRAIN:
            details = rec.details or {}
            if "promoted" in details and not details["promoted"]:
                alerts.append(Alert(
                    GATE_FAILED, f"train:{rec.target}", WARNING,
                    f"challenger {details.get('version', '?')} was not promoted: "
                    f"{details.get('reason') or 'it did not pass the gate'}",
                    {**base, "version": details.get("version"), "reason": details.get("reason"),
                     "metrics": details.get("metrics")}))
    return alerts


def _row_change_alert(settings: Settings, rec: RunRecord, base: dict,
                      history: pd.DataFrame | None) -> Alert | None:
    if history is None:
        return None
    prev = history[(history["pipeline"] == rec.pipeline) & (history["target"] == rec.target)
                   & (history["status"] == names.SUCCESS) & history["records"].notna()
                   & (history["run_date"] < rec.run_date)]
    if prev.empty:
        return None
    last = prev.sort_values(["run_date", "finished_at"]).iloc[-1]
    before = int(last["records"])
    if before == 0:
        return None
    change = (rec.records - before) / before
    if abs(change) <= settings.max_row_change:
        return None
    return Alert(
        ROW_CHANGE, f"{rec.pipeline}:{rec.target}", WARNING,
        f"{rec.pipeline} {rec.target} has {rec.records} rows on {rec.run_date}, "
        f"{change:+.0%} from {before} on {last['run_date']} "
        f"(more than +-{settings.max_row_change:.0%})",
        {**base, "records": rec.records, "previous_records": before,
         "previous_date": str(last["run_date"]), "change": round(change, 4),
         "threshold": settings.max_row_change})


# ---------------------------------------------------------------- entry points
def notify_runs(settings: Settings, records: Sequence[RunRecord]) -> list[Alert]:
    """Alert on the runs that just finished; never raises.

    Called by the CLI after ``ingest``, ``build``, ``train`` and ``recommend``
    with the records those wrote to ``meta.runs``.

    Args:
        settings: Thresholds, window and sinks.
        records: The finished runs.

    Returns:
        The alerts raised, each marked ``suppressed`` if it was already sent
        within the window, with the sinks' outcome in ``delivered``.
    """
    history = None
    if any(r.ok and r.pipeline in (names.INGEST, names.BUILD) for r in records):
        try:
            from lakehouse.monitor.runs import read_runs

            history = read_runs(Lake(settings.lake, create=False))
        except Exception as exc:  # still alert on failures without the history
            log.warning("cannot read %s for the row-change rule: %s", names.META_RUNS, exc)
    try:
        alerts = run_alerts(settings, records, history)
    except Exception:  # a monitoring bug must never fail the pipeline it watches
        log.exception("could not evaluate alert rules; no alert sent for %d run(s)",
                      len(records))
        return []
    if any(r.ok and r.pipeline == names.RECOMMEND for r in records):
        alerts += _recommendation_alerts(settings)
    if any(r.ok and r.pipeline == names.OUTCOMES for r in records):
        alerts += _outcome_alerts(settings)
    return send_alerts(settings, alerts)


def _outcome_alerts(settings: Settings) -> list[Alert]:
    """The champion's online lift below 1 for days on end (never raises)."""
    try:
        from lakehouse.monitor.outcomes import online_alerts, read_outcomes
        from lakehouse.recsys.registry import Registry

        champion = Registry(settings.models_dir).alias(names.CHAMPION)
        return online_alerts(settings, read_outcomes(Lake(settings.lake, create=False)),
                             champion)
    except Exception as exc:  # a monitoring failure must never fail the step it watches
        log.warning("cannot evaluate the online outcome alerts: %s", exc)
        return []


def _recommendation_alerts(settings: Settings) -> list[Alert]:
    """Coverage and overlap moves of the newest score date (never raises)."""
    try:
        from lakehouse.monitor.recommendations import recommendation_alerts, recommendation_kpis

        lake = Lake(settings.lake, create=False)
        return recommendation_alerts(settings, recommendation_kpis(lake))
    except Exception as exc:  # a monitoring failure must never fail the scoring it watches
        log.warning("cannot evaluate the recommendation alerts: %s", exc)
        return []


def send_alerts(settings: Settings, alerts: Sequence[Alert], *, dedup: bool = True) -> list[Alert]:
    """Send ``alerts`` to the configured sinks, once per key and window.

    Every alert is logged and recorded in ``meta.alerts``. Nothing is raised:
    a sink or alert-log failure is logged and the rest goes on.

    Args:
        settings: Sinks and window.
        alerts: What to send.
        dedup: Skip alerts whose key was sent within the window (False for
            ``lakehouse alert --test``).

    Returns:
        ``alerts``, with ``suppressed`` and ``delivered`` filled in.
    """
    alerts = list(alerts)
    if not alerts:
        return alerts
    if not settings.lake.is_dir():
        # A missing lake (a wrong --lake, say) is alerted but never created by alerting.
        for alert in alerts:
            _deliver(settings, alert)
        return alerts
    try:
        with lake_lock(settings.locks_dir, "alerts", timeout=_LOCK_TIMEOUT):
            _send_locked(settings, alerts, dedup)
    except LakehouseError as exc:
        # No lock or no writable lake: a duplicate alert beats a missing one.
        log.warning("alert log unavailable (%s); sending without de-duplication", exc)
        for alert in alerts:
            if not alert.delivered:
                _deliver(settings, alert)
    return alerts


def _send_locked(settings: Settings, alerts: list[Alert], dedup: bool) -> None:
    lake = Lake(settings.lake)
    recent = recently_sent(lake, settings.alert_window_minutes) if dedup else set()
    for alert in alerts:
        if alert.key in recent:
            alert.suppressed = True
            log.info("alert %s already sent within %g min; not repeated",
                     alert.key, settings.alert_window_minutes)
            continue
        _deliver(settings, alert)
        recent.add(alert.key)
    try:
        lake.write(names.META_ALERTS, _to_table(alerts), mode="append")
    except LakehouseError as exc:
        log.warning("could not record %d alert(s) in %s: %s", len(alerts), names.META_ALERTS, exc)


def recently_sent(lake: Lake, window_minutes: float) -> set[str]:
    """Keys of the alerts sent (not suppressed) within the last ``window_minutes``."""
    if window_minutes <= 0 or not lake.exists(names.META_ALERTS):
        return set()
    table = lake.to_arrow(names.META_ALERTS).select(["key", "created_at", "suppressed"])
    cutoff = utc_now() - dt.timedelta(minutes=window_minutes)
    return {row["key"] for row in table.to_pylist()
            if not row["suppressed"] and row["created_at"] >= cutoff}


def read_alerts(target: RunContext | Settings | None = None,
                limit: int | None = 50) -> list[dict[str, Any]]:
    """The most recent alerts recorded in ``meta.alerts``, newest first.

    Args:
        target: The run context (its lake handle is used), or settings.
        limit: At most this many (None: all).
    """
    lake = as_context(target).lake()
    if not lake.exists(names.META_ALERTS):
        return []
    rows = sorted(lake.to_arrow(names.META_ALERTS).to_pylist(),
                  key=lambda r: r["created_at"], reverse=True)
    return rows[:limit] if limit else rows


def send_test_alert(settings: Settings) -> Alert:
    """Send a test alert to every configured sink, bypassing de-duplication.

    Raises:
        ConfigError: No sink is configured.
    """
    from lakehouse.errors import ConfigError

    if not settings.alert_webhook and not settings.alert_command:
        raise ConfigError("no alert sink configured; set LAKEHOUSE_ALERT_WEBHOOK "
                          "and/or LAKEHOUSE_ALERT_COMMAND")
    alert = Alert(TEST, "lakehouse", WARNING,
                  f"test alert from the lakehouse at {settings.lake}: the sinks work")
    return send_alerts(settings, [alert], dedup=False)[0]


def job_failed_alert(settings: Settings, job: str, message: str) -> Alert:
    """Send a ``job_failed`` alert for a scheduled job (``scripts/daily.sh``)."""
    alert = Alert(JOB_FAILED, job, ERROR, message)
    return send_alerts(settings, [alert])[0]


# ---------------------------------------------------------------- sinks
def _deliver(settings: Settings, alert: Alert) -> None:
    log.warning("ALERT %s", alert.text)
    body = json.dumps(alert.payload(settings), default=str)
    if settings.alert_webhook:
        alert.delivered["webhook"] = _post_webhook(settings.alert_webhook, body)
    if settings.alert_command:
        # One JSON document per line, so `tee -a alerts.jsonl` makes a JSON-lines log.
        alert.delivered["command"] = _run_command(settings.alert_command, body + "\n")


def _post_webhook(url: str, body: str) -> str:
    # urllib, not requests: urllib3 logs request paths at debug level, and a
    # Slack/Teams webhook path is the secret itself.
    import urllib.error
    import urllib.request

    try:
        # Inside the try: a malformed URL raises here, with the URL (a secret) in it.
        request = urllib.request.Request(url, data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as resp:
            resp.read(1024)
    except urllib.error.HTTPError as exc:
        log.error("alert webhook at %s answered HTTP %d", _webhook_host(url), exc.code)
        return f"HTTP {exc.code}"
    except Exception as exc:  # noqa: BLE001 - a sink failure must never fail the job
        # What failed and where, never the URL's path or query: on Slack or Teams they are
        # the secret itself (issue 21: the log said only "URLError").
        reason = _webhook_reason(exc, url)
        log.error("alert webhook at %s failed: %s", _webhook_host(url), reason)
        return reason
    return "ok"


def _webhook_host(url: str) -> str:
    """``scheme://host[:port]`` of a webhook URL: where, without the secret path."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unparsable URL)"
    if not parts.scheme or host == "?":
        return "(an unparsable URL)"
    return f"{parts.scheme}://{host}{port}"


def _webhook_reason(exc: BaseException, url: str) -> str:
    """``<class>: <reason>`` of a failed POST, scrubbed of the URL and its parts."""
    import socket
    from urllib.parse import urlsplit

    inner = getattr(exc, "reason", None)
    if isinstance(exc, TimeoutError | socket.timeout) or isinstance(inner, TimeoutError):
        text = f"timed out after {WEBHOOK_TIMEOUT:g} s"
    elif isinstance(inner, OSError):
        text = inner.strerror or str(inner)
    else:
        text = str(inner if inner is not None else exc)
    try:
        parts = urlsplit(url)
        secrets = [url, parts.path, parts.query, parts.password or "", parts.username or ""]
    except ValueError:
        secrets = [url]
    for secret in sorted((s for s in secrets if len(s) > 1), key=len, reverse=True):
        text = text.replace(secret, "<secret>")
    text = " ".join(text.split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _run_command(command: str, body: str) -> str:
    try:
        argv = shlex.split(command)
        done = subprocess.run(argv, input=body, text=True, capture_output=True,
                              timeout=COMMAND_TIMEOUT, check=False)
    except Exception as exc:  # noqa: BLE001 - a sink failure must never fail the job
        log.error("alert command %r failed: %s", command, exc)
        return type(exc).__name__
    if done.returncode != 0:
        log.error("alert command %r exited %d: %s", command, done.returncode,
                  (done.stderr or "").strip()[:200])
        return f"exit {done.returncode}"
    return "ok"


def _to_table(alerts: Sequence[Alert]) -> pa.Table:
    host = os.uname().nodename
    return pa.Table.from_pylist([{
        "alert_id": a.alert_id, "key": a.key, "kind": a.kind, "severity": a.severity,
        "subject": a.subject, "message": a.message,
        "details": json.dumps(a.details, default=str), "created_at": a.created_at,
        "suppressed": a.suppressed, "delivered": json.dumps(a.delivered), "host": host,
    } for a in alerts], schema=ALERTS_SCHEMA)

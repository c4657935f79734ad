"""How the recommendations evolve over score dates, and when that deserves an alert.

Per ``score_date`` of ``consumption.recommendations``:

- **coverage**: distinct recommended tracks / tracks in the catalogue
  (``consumption.track_features`` now);
- **top 1 % share**: the share of recommendation slots that go to the 1 % of
  the catalogue with the most listeners (``consumption.interactions``): how
  much the lists lean on what is already popular;
- **overlap**: for users listed on this date and the previous one, the share
  of today's tracks that were in yesterday's list, averaged over users;
- **cold-start share**: users scored through their features only, out of all
  scored (from the ``recommend`` run's record in ``meta.runs``);
- the **model version** used and its holdout metrics from the registry.

Alerts (:func:`recommendation_alerts`, sent after each ``lakehouse
recommend``): coverage moved by more than ``settings.max_coverage_change``
(relative) from the previous date, or overlap by more than
``settings.max_overlap_change`` (absolute) from the previous date's. A new
model (another ``model_version`` than the previous date's) is expected to
change the lists: the overlap alert waits for two dates of the same model,
and a coverage alert says the model changed.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.lake import Lake
from lakehouse.monitor.alert import WARNING, Alert
from lakehouse.monitor.runs import details_of

COVERAGE_CHANGE = "recommendation_coverage_change"
OVERLAP_CHANGE = "recommendation_overlap_change"
TOP_SHARE = 0.01
METRICS = ("precision_at_10", "ndcg_at_10", "coverage")
COLUMNS = ["score_date", "model_version", "users", "slots", "tracks", "coverage",
           "top1_share", "overlap", "cold_start_share",
           *(f"holdout_{m}" for m in METRICS)]


def recommendation_kpis(lake: Lake, runs: pd.DataFrame | None = None,
                        models: list[Any] | None = None) -> pd.DataFrame:
    """One row per score date (oldest first) with the columns of :data:`COLUMNS`.

    Args:
        lake: The lake.
        runs: ``meta.runs`` as :func:`lakehouse.monitor.runs.read_runs` reads
            it, for the cold-start share (None: unknown).
        models: The registry's versions (``ModelInfo``), for holdout metrics.
    """
    if not lake.exists(names.CONS_RECOMMENDATIONS):
        return pd.DataFrame(columns=COLUMNS)
    recs = names.CONS_RECOMMENDATIONS
    per_day = lake.sql(
        f"SELECT {names.SCORE_DATE} AS score_date, mode(model_version) AS model_version, "
        f"count(DISTINCT {names.USER_ID}) AS users, count(*) AS slots, "
        f"count(DISTINCT {names.TRACK_ID}) AS tracks FROM {recs} GROUP BY 1 ORDER BY 1").df()
    catalogue = _catalogue_size(lake)
    per_day["coverage"] = per_day["tracks"] / catalogue if catalogue else float("nan")
    per_day = per_day.merge(_top_share(lake, catalogue), on="score_date", how="left")
    per_day = per_day.merge(_overlap(lake), on="score_date", how="left")
    per_day["cold_start_share"] = [_cold_share(runs, d) for d in per_day["score_date"]]
    metrics = {m.version: (m.metrics or {}).get("model") or {} for m in models or []}
    for key in METRICS:
        per_day[f"holdout_{key}"] = [metrics.get(v, {}).get(key) for v in per_day["model_version"]]
    per_day["score_date"] = pd.to_datetime(per_day["score_date"]).dt.date
    return per_day[COLUMNS]


def _catalogue_size(lake: Lake) -> int:
    for table in (names.CONS_TRACK_FEATURES, names.CONS_INTERACTIONS):
        if lake.exists(table):
            return int(lake.sql(f"SELECT count(DISTINCT {names.TRACK_ID}) FROM {table}")
                       .fetchone()[0])
    return 0


def _top_share(lake: Lake, catalogue: int) -> pd.DataFrame:
    if not catalogue or not lake.exists(names.CONS_INTERACTIONS):
        return pd.DataFrame({"score_date": [], "top1_share": []})
    top = max(1, math.ceil(TOP_SHARE * catalogue))
    return lake.sql(
        f"WITH top AS (SELECT {names.TRACK_ID} FROM {names.CONS_INTERACTIONS} GROUP BY 1 "
        f"ORDER BY count(*) DESC, 1 LIMIT {top}) "
        f"SELECT r.{names.SCORE_DATE} AS score_date, "
        f"avg(CASE WHEN t.{names.TRACK_ID} IS NULL THEN 0 ELSE 1 END) AS top1_share "
        f"FROM {names.CONS_RECOMMENDATIONS} r LEFT JOIN top t USING ({names.TRACK_ID}) "
        f"GROUP BY 1").df()


def _overlap(lake: Lake) -> pd.DataFrame:
    u, t, d = names.USER_ID, names.TRACK_ID, names.SCORE_DATE
    return lake.sql(f"""
        WITH r AS (SELECT {d} AS day, {u} AS u, {t} AS t FROM {names.CONS_RECOMMENDATIONS}),
        days AS (SELECT day, lag(day) OVER (ORDER BY day) AS prev FROM (SELECT DISTINCT day
                 FROM r)),
        both_days AS (SELECT DISTINCT day AS prev, u FROM r),
        cur AS (SELECT r.day, r.u, r.t, days.prev FROM r JOIN days USING (day)
                JOIN both_days USING (prev, u)),
        per_user AS (SELECT cur.day, cur.u, count(*) AS n, count(o.t) AS common FROM cur
                     LEFT JOIN r o ON o.day = cur.prev AND o.u = cur.u AND o.t = cur.t
                     GROUP BY 1, 2)
        SELECT day AS score_date, avg(common / n) AS overlap FROM per_user GROUP BY 1""").df()


def _cold_share(runs: pd.DataFrame | None, day: Any) -> float | None:
    if runs is None or runs.empty:
        return None
    mine = runs[(runs["pipeline"] == "recommend") & (runs["status"] == names.SUCCESS)
                & (runs["run_date"] == pd.Timestamp(day).date())]
    if mine.empty:
        return None
    details = details_of(mine.iloc[-1]["details"])
    users, cold = details.get("users"), details.get("cold_start_users")
    return cold / users if users and cold is not None else None


def recommendation_alerts(settings: Settings, kpis: pd.DataFrame) -> list[Alert]:
    """Alerts for the newest score date against the one before; nothing is sent.

    The thresholds' ranges are checked when the settings are made (``config.BOUNDS``).
    """
    if len(kpis) < 2:
        return []
    prev, last = kpis.iloc[-2], kpis.iloc[-1]
    base = {"score_date": str(last["score_date"]), "previous_date": str(prev["score_date"]),
            "model_version": last["model_version"]}
    new_model = prev["model_version"] != last["model_version"]
    if new_model:
        base["previous_model_version"] = prev["model_version"]
    alerts = []
    if _known(prev["coverage"]) and prev["coverage"] > 0 and _known(last["coverage"]):
        change = (last["coverage"] - prev["coverage"]) / prev["coverage"]
        if abs(change) > settings.max_coverage_change:
            because = (f"; the model changed from {prev['model_version']} to "
                       f"{last['model_version']}" if new_model else "")
            alerts.append(_moved(
                COVERAGE_CHANGE, "coverage", base, last, prev, change,
                settings.max_coverage_change,
                f"recommendations of {last['score_date']} cover {last['coverage']:.1%} of the "
                f"catalogue, {change:+.0%} from {prev['coverage']:.1%} on {prev['score_date']} "
                f"(more than +-{settings.max_coverage_change:.0%}){because}"))
    if not new_model and _known(prev["overlap"]) and _known(last["overlap"]):
        moved = last["overlap"] - prev["overlap"]
        if abs(moved) > settings.max_overlap_change:
            alerts.append(_moved(
                OVERLAP_CHANGE, "overlap", base, last, prev, moved, settings.max_overlap_change,
                f"recommendations of {last['score_date']} keep {last['overlap']:.0%} of the "
                f"previous day's tracks, {moved * 100:+.0f} points from {prev['overlap']:.0%} "
                f"on {prev['score_date']} (more than +-{settings.max_overlap_change * 100:.0f})"))
    return alerts


def _moved(kind: str, column: str, base: dict[str, Any], last: pd.Series, prev: pd.Series,
           change: float, threshold: float, message: str) -> Alert:
    """The alert that ``column`` moved by ``change``, beyond ``threshold``, since ``prev``."""
    return Alert(kind, names.CONS_RECOMMENDATIONS, WARNING, message,
                 {**base, column: float(last[column]), f"previous_{column}": float(prev[column]),
                  "change": round(float(change), 4), "threshold": threshold})


def _known(value: Any) -> bool:
    return value is not None and not pd.isna(value)

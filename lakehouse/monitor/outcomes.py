"""Online outcomes: what users played after each day's lists, against popularity.

``consumption.recommendation_outcomes`` has one row per ``score_date`` and
``model_version`` of ``consumption.recommendations`` once at least one later
ingest date has been built. For score date S, horizon H
(``settings.online_horizon_days``) and the lake as built now:

- a **new pair** of user u is a track t that u started listening to on an
  ingest date d with S < d <= S + H (the first ingest date of the pair in
  ``standardized.listens``), and t was in the catalogue on S (first seen by
  ``standardized.tracks`` on or before S). A pair heard on or before S (a
  re-listen) is not new; a track first seen after S is excluded;
- **users**: the users scored on S (rows in the lists) with at least one new pair;
- ``precision_at_k`` (hits / k), ``recall_at_k`` (hits / new pairs),
  ``hit_rate_at_k`` (at least one hit) and ``ndcg_at_k`` (binary relevance,
  ideal over min(new pairs, k)) of the served top-k, averaged over users;
  k is the date's longest list (``settings.k`` when it was scored; a date's
  lists come from one scoring run);
- ``popularity_*``: the same users and new pairs against popularity's top-k
  as of S: catalogue tracks on S ranked by distinct listeners up to S (ties:
  lower track id first), each user's heard tracks removed: the counterfactual;
- ``lift`` = ``precision_at_k`` / ``popularity_precision_at_k`` (null when
  popularity hit nothing);
- ``complete`` is false while S + H has not been ingested (``observed_through``
  says the last ingest date counted); the row is recomputed as days arrive.

Everything is a few DuckDB SQL steps over the lake, every score date at once
(no loop over users or dates); ``BENCHMARKS.md`` gives the cost against the
build ("Online outcomes"). The daily job runs it as its own step, ``outcomes``,
after ``recommend`` (:func:`lakehouse.monitor.outcomes_step.refresh_outcomes`;
``lakehouse outcomes`` by hand). A refresh recomputes the dates missing, still
open, computed with another horizon, or whose lists were rewritten since
(``lists_fingerprint``), and rewrites the small table in one commit only when a
row changed: a re-run is idempotent.

Caveat: the served lists influence what users play, so a comparison with a
counterfactual that was never served favours the served model.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from lakehouse import names
from lakehouse.config import MAX_K, Settings
from lakehouse.lake import Lake, parse_table_name
from lakehouse.tablespec import Column, TableSpec

log = logging.getLogger(__name__)

TABLE = names.CONS_RECOMMENDATION_OUTCOMES
# Grain: one row per (score_date, model_version).
KEY = (names.SCORE_DATE, names.MODEL_VERSION)
METRICS = (names.O_PRECISION, names.O_RECALL, names.O_HIT_RATE, names.O_NDCG)
POPULARITY_METRICS = (names.O_POP_PRECISION, names.O_POP_RECALL, names.O_POP_HIT_RATE)
# Below this many users with new listens, a date's metrics are too noisy to judge:
# the report and kpis say so, and the lift alert does not count the date.
MIN_USERS = 30

OUTCOMES = TableSpec(TABLE, (
    Column(names.SCORE_DATE, pa.date32()),
    Column(names.MODEL_VERSION, pa.string()),
    Column("k", pa.int64()),
    Column("horizon_days", pa.int64()),
    Column("scored_users", pa.int64(), doc="users with a list on the date"),
    Column(names.O_USERS, pa.int64(), doc="of them, users with at least one new pair"),
    Column("new_pairs", pa.int64(), doc="the new pairs of those users"),
    *(Column(m, pa.float64()) for m in METRICS),
    *(Column(m, pa.float64()) for m in POPULARITY_METRICS),
    Column(names.O_LIFT, pa.float64()),
    Column("observed_through", pa.date32(), doc="the last ingest date counted"),
    Column("days_observed", pa.int64(), doc="ingest days of the horizon counted so far"),
    Column(names.O_COMPLETE, pa.bool_()),
    Column("lists_fingerprint", pa.string(), doc="the lists' data files, to notice a re-score"),
))
OUTCOMES_ARROW = OUTCOMES.arrow()
COLUMNS = OUTCOMES_ARROW.names


@dataclass
class OutcomesRefresh:
    """What a refresh did.

    Attributes:
        observed_through: The last ingest date in the built lake (None: no build).
        computed: The score dates (re)computed.
        rows: Rows in the table after the refresh.
        written: Whether the table was written (False: nothing changed).
        version: The table's Delta version after the refresh (None: no table).
        table: The whole table after the refresh.
    """

    observed_through: dt.date | None
    computed: list[dt.date] = field(default_factory=list)
    rows: int = 0
    written: bool = False
    version: int | None = None
    table: pa.Table | None = None


# ------------------------------------------------------------------ helpers
def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _rel(lake: Lake, name: str) -> str:
    """The DuckDB name of ``name``, its view refreshed to the latest commit."""
    lake.table(name)
    zone, table = parse_table_name(name)
    return f"{_q(zone)}.{_q(table)}"


def _date_list(days: Iterable[dt.date]) -> str:
    return ", ".join(f"DATE '{d.isoformat()}'" for d in days)


def observed_through(lake: Lake) -> dt.date | None:
    """The last ingest date the built lake holds (standardized tables' last ingest date)."""
    last = []
    for table in (names.STD_LISTEN_HISTORY, names.STD_TRACKS, names.STD_USERS):
        if lake.exists(table):
            (day,) = lake.duckdb.sql(
                f"SELECT max(last_ingest_date) FROM {_rel(lake, table)}").fetchone()
            if day is not None:
                last.append(day)
    return max(last) if last else None


def list_fingerprints(lake: Lake) -> dict[dt.date, str]:
    """Each score date of the recommendations -> a fingerprint of its data files.

    Re-scoring a date replaces its partition with new files, hence a new
    fingerprint; reading the Delta log costs no data scan.
    """
    return lake.partition_fingerprints(names.CONS_RECOMMENDATIONS, names.SCORE_DATE)


# ------------------------------------------------------------------ the measure
def measure(lake: Lake, score_dates: Sequence[dt.date], *, horizon_days: int,
            through: dt.date, fingerprints: dict[dt.date, str] | None = None) -> pa.Table:
    """The outcome rows of ``score_dates`` (the module's definition), in SQL steps.

    Args:
        lake: A lake with ``consumption.recommendations``, ``standardized.listens``
            and ``standardized.tracks``.
        score_dates: The score dates to measure; those not before ``through``
            get no row (no later ingest date yet).
        horizon_days: H: ingest dates S+1 .. S+H count.
        through: The last ingest date to count (the build's).
        fingerprints: ``lists_fingerprint`` per date (default: read from the log).

    Returns:
        Rows of :data:`OUTCOMES_ARROW`, sorted by score date and model version.
    """
    days = sorted({d for d in score_dates if d < through})
    if not days:
        return OUTCOMES_ARROW.empty_table()
    fingerprints = list_fingerprints(lake) if fingerprints is None else fingerprints
    s = names.SCORE_DATE
    recs = _rel(lake, names.CONS_RECOMMENDATIONS)
    listens = _rel(lake, names.STD_LISTENS)
    tracks = _rel(lake, names.STD_TRACKS)
    through_sql = f"DATE '{through.isoformat()}'"
    h = int(horizon_days)
    steps = _steps(recs, listens, tracks, _date_list(days), through_sql, h)
    db = lake.duckdb
    made: list[str] = []
    try:
        # One temp table per step: DuckDB plans each small query well, where one big
        # query with the same CTEs ran 2-3x slower (a CTE read twice is computed twice).
        for name, query in steps[:-1]:
            db.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {query}")
            made.append(name)
        rows = db.sql(steps[-1][1]).to_arrow_table()
    finally:
        for name in made:
            db.execute(f"DROP TABLE IF EXISTS {name}")
    prints = pa.array([fingerprints.get(d) for d in rows.column(s).to_pylist()], pa.string())
    rows = rows.append_column("lists_fingerprint", prints)
    return pa.Table.from_arrays(rows.columns, schema=OUTCOMES_ARROW)


_STEP_PREFIX = "_outcomes_"


def _steps(recs: str, listens: str, tracks: str, dates: str, through: str, h: int
           ) -> list[tuple[str, str]]:
    """The measure as named SQL steps (temp tables), the last one the rows."""
    return (_served_steps(recs, listens, tracks, dates, through, h)
            + _popularity_steps() + [("rows", _rows_sql(through, h))])


def _served_steps(recs: str, listens: str, tracks: str, dates: str, through: str, h: int
                  ) -> list[tuple[str, str]]:
    """The new pairs of each date's horizon and the served lists' hits among them."""
    u, t, s = names.USER_ID, names.TRACK_ID, names.SCORE_DATE
    p = _STEP_PREFIX
    return [
        (f"{p}dates", f"SELECT unnest([{dates}]) AS {s}"),
        (f"{p}pairs", f"SELECT {u}, {t}, min(first_ingest_date) AS first_day FROM {listens} "
                      f"WHERE {u} IS NOT NULL AND {t} IS NOT NULL GROUP BY ALL"),
        (f"{p}cat", f"SELECT {t}, min(first_ingest_date) AS since FROM {tracks} GROUP BY ALL"),
        # Each scored user once (their first-ranked track), with the model version:
        # the scan reads the version of these rows only. k: the date's longest list.
        (f"{p}firsts", f"SELECT {s}, model_version, {u} FROM {recs} "
                       f"WHERE rank = 1 AND {s} IN (SELECT {s} FROM {p}dates)"),
        (f"{p}groups", f"SELECT f.{s}, f.model_version, any_value(m.k) AS k, "
                       f"count(*) AS scored FROM {p}firsts f JOIN (SELECT {s}, max(rank) AS k "
                       f"FROM {recs} WHERE {s} IN (SELECT {s} FROM {p}dates) GROUP BY ALL) m "
                       f"USING ({s}) GROUP BY ALL"),
        (f"{p}new", f"SELECT d.{s}, pr.{u}, pr.{t} FROM {p}dates d JOIN {p}pairs pr "
                    f"ON pr.first_day > d.{s} AND pr.first_day <= d.{s} + {h} "
                    f"AND pr.first_day <= {through} "
                    f"JOIN {p}cat c ON c.{t} = pr.{t} AND c.since <= d.{s}"),
        (f"{p}new_users", f"SELECT {s}, {u}, count(*) AS n_rel FROM {p}new GROUP BY ALL"),
        # The lists' grain is (score_date, user_id, rank): a user has one list, of one
        # model version, per date. Only the lists of users with new pairs are kept.
        (f"{p}judged", f"SELECT f.{s}, f.model_version, f.{u}, n.n_rel, gr.k FROM {p}firsts f "
                       f"JOIN {p}new_users n USING ({s}, {u}) "
                       f"JOIN {p}groups gr USING ({s}, model_version)"),
        (f"{p}lists", f"SELECT r.{s}, r.{u}, r.rank, r.{t} FROM {recs} r "
                      f"SEMI JOIN {p}new_users n ON n.{s} = r.{s} AND n.{u} = r.{u}"),
        (f"{p}served", f"SELECT l.{s}, l.{u}, count(*) AS hits, "
                       f"sum(1.0 / log2(l.rank + 1)) AS dcg FROM {p}lists l "
                       f"JOIN {p}new n USING ({s}, {u}, {t}) GROUP BY ALL"),
    ]


def _popularity_steps() -> list[tuple[str, str]]:
    """Popularity's hits as of each date, each user's heard tracks removed."""
    u, t, s = names.USER_ID, names.TRACK_ID, names.SCORE_DATE
    p = _STEP_PREFIX
    return [
        # Listeners of each track up to each score date: counted per first day,
        # cumulated, and looked up as of the date.
        (f"{p}cumulated", f"SELECT {t}, first_day, sum(n) OVER (PARTITION BY {t} "
                          f"ORDER BY first_day ROWS UNBOUNDED PRECEDING) AS listeners FROM "
                          f"(SELECT {t}, first_day, count(*) AS n FROM {p}pairs GROUP BY ALL)"),
        (f"{p}grank", f"SELECT {s}, {t}, row_number() OVER (PARTITION BY {s} "
                      f"ORDER BY listeners DESC, {t}) AS g FROM ("
                      f"SELECT o.{s}, o.{t}, coalesce(cu.listeners, 0) AS listeners FROM "
                      f"(SELECT d.{s}, c.{t} FROM {p}dates d JOIN {p}cat c "
                      f"ON c.since <= d.{s}) o ASOF LEFT JOIN {p}cumulated cu "
                      f"ON cu.{t} = o.{t} AND o.{s} >= cu.first_day)"),
        # A user's popularity list is the global ranking without their heard tracks:
        # a new track's place in it is its global rank minus the heard tracks ranked
        # above it. A track ranked below k + (all the user's pairs) can be no hit and
        # moves no hit, so only the tracks above that line are placed.
        (f"{p}judged_users", f"SELECT j.{s}, j.{u}, max(j.k) + any_value(ht.n) AS line "
                             f"FROM {p}judged j JOIN (SELECT {u}, count(*) AS n FROM "
                             f"{p}pairs GROUP BY ALL) ht USING ({u}) GROUP BY ALL"),
        # The new pairs above the line, and for their users only the heard tracks
        # ranked above the lowest of them: the only rows a hit depends on.
        (f"{p}candidates", f"SELECT n.{s}, n.{u}, g.g FROM {p}new n "
                           f"JOIN {p}judged_users j USING ({s}, {u}) "
                           f"JOIN {p}grank g ON g.{s} = n.{s} AND g.{t} = n.{t} "
                           f"WHERE g.g <= j.line"),
        (f"{p}placed", f"SELECT {s}, {u}, is_new, g - sum(1 - is_new) OVER ("
                       f"PARTITION BY {s}, {u} ORDER BY g ROWS UNBOUNDED PRECEDING) AS pos "
                       f"FROM (SELECT c.{s}, c.{u}, g.g, 0 AS is_new FROM (SELECT {s}, {u}, "
                       f"max(g) AS lowest FROM {p}candidates GROUP BY ALL) c "
                       f"JOIN {p}pairs pr ON pr.{u} = c.{u} AND pr.first_day <= c.{s} "
                       f"JOIN {p}grank g ON g.{s} = c.{s} AND g.{t} = pr.{t} "
                       f"WHERE g.g < c.lowest "
                       f"UNION ALL SELECT {s}, {u}, g, 1 AS is_new FROM {p}candidates)"),
        (f"{p}popular", f"SELECT j.{s}, j.{u}, count(*) AS hits "
                        f"FROM {p}judged j JOIN {p}placed pl ON pl.{s} = j.{s} "
                        f"AND pl.{u} = j.{u} WHERE pl.is_new = 1 AND pl.pos <= j.k GROUP BY ALL"),
    ]


def _rows_sql(through: str, h: int) -> str:
    """One row per (score date, model version) from the steps' temp tables."""
    u, s, p = names.USER_ID, names.SCORE_DATE, _STEP_PREFIX
    return f"""
    WITH ideal AS (SELECT i AS m, sum(1.0 / log2(i + 1)) OVER (ORDER BY i) AS idcg
                   FROM range(1, {MAX_K + 1}) r(i)),
    per_user AS (
        SELECT j.{s}, j.model_version, j.n_rel, j.k, coalesce(sv.hits, 0) AS hits,
               coalesce(sv.dcg, 0) AS dcg, coalesce(pp.hits, 0) AS pop_hits, ideal.idcg
        FROM {p}judged j
        LEFT JOIN {p}served sv USING ({s}, {u})
        LEFT JOIN {p}popular pp USING ({s}, {u})
        JOIN ideal ON ideal.m = least(j.n_rel, j.k)),
    agg AS (SELECT {s}, model_version, count(*) AS users, sum(n_rel) AS new_pairs,
                   avg(hits / k) AS p, avg(hits / n_rel) AS r,
                   avg(CASE WHEN hits > 0 THEN 1.0 ELSE 0.0 END) AS hr, avg(dcg / idcg) AS nd,
                   avg(pop_hits / k) AS pp, avg(pop_hits / n_rel) AS pr,
                   avg(CASE WHEN pop_hits > 0 THEN 1.0 ELSE 0.0 END) AS phr
            FROM per_user GROUP BY ALL)
    SELECT g.{s}, g.model_version, g.k::BIGINT AS k, {h}::BIGINT AS horizon_days,
           g.scored::BIGINT AS scored_users, coalesce(a.users, 0)::BIGINT AS users,
           coalesce(a.new_pairs, 0)::BIGINT AS new_pairs,
           -- Rounded: parallel sums add in any order, and a re-run must give the same
           -- row, not one that differs in the 16th digit.
           round(a.p, 12)::DOUBLE, round(a.r, 12)::DOUBLE, round(a.hr, 12)::DOUBLE,
           round(a.nd, 12)::DOUBLE, round(a.pp, 12)::DOUBLE, round(a.pr, 12)::DOUBLE,
           round(a.phr, 12)::DOUBLE,
           round(CASE WHEN a.pp > 0 THEN a.p / a.pp END, 12)::DOUBLE AS lift,
           least({through}, g.{s} + {h}) AS observed_through,
           least({through} - g.{s}, {h})::BIGINT AS days_observed,
           {through} >= g.{s} + {h} AS complete
    FROM {p}groups g LEFT JOIN agg a USING ({s}, model_version)
    ORDER BY g.{s}, g.model_version"""


# ------------------------------------------------------------------ the table
def read_outcomes(lake: Lake) -> pd.DataFrame:
    """``consumption.recommendation_outcomes``, oldest score date first (empty if none).

    ``score_date`` and ``observed_through`` are ``datetime.date``.
    """
    if not lake.exists(TABLE):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    frame = lake.to_arrow(TABLE).select(COLUMNS).to_pandas()
    for column in (names.SCORE_DATE, "observed_through"):
        frame[column] = pd.to_datetime(frame[column]).dt.date
    return frame.sort_values(list(KEY)).reset_index(drop=True)


def _stale_dates(current: pa.Table | None, dates: dict[dt.date, str], horizon: int,
                 through: dt.date) -> list[dt.date]:
    """The score dates whose row is missing, open, of another horizon or of other lists."""
    measurable = {d for d in dates if d < through}
    if current is None or current.num_rows == 0:
        return sorted(measurable)
    fresh = set()
    for row in current.to_pylist():
        day = row[names.SCORE_DATE]
        if (row[names.O_COMPLETE] and row["horizon_days"] == horizon
                and row["lists_fingerprint"] == dates.get(day)):
            fresh.add(day)
    return sorted(measurable - fresh)


def refresh(lake: Lake, settings: Settings, *, full: bool = False) -> OutcomesRefresh:
    """Bring ``consumption.recommendation_outcomes`` up to date with the built lake.

    Args:
        lake: The lake.
        settings: ``online_horizon_days``.
        full: Recompute every score date, not only the stale ones (after a
            history replay changed past listens).

    Returns:
        What was computed and whether the table was written.
    """
    through = observed_through(lake)
    result = OutcomesRefresh(through)
    dates = list_fingerprints(lake)
    current = lake.to_arrow(TABLE).select(COLUMNS) if lake.exists(TABLE) else None
    if through is None or not dates:
        result.table = current
        result.rows = current.num_rows if current is not None else 0
        result.version = lake.version(TABLE)
        return result
    horizon = settings.online_horizon_days
    stale = sorted(d for d in dates if d < through) if full else \
        _stale_dates(current, dates, horizon, through)
    fresh_rows = measure(lake, stale, horizon_days=horizon, through=through,
                         fingerprints=dates)
    kept = [] if current is None else [
        r for r in current.to_pylist()
        if r[names.SCORE_DATE] in dates and r[names.SCORE_DATE] not in set(stale)]
    table = pa.Table.from_pylist(kept + fresh_rows.to_pylist(), schema=OUTCOMES_ARROW)
    table = table.sort_by([(names.SCORE_DATE, "ascending"), (names.MODEL_VERSION, "ascending")])
    result.computed = stale
    result.rows = table.num_rows
    if current is None or not current.sort_by(
            [(names.SCORE_DATE, "ascending"), (names.MODEL_VERSION, "ascending")]).equals(table):
        written = lake.write(TABLE, table, mode="replace",
                             metadata={"pipeline": names.OUTCOMES,
                                       "observed_through": through.isoformat()})
        result.written = True
        result.version = written.version
    else:
        result.version = lake.version(TABLE)
    result.table = table
    return result


# ------------------------------------------------------------------ reading it
ONLINE_LIFT = "online_lift_below_popularity"
KPI_COLUMNS = ["score_date", "model_version", "k", "users", "precision_at_k",
               "popularity_precision_at_k", "lift", "recall_at_k", "hit_rate_at_k",
               "ndcg_at_k", "days_observed", "complete", "note"]


def judged(row: Any) -> bool:
    """Whether a row can judge its lists: its horizon closed, enough users with new listens."""
    return bool(row[names.O_COMPLETE]) and int(row[names.O_USERS] or 0) >= MIN_USERS


def note(row: Any) -> str:
    """Why a row cannot judge its lists yet, or ``""``."""
    parts = []
    if not row[names.O_COMPLETE]:
        parts.append(f"open ({row['days_observed']}/{row['horizon_days']} days)")
    users = int(row[names.O_USERS] or 0)
    if users < MIN_USERS:
        parts.append(f"too few users with new listens to judge ({users} < {MIN_USERS})")
    return "; ".join(parts)


def outcome_kpis(lake: Lake, since: dt.date | None = None) -> pd.DataFrame:
    """The outcomes as ``lakehouse kpis`` shows them (:data:`KPI_COLUMNS`), oldest first."""
    frame = read_outcomes(lake)
    if since is not None:
        frame = frame[frame[names.SCORE_DATE] >= since]
    frame = frame.assign(note=[note(r) for _, r in frame.iterrows()])
    return frame[KPI_COLUMNS].reset_index(drop=True)


def recent_lift(frame: pd.DataFrame, version: str | None, days: int) -> pd.DataFrame:
    """The last ``days`` judged rows (:func:`judged`) of model ``version``, oldest first."""
    if version is None or frame.empty:
        return frame.iloc[0:0]
    ok = pd.Series([judged(r) for _, r in frame.iterrows()], index=frame.index, dtype=bool)
    mine = frame[(frame[names.MODEL_VERSION] == version) & ok]
    return mine.sort_values(names.SCORE_DATE).tail(days)


def lift_summary(frame: pd.DataFrame, version: str | None, days: int) -> str:
    """One line on ``version``'s recent online lift, for the promotion gate and the report."""
    if version is None:
        return "no champion: no online lift"
    recent = recent_lift(frame, version, days)
    if recent.empty:
        return (f"{version} has no complete online outcome with at least {MIN_USERS} users "
                "yet (lakehouse outcomes)")
    lifts = ", ".join("-" if pd.isna(v) else f"{v:.2f}" for v in recent[names.O_LIFT])
    first, last = recent[names.SCORE_DATE].iloc[0], recent[names.SCORE_DATE].iloc[-1]
    return (f"{version} online lift over popularity {lifts} on the last {len(recent)} complete "
            f"score date(s) {first} .. {last}")


def online_alerts(settings: Settings, frame: pd.DataFrame, champion: str | None) -> list[Any]:
    """The online-lift alert; nothing is sent.

    Fires when the champion's lift is below 1 on each of its last
    ``settings.online_lift_days`` judged score dates: the model does worse than
    popularity in production. Dates too few users judged are not counted.
    """
    from lakehouse.monitor.alert import WARNING, Alert

    days = settings.online_lift_days
    recent = recent_lift(frame, champion, days)
    if len(recent) < days:
        return []
    lifts = recent[names.O_LIFT].tolist()
    if not all(v is not None and not pd.isna(v) and v < 1 for v in lifts):
        return []
    dates = [str(d) for d in recent[names.SCORE_DATE]]
    return [Alert(
        ONLINE_LIFT, TABLE, WARNING,
        f"the model does worse than popularity in production: champion {champion}'s online "
        f"lift is below 1 on its last {days} complete score dates ({dates[0]} .. {dates[-1]}: "
        + ", ".join(f"{v:.2f}" for v in lifts) + ")",
        {"model_version": champion, "score_dates": dates,
         "lift": [round(float(v), 4) for v in lifts], "days": days,
         "precision_at_k": [round(float(v), 4) for v in recent[names.O_PRECISION]],
         "popularity_precision_at_k": [round(float(v), 4)
                                       for v in recent[names.O_POP_PRECISION]]})]


def version_outcomes(lake: Lake, version: str) -> pd.DataFrame:
    """The outcome rows of the score dates model ``version`` served, oldest first."""
    frame = read_outcomes(lake)
    return frame[frame[names.MODEL_VERSION] == version].reset_index(drop=True)


def online_metrics(lake: Lake, version: str) -> list[dict[str, Any]]:
    """The online outcome of every score date ``version`` served, as plain values.

    What ``lakehouse models show`` prints beside the version's holdout metrics.
    """
    if not lake.exists(TABLE):
        return []
    keep = [names.SCORE_DATE, "k", names.O_USERS, *METRICS, *POPULARITY_METRICS, names.O_LIFT,
            "days_observed", names.O_COMPLETE]
    rows = []
    for _, row in version_outcomes(lake, version).iterrows():
        plain = {c: (None if pd.isna(row[c]) else row[c]) for c in keep}
        plain[names.SCORE_DATE] = row[names.SCORE_DATE].isoformat()
        plain = {c: (v.item() if hasattr(v, "item") else v) for c, v in plain.items()}
        plain["note"] = note(row)
        rows.append(plain)
    return rows


def champion_lift_line(lake: Lake, settings: Settings, champion: str | None) -> str:
    """The promotion gate's line on the champion's recent online lift (never raises)."""
    try:
        return lift_summary(read_outcomes(lake), champion, settings.online_lift_days)
    except Exception as exc:  # noqa: BLE001 - a monitoring read must not fail training
        log.warning("cannot read the online outcomes: %s", exc)
        return f"online lift unknown ({exc})"

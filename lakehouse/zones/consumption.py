"""The consumption zone: what the recommender and the dashboards read.

Pure ibis queries over the standardized tables, each with its columns,
grain and checks beside it.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from lakehouse import names
from lakehouse.names import TRACK_ID, USER_ID
from lakehouse.zones.base import UTC_TS, View, col, ge, isin, utc_date
from lakehouse.zones.standardized import DURATION_BUCKETS, DURATION_LONGEST, DURATION_UNKNOWN

# ---------------------------------------------------------------- interactions
INTERACTIONS_COLUMNS = {
    USER_ID: col("int64", False),
    TRACK_ID: col("int64", False),
    "listens": col("int64", False, ge(1)),
    "first_listen_at": col(UTC_TS, False),
    "last_listen_at": col(UTC_TS, False),
}


def interactions(listens: ir.Table) -> ir.Table:
    """``consumption.interactions``: per user and track, how often and when."""
    return listens.group_by(USER_ID, TRACK_ID).agg(
        listens=listens.count(),
        first_listen_at=listens.created_at.min(),
        last_listen_at=listens.created_at.max(),
    )


INTERACTIONS = View(
    name=names.CONS_INTERACTIONS, grain=(USER_ID, TRACK_ID), inputs=(names.STD_LISTENS,),
    columns=INTERACTIONS_COLUMNS, query=interactions,
    # No foreign-key check here: the keys come from standardized.listens, whose
    # foreign keys were just checked.
    doc="One row per (user, track) listened at least once: the recommender's input.",
)


# ---------------------------------------------------------------- features
USER_FEATURES_COLUMNS = {
    USER_ID: col("int64", False),
    "favorite_genre": col("string", True, isin(names.GENRES)),
    "gender": col("string", True, isin(names.GENDERS)),
    "created_at": col(UTC_TS, False),
}


def user_features(users: ir.Table) -> ir.Table:
    """``consumption.user_features``: the user metadata the recommender may use."""
    return users.select(*USER_FEATURES_COLUMNS)


USER_FEATURES = View(
    name=names.CONS_USER_FEATURES, grain=(USER_ID,), inputs=(names.STD_USERS,),
    columns=USER_FEATURES_COLUMNS, query=user_features,
    doc="One row per standardized user.",
)

DURATION_BUCKET_LABELS = (*(label for _, label in DURATION_BUCKETS), DURATION_LONGEST,
                          DURATION_UNKNOWN)

TRACK_FEATURES_COLUMNS = {
    TRACK_ID: col("int64", False),
    "genres": col("array<string>", False),
    "artist": col("string"),
    "album": col("string"),
    "duration_bucket": col("string", False, isin(DURATION_BUCKET_LABELS),
                           doc="0-3m, 3-5m, 5-8m, 8m+, or unknown"),
}


def duration_bucket(seconds: ir.IntegerValue) -> ir.StringValue:
    """A coarse, human label for a track length."""
    cases = [(seconds < upper, label) for upper, label in DURATION_BUCKETS]
    return ibis.cases((seconds.isnull(), DURATION_UNKNOWN), *cases, else_=DURATION_LONGEST)


def track_features(tracks: ir.Table) -> ir.Table:
    """``consumption.track_features``: the track metadata the recommender may use."""
    return tracks.select(TRACK_ID, "genres", "artist", "album",
                         duration_bucket=duration_bucket(tracks.duration_seconds))


TRACK_FEATURES = View(
    name=names.CONS_TRACK_FEATURES, grain=(TRACK_ID,), inputs=(names.STD_TRACKS,),
    columns=TRACK_FEATURES_COLUMNS, query=track_features,
    doc="One row per standardized track.",
)


# ---------------------------------------------------------------- daily KPIs
DAILY_KPIS_COLUMNS = {
    "date": col("date", False),
    "total_users": col("int64", False, ge(0)),
    "new_users": col("int64", False, ge(0)),
    "total_tracks": col("int64", False, ge(0)),
    "new_tracks": col("int64", False, ge(0)),
    "listens": col("int64", False, ge(0)),
    "active_listeners": col("int64", False, ge(0)),
    "avg_listen_history_size": col("float64", True, ge(0)),
}


def _spine(any_table: ir.Table, end: dt.date, days: int) -> ir.Table:
    # A global aggregate always has exactly one row: a source for the date
    # range that needs no in-memory table (which Spark would not have).
    one = any_table.aggregate(_n=any_table.count())
    offsets = one.select(_i=ibis.range(0, days).unnest())
    start = ibis.literal(end - dt.timedelta(days=days - 1), type="date")
    return offsets.select(date=(start + offsets._i.as_interval("D")).cast("date"))


def _per_day(spine: ir.Table, events: ir.Table, value: str) -> ir.Table:
    """For each spine date, ``value`` summed on that day and up to that day."""
    day = spine.left_join(events, spine.date == events.day).group_by(spine.date).agg(
        on_day=events[value].sum().fill_null(0))
    upto = spine.left_join(events, events.day <= spine.date).group_by(spine.date).agg(
        up_to=events[value].sum().fill_null(0))
    return day.join(upto, "date")


def daily_kpis(users: ir.Table, tracks: ir.Table, listens: ir.Table, *,
               end: dt.date, days: int) -> ir.Table:
    """``consumption.daily_kpis``: one row per calendar day of the window.

    The window is the ``days`` days ending on ``end`` (the build date). Every
    count uses the event's own UTC date (``created_at``) and the standardized
    zone as built on ``end``, so a day's row can change when later snapshots
    reveal more of it. For day D:

    - ``total_users``/``total_tracks``: created on or before D;
    - ``new_users``/``new_tracks``: created on D;
    - ``listens``: listened tracks (rows of ``standardized.listens``) on D;
    - ``active_listeners``: distinct users with a listen on D;
    - ``avg_listen_history_size``: listened tracks on or before D divided by
      the distinct users with a listen on or before D: the mean number of
      listened tracks per user who has listened, as of D (null before the
      first listen).
    """
    spine = _spine(users, end, days)

    def daily(t: ir.Table, when: ir.Value, **aggs) -> ir.Table:
        return t.group_by(day=utc_date(when)).agg(**aggs)

    new_users = _per_day(spine, daily(users, users.created_at, n=users.count()), "n")
    new_tracks = _per_day(spine, daily(tracks, tracks.created_at, n=tracks.count()), "n")
    per_day = daily(listens, listens.created_at, n=listens.count(),
                    active=listens[USER_ID].nunique())
    listened = _per_day(spine, per_day, "n")
    active = spine.left_join(per_day, spine.date == per_day.day).select(
        "date", active=per_day.active.fill_null(0))
    first = listens.group_by(USER_ID).agg(first=listens.created_at.min())
    listeners = _per_day(spine, daily(first, first["first"], n=first.count()), "n")

    out = (spine
           .join(new_users.rename(total_users="up_to", new_users="on_day"), "date")
           .join(new_tracks.rename(total_tracks="up_to", new_tracks="on_day"), "date")
           .join(listened.rename(listens_up_to="up_to", listens="on_day"), "date")
           .join(active, "date")
           .join(listeners.select("date", listeners_up_to="up_to"), "date"))
    avg = ibis.ifelse(out.listeners_up_to > 0,
                      out.listens_up_to.cast("float64") / out.listeners_up_to.cast("float64"),
                      ibis.null("float64"))
    return out.select(
        date=out.date,
        total_users=out.total_users.cast("int64"),
        new_users=out.new_users.cast("int64"),
        total_tracks=out.total_tracks.cast("int64"),
        new_tracks=out.new_tracks.cast("int64"),
        listens=out.listens.cast("int64"),
        active_listeners=out.active.cast("int64"),
        avg_listen_history_size=avg,
    ).order_by("date")


DAILY_KPIS = View(
    name=names.CONS_DAILY_KPIS, grain=("date",),
    inputs=(names.STD_USERS, names.STD_TRACKS, names.STD_LISTENS),
    columns=DAILY_KPIS_COLUMNS, query=daily_kpis,
    parameters=lambda context: {"end": context.end, "days": context.kpi_days},
    doc="One row per calendar day of the KPI window ending on the build date.",
)

VIEWS = (INTERACTIONS, USER_FEATURES, TRACK_FEATURES, DAILY_KPIS)

"""The build's transformations in plain pandas: the benchmark's "straightforward" point.

Same inputs, rules and outputs as :mod:`lakehouse.zones` (the row counts must
agree), written the way a data scientist would in a notebook: load the raw
tables into DataFrames, clean, sort and drop duplicates, explode, merge,
group by; same Delta writer. Used only by ``scripts/bench_build.py``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa

from lakehouse import names
from lakehouse.lake import Lake
from lakehouse.zones import VIEWS

SCHEMAS = {v.name: v.arrow_schema for v in VIEWS}


def _key(s: pd.Series) -> pd.Series:
    return s.str.lower().str.replace(r"[^a-z&]", "", regex=True)


def _canon(s: pd.Series, allowed: tuple[str, ...]) -> pd.Series:
    mapping = {"".join(c for c in a.lower() if c.isalpha() or c == "&"): a for a in allowed}
    return _key(s).map(mapping)


def _ts(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601")


def _write(lake: Lake, name: str, df: pd.DataFrame, schema: pa.Schema | None = None) -> None:
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    lake.write(name, table, mode="replace")


def _quarantine(raw: pd.DataFrame, bad: pd.Series, checks: pd.Series, date: dt.date):
    q = raw[bad].copy()
    q[names.Q_REASON] = checks[bad]
    q[names.Q_CHECK] = checks[bad]
    q[names.Q_BUILD_DATE] = date
    return q


def _latest(df: pd.DataFrame, key: str, content: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = df.sort_values([key, "updated_at", names.INGEST_DATE],
                        ascending=[True, False, False])
    seen = df.groupby(key)[names.INGEST_DATE].agg(["min", "max"])
    top_upd = df.groupby(key)["updated_at"].transform("first")
    top_ing = df.groupby(key)[names.INGEST_DATE].transform("first")
    top = df[(df["updated_at"] == top_upd) & (df[names.INGEST_DATE] == top_ing)]
    variants = top.drop_duplicates([key, *content]).groupby(key).size()
    conflicted = variants[variants > 1].index
    latest = top[~top[key].isin(conflicted)].drop_duplicates(key)
    latest = latest.join(seen.rename(columns={"min": "first_ingest_date",
                                              "max": "last_ingest_date"}), on=key)
    return latest, top[top[key].isin(conflicted)]


def build_pandas(lake: Lake, date: dt.date, kpi_days: int) -> None:
    def raw(name: str) -> pd.DataFrame:
        df = lake.to_arrow(name).to_pandas()
        return df[df[names.INGEST_DATE] <= date]

    # ------------------------------------------------------------ users
    ru = raw(names.RAW_USERS)
    u = pd.DataFrame({
        "user_id": ru["id"], "first_name": ru["first_name"].str.strip(),
        "last_name": ru["last_name"].str.strip(),
        "email": ru["email"].str.strip().str.lower(),
        "gender": _canon(ru["gender"], names.GENDERS),
        "favorite_genre": _canon(ru["favorite_genres"], names.GENRES),
        "created_at": _ts(ru["created_at"]), "updated_at": _ts(ru["updated_at"]),
        names.INGEST_DATE: ru[names.INGEST_DATE],
    })
    u["invalid_gender"] = u["gender"].isna() & ru["gender"].notna()
    u["invalid_favorite_genre"] = u["favorite_genre"].isna() & ru["favorite_genres"].notna()
    u["updated_before_created"] = (u["updated_at"] < u["created_at"]).fillna(False)
    check = pd.Series(np.select(
        [u.user_id.isna(), u.created_at.isna(), u.updated_at.isna()],
        ["user_id_not_null", "created_at_is_timestamp", "updated_at_is_timestamp"],
        None), index=u.index)
    ok = check.isna()
    user_cols = list(SCHEMAS[names.STD_USERS].names)
    users, conflicts = _latest(u[ok], "user_id", [c for c in user_cols if c in u.columns])
    users = users[user_cols]
    q_users = _quarantine(ru, ~ok | ru.index.isin(conflicts.index), check.fillna(
        "user_id_unique"), date)

    # ------------------------------------------------------------ tracks
    rt = raw(names.RAW_TRACKS)
    dur = rt["duration"].str.extract(r"^\s*(\d{1,4}):([0-5]\d)\s*$")
    tokens = rt["genres"].str.split(r"\s*[,;/|]\s*", regex=True).map(
        lambda xs: [x for x in xs if x.strip()] if isinstance(xs, list) else [])
    gmap = {"".join(c for c in a.lower() if c.isalpha() or c == "&"): a for a in names.GENRES}
    canon = tokens.map(lambda xs: [gmap.get("".join(c for c in x.lower()
                                                    if c.isalpha() or c == "&")) for x in xs])
    t = pd.DataFrame({
        "track_id": rt["id"], "name": rt["name"].str.strip(), "artist": rt["artist"].str.strip(),
        "songwriters": rt["songwriters"].str.strip(), "album": rt["album"].str.strip(),
        "duration_seconds": (dur[0].astype("Int32") * 60 + dur[1].astype("Int32")),
        "genres": canon.map(lambda xs: sorted({x for x in xs if x})),
        "created_at": _ts(rt["created_at"]), "updated_at": _ts(rt["updated_at"]),
        names.INGEST_DATE: rt[names.INGEST_DATE],
    })
    t["invalid_duration"] = t["duration_seconds"].isna() & rt["duration"].notna()
    t["unknown_genres"] = canon.map(lambda xs: any(x is None for x in xs))
    t["updated_before_created"] = (t["updated_at"] < t["created_at"]).fillna(False)
    check = pd.Series(np.select(
        [t.track_id.isna(), t.created_at.isna(), t.updated_at.isna()],
        ["track_id_not_null", "created_at_is_timestamp", "updated_at_is_timestamp"],
        None), index=t.index)
    ok = check.isna()
    track_cols = list(SCHEMAS[names.STD_TRACKS].names)
    content = [c for c in track_cols if c in t.columns and c != "genres"]
    tracks, conflicts = _latest(t[ok], "track_id", content)
    tracks = tracks[track_cols]
    q_tracks = _quarantine(rt, ~ok | rt.index.isin(conflicts.index),
                           check.fillna("track_id_unique"), date)

    # ------------------------------------------------------------ listen history
    rl = raw(names.RAW_LISTEN_HISTORY)
    lh = pd.DataFrame({"user_id": rl["user_id"], "items": rl["items"],
                       "created_at": _ts(rl["created_at"]), "updated_at": _ts(rl["updated_at"]),
                       names.INGEST_DATE: rl[names.INGEST_DATE]})
    check = pd.Series(np.select(
        [lh.user_id.isna(), lh["items"].isna(), lh.created_at.isna(), lh.updated_at.isna()],
        ["user_id_not_null", "items_not_null", "created_at_is_timestamp",
         "updated_at_is_timestamp"], None), index=lh.index)
    ok = check.isna()
    q_lh = _quarantine(rl, ~ok, check, date)
    lh = lh[ok].copy()
    lh["items_key"] = lh["items"].map(tuple)
    history = lh.groupby(["user_id", "created_at", "items_key"], sort=False).agg(
        items=("items", "first"), updated_at=("updated_at", "max"),
        first_ingest_date=(names.INGEST_DATE, "min"),
        last_ingest_date=(names.INGEST_DATE, "max")).reset_index()
    history["record_id"] = pd.util.hash_pandas_object(
        history[["user_id", "created_at", "items_key"]].astype(str), index=False
    ).astype("int64")
    history["n_items"] = history["items"].map(len).astype("int32")
    history = history[list(SCHEMAS[names.STD_LISTEN_HISTORY].names)]

    # ------------------------------------------------------------ listens
    ex = history.loc[history["n_items"] > 0, ["record_id", "user_id", "items", "created_at",
                                               "updated_at", "first_ingest_date"]]
    ex = ex.explode("items").rename(columns={"items": "track_id"})
    ex["position"] = ex.groupby(level=0).cumcount().astype("int32")
    ex = ex.reset_index(drop=True)
    has_user = ex["user_id"].isin(users["user_id"])
    has_track = ex["track_id"].isin(tracks["track_id"])
    check = pd.Series(np.select(
        [ex.track_id.isna(), ~has_user, ~has_track],
        ["track_id_not_null", "fk_user_id", "fk_track_id"], None), index=ex.index)
    ok = check.isna()
    listen_cols = list(SCHEMAS[names.STD_LISTENS].names)
    listens = ex[ok][listen_cols].astype({"track_id": "int64"})
    q_listens = _quarantine(ex[listen_cols], ~ok, check, date)

    # ------------------------------------------------------------ consumption
    interactions = listens.groupby(["user_id", "track_id"]).agg(
        listens=("created_at", "size"), first_listen_at=("created_at", "min"),
        last_listen_at=("created_at", "max")).reset_index()
    user_features = users[["user_id", "favorite_genre", "gender", "created_at"]]
    bucket = pd.cut(tracks["duration_seconds"], [-1, 179, 299, 479, np.inf],
                    labels=["0-3m", "3-5m", "5-8m", "8m+"]).astype(object)
    track_features = tracks[["track_id", "genres", "artist", "album"]].assign(
        duration_bucket=bucket.where(tracks["duration_seconds"].notna(), "unknown"))
    days = pd.date_range(date - dt.timedelta(days=kpi_days - 1), date).date
    u_day = users["created_at"].dt.date.value_counts()
    t_day = tracks["created_at"].dt.date.value_counts()
    l_day = listens["created_at"].dt.date
    l_count = l_day.value_counts()
    active = listens.assign(day=l_day).groupby("day")["user_id"].nunique()
    first = listens.groupby("user_id")["created_at"].min().dt.date.value_counts()
    rows = []
    for d in days:
        listened = int(l_count[l_count.index <= d].sum())
        listeners = int(first[first.index <= d].sum())
        rows.append({
            "date": d, "total_users": int(u_day[u_day.index <= d].sum()),
            "new_users": int(u_day.get(d, 0)), "total_tracks": int(t_day[t_day.index <= d].sum()),
            "new_tracks": int(t_day.get(d, 0)), "listens": int(l_count.get(d, 0)),
            "active_listeners": int(active.get(d, 0)),
            "avg_listen_history_size": listened / listeners if listeners else None})
    kpis = pd.DataFrame(rows)

    # ------------------------------------------------------------ checks, writes
    for df, key in ((users, ["user_id"]), (tracks, ["track_id"]),
                    (history, ["record_id"]), (listens, ["record_id", "position"]),
                    (interactions, ["user_id", "track_id"])):
        assert not df.duplicated(key).any()
    assert listens["user_id"].isin(users["user_id"]).all()
    assert listens["track_id"].isin(tracks["track_id"]).all()

    for name, df in ((names.STD_USERS, users), (names.STD_TRACKS, tracks),
                     (names.STD_LISTEN_HISTORY, history), (names.STD_LISTENS, listens),
                     (names.CONS_INTERACTIONS, interactions),
                     (names.CONS_USER_FEATURES, user_features),
                     (names.CONS_TRACK_FEATURES, track_features),
                     (names.CONS_DAILY_KPIS, kpis)):
        _write(lake, name, df, SCHEMAS[name])
    for name, df in (("quarantine.users", q_users), ("quarantine.tracks", q_tracks),
                     ("quarantine.listen_history", q_lh), ("quarantine.listens", q_listens)):
        _write(lake, name, df)

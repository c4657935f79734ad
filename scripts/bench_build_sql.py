"""The build's transformations hand-written in DuckDB SQL: the benchmark's floor.

Same inputs, rules, outputs and checks as :mod:`lakehouse.zones` (the row
counts must agree), written the way one would by hand: typed temp tables,
``QUALIFY`` windows, SQL checks, then the same Delta writer. Used only by
``scripts/bench_build.py``.
"""

from __future__ import annotations

import datetime as dt

from lakehouse import names
from lakehouse.lake import Lake


def _canon(expr: str, allowed: tuple[str, ...]) -> str:
    key = f"regexp_replace(lower({expr}), '[^a-z&]', '', 'g')"
    whens = " ".join(
        "WHEN '{}' THEN '{}'".format(
            "".join(ch for ch in a.lower() if ch.isalpha() or ch == "&"), a.replace("'", "''"))
        for a in allowed)
    return f"(CASE {key} {whens} END)"


def _ts(col: str) -> str:
    # A plain timestamp placed in the session's zone (UTC): parsing straight to
    # TIMESTAMPTZ goes through ICU and is four times slower.
    return f"TRY_CAST({col} AS TIMESTAMP)::TIMESTAMPTZ"


def build_sql(lake: Lake, date: dt.date, kpi_days: int) -> None:
    for name in (names.RAW_USERS, names.RAW_TRACKS, names.RAW_LISTEN_HISTORY):
        lake.table(name)  # refresh the DuckDB view of the raw table
    db = lake.duckdb
    d = f"DATE '{date}'"
    gender = _canon("gender", names.GENDERS)
    fav = _canon("favorite_genres", names.GENRES)
    genre = _canon("g", names.GENRES)

    def run(sql: str) -> None:
        db.execute(sql)

    # ------------------------------------------------------------ users
    user_bad = f"""CASE WHEN id IS NULL THEN 'user_id_not_null'
        WHEN {_ts('created_at')} IS NULL THEN 'created_at_is_timestamp'
        WHEN {_ts('updated_at')} IS NULL THEN 'updated_at_is_timestamp' END"""
    run(f"""CREATE OR REPLACE TEMP TABLE u_typed AS
        SELECT id AS user_id, trim(first_name) AS first_name, trim(last_name) AS last_name,
               lower(trim(email)) AS email, {gender} AS gender, {fav} AS favorite_genre,
               {_ts('created_at')} AS created_at, {_ts('updated_at')} AS updated_at,
               gender IS NOT NULL AND {gender} IS NULL AS invalid_gender,
               favorite_genres IS NOT NULL AND {fav} IS NULL AS invalid_favorite_genre,
               ingest_date, hash(id, first_name, last_name, email, gender, favorite_genres,
                                 created_at, updated_at) AS h
        FROM raw.users WHERE ingest_date <= {d} AND ({user_bad}) IS NULL""")
    _latest(run, "u", "user_id", "first_name, last_name, email, gender, favorite_genre, "
            "created_at, updated_at", "invalid_gender, invalid_favorite_genre")
    run(f"""CREATE OR REPLACE TEMP TABLE q_users AS
        SELECT r.*, coalesce({user_bad}, 'user_id_unique') AS _check,
               coalesce({user_bad}, 'conflicting versions') AS _reason, {d} AS _build_date
        FROM (SELECT id, first_name, last_name, email, gender, favorite_genres, created_at,
                     updated_at, _run_id, _ingested_at, _page, ingest_date
              FROM raw.users WHERE ingest_date <= {d}) r
        WHERE ({user_bad}) IS NOT NULL
           OR (id, {_ts('updated_at')}, ingest_date) IN (SELECT (user_id, updated_at,
                                                                 ingest_date) FROM u_conflicts)""")

    # ------------------------------------------------------------ tracks
    track_bad = f"""CASE WHEN id IS NULL THEN 'track_id_not_null'
        WHEN {_ts('created_at')} IS NULL THEN 'created_at_is_timestamp'
        WHEN {_ts('updated_at')} IS NULL THEN 'updated_at_is_timestamp' END"""
    dur = r"regexp_extract(duration, '^\s*(\d{1,4}):([0-5]\d)\s*$', ['m', 's'])"
    run(f"""CREATE OR REPLACE TEMP TABLE t_typed AS
        WITH base AS (
            SELECT *, {dur} AS dm,
                   list_filter(regexp_split_to_array(genres, '\\s*[,;/|]\\s*'),
                               g -> trim(g) <> '') AS tokens
            FROM raw.tracks WHERE ingest_date <= {d} AND ({track_bad}) IS NULL)
        SELECT id AS track_id, trim(name) AS name, trim(artist) AS artist,
               trim(songwriters) AS songwriters, trim(album) AS album,
               CAST(nullif(dm.m, '')::INT * 60 + nullif(dm.s, '')::INT AS INT)
                   AS duration_seconds,
               coalesce(list_sort(list_distinct(list_filter(
                   list_transform(tokens, g -> {genre}), g -> g IS NOT NULL))), [])
                   AS genres,
               {_ts('created_at')} AS created_at, {_ts('updated_at')} AS updated_at,
               duration IS NOT NULL AND nullif(dm.m, '') IS NULL AS invalid_duration,
               coalesce(len(list_filter(list_transform(tokens, g -> {genre}),
                                        g -> g IS NOT NULL)), 0)
                   < coalesce(len(tokens), 0) AS unknown_genres,
               ingest_date, hash(id, name, artist, songwriters, duration, genres, album,
                                 created_at, updated_at) AS h
        FROM base""")
    _latest(run, "t", "track_id", "name, artist, songwriters, album, duration_seconds, genres, "
            "created_at, updated_at", "invalid_duration, unknown_genres")
    run(f"""CREATE OR REPLACE TEMP TABLE q_tracks AS
        SELECT r.*, coalesce({track_bad}, 'track_id_unique') AS _check,
               coalesce({track_bad}, 'conflicting versions') AS _reason, {d} AS _build_date
        FROM (SELECT id, name, artist, songwriters, duration, genres, album, created_at,
                     updated_at, _run_id, _ingested_at, _page, ingest_date
              FROM raw.tracks WHERE ingest_date <= {d}) r
        WHERE ({track_bad}) IS NOT NULL
           OR (id, {_ts('updated_at')}, ingest_date) IN (SELECT (track_id, updated_at,
                                                                 ingest_date) FROM t_conflicts)""")

    # ------------------------------------------------------------ listen history
    lh_bad = f"""CASE WHEN user_id IS NULL THEN 'user_id_not_null'
        WHEN items IS NULL THEN 'items_not_null'
        WHEN {_ts('created_at')} IS NULL THEN 'created_at_is_timestamp'
        WHEN {_ts('updated_at')} IS NULL THEN 'updated_at_is_timestamp' END"""
    run(f"""CREATE OR REPLACE TEMP TABLE std_listen_history AS
        SELECT hash({{'u': user_id, 'c': created_at, 'i': items}})::BIT::BIGINT AS record_id,
               user_id, items, CAST(len(items) AS INT) AS n_items, created_at,
               max(updated_at) AS updated_at, min(ingest_date) AS first_ingest_date,
               max(ingest_date) AS last_ingest_date
        FROM (SELECT user_id, items, {_ts('created_at')} AS created_at,
                     {_ts('updated_at')} AS updated_at, ingest_date
              FROM raw.listen_history WHERE ingest_date <= {d} AND ({lh_bad}) IS NULL)
        GROUP BY user_id, items, created_at""")
    run(f"""CREATE OR REPLACE TEMP TABLE q_listen_history AS
        SELECT user_id, items, created_at, updated_at, _run_id, _ingested_at, _page,
               ingest_date, {lh_bad} AS _check, {lh_bad} AS _reason, {d} AS _build_date
        FROM raw.listen_history WHERE ingest_date <= {d} AND ({lh_bad}) IS NOT NULL""")

    # ------------------------------------------------------------ listens
    run("""CREATE OR REPLACE TEMP TABLE l_staged AS
        SELECT e.*, u.user_id IS NOT NULL AS has_user, t.track_id IS NOT NULL AS has_track
        FROM (SELECT record_id, user_id, unnest(items) AS track_id,
                     CAST(generate_subscripts(items, 1) - 1 AS INT) AS position,
                     created_at, updated_at, first_ingest_date
              FROM std_listen_history) e
        LEFT JOIN std_users u USING (user_id)
        LEFT JOIN std_tracks t ON e.track_id = t.track_id""")
    listen_cols = "record_id, user_id, track_id, position, created_at, updated_at, " \
                  "first_ingest_date"
    run(f"""CREATE OR REPLACE TEMP TABLE std_listens AS SELECT {listen_cols} FROM l_staged
        WHERE track_id IS NOT NULL AND has_user AND has_track""")
    run(f"""CREATE OR REPLACE TEMP TABLE q_listens AS
        SELECT {listen_cols},
               CASE WHEN track_id IS NULL THEN 'track_id_not_null'
                    WHEN NOT has_user THEN 'fk_user_id' ELSE 'fk_track_id' END AS _check,
               CASE WHEN track_id IS NULL THEN 'track_id is null'
                    WHEN NOT has_user THEN 'user_id not in standardized.users'
                    ELSE 'track_id not in standardized.tracks' END AS _reason,
               {d} AS _build_date
        FROM l_staged WHERE NOT (track_id IS NOT NULL AND has_user AND has_track)""")
    run("DROP TABLE l_staged")

    # ------------------------------------------------------------ consumption
    run("""CREATE OR REPLACE TEMP TABLE c_interactions AS
        SELECT user_id, track_id, count(*) AS listens, min(created_at) AS first_listen_at,
               max(created_at) AS last_listen_at
        FROM std_listens GROUP BY user_id, track_id""")
    run("""CREATE OR REPLACE TEMP TABLE c_user_features AS
        SELECT user_id, favorite_genre, gender, created_at FROM std_users""")
    run("""CREATE OR REPLACE TEMP TABLE c_track_features AS
        SELECT track_id, genres, artist, album,
               CASE WHEN duration_seconds IS NULL THEN 'unknown'
                    WHEN duration_seconds < 180 THEN '0-3m'
                    WHEN duration_seconds < 300 THEN '3-5m'
                    WHEN duration_seconds < 480 THEN '5-8m' ELSE '8m+' END AS duration_bucket
        FROM std_tracks""")
    start = date - dt.timedelta(days=kpi_days - 1)
    run(f"""CREATE OR REPLACE TEMP TABLE c_daily_kpis AS
        WITH spine AS (SELECT CAST(unnest(range(DATE '{start}', {d} + 1, INTERVAL 1 DAY))
                                   AS DATE) AS date),
             u AS (SELECT CAST(created_at AS DATE) AS day, count(*) AS n FROM std_users
                   GROUP BY 1),
             t AS (SELECT CAST(created_at AS DATE) AS day, count(*) AS n FROM std_tracks
                   GROUP BY 1),
             l AS (SELECT CAST(created_at AS DATE) AS day, count(*) AS n,
                          count(DISTINCT user_id) AS active FROM std_listens GROUP BY 1),
             f AS (SELECT CAST(first AS DATE) AS day, count(*) AS n
                   FROM (SELECT min(created_at) AS first FROM std_listens GROUP BY user_id)
                   GROUP BY 1)
        SELECT s.date,
               (SELECT coalesce(sum(n), 0) FROM u WHERE day <= s.date)::BIGINT AS total_users,
               (SELECT coalesce(sum(n), 0) FROM u WHERE day = s.date)::BIGINT AS new_users,
               (SELECT coalesce(sum(n), 0) FROM t WHERE day <= s.date)::BIGINT AS total_tracks,
               (SELECT coalesce(sum(n), 0) FROM t WHERE day = s.date)::BIGINT AS new_tracks,
               (SELECT coalesce(sum(n), 0) FROM l WHERE day = s.date)::BIGINT AS listens,
               (SELECT coalesce(sum(active), 0) FROM l WHERE day = s.date)::BIGINT
                   AS active_listeners,
               (SELECT sum(n) FROM l WHERE day <= s.date)::DOUBLE
                   / nullif((SELECT sum(n) FROM f WHERE day <= s.date), 0)
                   AS avg_listen_history_size
        FROM spine s ORDER BY s.date""")

    # ------------------------------------------------------------ checks
    checks = {
        "std_users": ("user_id", ["user_id", "created_at", "updated_at"]),
        "std_tracks": ("track_id", ["track_id", "created_at", "updated_at", "genres"]),
        "std_listen_history": ("record_id", ["record_id", "user_id", "items"]),
        "std_listens": ("record_id, position", ["user_id", "track_id", "position"]),
        "c_interactions": ("user_id, track_id", ["listens"]),
        "c_user_features": ("user_id", ["user_id"]),
        "c_track_features": ("track_id", ["track_id", "duration_bucket"]),
        "c_daily_kpis": ("date", ["date"]),
    }
    for table, (key, not_null) in checks.items():
        dupes = db.execute(f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY ALL "
                           "HAVING count(*) > 1)").fetchone()[0]
        nulls = db.execute(f"SELECT count(*) FROM {table} WHERE "
                           + " OR ".join(f"{c} IS NULL" for c in not_null)).fetchone()[0]
        assert dupes == 0 and nulls == 0, table
    for child in ("std_listens", "c_interactions"):
        orphans = db.execute(
            f"SELECT count(*) FROM {child} c WHERE NOT EXISTS (SELECT 1 FROM std_users u "
            "WHERE u.user_id = c.user_id) OR NOT EXISTS (SELECT 1 FROM std_tracks t "
            "WHERE t.track_id = c.track_id)").fetchone()[0]
        assert orphans == 0, child
    genders = "', '".join(names.GENDERS)
    assert db.execute(f"SELECT count(*) FROM std_users WHERE gender NOT IN ('{genders}')"
                      ).fetchone()[0] == 0

    # ------------------------------------------------------------ write
    outputs = {
        names.STD_USERS: "std_users", "quarantine.users": "q_users",
        names.STD_TRACKS: "std_tracks", "quarantine.tracks": "q_tracks",
        names.STD_LISTEN_HISTORY: "std_listen_history",
        "quarantine.listen_history": "q_listen_history",
        names.STD_LISTENS: "std_listens", "quarantine.listens": "q_listens",
        names.CONS_INTERACTIONS: "c_interactions", names.CONS_USER_FEATURES: "c_user_features",
        names.CONS_TRACK_FEATURES: "c_track_features", names.CONS_DAILY_KPIS: "c_daily_kpis",
    }
    for target, temp in outputs.items():
        reader = db.execute(f"SELECT * FROM {temp}").fetch_record_batch()
        lake.write(target, reader, mode="replace")
        db.execute(f"DROP TABLE {temp}")


def _latest(run, p: str, key: str, cols: str, flags: str) -> None:
    """Latest clean version per key; tied versions with different content conflict."""
    run(f"""CREATE OR REPLACE TEMP TABLE {p}_ranked AS
        SELECT *, rank() OVER (PARTITION BY {key} ORDER BY updated_at DESC, ingest_date DESC)
                      AS rk,
               min(ingest_date) OVER (PARTITION BY {key}) AS first_ingest_date,
               max(ingest_date) OVER (PARTITION BY {key}) AS last_ingest_date
        FROM {p}_typed""")
    run(f"""CREATE OR REPLACE TEMP TABLE {p}_conflicts AS
        SELECT {key}, updated_at, ingest_date FROM {p}_ranked WHERE rk = 1
        GROUP BY ALL HAVING min(h) <> max(h)""")
    table = "std_users" if p == "u" else "std_tracks"
    run(f"""CREATE OR REPLACE TEMP TABLE {table} AS
        SELECT DISTINCT {key}, {cols}, first_ingest_date, last_ingest_date,
               coalesce(updated_at < created_at, false) AS updated_before_created, {flags}
        FROM {p}_ranked WHERE rk = 1 AND {key} NOT IN (SELECT {key} FROM {p}_conflicts)""")
    run(f"DROP TABLE {p}_ranked")
    run(f"DROP TABLE {p}_typed")

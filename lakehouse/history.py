"""The history zone: every distinct version of every source record, stored once.

The API has no incremental parameter, so each ingest still reads the whole
collection into a dated ``raw.<endpoint>`` partition. The history then keeps
only what changed: per endpoint, ``history.<endpoint>`` is an append-only log
of events, written in ONE atomic commit per merged ingest date:

- ``open``: a version seen for the first time that day (its source fields,
  content hash, copy ordinal, first ingest date, and the run metadata of that
  first sighting);
- ``close``: a version not served any more that day (deletion or update is
  the end of its validity), naming the last ingest date it was seen;
- ``day``: the merge of the date itself, with the raw partition's fingerprint.

A version is identified by its content (md5 of its source fields) and its
copy ordinal, so records without an id (listen records) and exact duplicates
(a record served twice) keep their multiplicity: the n-th identical copy is
ordinal n-1. :func:`versions` folds the events into SCD2 rows (first and last
ingest date seen); :func:`snapshot` rebuilds any merged day exactly.

Every event carries the date whose merge wrote it (``_change_date``), so
merging a date again replaces exactly that date's events in one commit, and
the history is always a consistent prefix of the merged dates, whatever
process dies when. :func:`sync` compares the raw partitions with the merged
dates (by the fingerprint of the partition's files) and merges, in order,
every date that is new or was re-ingested; on a lake written before the
history existed, that builds the history from its snapshots.

Example::

    from lakehouse.history import snapshot
    users_on_day = snapshot(open_lake("lake"), "users", datetime.date(2026, 11, 26))
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.errors import (
    ConfigError,
    HistoryError,
    LakeError,
    LakehouseError,
    LockedError,
    SourceResetError,
    TableNotFoundError,
)
from lakehouse.lake import Lake, parse_table_name
from lakehouse.lake.scratch import ScratchDb
from lakehouse.locking import lake_lock
from lakehouse.sqlguard import first_line
from lakehouse.sqltext import ident, literal

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from lakehouse.runlog import RunRecord

log = logging.getLogger(__name__)

META = (*names.RAW_META_COLUMNS,)
NOT_SOURCE = frozenset((
    *names.RAW_META_COLUMNS, names.INGEST_DATE, names.H_HASH, names.H_ORDINAL, names.H_EVENT,
    names.H_FIRST_SEEN, names.H_LAST_SEEN, names.H_CHANGE_DATE, names.H_NOTE))
# The key whose overlap with the previous snapshot detects a source reset; records
# without an id (listen records) are keyed by their content.
RESET_KEYS = {names.USERS: "id", names.TRACKS: "id"}
_VERSION = (names.H_HASH, names.H_ORDINAL, names.H_FIRST_SEEN)


@dataclass
class DayMerge:
    """What merging one ingest date of one endpoint did."""

    endpoint: str
    day: dt.date
    rows: int          # records in the snapshot
    opened: int        # versions first seen that day
    closed: int        # versions no longer served that day
    overlap: float | None  # share of the previous snapshot's keys still served
    version: int       # history table version written

    def to_dict(self) -> dict:
        """JSON-ready form, for run records."""
        return asdict(self) | {"day": self.day.isoformat()}


# ------------------------------------------------------------------ helpers
def _rel(lake: Lake, name: str) -> str:
    """The DuckDB name of table ``name``, its view refreshed to the latest commit."""
    lake.table(name)
    zone, table = parse_table_name(name)
    return f"{ident(zone)}.{ident(table)}"


def source_columns(schema: pa.Schema) -> list[str]:
    """The columns of ``schema`` the source sent (not run metadata, not history's)."""
    return [n for n in schema.names if n not in NOT_SOURCE]


def hash_sql(columns: Sequence[str], alias: str = "") -> str:
    """SQL for the content hash of a row over ``columns`` (16 bytes of md5).

    Columns are taken by name, in sorted order, and null values are left
    out, so a column missing from one snapshot and null in another hash the
    same; each value is JSON-encoded (strings quoted and escaped), so no two
    different contents can serialize alike.
    """
    prefix = f"{alias}." if alias else ""
    parts = [f"CASE WHEN {prefix}{ident(c)} IS NULL THEN NULL ELSE {literal(c)} || chr(30) || "
             f"to_json({prefix}{ident(c)}) END" for c in sorted(columns)]
    return f"unhex(md5(concat_ws(chr(31), {', '.join(parts) or 'NULL'})))"


def _check_endpoint(endpoint: str) -> str:
    if endpoint not in names.ENDPOINTS:
        raise ConfigError(f"unknown endpoint {endpoint!r}: choose from "
                          f"{', '.join(names.ENDPOINTS)}")
    return endpoint


@contextmanager
def _temps(db: ScratchDb) -> Iterator[list[str]]:
    made: list[str] = []
    try:
        yield made
    finally:
        for name in made:
            db.con.execute(f"DROP TABLE IF EXISTS {name}")


def merge_db(lake: Lake | None, settings: Settings) -> ScratchDb:
    """The merge's own DuckDB connection: no ibis, not the build's 1 GB, closed after.

    Raises:
        ConfigError: ``settings.merge_memory`` is not a DuckDB size.
    """
    return ScratchDb(lake, settings.merge_memory, setting="merge_memory")


def check_merge_memory(settings: Settings) -> None:
    """Fail early, before any page is read, on a ``merge_memory`` DuckDB does not take.

    Raises:
        ConfigError: ``settings.merge_memory`` is not a DuckDB size.
    """
    merge_db(None, settings).close()


# ------------------------------------------------------------------ state
def raw_partitions(lake: Lake, endpoint: str) -> dict[dt.date, str]:
    """Each ingest date in ``raw.<endpoint>`` -> the fingerprint of its files.

    A re-ingested date gets new files, hence a new fingerprint.
    """
    return lake.partition_fingerprints(names.raw_table(endpoint), names.INGEST_DATE)


def merged_days(lake: Lake, endpoint: str, *, db: ScratchDb | None = None
                ) -> dict[dt.date, dict]:
    """Each ingest date merged into ``history.<endpoint>`` -> its day note.

    Read on ``db`` when given, else on the lake's connection."""
    name = names.history_table(endpoint)
    if not lake.exists(name):
        return {}
    con, rel = (db.con, db.rel(name)) if db is not None else (lake.duckdb, _rel(lake, name))
    rows = con.execute(
        f"SELECT {names.H_CHANGE_DATE}, {names.H_NOTE} FROM {rel} "
        f"WHERE {names.H_EVENT} = {literal(names.H_DAY)}").fetchall()
    return {day: json.loads(note or "{}") for day, note in rows}


def _require_history(lake: Lake, endpoint: str) -> str:
    name = names.history_table(_check_endpoint(endpoint))
    if not lake.exists(name):
        raise TableNotFoundError(f"table {name} does not exist in {lake.root}; "
                                 "run 'lakehouse ingest' first")
    return name


def _closes_sql(hist: str, cond: str) -> str:
    return (f"(SELECT {', '.join(_VERSION)}, {names.H_LAST_SEEN} FROM {hist} "
            f"WHERE {names.H_EVENT} = {literal(names.H_CLOSE)} AND {cond})")


def _snapshot_sql(hist: str, columns: Sequence[str], day: dt.date) -> str:
    """SQL of the records served on merged day ``day``: open on it, not closed by it."""
    cols = ", ".join(f"o.{ident(c)}" for c in columns)
    when = f"DATE {literal(day)}"
    return (f"SELECT {cols} FROM {hist} o ANTI JOIN "
            f"{_closes_sql(hist, f'{names.H_CHANGE_DATE} <= {when}')} c "
            f"USING ({', '.join(_VERSION)}) "
            f"WHERE o.{names.H_EVENT} = {literal(names.H_OPEN)} AND o.{names.H_CHANGE_DATE} <= {when}")


# ------------------------------------------------------------------ reading
def snapshot(lake: Lake, endpoint: str, day: dt.date) -> pa.Table:
    """The records ``endpoint`` served on ingest date ``day``, rebuilt from the history.

    Exact as a multiset: every record with its source fields, as many times
    as it was served; the source promises no order, so none is kept.

    Raises:
        HistoryError: ``day`` was not merged (not ingested, or refused).
        TableNotFoundError: The endpoint has no history yet.
    """
    name = _require_history(lake, endpoint)
    days = merged_days(lake, endpoint)
    if day not in days:
        known = sorted(days)
        span = f"{known[0]} .. {known[-1]}" if known else "none"
        raise HistoryError(f"{name} has no snapshot for {day} (merged dates: {span}, "
                           f"{len(known)} in all); pick a merged date")
    hist = _rel(lake, name)
    columns = source_columns(lake.schema(name))
    return lake.duckdb.sql(_snapshot_sql(hist, columns, day)).to_arrow_table()


def versions(lake: Lake, endpoint: str) -> ir.Table:
    """``history.<endpoint>`` as SCD2 rows: one per version, with its validity.

    Columns: the source fields, ``_hash``, ``_ordinal``, ``_first_seen``,
    ``_last_seen`` (the last ingest date it was served; the latest merged
    date while it still is) and ``_current``.
    """
    name = _require_history(lake, endpoint)
    hist = _rel(lake, name)
    cols = ", ".join(f"o.{ident(c)}" for c in (*source_columns(lake.schema(name)), *META))
    return lake.con.sql(
        f"SELECT {cols}, o.{names.H_HASH}, o.{names.H_ORDINAL}, o.{names.H_FIRST_SEEN}, "
        f"coalesce(c.{names.H_LAST_SEEN}, d.last) AS {names.H_LAST_SEEN}, "
        f"c.{names.H_LAST_SEEN} IS NULL AS _current "
        f"FROM {hist} o LEFT JOIN {_closes_sql(hist, 'true')} c USING ({', '.join(_VERSION)}) "
        f"CROSS JOIN (SELECT max({names.H_CHANGE_DATE}) AS last FROM {hist} "
        f"WHERE {names.H_EVENT} = {literal(names.H_DAY)}) d "
        f"WHERE o.{names.H_EVENT} = {literal(names.H_OPEN)}")


def build_input(events: ir.Table, day: dt.date) -> ir.Table:
    """The versions known up to ``day``, shaped as raw rows for the zone views.

    A pure ibis query over ``history.<endpoint>`` (``events``), so it runs on
    whichever engine reads the table. One row per version, not per snapshot:
    the source fields and the run metadata of its first sighting,
    ``ingest_date`` = the last ingest date up to ``day`` it was served,
    ``_first_seen`` = the first. The views fold them exactly as they folded
    every daily copy: the latest version by ``updated_at`` then ingest date,
    first and last dates seen per key.
    """
    import ibis

    e = events
    until = ibis.literal(day, type="date")
    known = e[names.H_CHANGE_DATE] <= until
    opens = e.filter(known & (e[names.H_EVENT] == names.H_OPEN))
    closes = e.filter(known & (e[names.H_EVENT] == names.H_CLOSE)).select(
        _c_hash=e[names.H_HASH], _c_ordinal=e[names.H_ORDINAL],
        _c_first=e[names.H_FIRST_SEEN], _c_last=e[names.H_LAST_SEEN])
    last = e.filter(known & (e[names.H_EVENT] == names.H_DAY)).aggregate(
        _last_day=e[names.H_CHANGE_DATE].max())
    joined = opens.left_join(closes, [opens[names.H_HASH] == closes._c_hash,
                                      opens[names.H_ORDINAL] == closes._c_ordinal,
                                      opens[names.H_FIRST_SEEN] == closes._c_first])
    joined = joined.cross_join(last)
    columns = [c for c in events.columns if c not in NOT_SOURCE] + list(META)
    return joined.select(*columns, **{
        names.INGEST_DATE: joined._c_last.fill_null(joined._last_day),
        names.H_FIRST_SEEN: joined[names.H_FIRST_SEEN]})


# ------------------------------------------------------------------ merging
def sync(lake: Lake, settings: Settings, endpoint: str, *, accept_reset: bool = False,
         run_id: str | None = None, empty_day: dt.date | None = None,
         db: ScratchDb | None = None) -> list[DayMerge]:
    """Merge into the history every raw date that is new or was re-ingested, in order.

    The caller holds the lake's ingest lock. A date already merged from the
    same raw files is skipped, so a rerun does nothing. When an earlier date
    changed, it and every later date are merged again (from their raw
    partitions, which must still be kept).

    Args:
        accept_reset: Merge a snapshot even if it looks like a source reset.
        run_id: Recorded in the day events (default: the ingest run's).
        empty_day: A date ingested with no record at all: Delta keeps no
            partition for it, yet it is a snapshot (of nothing) to merge.
        db: The merge connection to run on (default: a new one, closed after).

    Raises:
        SourceResetError: A date shares less than ``settings.reset_threshold``
            of the previous date's keys; it and later dates are not merged.
        HistoryError: A date to merge again has no raw partition any more.
    """
    _check_endpoint(endpoint)
    if db is None:
        with merge_db(lake, settings) as own:
            return sync(lake, settings, endpoint, accept_reset=accept_reset, run_id=run_id,
                        empty_day=empty_day, db=own)
    raw = raw_partitions(lake, endpoint)
    if empty_day is not None and empty_day not in raw:
        raw[empty_day] = "empty"
    merged = merged_days(lake, endpoint, db=db)
    if not raw and not merged and lake.exists(names.raw_table(endpoint)):
        _create_empty(lake, endpoint, db)
    stale = sorted(d for d, fp in raw.items() if merged.get(d, {}).get("raw") != fp)
    if not stale:
        return []
    start = stale[0]
    later = [d for d in merged if d > start and d not in raw]
    if later:
        raise HistoryError(
            f"raw.{endpoint} {start} is not in the history, but later merged dates "
            f"({later[0]}, ...) have no raw partition any more to merge again; drop "
            f"partition {start} from raw.{endpoint} (or re-ingest the newest date)")
    earlier = [d for d in merged if d < start]
    hist = names.history_table(endpoint)
    if any(d > start for d in merged):
        lake.delete(hist, f"{names.H_CHANGE_DATE} > '{start}'",
                    metadata={"pipeline": "history", "replay_from": str(start)})
    done = []
    prev = max(earlier) if earlier else None
    for day in sorted(d for d in raw if d >= start):
        done.append(merge_day(lake, settings, endpoint, day, prev, fingerprint=raw[day],
                              accept_reset=accept_reset, run_id=run_id, fresh=prev is None,
                              db=db))
        prev = day
    return done


def merge_day(lake: Lake, settings: Settings, endpoint: str, day: dt.date,
              prev: dt.date | None, *, fingerprint: str, accept_reset: bool = False,
              run_id: str | None = None, fresh: bool = False,
              db: ScratchDb | None = None) -> DayMerge:
    """Merge raw partition ``day`` into the history, against the state on ``prev``.

    One atomic commit replaces the events of ``day``: opens of the versions
    not open on ``prev``, closes of those open on ``prev`` and not served on
    ``day``, and the day event. ``fresh`` rewrites the whole table (the first
    date, or a replay from it), so its schema follows the snapshot's. The
    work runs on ``db`` (default: a new merge connection, closed after).

    Raises:
        SourceResetError: Too few of ``prev``'s keys are served on ``day``.
    """
    if db is None:
        with merge_db(lake, settings) as own:
            return merge_day(lake, settings, endpoint, day, prev, fingerprint=fingerprint,
                             accept_reset=accept_reset, run_id=run_id, fresh=fresh, db=own)
    hist = names.history_table(endpoint)
    raw_name = names.raw_table(endpoint)
    columns = source_columns(lake.schema(raw_name))
    key = RESET_KEYS.get(endpoint) if RESET_KEYS.get(endpoint) in columns else names.H_HASH
    with _temps(db) as temps:
        today, before = f"_hist_today_{endpoint}", f"_hist_prev_{endpoint}"
        temps += [today, before]
        _snapshot_table(db, endpoint, columns, f"DATE {literal(day)}", today)
        _previous_state(lake, db, endpoint, prev, key, before)
        db.release()  # the scans' buffers
        con = db.con
        overlap = _overlap(con, today, before, key)
        if overlap is not None and overlap < settings.reset_threshold and not accept_reset:
            raise SourceResetError(
                f"source reset? {endpoint} on {day} serves only {overlap:.0%} of the "
                f"{key} values of {prev} (threshold {settings.reset_threshold:.0%}); nothing "
                f"merged into {hist}; rerun with --accept-reset if the source really "
                "started over")
        rows = con.execute(f"SELECT count(*) FROM {today}").fetchone()[0]
        accepted = bool(accept_reset and overlap is not None
                        and overlap < settings.reset_threshold)

        def day_note(opened: int, closed: int) -> str:
            return json.dumps({"raw": fingerprint, "rows": rows, "opened": opened,
                               "closed": closed, "overlap": overlap, "run_id": run_id,
                               "accepted_reset": accepted})

        source, select, tail, opened, closed = _day_events(
            db, endpoint, today, before, columns, day, prev, rows, day_note, temps)
        db.release()
        meta = {"pipeline": "history", "ingest_date": str(day), "run_id": run_id or ""}
        replace = fresh or not lake.exists(hist)
        schema, batches = db.batches(source, select=select, tail=tail)
        if replace:
            written = lake.write(hist, batches, schema=schema, mode="replace", metadata=meta)
        else:
            written = lake.write(hist, batches, schema=schema, mode="replace_partition",
                                 partition={names.H_CHANGE_DATE: day}, metadata=meta)
    log.info("history %s %s: %d rows, %d opened, %d closed", endpoint, day, rows, opened,
             closed)
    return DayMerge(endpoint, day, rows, opened, closed, overlap, written.version)


def _day_events(db: ScratchDb, endpoint: str, today: str, before: str,
                columns: Sequence[str], day: dt.date, prev: dt.date | None, rows: int,
                day_note: Callable[[int, int], str], temps: list[str]
                ) -> tuple[str, str, str | None, int, int]:
    """The day's events as a table to write: (table, select list, tail SQL, opened, closed).

    Drops what the write does not read (``before``, and ``today`` unless it is the table).
    """
    con = db.con
    (previous,) = con.execute(f"SELECT count(*) FROM {before}").fetchone()
    if previous == 0:
        # Nothing was open on prev (the first date, or after a day of nothing): every
        # row opens and nothing closes. The snapshot table is written as it stands, the
        # event columns added per chunk: no anti-join and no second copy of the
        # snapshot in DuckDB (the table the other dates build).
        con.execute(f"DROP TABLE {before}")
        select, tail = _first_events_sql(today, columns, day, day_note(rows, 0))
        return today, select, tail, rows, 0
    # The anti-joins run once, into a table DuckDB holds within merge_memory (it spills
    # beyond); the counts for the note are taken from it. A day's events are its changes.
    events = f"_hist_events_{endpoint}"
    temps.append(events)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {events} AS "
                f"{_events_sql(today, before, columns, day, prev).replace('__NOTE__', 'NULL')}")
    counts = dict(con.execute(f"SELECT {names.H_EVENT}, count(*) FROM {events} "
                              "GROUP BY 1").fetchall())
    opened, closed = counts.get(names.H_OPEN, 0), counts.get(names.H_CLOSE, 0)
    con.execute(f"UPDATE {events} SET {names.H_NOTE} = {literal(day_note(opened, closed))} "
                f"WHERE {names.H_EVENT} = {literal(names.H_DAY)}")
    for done in (today, before):  # DuckDB's memory is the delta-rs writer's from here
        con.execute(f"DROP TABLE {done}")
    return events, "*", None, opened, closed


def _snapshot_table(db: ScratchDb, endpoint: str, columns: Sequence[str], day_sql: str,
                    into: str) -> None:
    """Temp table ``into``: raw partition ``day_sql`` with content hash and copy ordinal."""
    cols = ", ".join(ident(c) for c in (*columns, *META))
    h, o = names.H_HASH, names.H_ORDINAL
    # Rows go straight in, ordinal 0: a window over the whole snapshot would hold every
    # column of it in its partitions (~2x the table at its peak). Only copies of one
    # content (a record served twice) need numbering 0, 1, ...; which copy gets which
    # number is arbitrary, as it was.
    db.con.execute(
        f"CREATE OR REPLACE TEMP TABLE {into} AS SELECT {cols}, {hash_sql(columns)} AS {h}, "
        f"0::INTEGER AS {o} FROM {db.rel(names.raw_table(endpoint))} "
        f"WHERE {names.INGEST_DATE} = {day_sql}")
    db.con.execute(
        f"UPDATE {into} SET {o} = d.n FROM (SELECT rowid AS r, (row_number() OVER "
        f"(PARTITION BY {h}) - 1)::INTEGER AS n FROM {into} WHERE {h} IN "
        f"(SELECT {h} FROM {into} GROUP BY {h} HAVING count(*) > 1)) d "
        f"WHERE {into}.rowid = d.r AND d.n > 0")


def _create_empty(lake: Lake, endpoint: str, db: ScratchDb) -> None:
    """An empty ``history.<endpoint>`` for a raw table that holds no record yet."""
    columns = source_columns(lake.schema(names.raw_table(endpoint)))
    with _temps(db) as temps:
        today, before = f"_hist_today_{endpoint}", f"_hist_prev_{endpoint}"
        temps += [today, before]
        _snapshot_table(db, endpoint, columns, "NULL", today)
        _previous_state(lake, db, endpoint, None, names.H_HASH, before)
        events = _events_sql(today, before, columns, dt.date.min, None)
        empty = db.con.sql(f"SELECT * FROM ({events.replace('__NOTE__', 'NULL')}) "
                                "WHERE false").to_arrow_table()
    lake.write(names.history_table(endpoint), empty, mode="replace",
               metadata={"pipeline": "history"})


def _previous_state(lake: Lake, merge_db: ScratchDb, endpoint: str, prev: dt.date | None,
                    key: str, into: str) -> None:
    """Temp table ``into``: the versions open on ``prev`` (none if it is None)."""
    hist = names.history_table(endpoint)
    db = merge_db.con
    if prev is None or not lake.exists(hist):
        db.execute(f"CREATE OR REPLACE TEMP TABLE {into} ({names.H_HASH} BLOB, "
                   f"{names.H_ORDINAL} INTEGER, {names.H_FIRST_SEEN} DATE, _key VARCHAR)")
        return
    rel = merge_db.rel(hist)
    when = f"DATE {literal(prev)}"
    has_key = key != names.H_HASH and key in lake.schema(hist).names
    key_sql = f"CAST(o.{ident(key)} AS VARCHAR)" if has_key else f"o.{names.H_HASH}::VARCHAR"
    db.execute(
        f"CREATE OR REPLACE TEMP TABLE {into} AS SELECT o.{names.H_HASH}, o.{names.H_ORDINAL}, "
        f"o.{names.H_FIRST_SEEN}, {key_sql} AS _key "
        f"FROM {rel} o ANTI JOIN {_closes_sql(rel, f'{names.H_CHANGE_DATE} <= {when}')} c "
        f"USING ({', '.join(_VERSION)}) "
        f"WHERE o.{names.H_EVENT} = {literal(names.H_OPEN)} AND o.{names.H_CHANGE_DATE} <= {when}")


def _overlap(db, today: str, before: str, key: str) -> float | None:
    """Share of the previous snapshot's distinct keys served today (None: no previous)."""
    (n_prev,) = db.execute(f"SELECT count(DISTINCT _key) FROM {before}").fetchone()
    if not n_prev:
        return None
    today_key = f"CAST({ident(key)} AS VARCHAR)" if key != names.H_HASH else f"{names.H_HASH}::VARCHAR"
    (kept,) = db.execute(
        f"SELECT count(*) FROM (SELECT DISTINCT _key FROM {before}) p SEMI JOIN "
        f"(SELECT DISTINCT {today_key} AS _key FROM {today}) t USING (_key)").fetchone()
    return kept / n_prev


def _events_sql(today: str, before: str, columns: Sequence[str], day: dt.date,
                prev: dt.date | None) -> str:
    """SQL of the day's events (note as ``__NOTE__``)."""
    version = f"{names.H_HASH}, {names.H_ORDINAL}"
    d = f"DATE {literal(day)}"
    p = f"DATE {literal(prev)}" if prev else "NULL::DATE"
    opens = (f"SELECT t.* , {literal(names.H_OPEN)} AS {names.H_EVENT}, {d} AS {names.H_FIRST_SEEN}, "
             f"NULL::DATE AS {names.H_LAST_SEEN} FROM {today} t ANTI JOIN {before} b "
             f"USING ({version})")
    closes = (f"SELECT b.{names.H_HASH}, b.{names.H_ORDINAL}, "
              f"{literal(names.H_CLOSE)} AS {names.H_EVENT}, "
              f"b.{names.H_FIRST_SEEN}, {p} AS {names.H_LAST_SEEN} FROM {before} b ANTI JOIN "
              f"{today} t USING ({version})")
    day_row = (f"SELECT {literal(names.H_DAY)} AS {names.H_EVENT}, {d} AS {names.H_FIRST_SEEN}, "
               f"{d} AS {names.H_LAST_SEEN}, __NOTE__ AS {names.H_NOTE}")
    order = ", ".join(ident(c) for c in (*columns, *META, names.H_HASH, names.H_ORDINAL, names.H_EVENT,
                                       names.H_FIRST_SEEN, names.H_LAST_SEEN))
    sql = (f"SELECT {order}, {d} AS {names.H_CHANGE_DATE}, "
           f"{names.H_NOTE}::VARCHAR AS {names.H_NOTE} FROM (({opens}) UNION ALL BY NAME "
           f"({closes}) UNION ALL BY NAME ({day_row}))")
    return sql


def _first_events_sql(today: str, columns: Sequence[str], day: dt.date,
                      note: str) -> tuple[str, str]:
    """The day's events when nothing was open before: every row of ``today`` opens.

    Returns the select list that makes a row of ``today`` its open event, and
    the SQL of the day event, typed alike; what :func:`_events_sql` gives when
    ``before`` is empty, without the anti-join.
    """
    d = f"DATE {literal(day)}"
    select = ", ".join([
        *(ident(c) for c in (*columns, *META, names.H_HASH, names.H_ORDINAL)),
        f"{literal(names.H_OPEN)} AS {names.H_EVENT}", f"{d} AS {names.H_FIRST_SEEN}",
        f"NULL::DATE AS {names.H_LAST_SEEN}", f"{d} AS {names.H_CHANGE_DATE}",
        f"NULL::VARCHAR AS {names.H_NOTE}"])
    tail = (f"SELECT * FROM (SELECT {select} FROM {today} LIMIT 0) UNION ALL BY NAME "
            f"(SELECT {literal(names.H_DAY)} AS {names.H_EVENT}, {d} AS {names.H_FIRST_SEEN}, "
            f"{d} AS {names.H_LAST_SEEN}, {d} AS {names.H_CHANGE_DATE}, "
            f"{literal(note)}::VARCHAR AS {names.H_NOTE})")
    return select, tail


def catch_up(lake: Lake, settings: Settings) -> list[DayMerge]:
    """Merge raw dates missing from the history of every endpoint (build's first step).

    This is how a lake written before the history existed upgrades, and how a
    run killed between its raw commit and its history commit is completed.
    Takes the ingest lock without waiting: a running ingest merges its own
    dates. A suspected source reset is left to ``lakehouse ingest
    --accept-reset``: the build then reads the history as it is.

    Raises:
        HistoryError: A date cannot be merged (see :func:`sync`).
    """
    done: list[DayMerge] = []
    try:
        with lake_lock(settings.locks_dir, "ingest", wait=False):
            for endpoint in names.ENDPOINTS:
                try:
                    done += sync(lake, settings, endpoint)
                except SourceResetError as exc:
                    log.warning("%s; building from the history as it is", exc)
                except HistoryError:
                    raise
                except LakeError as exc:
                    # An unreadable raw table cannot be merged, but what the history
                    # already holds can still be built (ingest reports the raw table);
                    # a broken history fails the build when it reads it.
                    log.warning("%s; building from the history as it is", exc)
    except LockedError:
        log.info("an ingest is running: it merges its own dates into the history")
    return done


def bound_memory(lake: Lake, settings: Settings) -> None:
    """Cap the lake connection's DuckDB memory at ``settings.build_memory``.

    Beyond it, the merge's joins spill to a temporary folder (removed with
    the process's temp dir) instead of growing with the snapshot.
    """
    import tempfile

    # DuckDB creates the folder when it first spills and removes its files on close.
    spill = os.path.join(tempfile.gettempdir(), f"lakehouse-history-{os.getpid()}")
    try:
        lake.duckdb.execute(f"SET memory_limit = {literal(settings.build_memory)}")
        lake.duckdb.execute(f"SET temp_directory = {literal(spill)}")
    except Exception as exc:  # duckdb.Error; the message names the bad value
        raise ConfigError(f"bad build_memory {settings.build_memory!r} "
                          f"(LAKEHOUSE_BUILD_MEMORY): {first_line(exc)}") from None


# ------------------------------------------------------------------ raw retention
def verify_day(lake: Lake, endpoint: str, day: dt.date, *, db: ScratchDb | None = None
               ) -> bool:
    """Whether raw partition ``day`` is exactly the history's snapshot of ``day``.

    Compares the multisets of content hashes, each recomputed from the
    stored fields on both sides (not the stored hash). Runs on ``db`` when
    given, else on the lake's connection.
    """
    raw_name, hist = names.raw_table(endpoint), names.history_table(endpoint)
    if day not in merged_days(lake, endpoint, db=db):
        return False
    con, rel = (db.con, db.rel) if db is not None else (lake.duckdb, functools.partial(_rel, lake))
    raw_cols = source_columns(lake.schema(raw_name))
    hist_cols = source_columns(lake.schema(hist))
    snap = _snapshot_sql(rel(hist), hist_cols, day)
    sql = (f"WITH r AS (SELECT {hash_sql(raw_cols)} AS k, count(*) AS n "
           f"FROM {rel(raw_name)} WHERE {names.INGEST_DATE} = DATE {literal(day)} "
           f"GROUP BY 1), s AS (SELECT {hash_sql(hist_cols)} AS k, count(*) AS n "
           f"FROM ({snap}) GROUP BY 1) "
           f"SELECT count(*) FROM r FULL OUTER JOIN s USING (k) WHERE r.n IS DISTINCT FROM s.n")
    (differences,) = con.execute(sql).fetchone()
    if differences:
        log.error("raw.%s %s differs from its history snapshot in %d contents; kept",
                  endpoint, day, differences)
    return differences == 0


def prune_raw(lake: Lake, settings: Settings, endpoint: str, today: dt.date, *,
              db: ScratchDb | None = None) -> list[dt.date]:
    """Drop raw partitions older than the retention window, once verified in the history.

    Keeps every ingest date after ``today - raw_retention_days``. An older
    date is dropped only if it was merged from these very files and
    :func:`verify_day` passes; all dropped dates go in one commit. Their files
    stay on disk for time travel until ``lakehouse maintain`` vacuums them.

    Runs on ``db`` (default: a new merge connection, when there is an old date).

    Returns:
        The dates dropped.
    """
    horizon = today - dt.timedelta(days=settings.raw_retention_days)
    raw = raw_partitions(lake, endpoint)
    if not any(d <= horizon for d in raw):
        return []  # nothing to verify: the history is not read
    if db is None:
        with merge_db(lake, settings) as own:
            return prune_raw(lake, settings, endpoint, today, db=own)
    merged = merged_days(lake, endpoint, db=db)
    old = sorted(d for d in raw if d <= horizon and merged.get(d, {}).get("raw") == raw[d])
    drop = [d for d in old if verify_day(lake, endpoint, d, db=db)]
    if drop:
        dates = ", ".join(f"'{d}'" for d in drop)
        lake.delete(names.raw_table(endpoint), f"{names.INGEST_DATE} IN ({dates})",
                    metadata={"pipeline": "history", "pruned": dates})
        log.info("raw.%s: dropped %d partition(s) verified in the history", endpoint, len(drop))
    return drop


def update(lake: Lake, settings: Settings, endpoint: str, today: dt.date, *,
           accept_reset: bool = False, run_id: str | None = None) -> dict:
    """After an endpoint's raw commit: merge it into the history, then apply retention.

    Both run on one merge connection (:func:`merge_db`), closed after: its
    memory goes back before the next endpoint is read.

    Returns:
        Details for the run record: the dates merged and the raw dates dropped.

    Raises:
        SourceResetError, HistoryError: As :func:`sync`; nothing is dropped then.
    """
    with merge_db(lake, settings) as db:
        merges = sync(lake, settings, endpoint, accept_reset=accept_reset, run_id=run_id,
                      empty_day=today, db=db)
        pruned = prune_raw(lake, settings, endpoint, today, db=db)
    return {"history": [m.to_dict() for m in merges],
            "raw_pruned": [d.isoformat() for d in pruned]}


def merge_run(lake: Lake, settings: Settings, record: RunRecord, *,
              accept_reset: bool = False) -> RunRecord:
    """Fold a successful ingest run's snapshot into the history; the record says how.

    The raw commit stays whatever happens here (raw is faithful). A refused
    reset or a failed merge turns the record to ``failed`` with the reason;
    the next run merges the date then (see :func:`sync`).
    """
    if not record.ok:
        return record
    try:
        record.details.update(update(lake, settings, record.target, record.run_date,
                                     accept_reset=accept_reset, run_id=record.run_id))
    except LakehouseError as exc:
        text = " ".join(str(exc).split())
        return record.finish(names.FAILED, f"{text}; raw.{record.target} {record.run_date} "
                             "is kept, not merged")
    return record.finish(record.status)

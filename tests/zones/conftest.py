"""Tiny in-code raw tables for the zone views."""

from __future__ import annotations

import datetime as dt

import ibis
import pyarrow as pa
import pytest

from lakehouse import names
from lakehouse.lake import Lake
from lakehouse.zones.build import RAW_COLUMNS

DAY1 = dt.date(2026, 11, 1)
DAY2 = dt.date(2026, 11, 2)
TS = "2026-10-01T10:00:00.000001"
LATER = "2026-10-05T10:00:00"

RAW_TYPES = {name: {c: ibis.dtype(t).to_pyarrow() for c, t in cols.items()}
             for name, cols in RAW_COLUMNS.items()}


def user(id_, **kw) -> dict:
    row = {"id": id_, "first_name": "Ada", "last_name": "Lovelace",
           "email": f" Ada{id_}@Example.org ", "gender": "Female",
           "favorite_genres": "Rock", "created_at": TS, "updated_at": LATER}
    return row | kw


def track(id_, **kw) -> dict:
    row = {"id": id_, "name": "song", "artist": "band", "songwriters": "writer",
           "duration": "03:30", "genres": "Rock", "album": "album",
           "created_at": TS, "updated_at": LATER}
    return row | kw


def listen(user_id, items, **kw) -> dict:
    return {"user_id": user_id, "items": items, "created_at": TS, "updated_at": LATER} | kw


def raw_table(name: str, rows: list[dict], day: dt.date = DAY1, page: int = 1) -> pa.Table:
    """Rows as raw table ``name`` ingested on ``day``, with the run metadata."""
    types = RAW_TYPES[name]
    n = len(rows)
    cols = {c: pa.array([r.get(c) for r in rows], types[c]) for c in types}
    cols |= {
        names.RUN_ID: pa.array([f"run-{day}"] * n, pa.string()),
        names.INGESTED_AT: pa.array([dt.datetime.combine(day, dt.time(6), dt.UTC)] * n,
                                    pa.timestamp("us", tz="UTC")),
        names.PAGE: pa.array([page] * n, pa.int64()),
        names.INGEST_DATE: pa.array([day] * n, pa.date32()),
    }
    return pa.table(cols)


@pytest.fixture
def con():
    """A DuckDB connection in UTC, as the lake's."""
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone = 'UTC'")
    return con


@pytest.fixture
def raw(con):
    """``raw(name, rows, day=...)`` -> an ibis table of raw rows; several days via lists."""
    counter = iter(range(10_000))

    def make(name: str, *days: tuple[dt.date, list[dict]]) -> ibis.Table:
        tables = [raw_table(name, rows, day) for day, rows in days]
        return con.create_table(f"raw_{next(counter)}", pa.concat_tables(tables))

    return make


def write_raw(lake: Lake, day: dt.date, users: list[dict], tracks: list[dict],
              listens: list[dict]) -> None:
    """Append one day's snapshot of the three endpoints to the lake's raw zone."""
    for name, rows in ((names.RAW_USERS, users), (names.RAW_TRACKS, tracks),
                       (names.RAW_LISTEN_HISTORY, listens)):
        lake.write(name, raw_table(name, rows, day), mode="replace_partition",
                   partition={names.INGEST_DATE: day}, partition_by=[names.INGEST_DATE])

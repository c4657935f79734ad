"""KPIs: unit tests on tiny run logs, and the sample lake against direct SQL."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from lakehouse import names
from lakehouse.errors import ConfigError, LakeError
from lakehouse.lake import Lake
from lakehouse.monitor.kpis import (
    USER_KPI_COLUMNS,
    frame_rows,
    kpi_tables,
    pipeline_kpis,
    user_kpis,
)

from .conftest import DAY1, DAY2, DAY3, run, write_runs


def test_runs_per_day_month_and_pipeline_with_duration_and_cost(lake_settings):
    settings = lake_settings.replace(cost_per_cpu_hour=3.6)  # 0.001 per CPU second
    durations = [1.0, 2.0, 3.0, 4.0, 10.0]
    records = [run("ingest", "users", DAY1, records=10 * i, duration_s=d, cpu_s=100.0)
               for i, d in enumerate(durations, 1)]
    records += [run("ingest", "tracks", DAY1, names.FAILED, error="x", duration_s=5.0,
                    cpu_s=None),
                run("build", names.STD_USERS, DAY2, records=7, duration_s=2.0, cpu_s=50.0),
                run("build", names.STD_USERS, dt.date(2026, 12, 1), records=1, duration_s=1.0,
                    cpu_s=0.0)]
    write_runs(settings, *records)

    k = pipeline_kpis(settings)
    day1 = k.daily[(k.daily["date"] == DAY1) & (k.daily["pipeline"] == "ingest")].iloc[0]
    assert (day1["runs"], day1["succeeded"], day1["failed"]) == (6, 5, 1)
    all_durations = [*durations, 5.0]
    assert day1["avg_duration_s"] == pytest.approx(np.mean(all_durations), abs=1e-3)
    assert day1["p95_duration_s"] == pytest.approx(np.quantile(all_durations, 0.95), abs=1e-3)
    assert day1["records"] == 150 and day1["avg_records"] == 30.0
    assert day1["cost"] == pytest.approx(0.5)  # 500 CPU s at 0.001
    assert k.total_cost == pytest.approx(0.55)

    monthly = {(r.month, r.pipeline): r for r in k.monthly.itertuples()}
    assert set(monthly) == {("2026-11", "ingest"), ("2026-11", "build"), ("2026-12", "build")}
    assert monthly[("2026-11", "build")].runs == 1 and monthly[("2026-12", "build")].records == 1

    since = pipeline_kpis(settings, since=DAY2)
    assert set(since.daily["date"]) == {DAY2, dt.date(2026, 12, 1)}


def test_table_sizes_over_time_come_from_the_versions_the_runs_wrote(lake_settings):
    lake = Lake(lake_settings.lake)
    records = []
    for i, day in enumerate((DAY1, DAY2, DAY3), 1):
        rows = pa.table({"id": list(range(10 * i)),
                         names.INGEST_DATE: pa.array([day] * (10 * i), pa.date32())})
        w = lake.write(names.RAW_USERS, rows, mode="replace_partition",
                       partition={names.INGEST_DATE: day}, partition_by=[names.INGEST_DATE])
        records.append(run("ingest", "users", day, records=w.rows, table_version=w.version))
    # A build on day 2 only; failed runs and runs without a table never count.
    w = lake.write(names.STD_USERS, pa.table({"user_id": [1, 2, 3]}), mode="replace")
    records += [run("build", names.STD_USERS, DAY2, records=3, table_version=w.version),
                run("build", names.STD_TRACKS, DAY3, names.FAILED, table_version=None),
                run("train", "models", DAY3)]
    write_runs(lake_settings, *records)

    k = pipeline_kpis(lake_settings)
    sizes = {(r.date, r.table): r.rows for r in k.table_sizes.itertuples()}
    assert sizes == {(DAY1, "raw.users"): 10, (DAY2, "raw.users"): 30,
                     (DAY3, "raw.users"): 60, (DAY2, "standardized.users"): 3}
    assert (k.table_sizes["size_bytes"] > 0).all()
    lake_rows = dict(zip(k.lake_size["date"], k.lake_size["rows"], strict=True))
    assert lake_rows == {DAY1: 10, DAY2: 33, DAY3: 63}  # day 3 carries the build forward
    # Cached: a second read does not need the old versions any more.
    assert (lake_settings.lake / ".monitor" / "table_versions.json").is_file()
    assert frame_rows(pipeline_kpis(lake_settings).table_sizes) == frame_rows(k.table_sizes)


def test_a_lake_without_runs_or_kpis_has_empty_kpis(lake_settings):
    Lake(lake_settings.lake)
    assert list(user_kpis(lake_settings).columns) == USER_KPI_COLUMNS
    assert user_kpis(lake_settings).empty
    k = pipeline_kpis(lake_settings)
    assert k.daily.empty and k.monthly.empty and k.table_sizes.empty and k.total_cost == 0


def test_no_lake_is_an_error_and_bad_sections_are_refused(lake_settings):
    with pytest.raises(LakeError, match="no lake"):
        pipeline_kpis(lake_settings)
    Lake(lake_settings.lake)
    with pytest.raises(ConfigError, match="unknown KPI section"):
        kpi_tables(lake_settings, sections=["nope"])
    assert list(kpi_tables(lake_settings, sections=["lake", "users"])) == ["lake", "users"]


def test_user_kpis_read_daily_kpis_since_a_date(lake_settings):
    lake = Lake(lake_settings.lake)
    lake.write(names.CONS_DAILY_KPIS, pa.table({
        "date": pa.array([DAY2, DAY1], pa.date32()), "total_users": [5, 3],
        "new_users": [2, 3], "total_tracks": [4, 4], "new_tracks": [0, 4], "listens": [7, 1],
        "active_listeners": [2, 1], "avg_listen_history_size": [4.0, 1.0]}), mode="replace")
    frame = user_kpis(lake_settings)
    assert list(frame["date"]) == [DAY1, DAY2] and list(frame.columns) == USER_KPI_COLUMNS
    assert list(user_kpis(lake_settings, since=DAY2)["total_users"]) == [5]


# ---------------------------------------------------------------- sample lake
@pytest.mark.slow
def test_user_kpis_on_the_sample_lake_match_direct_sql(sample_lake):
    frame = user_kpis(sample_lake)
    assert not frame.empty
    lake = Lake(sample_lake.lake, create=False)
    first, last = frame["date"].min(), frame["date"].max()
    direct = lake.sql(f"""
        WITH days AS (SELECT CAST(d AS DATE) AS date
                      FROM generate_series(DATE '{first}', DATE '{last}', INTERVAL 1 DAY) t(d))
        SELECT date,
          (SELECT count(*) FROM standardized.users u WHERE CAST(u.created_at AS DATE) <= date),
          (SELECT count(*) FROM standardized.users u WHERE CAST(u.created_at AS DATE) = date),
          (SELECT count(*) FROM standardized.tracks t WHERE CAST(t.created_at AS DATE) <= date),
          (SELECT count(*) FROM standardized.tracks t WHERE CAST(t.created_at AS DATE) = date),
          (SELECT count(*) FROM standardized.listens l WHERE CAST(l.created_at AS DATE) = date),
          (SELECT count(DISTINCT user_id) FROM standardized.listens l
            WHERE CAST(l.created_at AS DATE) = date),
          (SELECT count(*) / nullif(count(DISTINCT user_id), 0) FROM standardized.listens l
            WHERE CAST(l.created_at AS DATE) <= date)
        FROM days ORDER BY date""").fetchall()
    mine = frame_rows(frame[USER_KPI_COLUMNS])
    assert [r[:7] for r in mine] == [tuple(r[:7]) for r in direct]
    for got, want in zip(mine, direct, strict=True):
        assert got[7] == pytest.approx(want[7]) if want[7] is not None else got[7] is None
    # The last day's totals are the whole standardized zone.
    totals = lake.sql("SELECT (SELECT count(*) FROM standardized.users), "
                      "(SELECT count(*) FROM standardized.tracks)").fetchone()
    assert (mine[-1][1], mine[-1][3]) == totals
    assert sum(r[5] for r in mine) <= lake.sql(
        "SELECT count(*) FROM standardized.listens").fetchone()[0]


@pytest.mark.slow
def test_pipeline_kpis_on_the_sample_lake_match_direct_sql(sample_lake):
    k = pipeline_kpis(sample_lake)
    lake = Lake(sample_lake.lake, create=False)
    direct = lake.sql("""
        SELECT run_date, pipeline, count(*), count(*) FILTER (status = 'success'),
               count(*) FILTER (status = 'failed'), coalesce(sum(records), 0)
        FROM meta.runs GROUP BY ALL ORDER BY run_date, pipeline""").fetchall()
    mine = [(r.date, r.pipeline, r.runs, r.succeeded, r.failed, r.records)
            for r in k.daily.sort_values(["date", "pipeline"]).itertuples()]
    assert mine == [tuple(r) for r in direct]
    # On the last day, each table's size is the one its current version has.
    last = k.table_sizes[k.table_sizes["date"] == k.table_sizes["date"].max()]
    assert not last.empty
    for row in last.itertuples():
        if row.version == lake.version(row.table):
            info = lake.info(row.table)
            assert (row.rows, row.size_bytes) == (info.rows, info.size_bytes)

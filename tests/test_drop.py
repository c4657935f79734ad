"""Future dates are refused by every step; a wrong date can be dropped (issue 21, item 2)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter

import pyarrow as pa
import pytest
from click.testing import CliRunner

from lakehouse import history, names
from lakehouse.cli import cli
from lakehouse.context import RunContext, check_not_future
from lakehouse.daily import daily
from lakehouse.drop import drop_ingest_date, drop_score_date
from lakehouse.errors import ConfigError, HistoryError, TableNotFoundError
from lakehouse.ingest import ingest
from lakehouse.lake import Lake, utc_now
from lakehouse.monitor.runs import read_runs
from lakehouse.monitor.status import status
from lakehouse.recsys.score import recommend
from lakehouse.recsys.train import train
from lakehouse.zones.build import build
from tests.conftest import copy_lake

FAR = dt.date(2999, 12, 31)


def multiset(table: pa.Table) -> Counter:
    return Counter(repr(sorted(row.items())) for row in table.to_pylist())


def files(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()
            and p.relative_to(root).parts[0] not in (names.META, ".locks")}


def test_a_run_may_be_for_tomorrow_but_not_later():
    today = utc_now().date()
    assert check_not_future(today + dt.timedelta(days=1)) == today + dt.timedelta(days=1)
    with pytest.raises(ConfigError, match="more than 1 day after today"):
        check_not_future(today + dt.timedelta(days=2))
    with pytest.raises(ConfigError, match="out of range"):
        RunContext.open(date=FAR)


@pytest.mark.parametrize("step", [ingest, build, train, recommend, daily])
def test_every_step_refuses_a_far_future_date_before_touching_the_lake(tmp_path, trained_lake,
                                                                        step):
    settings = copy_lake(trained_lake, tmp_path)
    before = files(settings.lake)
    with pytest.raises(ConfigError, match="after today"):
        step(settings, date=FAR)
    assert files(settings.lake) == before


def test_recommend_with_a_far_future_date_is_one_line_and_writes_nothing(tmp_path,
                                                                         trained_lake):
    settings = copy_lake(trained_lake, tmp_path)
    result = CliRunner().invoke(cli, ["--lake", str(settings.lake), "recommend", "--date",
                                      "2999-12-31"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and len(result.output.splitlines()) == 1
    assert status(settings).last_recommendations != FAR


def _write_a_far_future_score_date(lake: Lake) -> None:
    """What `recommend --date 2999-12-31` left before dates were checked."""
    table = lake.to_arrow(names.CONS_RECOMMENDATIONS)
    column = table.schema.get_field_index(names.SCORE_DATE)
    table = table.set_column(column, table.schema.field(column),
                             pa.array([FAR] * table.num_rows, table.schema.field(column).type))
    lake.write(names.CONS_RECOMMENDATIONS, table, mode="replace_partition",
               partition={names.SCORE_DATE: FAR})


def test_drop_date_recommendations_gives_serving_and_status_back(tmp_path, trained_lake,
                                                                  sample_days):
    settings = copy_lake(trained_lake, tmp_path)
    lake = Lake(settings.lake)
    _write_a_far_future_score_date(lake)
    assert status(settings).last_recommendations == FAR
    rows = lake.sql(f"SELECT count(*) FROM {names.CONS_RECOMMENDATIONS} "
                    f"WHERE {names.SCORE_DATE} = DATE '{FAR}'").fetchone()[0]

    result = CliRunner().invoke(cli, ["--lake", str(settings.lake), "drop-date",
                                      "recommendations", "--date", str(FAR)])
    assert result.exit_code == 0, result.output
    assert f"{rows} rows deleted" in result.output
    assert status(settings).last_recommendations == sample_days[-1]
    runs = read_runs(Lake(settings.lake))
    last = runs[runs["pipeline"] == "drop_date"].iloc[-1]
    assert last["target"] == names.CONS_RECOMMENDATIONS and last["records"] == rows
    # Scoring's own record stays scoring's: status still judges the last recommend run.
    assert runs[runs["pipeline"] == names.RECOMMEND]["status"].iloc[-1] == names.SUCCESS

    again = CliRunner().invoke(cli, ["--lake", str(settings.lake), "drop-date",
                                     "recommendations", "--date", str(FAR)])
    assert again.exit_code == 1 and "has no score_date 2999-12-31" in again.output
    assert len(again.output.splitlines()) == 1


def test_dropping_a_middle_ingest_date_rebuilds_the_later_history_exactly(tmp_path, raw_lake,
                                                                          sample_days):
    settings = copy_lake(raw_lake, tmp_path)
    lake = Lake(settings.lake)
    first, middle, last = sample_days
    served = {day: multiset(history.snapshot(lake, names.USERS, day)) for day in sample_days}
    raw_last = multiset(lake.sql(
        f"SELECT * EXCLUDE ({names.INGEST_DATE}, {', '.join(names.RAW_META_COLUMNS)}) FROM "
        f"{names.RAW_USERS} WHERE {names.INGEST_DATE} = DATE '{last}'").to_arrow_table())

    records = drop_ingest_date(settings, middle)

    assert [r.target for r in records] == [names.raw_table(e) for e in names.ENDPOINTS]
    assert all(r.details["history_replayed"] == [str(last)] for r in records)
    lake = Lake(settings.lake)
    for endpoint in names.ENDPOINTS:
        assert sorted(history.raw_partitions(lake, endpoint)) == [first, last]
        assert sorted(history.merged_days(lake, endpoint)) == [first, last]
    assert multiset(history.snapshot(lake, names.USERS, first)) == served[first]
    assert multiset(history.snapshot(lake, names.USERS, last)) == served[last] == raw_last
    with pytest.raises(HistoryError, match="no snapshot"):
        history.snapshot(lake, names.USERS, middle)
    # The next ingest finds nothing to merge again: the history matches raw.
    assert history.sync(lake, settings, names.USERS) == []


def test_dropping_an_ingest_date_is_refused_when_a_later_raw_snapshot_is_gone(
        tmp_path, raw_lake, sample_days):
    settings = copy_lake(raw_lake, tmp_path)
    lake = Lake(settings.lake)
    first, middle, last = sample_days
    # As raw retention does once a date is verified in the history.
    lake.delete(names.raw_table(names.TRACKS), f"{names.INGEST_DATE} = '{last}'")
    before = files(settings.lake)

    result = CliRunner().invoke(cli, ["--lake", str(settings.lake), "drop-date", "ingest",
                                      "--date", str(middle)])

    assert result.exit_code == 1, result.output
    assert "no raw snapshot left" in result.output and "nothing was dropped" in result.output
    assert len(result.output.splitlines()) == 1
    assert files(settings.lake) == before
    # One endpoint alone, whose later snapshots are all kept, can go.
    result = CliRunner().invoke(cli, ["--lake", str(settings.lake), "drop-date", "ingest",
                                      "--date", str(middle), "users"])
    assert result.exit_code == 0, result.output
    assert "1 later date(s) merged again" in result.output
    assert middle not in history.merged_days(Lake(settings.lake), names.USERS)
    assert middle in history.merged_days(Lake(settings.lake), names.TRACKS)


def test_dropping_the_newest_ingest_date_and_an_unknown_one(tmp_path, raw_lake, sample_days):
    settings = copy_lake(raw_lake, tmp_path)
    records = drop_ingest_date(settings, sample_days[-1], [names.LISTEN_HISTORY])
    assert records[0].details["history_replayed"] == []
    lake = Lake(settings.lake)
    assert max(history.merged_days(lake, names.LISTEN_HISTORY)) == sample_days[-2]
    with pytest.raises(ConfigError, match="nothing dropped"):
        drop_ingest_date(settings, sample_days[-1], [names.LISTEN_HISTORY])
    with pytest.raises(TableNotFoundError, match="nothing to drop"):
        drop_score_date(settings, FAR)

"""The whole build on the sample lake: real ingest of the bundled mock API, three days."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.lake import Lake
from lakehouse.zones import VIEWS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lake(sample_lake) -> Lake:
    return Lake(sample_lake.lake, create=False)


def scalar(lake: Lake, query: str):
    return lake.sql(query).fetchone()[0]


def test_every_table_is_written_with_its_contract(lake):
    for view in VIEWS:
        assert lake.schema(view.name) == view.arrow_schema, view.name
        assert lake.info(view.name).rows > 0, view.name
    for view in VIEWS[:4]:
        assert lake.exists(names.quarantine_table(view.name))


def test_keys_are_unique_and_foreign_keys_hold(lake):
    for view in VIEWS:
        cols = ", ".join(view.grain)
        dupes = scalar(lake, f"SELECT count(*) FROM (SELECT {cols} FROM {view.name} "
                             f"GROUP BY ALL HAVING count(*) > 1)")
        assert dupes == 0, view.name
    assert scalar(lake, "SELECT count(*) FROM standardized.listens l ANTI JOIN "
                        "standardized.users u USING (user_id)") == 0
    assert scalar(lake, "SELECT count(*) FROM standardized.listens l ANTI JOIN "
                        "standardized.tracks t USING (track_id)") == 0


def test_realistic_defects_are_quarantined_or_flagged(lake):
    reasons = dict(lake.sql("SELECT _reason, count(*) FROM quarantine.listens "
                            "GROUP BY 1").fetchall())
    assert reasons.get(f"track_id not in {names.STD_TRACKS}", 0) > 0
    assert reasons.get(f"user_id not in {names.STD_USERS}", 0) > 0
    lh = dict(lake.sql("SELECT _check, count(*) FROM quarantine.listen_history "
                       "GROUP BY 1").fetchall())
    assert lh.get("items_not_null", 0) > 0
    assert scalar(lake, "SELECT count(*) FROM standardized.users "
                        "WHERE updated_before_created") > 0


def test_snapshots_fold_into_one_row_per_record(lake):
    raw_days = scalar(lake, "SELECT count(DISTINCT ingest_date) FROM raw.listen_history")
    assert raw_days == 3
    raw = scalar(lake, "SELECT count(*) FROM raw.listen_history")
    std = scalar(lake, "SELECT count(*) FROM standardized.listen_history")
    assert std < raw
    # A record seen in every snapshot was first seen on the first day.
    assert scalar(lake, "SELECT count(*) FROM standardized.listen_history "
                        "WHERE first_ingest_date < last_ingest_date") > 0


def test_counts_add_up(lake):
    listens = scalar(lake, "SELECT count(*) FROM standardized.listens")
    assert scalar(lake, "SELECT sum(listens) FROM consumption.interactions") == listens
    items = scalar(lake, "SELECT sum(n_items) FROM standardized.listen_history")
    quarantined = scalar(lake, "SELECT count(*) FROM quarantine.listens")
    assert listens + quarantined == items
    kpis = lake.sql("SELECT * FROM consumption.daily_kpis ORDER BY date DESC LIMIT 1").df()
    assert kpis.total_users[0] <= scalar(lake, "SELECT count(*) FROM standardized.users")


def test_one_successful_run_record_per_table(lake):
    runs = lake.sql("SELECT target, status, records, rows_in, quarantined, details "
                    "FROM meta.runs WHERE pipeline = 'build'").df()
    assert sorted(runs.target) == sorted(v.name for v in VIEWS)
    assert set(runs.status) == {names.SUCCESS}
    listens = runs.set_index("target").loc[names.STD_LISTENS]
    reasons = json.loads(listens.details)["quarantine_reasons"]
    assert sum(reasons.values()) == listens.quarantined > 0


def test_sql_command_reads_the_built_zone(sample_lake):
    result = CliRunner().invoke(cli, ["--lake", str(sample_lake.lake), "sql",
                                      "SELECT count(*) FROM standardized.listens",
                                      "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert int(result.output.splitlines()[1]) > 0

"""`lakehouse sql` machine formats print every row; the table format says what
it left out (issue 11, item 13)."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
from click.testing import CliRunner

from lakehouse.cli import cli
from lakehouse.lake import Lake

ROWS = 2500


@pytest.fixture
def lake(tmp_path) -> Lake:
    lake = Lake(tmp_path / "lake")
    day = dt.date(2026, 11, 1)
    lake.write("consumption.recommendations", pa.table({
        "user_id": list(range(ROWS)), "score_date": pa.array([day] * ROWS, pa.date32())}),
        mode="replace_partition", partition_by=["score_date"], partition={"score_date": day})
    return lake


def run(lake, *args):
    return CliRunner().invoke(cli, ["--lake", str(lake.root), "sql",
                                    "SELECT user_id FROM consumption.recommendations", *args])


def test_csv_and_json_print_every_row(lake):
    csv = run(lake, "--format", "csv")
    assert csv.exit_code == 0 and len(csv.stdout.splitlines()) == ROWS + 1
    assert csv.stderr == ""
    as_json = run(lake, "--format", "json")
    assert len(json.loads(as_json.stdout)) == ROWS


def test_the_table_format_says_how_many_rows_it_left_out(lake):
    table = run(lake)
    assert table.exit_code == 0
    assert len(table.stdout.splitlines()) == 1000 + 2  # header, rule, rows
    assert "1500 more row(s) not shown" in table.stderr


def test_an_explicit_limit_applies_to_every_format_and_is_reported(lake):
    csv = run(lake, "--format", "csv", "--limit", "10")
    assert len(csv.stdout.splitlines()) == 11 and "2490 more row(s)" in csv.stderr
    everything = run(lake, "--limit", "0")
    assert len(everything.stdout.splitlines()) == ROWS + 2 and everything.stderr == ""


def test_a_failure_while_fetching_is_one_line(lake):
    result = CliRunner().invoke(cli, ["--lake", str(lake.root), "sql",
                                      "SELECT CAST('x' || user_id AS INTEGER) FROM "
                                      "consumption.recommendations"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: query failed") and result.output.count("\n") == 1


def test_the_table_format_shows_control_characters_instead_of_sending_them(tmp_path):
    # Raw keeps what the source sent, escape sequences included: the terminal must not run them.
    lake = Lake(tmp_path / "lake")
    day = dt.date(2026, 11, 1)
    lake.write("raw.users", pa.table({"name": ["evil\x1b[2J\x1b]0;title\x07\nname"],
                                      "ingest_date": pa.array([day], pa.date32())}),
               mode="replace_partition", partition_by=["ingest_date"],
               partition={"ingest_date": day})
    args = ["--lake", str(lake.root), "sql", "SELECT name FROM raw.users"]
    table = CliRunner().invoke(cli, args)
    assert table.exit_code == 0
    assert "\x1b" not in table.output and "\x07" not in table.output
    assert "evil\\x1b[2J" in table.output and len(table.output.splitlines()) == 3
    csv = CliRunner().invoke(cli, [*args, "--format", "csv"])
    assert "\x1b]0;title\x07" in csv.output  # machine formats stay faithful

"""The DuckDB engine: results made in one pass, inputs compiled once, nothing left behind."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from lakehouse import names
from lakehouse.context import RunContext
from lakehouse.lake import Lake
from lakehouse.zones import standardized
from lakehouse.zones.build import RAW_COLUMNS, build
from lakehouse.zones.engine import DuckDBEngine
from tests.conftest import settings_for
from tests.zones.conftest import DAY1, DAY2
from tests.zones.test_build import LISTENS, TRACKS, USERS, write_two_days

COPY = re.compile(r"CREATE\s+(TEMP|TEMPORARY)\s+TABLE\s.*\sAS\s+SELECT\s+\*\s+FROM\s",
                  re.I | re.S)


@dataclass
class Built:
    """What one build of test_build's lake ran and left on its DuckDB connection."""

    made: list[tuple[str, object, object]]  # each result: label, its schema, DuckDB's
    statements: list[str]  # the connection's query log during the build
    left: list[str]  # temporary tables and views left after it
    runs: list


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    """test_build's lake (two days, rows failing rules, an orphan listen), built once.

    Every test below reads the same build: its query log, the results it made and
    what it left behind (one build, not one per test: each costs ~0.8 s).
    """
    settings = settings_for(tmp_path_factory.mktemp("engine") / "lake")
    write_two_days(Lake(settings.lake))
    ctx = RunContext.open(settings, date=DAY2)
    con = ctx.lake().duckdb  # the context's lake handle, hence the build's connection
    con.execute("CALL enable_logging('QueryLog')")
    made: list[tuple[str, object, object]] = []
    temp = DuckDBEngine.temp

    def checking(self, expr, label):
        table = temp(self, expr, label)
        name = table.get_name().rsplit(".", 1)[-1]
        described = self.con.table(name, database=("temp", "main")).schema()
        made.append((label, table.schema(), described))
        return table

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DuckDBEngine, "temp", checking)
        runs = build(ctx)
    statements = [m for (m,) in con.sql(
        "SELECT message FROM duckdb_logs() WHERE type = 'QueryLog'").fetchall()]
    left = [name for (name,) in con.sql(
        "SELECT table_name FROM duckdb_tables() WHERE temporary UNION ALL "
        "SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal").fetchall()]
    return Built(made, statements, left, runs)


def test_each_result_is_filled_in_one_pass_and_typed_as_duckdb_describes_it(built):
    assert len(built.made) == 15  # 12 tables written, 3 stages
    for label, schema, described in built.made:
        assert schema == described, label
    # ibis's create_table(overwrite=True) filled a table under another name, then
    # copied every row into the result's (CREATE TABLE ... AS SELECT * FROM ...).
    copies = [s for s in built.statements if COPY.search(s)]
    assert copies == []


def test_each_raw_input_is_compiled_into_one_query(built):
    for name in RAW_COLUMNS:
        history = names.history_table(name.split(".", 1)[1]).split(".")
        source = ".".join(f'"{part}"' for part in history)
        # Read by the raw count, the stage, the quarantine and the rows-in count:
        # before, each of them compiled the history's current versions again.
        assert sum(f"FROM {source}" in s for s in built.statements) == 1, name


def test_no_temporary_table_or_view_outlives_the_build(built):
    assert [name for name in built.left if name.startswith("_build_")] == []


# A column each view's typing makes, as it names it in SQL.
TYPED = {names.STD_USERS: "s__first_name", names.STD_TRACKS: "s__duration_seconds",
         names.STD_LISTEN_HISTORY: "s__items"}
ROWS = {names.STD_USERS: USERS, names.STD_TRACKS: TRACKS, names.STD_LISTEN_HISTORY: LISTENS}
CHECKED = [v for v in standardized.VIEWS if v.check is not None]


def test_the_views_with_input_rules_declare_their_check():
    assert [v.name for v in CHECKED] == list(TYPED)


@pytest.mark.parametrize("view", CHECKED, ids=lambda v: v.name)
def test_each_views_typing_and_rules_are_compiled_into_one_query(built, view):
    # The stage and the quarantine read the checked rows: each typed them before.
    assert sum(f'AS "{TYPED[view.name]}"' in s for s in built.statements) == 1


@pytest.mark.parametrize("view", CHECKED, ids=lambda v: v.name)
def test_checked_rows_are_checked_as_they_are(raw, view):
    rows = raw(view.inputs[0], (DAY1, ROWS[view.name]))
    checked = view.check(rows)
    assert view.check(checked).equals(checked)
    assert view.stage(checked).equals(view.stage(rows))


def test_checked_rows_are_read_by_the_stage_and_the_quarantine_only(built):
    for view in CHECKED:
        checked = f'_build_checked_{view.name.replace(".", "__")}'
        # The rows-in count is the raw count made at the start, not a query of its own.
        reads = [s for s in built.statements
                 if checked in s and not s.startswith(("CREATE", "DROP"))]
        assert len(reads) == 2, view.name
    # The history's distinct versions: both days' rows once, and the new ones.
    rows_in = {r.target: r.rows_in for r in built.runs}
    assert rows_in[names.STD_USERS] == len(USERS) + 1
    assert rows_in[names.STD_TRACKS] == len(TRACKS)
    assert rows_in[names.STD_LISTEN_HISTORY] == len(LISTENS) + 1

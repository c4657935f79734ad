"""failed_checks(): a pandera schema in one query, failing exactly where pandera fails.

run_view_checks(): a view's declared checks in one query without pandera, failing
exactly where the view's pandera schema fails.
"""

from __future__ import annotations

import datetime

import ibis
import ibis.expr.datatypes as dt
import pandera.errors as pandera_errors
import pandera.ibis as pa
import pyarrow
import pytest

from lakehouse import names
from lakehouse.zones import VIEWS, standardized
from lakehouse.zones.base import key_unique
from lakehouse.zones.checks import failed_checks
from lakehouse.zones.contract import run_view_checks

SCHEMA = pa.DataFrameSchema({
    "id": pa.Column(dt.int64, nullable=False),
    "genre": pa.Column(dt.string, nullable=True, checks=[pa.Check.isin(["Rock", "Pop"])]),
    "n": pa.Column(dt.int32, nullable=True, checks=[pa.Check.ge(0)]),
}, checks=[key_unique(("id",))], strict=True)
GOOD = {"id": [1, 2, 3], "genre": ["Rock", None, "Pop"], "n": [0, None, 7]}


def table(**changes):
    data = GOOD | changes
    return ibis.duckdb.connect().create_table("t", pyarrow.table({
        "id": pyarrow.array(data["id"], pyarrow.int64()),
        "genre": pyarrow.array(data["genre"], pyarrow.string()),
        "n": pyarrow.array(data["n"], pyarrow.int32())}))


def test_a_valid_table_fails_nothing_and_nulls_pass_value_checks():
    assert failed_checks(SCHEMA, table()) == []
    SCHEMA.validate(table())  # pandera agrees


def test_an_empty_table_fails_nothing():
    assert failed_checks(SCHEMA, table(id=[], genre=[], n=[])) == []


@pytest.mark.parametrize(("changes", "failed"), [
    ({"id": [1, None, 3]}, ["id: not_nullable"]),
    ({"genre": ["Rock", "Jazz", "Pop"]}, ["genre: isin"]),
    ({"n": [0, -1, 7]}, ["n: greater_than_or_equal_to"]),
    ({"id": [1, 1, 3]}, ["key_unique"]),
    ({"id": [1, 1, 3], "n": [-5, 0, 0]}, ["n: greater_than_or_equal_to", "key_unique"]),
])
def test_each_failing_check_is_named_as_pandera_fails_it(changes, failed):
    bad = table(**changes)
    assert failed_checks(SCHEMA, bad) == failed
    with pytest.raises(pandera_errors.SchemaErrors):
        SCHEMA.validate(bad, lazy=True)


# ---------------------------------------------------------------- the views' declarations
DECLARED = [(view.name, name, column.type, check) for view in VIEWS
            for name, column in view.columns.items() for check in column.checks]


def _probe_values(check, type_):
    """Values either side of the check, and null."""
    if check.name == "isin":
        allowed = check.pandera().statistics["allowed_values"]
        return [*allowed, "Not " + allowed[0], "", None]
    bound = check.pandera().statistics["min_value"]
    return [bound - 1, bound, bound + 1, None] if type_.is_integer() \
        else [bound - 0.5, bound, bound + 0.5, None]


@pytest.mark.parametrize(("view", "column", "type_", "check"), DECLARED,
                         ids=[f"{v}.{c}:{k.name}" for v, c, _, k in DECLARED])
def test_each_declared_check_fails_exactly_where_its_pandera_check_fails(
        view, column, type_, check):
    assert check.pandera().name == check.name
    schema = pa.DataFrameSchema({column: pa.Column(type_, nullable=True,
                                                    checks=[check.pandera()])})
    con = ibis.duckdb.connect()
    for i, value in enumerate(_probe_values(check, type_)):
        one = con.create_table(f"t{i}", pyarrow.table({column: pyarrow.array(
            [value], type_.to_pyarrow())}))
        by_pandera = failed_checks(schema, one)
        declared = one.aggregate(n=(~check.passes(one[column]).fill_null(True)).cast(
            "int64").sum()).to_pyarrow()["n"][0].as_py()
        assert bool(declared) == bool(by_pandera), (value, by_pandera)


def test_a_views_checks_without_pandera_fail_as_its_pandera_schema_does():
    view = standardized.TRACKS
    con = ibis.duckdb.connect()
    row = {n: None for n in view.arrow_schema.names} | {
        "track_id": 1, "duration_seconds": 5, "genres": [],
        "created_at": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        "updated_at": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        "first_ingest_date": datetime.date(2026, 1, 1), "last_ingest_date": datetime.date(2026, 1, 1),
        "updated_before_created": False, "invalid_duration": False, "unknown_genres": False}

    def rows(*changes):
        return con.create_table(f"t{len(con.list_tables())}", pyarrow.Table.from_pylist(
            [row | c for c in changes], schema=view.arrow_schema))

    for t in (rows(), rows({}, {"track_id": 2}), rows({"duration_seconds": -1}),
              rows({}, {}), rows({"created_at": None}, {"duration_seconds": -3}),
              rows({"track_id": None}), rows()[lambda t: t.track_id > 5]):
        assert run_view_checks(view, t).failed == failed_checks(view.schema, t)
    assert run_view_checks(view, rows({}, {"duration_seconds": -1})).failed == [
        "duration_seconds: greater_than_or_equal_to", "key_unique"]


def test_foreign_keys_are_counted_in_the_same_query():
    con = ibis.duckdb.connect()
    view = standardized.LISTENS
    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    listens = con.create_table("l", pyarrow.Table.from_pylist(
        [{"record_id": 1, "user_id": u, "track_id": t, "position": p, "created_at": at,
          "updated_at": at, "first_ingest_date": datetime.date(2026, 1, 1)}
         for p, (u, t) in enumerate([(1, 10), (2, 11), (7, 10)])], schema=view.arrow_schema))
    users = con.create_table("u", pyarrow.table({"user_id": [1, 2]}))
    tracks = con.create_table("t", pyarrow.table({"track_id": [10, 11]}))
    parents = {names.STD_USERS: users, names.STD_TRACKS: tracks}
    assert run_view_checks(view, listens, parents).failed == ["fk_user_id"]
    assert run_view_checks(view, listens, parents).rows == 3  # counted by the same query
    assert run_view_checks(view, listens).failed == []  # no parents: keys not checked
    assert run_view_checks(view, listens[lambda t: t.user_id < 5], parents).failed == []

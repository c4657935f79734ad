"""failed_checks(): a pandera schema in one query, failing exactly where pandera fails."""

from __future__ import annotations

import ibis
import ibis.expr.datatypes as dt
import pandera.errors as pandera_errors
import pandera.ibis as pa
import pyarrow
import pytest

from lakehouse.zones.base import key_unique
from lakehouse.zones.checks import failed_checks

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

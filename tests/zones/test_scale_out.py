"""Every view compiles to Databricks SQL, so the same definitions can run on Spark."""

from __future__ import annotations

import datetime as dt

import ibis
import pytest

from lakehouse import names
from lakehouse.zones import VIEWS
from lakehouse.zones.base import BuildContext
from lakehouse.zones.build import RAW_COLUMNS, RAW_META_TYPES

SCHEMAS = {name: ibis.schema(cols | RAW_META_TYPES) for name, cols in RAW_COLUMNS.items()}
SCHEMAS |= {view.name: view.ibis_schema for view in VIEWS}


def unbound(name: str) -> ibis.Table:
    """Table ``name`` as Databricks would see it: schema only, no data."""
    zone, table = name.split(".")
    return ibis.table(SCHEMAS[name], name=table, database=zone)


def query(view) -> ibis.Table:
    context = BuildContext(end=dt.date(2026, 11, 26), kpi_days=30)
    return view.compute([unbound(n) for n in view.inputs], context)


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.name)
def test_view_compiles_to_databricks_sql(view):
    sql = ibis.to_sql(query(view), dialect="databricks")
    for source in view.inputs:
        zone, table = source.split(".")
        assert f"`{zone}`.`{table}`" in sql
    # Spark has no DuckDB-only functions such as list_zip or struct_extract.
    assert "LIST_" not in sql.upper() and "STRUCT_EXTRACT" not in sql.upper()
    # Nothing refers to data that lives only in this Python process.
    assert "memtable" not in sql


def test_quarantine_queries_compile_too():
    for view in VIEWS[:4]:
        inputs = [unbound(n) for n in view.inputs]
        staged = view.stage(*inputs)
        sql = ibis.to_sql(view.quarantine(staged, inputs, dt.date(2026, 11, 26)),
                          dialect="databricks")
        assert names.Q_REASON in sql

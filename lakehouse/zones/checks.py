"""A view's pandera schema checked in one query, on any ibis engine.

pandera's ibis backend runs one query per column and per check: about 25
queries for ``standardized.users``. On DuckDB that is a second or two; on
Spark each query is a job with its own planning and scheduling, a minute
for the eight tables. :func:`failed_checks` runs the same schema (the same
pandera objects: their nullability, their checks' own ibis expressions, the
table-wide checks) as one aggregate query and says which checks failed.
Only then does the build run pandera itself, to describe the failure in
pandera's words with example values.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
import pandera.backends.ibis.builtin_checks  # noqa: F401 (registers Check.isin etc. for ibis)
import pandera.ibis as pa
from pandera.api.ibis.types import IbisData
from pandera.backends.ibis.checks import IbisCheckBackend
from pandera.constants import CHECK_OUTPUT_KEY


def failed_checks(schema: pa.DataFrameSchema, table: ir.Table) -> list[str]:
    """The checks of ``schema`` that ``table`` fails, as ``column: check`` names.

    Columns' dtypes and names are not checked here: the build compares the
    whole schema first. Null values pass value checks, as in pandera.
    """
    labels: list[str] = []
    counts: list[ir.Table] = []
    for name, column in schema.columns.items():
        if not column.nullable:
            labels.append(f"{name}: not_nullable")
            counts.append(table.aggregate(n=table[name].isnull().cast("int64").sum()))
        for check in column.checks:
            labels.append(f"{name}: {check.name}")
            counts.append(_failures(check, table, name))
    for check in schema.checks:
        labels.append(str(check.name))
        counts.append(_failures(check, table, None))
    if not counts:
        return []
    # One query: the single-row counts side by side.
    row = counts[0].select(c0=counts[0].n)
    for i, count in enumerate(counts[1:], start=1):
        row = row.cross_join(count.select(**{f"c{i}": count.n}))
    values = row.to_pyarrow().to_pylist()[0]
    return [label for i, label in enumerate(labels) if values[f"c{i}"]]


def _failures(check: pa.Check, table: ir.Table, column: str | None) -> ir.Table:
    """A one-row table: ``n``, the rows failing ``check`` (or 1 if a table-wide check fails)."""
    if check.element_wise:  # a Python function per value: only pandera's backend runs those
        out = IbisCheckBackend(check).apply(IbisData(table, column))
        return out.aggregate(n=(~out[CHECK_OUTPUT_KEY].fill_null(False)).cast("int64").sum())
    # The check's own expression, as pandera's backend calls it. Not through the
    # backend's apply(): for a check returning a table (the builtins), it pairs
    # rows by a global row_number() on engines without positional joins (Spark),
    # which moves every row to one partition and may pair rows wrongly.
    out = check._check_fn(IbisData(table, column), **check._check_kwargs)
    if isinstance(out, bool):
        out = ibis.literal(out)
    if isinstance(out, ir.BooleanScalar):
        return out.name("ok").as_table().select(n=ibis.ifelse(ibis._.ok, 0, 1).cast("int64"))
    if isinstance(out, ir.Table):
        # One boolean column per checked column, computed row by row from ``table``;
        # null where the value is null.
        passed = ibis.literal(True)
        for name in out.columns:
            passed = passed & out[name].fill_null(check.ignore_na)
        return out.aggregate(n=(~passed).cast("int64").sum())
    if column is not None and check.ignore_na:
        out = out | table[column].isnull()
    return table.aggregate(n=(~out.fill_null(False)).cast("int64").sum())

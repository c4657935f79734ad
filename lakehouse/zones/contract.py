"""A view's table-level checks in one query, from its declarations, without pandera.

What the build runs on every table it computed: the view's pandera schema
(:attr:`lakehouse.zones.base.View.schema`: nullability, value checks, key
uniqueness) from the declarations that schema is made of, plus the foreign
keys, as one aggregate query. Importing pandera (with the pandas and
hypothesis it loads) is a third of a second of every build's start-up, so a
clean build does without it; when a check fails, the build runs the pandera
schema itself to describe the failure in pandera's words.
:func:`lakehouse.zones.checks.failed_checks` does the same for any pandera
schema and names failures alike (tests/zones/test_checks.py compares them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from lakehouse.zones.base import KEY_UNIQUE, View, keys_unique


def fk_check(column: str) -> str:
    """The name of the foreign-key check on ``column``."""
    return f"fk_{column}"


@dataclass(frozen=True)
class Checked:
    """What the one query found about a table.

    Attributes:
        failed: The checks it fails, by name, in the schema's order.
        rows: Its rows (the build's ``rows_in`` of the views reading it).
    """

    failed: list[str]
    rows: int


def run_view_checks(view: View, table: ir.Table,
                    parents: Mapping[str, ir.Table] | None = None) -> Checked:
    """The table-level checks of ``view`` on ``table``, and its rows, in one query.

    The checks of ``view.schema``, named as :func:`~lakehouse.zones.checks.failed_checks`
    names them (``column: not_nullable``, ``column: isin``, ``key_unique``),
    in the same order; then, with ``parents`` (table name -> table), each
    foreign key as ``fk_<column>``. The column checks and the row count are
    one pass over the table; the key and each foreign key are one aggregate
    each, side by side. Null values pass value checks, as in pandera.
    """
    labels: list[str] = []
    fails: list[ir.BooleanValue] = []
    for name, column in view.columns.items():
        value = table[name]
        if not column.nullable:
            labels.append(f"{name}: not_nullable")
            fails.append(value.isnull())
        for check in column.checks:
            labels.append(f"{name}: {check.name}")
            fails.append(~check.passes(value).fill_null(True))
    counts = [table.aggregate(_rows=table.count(), **{
        f"c{i}": f.cast("int64").sum() for i, f in enumerate(fails)})]
    counts.append(keys_unique(table, view.grain).name("ok").as_table().select(
        **{f"c{len(labels)}": ibis.ifelse(ibis._.ok, 0, 1).cast("int64")}))
    labels.append(KEY_UNIQUE)
    for column, (parent, parent_column) in view.foreign_keys.items() if parents else ():
        ref = parents[parent]
        orphans = table.anti_join(ref, table[column] == ref[parent_column])
        counts.append(orphans.aggregate(**{f"c{len(labels)}": orphans.count()}))
        labels.append(fk_check(column))
    row = counts[0]
    for count in counts[1:]:
        row = row.cross_join(count)
    values = row.to_pyarrow().to_pylist()[0]
    return Checked([label for i, label in enumerate(labels) if values[f"c{i}"]],
                   int(values["_rows"]))

"""What a view is: a pure query with its columns, grain, checks and keys beside it.

A :class:`View` is the SQLMesh-like declaration of one standardized or
consumption table. Its query is a pure function from ibis tables to an ibis
expression (no I/O), so the same definition runs on DuckDB here and compiles
to Spark SQL for Databricks. Its columns are the contract other modules code
against; its pandera schema is derived from them, so types, nullability,
allowed values and key uniqueness are declared once.

Standardized views also have row-level rules (:class:`Rule`): rows failing
one are not dropped silently but routed to ``quarantine.<table>`` with the
rule's check name and reason. Table-level checks (the pandera schema and the
foreign keys) fail the whole table instead.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pandera.ibis as pa

from lakehouse import names

UTC_TS = dt.Timestamp(timezone="UTC", scale=6)


@dataclass(frozen=True)
class Col:
    """One output column: its type, whether it may be null, and its value checks."""

    type: dt.DataType
    nullable: bool = True
    checks: tuple[pa.Check, ...] = ()
    doc: str = ""


def col(type_: dt.DataType | str, nullable: bool = True, *checks: pa.Check, doc: str = "") -> Col:
    """Shorthand for :class:`Col` (``col("int64", False, pa.Check.ge(0))``)."""
    return Col(ibis.dtype(type_), nullable, tuple(checks), doc)


@dataclass(frozen=True)
class BuildContext:
    """What one build hands every view besides its input tables.

    Attributes:
        end: The build date: the last raw snapshot read, the last KPI day.
        kpi_days: Days of ``consumption.daily_kpis``, ending on ``end``.
    """

    end: datetime.date
    kpi_days: int


def _no_parameters(_context: BuildContext) -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class Rule:
    """A row-level check: rows where ``fails(t)`` is true are quarantined.

    Attributes:
        check: Machine name of the check, stored in ``_check``.
        reason: Human reason, stored in ``_reason``.
        fails: Predicate on the staged table; true marks a bad row.
    """

    check: str
    reason: str
    fails: Callable[[ir.Table], ir.BooleanValue]


@dataclass(frozen=True)
class View:
    """One table of the standardized or consumption zone.

    Attributes:
        name: The table it builds (``standardized.users``).
        grain: The key: one row per distinct value of these columns.
        inputs: Tables the query reads, in argument order.
        columns: The output contract, in order.
        query: Pure function ``(*inputs) -> ibis table`` of exactly ``columns``.
        stage: For standardized views, ``(*inputs) -> staged``: the typed rows
            the output is selected from. ``query`` is ``select(stage(*inputs))``.
        select: ``staged -> output``: the clean rows, deduplicated.
        reject: ``(staged, *inputs) -> rows``: the input rows that failed a
            rule, as ``quarantine_columns`` plus ``_check`` and ``_reason``.
        materialize_stage: Whether the build should compute ``staged`` once
            into a temporary table (worth it when both select and reject read it).
        quarantine_columns: The original row's columns kept in quarantine.
        foreign_keys: Column -> (table, column) it must exist in.
        parameters: ``context -> keyword arguments of query``: what the view
            takes from the :class:`BuildContext` (most views take nothing).
        doc: What a row is.
    """

    name: str
    grain: tuple[str, ...]
    inputs: tuple[str, ...]
    columns: Mapping[str, Col]
    query: Callable[..., ir.Table]
    stage: Callable[..., ir.Table] | None = None
    select: Callable[[ir.Table], ir.Table] | None = None
    reject: Callable[..., ir.Table] | None = None
    materialize_stage: bool = True
    quarantine_columns: tuple[str, ...] = ()
    foreign_keys: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    parameters: Callable[[BuildContext], Mapping[str, Any]] = _no_parameters
    doc: str = ""

    def compute(self, inputs: Sequence[ir.Table], context: BuildContext) -> ir.Table:
        """The view's output for one build: ``query`` on the inputs and its parameters."""
        return self.query(*inputs, **self.parameters(context))

    @property
    def ibis_schema(self) -> ibis.Schema:
        """The output columns as an ibis schema."""
        return ibis.schema({n: c.type for n, c in self.columns.items()})

    @property
    def arrow_schema(self):
        """The output columns as the Arrow schema written to the lake."""
        return self.ibis_schema.to_pyarrow()

    @property
    def schema(self) -> pa.DataFrameSchema:
        """The pandera schema validated before the table is written.

        Key uniqueness is a table-level check (:func:`key_unique`): pandera's
        ibis backend ignores ``Field(unique=True)``, and its ``unique=``
        computes a window over every row, twice as slow as one aggregate.
        """
        return pa.DataFrameSchema(
            {n: pa.Column(_pandera_dtype(c.type), nullable=c.nullable, checks=list(c.checks))
             for n, c in self.columns.items()},
            checks=[key_unique(self.grain)], strict=True, name=self.name,
        )

    def quarantine(self, staged: ir.Table, inputs: Sequence[ir.Table],
                   build_date: Any) -> ir.Table:
        """The input rows that failed a rule: the original row plus why and when."""
        bad = self.reject(staged, *inputs)
        return bad.select(
            *self.quarantine_columns,
            **{names.Q_REASON: bad[names.Q_REASON], names.Q_CHECK: bad[names.Q_CHECK],
               names.Q_BUILD_DATE: ibis.literal(build_date, type="date")},
        )


KEY_UNIQUE = "key_unique"


def key_unique(grain: Sequence[str]) -> pa.Check:
    """A pandera check: no two rows share a value of the ``grain`` columns."""
    def check(data: pa.IbisData) -> ir.BooleanScalar:
        counts = data.table.group_by(list(grain)).agg(_n=data.table.count())
        return counts._n.max().fill_null(0) <= 1

    return pa.Check(check, name=KEY_UNIQUE, error=f"({', '.join(grain)}) is not unique")


def duplicate_keys(table: ir.Table, grain: Sequence[str], limit: int) -> list:
    """Up to ``limit`` values of ``grain`` that more than one row has."""
    counts = table.group_by(list(grain)).agg(_n=table.count())
    dupes = counts.filter(counts._n > 1).select(*grain).order_by(list(grain)).limit(limit)
    rows = dupes.to_pyarrow().to_pylist()
    return [r[grain[0]] if len(grain) == 1 else r for r in rows]


def _pandera_dtype(t: dt.DataType) -> dt.DataType | None:
    # pandera's ibis engine has no array type; the build checks those columns'
    # types against the contract itself.
    return None if t.is_array() else t


def apply_rules(t: ir.Table, rules: Sequence[Rule]) -> ir.Table:
    """Add ``_check`` and ``_reason``: the first failing rule, or null."""
    if not rules:
        return t.mutate(**{names.Q_CHECK: ibis.null(str), names.Q_REASON: ibis.null(str)})
    conds = [(r.fails(t).fill_null(False), r) for r in rules]
    return t.mutate(**{
        names.Q_CHECK: ibis.cases(*[(c, r.check) for c, r in conds], else_=ibis.null(str)),
        names.Q_REASON: ibis.cases(*[(c, r.reason) for c, r in conds], else_=ibis.null(str)),
    })


@ibis.udf.scalar.builtin(name="trim")
def trim(value: str) -> str:
    """Leading and trailing spaces removed: SQL's one-argument ``TRIM``.

    Declared as the engine's builtin because ibis's ``strip()`` trims six
    whitespace characters and is three times slower on DuckDB; DuckDB and
    Spark both have ``TRIM(x)``.
    """


def to_utc(raw: ir.StringValue) -> ir.TimestampValue:
    """Parse an ISO 8601 string as a UTC timestamp; garbage becomes null.

    The source sends times without a zone; they are UTC by contract. Parsed
    as a plain timestamp, then placed in the session's zone, which the lake's
    connection sets to UTC: parsing straight to a zoned type goes through the
    ICU calendar and is four times slower on DuckDB.
    """
    return raw.try_cast("timestamp").cast(UTC_TS)


def canonical_key(value: ir.StringValue) -> ir.StringValue:
    """A spelling-insensitive key: lower case, letters and ``&`` only.

    So "hip-hop", "Hip Hop" and " HIPHOP" all match "Hip Hop".
    """
    return value.lower().re_replace(r"[^a-z&]", "")


def _key(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalpha() or ch == "&")


def normalize_to(value: ir.StringValue, allowed: Sequence[str]) -> ir.StringValue:
    """Map ``value`` to its canonical spelling in ``allowed``, else null."""
    fuzzy = canonical_key(value).substitute({_key(a): a for a in allowed}, else_=ibis.null(str))
    # Most values are already canonical: skip the regular expression for them.
    return ibis.ifelse(value.isin(list(allowed)), value, fuzzy)


def rule_null(column: str, check: str | None = None) -> Rule:
    """A rule quarantining rows where raw ``column`` is null."""
    return Rule(check or f"{column}_not_null", f"{column} is null",
                lambda t: t[column].isnull())


def rule_timestamp(raw_column: str, parsed_column: str) -> Rule:
    """A rule quarantining rows whose timestamp is missing or unparseable."""
    return Rule(f"{raw_column}_is_timestamp", f"{raw_column} is null or not an ISO timestamp",
                lambda t: t[parsed_column].isnull())

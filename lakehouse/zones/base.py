"""What a view is: a pure query with its columns, grain, checks and keys beside it.

A :class:`View` is the SQLMesh-like declaration of one standardized or
consumption table. Its query is a pure function from ibis tables to an ibis
expression (no I/O), so the same definition runs on DuckDB here and compiles
to Spark SQL for Databricks. Its columns are the contract other modules code
against; its pandera schema is derived from them, so types, nullability,
allowed values and key uniqueness are declared once. A value check
(:class:`Check`) is declared as pandera's builtin together with the same test
as an ibis expression: a clean build runs the expressions in one query and
imports pandera only to describe a failure (pandera, with the pandas and
hypothesis it loads, is a third of a second of every build's start-up).

Standardized views also have row-level rules (:class:`Rule`): rows failing
one are not dropped silently but routed to ``quarantine.<table>`` with the
rule's check name and reason. Table-level checks (the pandera schema and the
foreign keys) fail the whole table instead.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from lakehouse import names

if TYPE_CHECKING:
    import pandera.ibis as pa

UTC_TS = dt.Timestamp(timezone="UTC", scale=6)


@dataclass(frozen=True)
class Check:
    """A column's value check: one of pandera's builtins, and the same test in ibis.

    The pandera check (:meth:`pandera`) is the contract: the view's pandera
    schema is made of it, and it names and describes a failure. ``passes`` is
    its test as an ibis expression over the column, which the build runs for
    every check of a table in one query (:mod:`lakehouse.zones.contract`)
    without importing pandera. tests/zones/test_checks.py runs both on the
    same values for every check of every view. Nulls pass, as in pandera.

    Attributes:
        name: pandera's name of the check (``greater_than_or_equal_to``).
        make: ``pandera.ibis -> pandera.Check``: the builtin itself.
        passes: ``column -> boolean``: true where a value passes.
    """

    name: str
    make: Callable[[Any], Any]
    passes: Callable[[ir.Value], ir.BooleanValue]

    def pandera(self) -> pa.Check:
        """The pandera check (imports pandera)."""
        # The ibis builtins register themselves on import; a builtin check made
        # before that would not know ibis tables.
        import pandera.backends.ibis.builtin_checks  # noqa: F401
        import pandera.ibis

        return self.make(pandera.ibis)


def isin(allowed: Sequence[Any]) -> Check:
    """Values in ``allowed``: pandera's ``Check.isin``."""
    values = list(allowed)
    return Check("isin", lambda pa: pa.Check.isin(values), lambda v: v.isin(values))


def ge(bound: Any) -> Check:
    """Values at least ``bound``: pandera's ``Check.ge``."""
    return Check("greater_than_or_equal_to", lambda pa: pa.Check.ge(bound),
                 lambda v: v >= bound)


@dataclass(frozen=True)
class Col:
    """One output column: its type, whether it may be null, and its value checks."""

    type: dt.DataType
    nullable: bool = True
    checks: tuple[Check, ...] = ()
    doc: str = ""


def col(type_: dt.DataType | str, nullable: bool = True, *checks: Check, doc: str = "") -> Col:
    """Shorthand for :class:`Col` (``col("int64", False, ge(0))``)."""
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
        check: For standardized views with row-level rules on their input,
            ``(*inputs) -> checked``: every input row, typed, with the rules'
            results. ``stage`` and ``reject`` take its result in place of the
            inputs too: the build names it once for both, so it is compiled once.
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
    check: Callable[..., ir.Table] | None = None
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
        """The pandera schema: the table-level contract a table must pass to be written.

        Made on use (it imports pandera). Key uniqueness is a table-level check
        (:func:`key_unique`): pandera's ibis backend ignores
        ``Field(unique=True)``, and its ``unique=`` computes a window over
        every row, twice as slow as one aggregate.
        """
        import pandera.ibis as pa

        return pa.DataFrameSchema(
            {n: pa.Column(_pandera_dtype(c.type), nullable=c.nullable,
                          checks=[check.pandera() for check in c.checks])
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
    import pandera.ibis as pa

    def check(data: pa.IbisData) -> ir.BooleanScalar:
        return keys_unique(data.table, grain)

    return pa.Check(check, name=KEY_UNIQUE, error=f"({', '.join(grain)}) is not unique")


def keys_unique(table: ir.Table, grain: Sequence[str]) -> ir.BooleanScalar:
    """Whether no two rows of ``table`` share a value of the ``grain`` columns."""
    counts = table.group_by(list(grain)).agg(_n=table.count())
    return counts._n.max().fill_null(0) <= 1


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


def backend_name(value: ir.Value) -> str | None:
    """The name of the engine ``value`` is bound to (``duckdb``), or None when unbound."""
    try:
        return value._find_backend().name
    except Exception:  # unbound tables have no backend: ibis raises its own error types
        return None


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
    as a plain timestamp, then read as UTC: parsing straight to a zoned type,
    or casting the plain one to it, goes through DuckDB's ICU calendar and is
    four times slower than the parse itself, so on DuckDB the plain value's
    epoch microseconds make the zoned one (``make_timestamptz``). Elsewhere
    the cast places it in the session's zone, which the build sets to UTC.
    """
    parsed = raw.try_cast("timestamp")
    if backend_name(raw) != "duckdb":
        return parsed.cast(UTC_TS)
    return _make_timestamptz(_epoch_us_plain(parsed))


@ibis.udf.scalar.builtin(name="epoch_us", signature=((UTC_TS,), dt.int64))
def _epoch_us(ts: Any) -> int:
    """Microseconds since the epoch of a zoned timestamp: DuckDB's ``epoch_us``."""


@ibis.udf.scalar.builtin(name="epoch_us", signature=((dt.Timestamp(scale=6),), dt.int64))
def _epoch_us_plain(ts: Any) -> int:
    """Microseconds since the epoch of a plain timestamp read as UTC: DuckDB's ``epoch_us``."""


@ibis.udf.scalar.builtin(name="make_timestamptz", signature=((dt.int64,), UTC_TS))
def _make_timestamptz(us: Any) -> Any:
    """The zoned timestamp ``us`` microseconds after the epoch: DuckDB's ``make_timestamptz``."""


DAY_US = 86_400_000_000


def utc_date(ts: ir.TimestampValue) -> ir.DateValue:
    """The UTC calendar date of a UTC timestamp.

    On DuckDB counted from the epoch: its ``CAST(ts AS DATE)`` of a zoned
    timestamp goes through the ICU calendar and is four times slower (a
    third of the daily KPIs' time). The lake's and Spark's sessions run in
    UTC, where the two agree.
    """
    if backend_name(ts) != "duckdb":
        return ts.date()
    days = (_epoch_us(ts) // DAY_US).as_interval("D")
    return (ibis.date(1970, 1, 1) + days).cast("date")


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

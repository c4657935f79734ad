"""``lakehouse build``: raw -> standardized -> consumption, validated, all or nothing.

The one module that runs the zone views and writes their tables. The order:

1. Read each endpoint's history up to the build date: one row per distinct
   record version, not one per record and day (``lakehouse.history``); raw
   dates not yet in the history are merged first.
2. For each standardized view, in dependency order: stage the input rows
   (typed, with row-level rule results), keep the clean rows, set the failed
   ones aside for ``quarantine.<table>``, and validate the result (pandera
   schema, key uniqueness, foreign keys). Results are materialized by the
   engine (:mod:`lakehouse.zones.engine`: DuckDB temporary tables, or Parquet
   on Spark), so each is computed once and validated where it lies.
3. The same for the consumption views, which read the validated
   standardized results.
4. Only when every table has passed: write them all (parents before
   children), each as one atomic Delta commit, then one ``meta.runs`` record
   per table.

A table-level check failure therefore writes no table at all: the lake stays
at the previous build, consistent, and ``meta.runs`` gets a failed record
naming the table and the check.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir

from lakehouse import history, names
from lakehouse.config import ENGINES, Settings, check_date
from lakehouse.context import RunContext
from lakehouse.errors import BrokenTableError, ConfigError, LakeError, ValidationError
from lakehouse.lake import Lake, WriteResult
from lakehouse.monitor.sinks import step_context
from lakehouse.runlog import RunRecord, _cpu_seconds
from lakehouse.source.endpoints import ENDPOINTS, META_FIELDS
from lakehouse.steps import StepRun, run_step
from lakehouse.zones import consumption, standardized
from lakehouse.zones.base import KEY_UNIQUE, BuildContext, View, duplicate_keys
from lakehouse.zones.contract import fk_check, run_view_checks
from lakehouse.zones.engine import DUCKDB, SPARK, DuckDBEngine, Engine

log = logging.getLogger(__name__)

PIPELINE = names.BUILD
# The raw columns each view reads, and their types when a snapshot lacks them: the
# source contract's (lakehouse.source.endpoints), declared there once.
RAW_COLUMNS: dict[str, dict[str, str]] = {
    spec.table: {f.name: str(ibis.dtype(f.type)) for f in spec.fields}
    for spec in ENDPOINTS.values()}
RAW_META_TYPES = {f.name: str(ibis.dtype(f.type)) for f in META_FIELDS}
EXAMPLES = 3


@dataclass
class _Result:
    """A validated table waiting to be written."""

    view: View
    table: ir.Table | None
    record: RunRecord
    quarantine: ir.Table | None = None
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Count the block's wall and CPU time as this table's."""
        t0, c0 = time.perf_counter(), _cpu_seconds()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - t0
            self.cpu_seconds += _cpu_seconds() - c0

    def finish(self, status: str, error: str | None = None) -> RunRecord:
        """Finish the record with the time spent on this table alone.

        Tables are computed first and written last, so the record's own clock
        would count the other tables' work too.
        """
        self.record.finish(status, error)
        self.record.duration_s = round(self.seconds, 3)
        self.record.cpu_s = round(self.cpu_seconds, 3)
        return self.record


def build(target: RunContext | Settings | None = None, date: dt.date | str | None = None,
          *, wait: bool | None = None, spark: Any = None) -> list[RunRecord]:
    """Build the standardized and consumption zones from the history up to ``date``.

    Deterministic and idempotent: the same history and date give the same
    tables. A pipeline step (:func:`lakehouse.steps.run_step`): takes the
    lake's ``build`` lock (and, to merge raw dates missing from the history,
    the ingest lock if it is free), records and alerts.

    Args:
        target: The run context, or settings (the lake, ``kpi_days``, the engine).
        date: Use the snapshots ingested on or before this date; it is also
            the last day of ``consumption.daily_kpis`` (default: the
            context's date, today UTC for settings).
        wait: Wait for another build holding the lock (default: the
            context's policy); False: raise at once.
        spark: With ``settings.engine == "spark"``, the SparkSession to run
            on (default: from ``SPARK_REMOTE`` or ``settings.spark_master``).

    Returns:
        One successful run record per table written, in write order.

    Raises:
        LakeError: The lake or a raw table is missing or holds no snapshot
            up to ``date``.
        ValidationError: A table failed a table-level check; nothing was
            written and a failed run was recorded.
        LockedError: Another build is running on this lake.
        ConfigError: Unknown engine, or Spark without ``lakehouse[spark]``.
    """
    ctx = step_context(target, date=date, wait=wait)
    check_date(ctx.date, "build date")

    def body(run: StepRun) -> list[RunRecord]:
        # Inside the lock: a busy lake is refused before a Spark session starts.
        return _Build(run, ctx.settings, engine_for(run.lake, ctx.settings, spark)).run()

    with gc_spares_what_exists():
        return run_step(ctx, PIPELINE, body)


@contextmanager
def gc_spares_what_exists() -> Iterator[None]:
    """Leave the objects that exist before the block out of the garbage collector's passes.

    A build makes hundreds of thousands of short-lived ibis and sqlglot
    objects, and each full collection also walks every object loaded before
    it (ibis, sqlglot, pyarrow, DuckDB's modules): three such passes took
    0.17 s of a 3 s build, 0.04 s with them set aside. ``gc.freeze()`` sets
    them aside for the block and ``gc.unfreeze()`` puts them back; garbage
    made during the block is collected as usual. A process that froze
    objects itself (a forking server) is left as it is.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class _Build:
    def __init__(self, run: StepRun, settings: Settings, engine: Engine):
        self.step = run
        self.lake = run.lake
        self.settings = settings
        self.date = run.date
        self.context = BuildContext(end=run.date, kpi_days=settings.kpi_days)
        self.engine = engine
        self.tables: dict[str, ir.Table] = {}
        self.rows: dict[str, int] = {}  # of each raw input and each validated table

    def run(self) -> list[RunRecord]:
        with self.engine.session():
            results = self._compute()
            return self._write(results)

    # ------------------------------------------------------------ compute
    def _compute(self) -> list[_Result]:
        history.catch_up(self.lake, self.settings)
        for name in RAW_COLUMNS:
            try:
                raw = self._raw(name)
            except BrokenTableError as exc:
                self._record_broken_input(name, exc)
                raise
            # Named once, read by the raw count and by its view's checked rows (the
            # stage and the quarantine): compiled once instead of into each query.
            self.tables[name] = self.engine.view(raw, f"input_{name}")
        raw = [self.tables[n].aggregate(**{f"n{i}": self.tables[n].count()})
               for i, n in enumerate(RAW_COLUMNS)]
        counts = raw[0].cross_join(*raw[1:]).to_pyarrow().to_pylist()[0]
        self.rows |= {name: counts[f"n{i}"] for i, name in enumerate(RAW_COLUMNS)}
        if not any(counts.values()):
            raise LakeError(f"the raw zone has no snapshot ingested on or before {self.date}; "
                            "ingest first or build a later --date")
        results = []
        for view in standardized.VIEWS:
            results.append(self._standardize(view))
        for view in consumption.VIEWS:
            results.append(self._consume(view))
        return results

    def _record_broken_input(self, name: str, exc: BrokenTableError) -> None:
        """A failed run for each table reading the broken raw table: none is written."""
        records = [self._record(view).finish(names.FAILED, f"cannot build {view.name}: {exc}")
                   for view in standardized.VIEWS if name in view.inputs]
        try:
            self.step.record(*records)
        except LakeError as err:
            log.error("could not record the failed build in %s: %s", names.META_RUNS, err)

    def _raw(self, name: str) -> ir.Table:
        """The versions of raw table ``name`` up to the build date, with exactly the
        columns read."""
        endpoint = name.split(".", 1)[1]
        if not self.lake.exists(names.history_table(endpoint)):
            raise LakeError(f"table {name} does not exist in {self.lake.root}; "
                            "run 'lakehouse ingest' before 'lakehouse build'")
        t = history.build_input(self.engine.table(names.history_table(endpoint)), self.date)
        wanted = RAW_COLUMNS[name] | RAW_META_TYPES | {names.H_FIRST_SEEN: "date"}
        # A snapshot missing a column reads it as null, a drifted type as null
        # where it does not convert: the rules then decide.
        cols = {c: _conform(t[c], ibis.dtype(kind)) if c in t.columns else ibis.null(kind)
                for c, kind in wanted.items()}
        return t.select(**cols)

    def _temp(self, expr: ir.Table, label: str) -> ir.Table:
        return self.engine.temp(expr, label)

    def _drop(self, table: ir.Table) -> None:
        self.engine.drop(table)

    def _record(self, view: View) -> RunRecord:
        record = RunRecord(PIPELINE, view.name, self.date)  # type: ignore[arg-type]
        record.details = self.engine.details()
        return record

    def _inputs(self, view: View) -> list[ir.Table]:
        return [self.tables[n] for n in view.inputs]

    def _standardize(self, view: View) -> _Result:
        result = _Result(view, None, self._record(view))
        with result.timed():
            inputs = self._inputs(view)
            if view.check is not None:
                # Read by the stage and the quarantine: compiled once, not into each.
                inputs = [self.engine.view(view.check(*inputs), f"checked_{view.name}")]
            staged = view.stage(*inputs)
            if view.materialize_stage:
                staged = self._temp(staged, f"staged_{view.name}")
            result.table = self._temp(view.select(staged), view.name)
            result.quarantine = self._temp(view.quarantine(staged, inputs, self.date),
                                           names.quarantine_table(view.name))
            # Rows read: every input row is in the stage when it carries the
            # rule results (listens: one per listened track), counted with the
            # quarantine's reasons in one query; else the raw rows, counted already.
            in_stage = names.Q_CHECK in staged.columns
            q = result.quarantine
            counted = q.group_by(names.Q_REASON).agg(n=q.count())
            if in_stage:
                counted = counted.union(staged.aggregate(n=staged.count()).select(
                    ibis.null(str).name(names.Q_REASON), "n"), distinct=False)
            counts = counted.to_pyarrow().to_pylist()
            if view.materialize_stage:
                self._drop(staged)
            if in_stage:
                result.record.rows_in = next(int(r["n"]) for r in counts
                                             if r[names.Q_REASON] is None)
            else:
                result.record.rows_in = self.rows[view.inputs[0]]
            result.quarantine_reasons = {r[names.Q_REASON]: int(r["n"]) for r in sorted(
                (r for r in counts if r[names.Q_REASON] is not None),
                key=lambda r: r[names.Q_REASON])}
            result.record.quarantined = sum(result.quarantine_reasons.values())
            self._validate(result)
        self.tables[view.name] = result.table
        return result

    def _consume(self, view: View) -> _Result:
        result = _Result(view, None, self._record(view))
        with result.timed():
            inputs = self._inputs(view)
            result.table = self._temp(view.compute(inputs, self.context), view.name)
            result.record.rows_in = self.rows[view.inputs[0]]  # counted by its checks
            result.record.quarantined = 0
            self._validate(result)
        self.tables[view.name] = result.table
        return result

    # ------------------------------------------------------------ validate
    def _validate(self, result: _Result) -> None:
        """Table-level checks; on failure record a failed run and raise."""
        try:
            self.rows[result.view.name] = check_table(result.view, result.table, self.tables)
        except ValidationError as exc:
            result.finish(names.FAILED, str(exc))
            self.step.record(result.record)
            raise

    # ------------------------------------------------------------ write
    def _write(self, results: list[_Result]) -> list[RunRecord]:
        """Write every validated table, parents first, then their run records.

        Each table is one atomic commit. Should the disk fail midway, the
        tables already written are a consistent build and the rest keep the
        previous one; the run log says which.
        """
        done: list[RunRecord] = []
        for result in results:
            record = result.record
            try:
                with result.timed():
                    written = self._write_table(result.view.name, result.table)
                    record.records = written.rows
                    record.table_version = written.version
                    record.schema_changes = written.schema_changes
                    record.details |= {"quarantine_reasons": result.quarantine_reasons}
                    if result.quarantine is not None:
                        qname = names.quarantine_table(result.view.name)
                        q = self._write_table(qname, result.quarantine)
                        record.details |= {"quarantine_table": qname,
                                           "quarantine_version": q.version}
            except LakeError as exc:
                self.step.record(*done, result.finish(names.FAILED, str(exc)))
                raise
            done.append(result.finish(names.SUCCESS))
            # Later views read their inputs before anything is written: free as we go.
            self._drop(result.table)
            if result.quarantine is not None:
                self._drop(result.quarantine)
        self.step.record(*done)
        return done

    def _write_table(self, name: str, table: ir.Table) -> WriteResult:
        return self.engine.write(name, table, {"pipeline": PIPELINE,
                                               "build_date": str(self.date)})


def _conform(column: ir.Value, kind: ibis.DataType) -> ir.Value:
    return column if column.type() == kind else column.try_cast(kind)


def check_table(view: View, table: ir.Table, tables: dict[str, ir.Table]) -> int:
    """Run the table-level checks of ``view`` on its computed ``table``; its rows.

    Checks: the columns and types are the contract's, the pandera schema
    (nulls, ranges, allowed values, key uniqueness), and the foreign keys
    against the already validated parent tables in ``tables``.

    Returns:
        The table's rows, counted by the same query.

    Raises:
        ValidationError: Naming the table, the failed check and example values.
    """
    if table.schema() != view.ibis_schema:
        got, want = dict(table.schema().items()), dict(view.ibis_schema.items())
        diff = [f"{c}: {got.get(c)} (want {want.get(c)})" for c in {**want, **got}
                if got.get(c) != want.get(c)]
        raise ValidationError(f"{view.name} failed check columns_match_contract: "
                              f"{'; '.join(diff[:EXAMPLES])}")
    # The checks in one query; pandera itself only to describe a failure.
    checked = run_view_checks(view, table, tables)
    failed = checked.failed
    orphans = {fk_check(column): column for column in view.foreign_keys}
    contract = [f for f in failed if f not in orphans]
    if contract:
        import pandera.errors as pandera_errors

        try:
            view.schema.validate(table, lazy=True)
        except pandera_errors.SchemaErrors as exc:
            raise ValidationError(_describe(view, table, exc.schema_errors[0])) from None
        except pandera_errors.SchemaError as exc:
            raise ValidationError(_describe(view, table, exc)) from None
        raise ValidationError(f"{view.name} failed check {contract[0]}")
    if failed:  # a foreign key: its first orphans as examples
        column = orphans[failed[0]]
        parent, parent_column = view.foreign_keys[column]
        ref = tables[parent]
        bad = table.anti_join(ref, table[column] == ref[parent_column])
        examples = bad.select(column).limit(EXAMPLES).to_pyarrow()[column].to_pylist()
        raise ValidationError(f"{view.name} failed check {failed[0]}: {column} not in {parent}, "
                              f"e.g. {examples}")
    return checked.rows


def _describe(view: View, table: ir.Table, error: Any) -> str:
    """A pandera ``SchemaError`` as one line: the table, the check, example values."""
    check = error.check
    check_name = getattr(check, "name", None) or str(check)
    column = getattr(error, "column_name", None)
    cases = error.failure_cases
    if check_name == KEY_UNIQUE:
        column, examples = ", ".join(view.grain), duplicate_keys(table, view.grain, EXAMPLES)
    elif isinstance(cases, ir.Table):
        # Show the failing column, not whole rows.
        keep = [column] if column in cases.columns else cases.columns
        rows = cases.select(*keep).distinct().limit(EXAMPLES).to_pyarrow().to_pylist()
        examples = [r[column] for r in rows] if column in cases.columns else rows
    elif hasattr(cases, "head"):
        examples = cases.head(EXAMPLES)["failure_case"].tolist() \
            if "failure_case" in cases.columns else cases.head(EXAMPLES).to_dict("records")
    else:
        examples = cases
    where = f" on {column}" if column else ""
    return f"{view.name} failed check {check_name}{where}: e.g. {examples}"


def engine_for(lake: Lake, settings: Settings, spark: Any = None) -> Engine:
    """The engine ``settings.engine`` names, on ``lake``.

    Args:
        lake: The lake the build reads and writes.
        settings: ``engine``, ``build_memory`` (DuckDB), ``spark_master`` (Spark).
        spark: An existing SparkSession to run on (Spark only; default: one
            from ``SPARK_REMOTE`` or ``settings.spark_master``).

    Raises:
        ConfigError: Unknown engine, or Spark asked for without PySpark.
    """
    if settings.engine == DUCKDB:
        if spark is not None:
            raise ConfigError("a Spark session was given but the engine is duckdb; "
                              "use --engine spark (LAKEHOUSE_ENGINE=spark)")
        return DuckDBEngine(lake, settings.build_memory)
    if settings.engine == SPARK:
        from lakehouse.zones.spark import SparkEngine

        return SparkEngine.open(lake, settings, spark)
    raise ConfigError(f"unknown engine {settings.engine!r} (LAKEHOUSE_ENGINE); "
                      f"use one of {', '.join(ENGINES)}")

"""Ingestion: each endpoint of the source API -> one partition of its raw table.

One endpoint run reads every page of the endpoint (page 1, then the rest
concurrently), streams them as record batches into ONE atomic Delta commit
that replaces the ``ingest_date`` partition, merges what changed into the
endpoint's history (``lakehouse.history``; one more commit) and appends one
record to ``meta.runs``. Endpoints are independent: one failing is a failed record,
never an exception, and never touches the other tables::

    from lakehouse.config import Settings
    from lakehouse.ingest import ingest
    runs = ingest(Settings.load(), ["users"], date=datetime.date(2026, 11, 26))
    assert all(r.ok for r in runs)

Completeness: the records read must equal the envelope's ``total``. If
``total`` changes during the read (the source moved under us), the endpoint
is read again, a bounded number of times, and then fails; a partial or
inconsistent snapshot is never committed, since the stream aborts before the
commit.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import logging
import operator
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from lakehouse import history, names
from lakehouse.config import Settings, check_date
from lakehouse.context import ProgressFn, RunContext
from lakehouse.errors import ConfigError, LakehouseError, SourceError
from lakehouse.lake import Lake, WriteResult
from lakehouse.monitor.sinks import step_context
from lakehouse.runlog import RunRecord
from lakehouse.source.client import ApiClient, Page, check_base_url, redact
from lakehouse.source.endpoints import ENDPOINTS, META_FIELDS, EndpointSpec
from lakehouse.source.errors import (
    CutShortError,
    EmptySourceError,
    FieldTypeError,
    HttpStatusError,
    NotTheApiError,
    SourceMovedError,
)
from lakehouse.source.paginator import fetch_in_order
from lakehouse.source.records import JSON_TEXT, column, exact, infer_field, plain, scan_keys
from lakehouse.source.scrub import scrub
from lakehouse.steps import StepRun, run_step

log = logging.getLogger(__name__)

PIPELINE = names.INGEST
# Reads of an endpoint whose total keeps changing before giving up.
MOVED_TRIES = 3
# Restarts allowed because a new field first appeared after page 1.
NEW_FIELD_RESTARTS = 3
# Field metadata: the source key of a field kept under another column name.
SOURCE_KEY = b"lakehouse.source_key"
# Rows per record batch handed to the writer: big enough to amortize the
# conversion, small enough to keep memory flat.
BATCH_ROWS = 5000
# A page that differs from the expected shape must differ the same way on this
# many reads in a row to count as schema drift rather than a corrupted answer.
DRIFT_CONFIRM_READS = 4

# Progress of one endpoint: pages read, pages expected.
PagesFn = Callable[[int, int], None]


def ingest(target: RunContext | Settings | None = None, endpoints: Sequence[str] | None = None,
           *, date: dt.date | str | None = None, wait: bool | None = None,
           progress: ProgressFn | None = None, accept_reset: bool = False,
           allow_empty: bool = False) -> list[RunRecord]:
    """Ingest endpoints of the source API into the raw zone, one commit each.

    A pipeline step (:func:`lakehouse.steps.run_step`): it takes the lake's
    ``ingest`` lock, records every endpoint in ``meta.runs`` and alerts on
    failed endpoints, whoever calls it.

    Args:
        target: The run context, or settings (lake, API URL/token, workers,
            page size, timeouts, retries) to build one from.
        endpoints: Endpoint names (``users``, ``tracks``, ``listen_history``),
            run in this order; None for all three.
        date: The ingest date, i.e. the ``ingest_date`` partition replaced
            (default: the context's date, today UTC for settings).
        wait: Wait for another ingest holding the lake's lock (default: the
            context's policy, i.e. wait up to ``lock_timeout``); False: raise.
        progress: Called with a :class:`~lakehouse.context.ProgressEvent` per
            page read and one ``finished`` event per endpoint whose message is
            its :func:`summary_line` (default: the context's callback).
        accept_reset: Merge a snapshot into the history even if it shares
            too few keys with the previous one (``lakehouse.history``).
        allow_empty: Accept an endpoint serving no records although its last
            snapshot had some (otherwise that endpoint fails, nothing replaced).

    Returns:
        One run record per endpoint, in the order given, each also appended
        to ``meta.runs``; an endpoint that failed has status ``failed`` and a
        one-line ``error``.

    Raises:
        ConfigError: Unknown endpoint, bad date, bad API URL or page size.
        LakeError: The lake cannot be written.
        LockedError: Another ingest holds the lock (and ``wait`` is False or
            the wait timed out).
        SourceError: The API is unreachable or is not the MooVitamix API
            (checked once before any endpoint is read).
    """
    ctx = step_context(target, date=date, wait=wait, progress=progress)
    check_date(ctx.date, "ingest date")
    settings = ctx.settings
    specs = _specs(endpoints)
    _check_settings(settings)

    def body(run: StepRun) -> list[RunRecord]:
        try:
            preflight(settings, specs)
        except SourceError as exc:
            # Nothing can be read today: every endpoint's run failed, and says so in
            # meta.runs (status turns unhealthy, the daily job skips the build).
            error = _one_line(exc, secrets=[settings.api_token])
            failed = [RunRecord(pipeline=PIPELINE, target=spec.name, run_date=run.date)
                      .finish(names.FAILED, error) for spec in specs]
            try:
                run.record(*failed)
            except LakehouseError as record_error:
                log.error("could not append the failed ingest runs to %s: %s",
                          names.META_RUNS, record_error)
            raise
        records: list[RunRecord] = []
        for spec in specs:
            record = ingest_endpoint(
                run.lake, settings, spec, run.date,
                on_pages=functools.partial(ctx.report, PIPELINE, spec.name),
                allow_empty=allow_empty)
            history.merge_run(run.lake, settings, record, accept_reset=accept_reset)
            try:
                run.record(record)
            except LakehouseError as exc:
                log.error("could not append the %s run to %s: %s",
                          spec.name, names.META_RUNS, exc)
            ctx.report(PIPELINE, spec.name, record.pages or 0, record.pages, finished=True,
                       message=summary_line(record))
            records.append(record)
        return records

    return run_step(ctx, PIPELINE, body, create=True)


def preflight(settings: Settings, specs: Sequence[EndpointSpec] | EndpointSpec) -> None:
    """Check once, before any work, that the URL is the API and answers.

    One small page of the first endpoint is asked for. What cannot be one
    endpoint's problem stops the ingest: no answer at all, or a refused
    credential (401/403). What can (a body cut short, an error status, a
    page that is not the envelope) sends the check to the next endpoint:
    the URL is the API as soon as one of them answers properly, and the
    broken endpoint then fails on its own, leaving the others alone. Only
    when every endpoint answers that way is the URL not the API.

    Raises:
        SourceError: Unreachable, refused, or no endpoint answered as the API.
    """
    specs = [specs] if isinstance(specs, EndpointSpec) else list(specs)
    first: SourceError | None = None
    with ApiClient.from_settings(settings.replace(workers=1)) as client:
        for spec in specs:
            try:
                client.get_page(spec.path, 1, 1)
                return
            except HttpStatusError as exc:
                if exc.status == 429 or exc.status >= 500:
                    log.warning("pre-flight: %s", exc)
                    return  # the API is there; this endpoint's own run will tell
                if exc.status in (401, 403):
                    raise NotTheApiError(f"{redact(client.base_url)}: {exc}; set "
                                         "LAKEHOUSE_API_TOKEN") from None
                first = first or NotTheApiError(f"{redact(client.base_url)}: {exc}; is "
                                                "--api-url the MooVitamix API?")
            except (NotTheApiError, CutShortError) as exc:
                first = first or exc
            log.warning("pre-flight: %s did not answer as the API; trying the next endpoint",
                        spec.path)
    if first is not None:
        raise first


def ingest_endpoint(lake: Lake, settings: Settings, spec: EndpointSpec | str,
                    date: dt.date, *, on_pages: PagesFn | None = None,
                    allow_empty: bool = False) -> RunRecord:
    """Ingest one endpoint into its raw partition for ``date``; never raises.

    An endpoint that serves no records while its last snapshot (the newest
    partition up to ``date``) had some fails, unless ``allow_empty``: an
    outage serving empty lists must not replace a good day.

    The caller holds the ingest lock and appends the record to ``meta.runs``.

    Args:
        lake: The lake to write.
        settings: API URL/token, workers, page size, timeouts, retries.
        spec: The endpoint (or its name).
        date: The ``ingest_date`` partition to replace.
        on_pages: Called after each page with the pages read and the pages
            expected (a re-read starts again from 1).
        allow_empty: Accept an empty answer (see above).

    Returns:
        The run record, ``success`` or ``failed`` with a one-line error.
    """
    spec = ENDPOINTS[spec] if isinstance(spec, str) else spec
    record = RunRecord(pipeline=PIPELINE, target=spec.name, run_date=date)
    record.details = {"api_url": redact(settings.api_url), "page_size": settings.page_size,
                      "workers": settings.workers}
    secrets = [settings.api_token]
    with ApiClient.from_settings(settings) as client:
        try:
            result, reader, attempts = _read_and_write(lake, client, settings, spec, date,
                                                       record.run_id, on_pages, allow_empty)
        except LakehouseError as exc:
            status, error = names.FAILED, _one_line(exc, secrets=secrets)
            if isinstance(exc, FieldTypeError):
                error += f"; nothing written to {spec.table}"
        except Exception as exc:  # noqa: BLE001 - a bug in one endpoint must not stop the others
            log.exception("ingest of %s failed unexpectedly", spec.name)
            status, error = names.FAILED, _one_line(exc, prefix=type(exc).__name__ + ": ",
                                                    secrets=secrets)
        else:
            status, error = names.SUCCESS, None
            record.records = result.rows
            record.rows_in = reader.records
            record.pages = reader.pages
            record.table_version = result.version
            # Field names came from the server: no escape sequence reaches a terminal.
            record.schema_changes = [scrub(c, secrets) for c in
                                     reader.drift() + result.schema_changes]
            record.details.update(total=reader.total, attempts=attempts)
        record.requests, record.retries, record.bytes = \
            client.requests, client.retries, client.bytes
    record.finish(status, error)
    log.info("%s", summary_line(record))
    return record


def summary_line(record: RunRecord) -> str:
    """One log line per endpoint run, for cron logs."""
    head = f"ingest {record.target} {record.run_date}: {record.status}"
    if not record.ok:
        return f"{head}: {record.error}"
    line = (f"{head}, {record.records} records, {record.pages} pages, "
            f"{record.requests} requests ({record.retries} retries), "
            f"{record.duration_s:.1f}s, version {record.table_version}")
    if record.schema_changes:
        line += "; schema: " + "; ".join(record.schema_changes)
    return line


# --------------------------------------------------------------------- internals
class _Restart(Exception):
    """Raised inside the stream to abort the commit and read the endpoint again."""

    def __init__(self, reason: str, new_fields: dict[str, Any] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.new_fields = new_fields or {}


def _read_and_write(lake: Lake, client: ApiClient, settings: Settings, spec: EndpointSpec,
                    date: dt.date, run_id: str, on_pages: PagesFn | None,
                    allow_empty: bool = False
                    ) -> tuple[WriteResult, _EndpointStream, int]:
    table_schema = lake.schema(spec.table) if lake.exists(spec.table) else None
    extras: dict[str, pa.Field] = {}
    confirmed: set[tuple] = set()
    moved = restarts = 0
    attempt = 0
    while True:
        attempt += 1
        try:
            stream = _EndpointStream(client, spec, settings, list(extras.values()), run_id,
                                     date, confirmed)
            stream.open()  # page 1 before the write: a refused endpoint touches no table
            if stream.total == 0 and not allow_empty:
                _refuse_empty(lake, spec, date)
            if on_pages is not None:
                stream.on_page = functools.partial(_pages_read, on_pages, stream)
            result = lake.write(
                spec.table, stream.batches(), schema=stream.schema,
                mode="replace_partition", partition={names.INGEST_DATE: date},
                partition_by=[names.INGEST_DATE],
                metadata={"run_id": run_id, "pipeline": PIPELINE})
            return result, stream, attempt
        except _Restart as restart:
            if restart.new_fields:
                restarts += 1
                if restarts > NEW_FIELD_RESTARTS:
                    raise SourceError(f"new fields kept appearing mid-read ({restart.reason}); "
                                      "nothing written; rerun later") from None
                for n, v in sorted(restart.new_fields.items()):
                    extras[n] = _extra_field(n, v, table_schema, _taken(spec, extras))
                log.info("%s: %s; reading again with the new columns", spec.name,
                         restart.reason)
                continue
            moved += 1
            if moved >= MOVED_TRIES:
                raise SourceMovedError(
                    f"the source moved while being read ({restart.reason}), {moved} reads "
                    "in a row; nothing written; rerun when the source is stable") from None
            log.warning("%s: the source moved (%s); reading again", spec.name, restart.reason)


def _refuse_empty(lake: Lake, spec: EndpointSpec, date: dt.date) -> None:
    """Fail an empty answer when the last snapshot up to ``date`` had records."""
    if not lake.exists(spec.table):
        return
    counts: dict[dt.date, int] = {}
    actions = pa.table(lake.delta(spec.table).get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return
    for day, rows in zip(actions.column(f"partition.{names.INGEST_DATE}").to_pylist(),
                         actions.column("num_records").to_pylist(), strict=True):
        if day is not None and day <= date:
            counts[day] = counts.get(day, 0) + (rows or 0)
    if not counts:
        return
    last = max(counts)
    if counts[last]:
        raise EmptySourceError(
            f"the source served 0 {spec.name} records where the snapshot of {last} had "
            f"{counts[last]}; nothing replaced; rerun when the source is back, or pass "
            "--allow-empty if it really is empty")


def _pages_read(on_pages: PagesFn, stream: _EndpointStream, _new: int) -> None:
    on_pages(stream.pages, stream.expected_pages)


def _extra_field(name: str, example: Any, table_schema: pa.Schema | None,
                 taken: set[str]) -> pa.Field:
    """The column of new source field ``name``; ``taken``: lower-cased column names in use.

    A name that collides with ours (``_run_id``, ``ingest_date``...) or, ignoring
    case, with another field (``ID`` beside ``id``: Delta and DuckDB columns are
    case-insensitive) is kept as ``source_<name>``.
    """
    column = name
    if column.lower() in taken:
        column = f"source_{name}"
        while column.lower() in taken:
            column += "_"
    inferred = infer_field(column, example)
    field = inferred
    if table_schema is not None and column in table_schema.names:
        stored = table_schema.field(column).with_nullable(True)
        # JSON text stays the inferred (string) field, with its marker.
        field = inferred if pa.types.is_string(stored.type) and inferred.metadata else stored
    if column != name:
        field = field.with_metadata({**(field.metadata or {}), SOURCE_KEY: name.encode()})
    return field


def _taken(spec: EndpointSpec, extras: dict[str, pa.Field]) -> set[str]:
    return {n.lower() for n in [*spec.field_names, *(f.name for f in META_FIELDS),
                                *(f.name for f in extras.values())]}


def source_key(field: pa.Field) -> str:
    """The key in the source's items that ``field`` holds."""
    key = (field.metadata or {}).get(SOURCE_KEY)
    return key.decode() if key else field.name


@dataclass
class _Checked:
    """A page checked against the schema and converted to a record batch, or with its
    columns proven to be of the schema's types, to be converted with other pages."""

    page: Page
    batch: pa.RecordBatch | None
    missing: Counter[str]
    columns: Sequence[Sequence[Any]] | None = None

    @property
    def rows(self) -> int:
        if self.batch is not None:
            return self.batch.num_rows
        return len(self.columns[0]) if self.columns else 0


@dataclass
class _Anomaly:
    """How a page differs from the expected shape; ``key`` identifies the kind."""

    key: tuple
    new_fields: dict[str, Any]
    type_error: FieldTypeError | None


class _PageChecker:
    """Checks a page against the fields it should have, and converts it; no I/O.

    A well-formed page (every field present with its contract type) is only
    proven convertible, and converted later with other pages
    (:meth:`convert`); any other page is converted at once, the careful way,
    and what differs is returned as an :class:`_Anomaly`.
    """

    def __init__(self, spec: EndpointSpec, extras: list[pa.Field]):
        self.fields = list(spec.fields) + extras
        # The source's key of each field: a field whose name collides with one of
        # ours is kept under another column name (see _extra_field).
        self.keys = [source_key(f) for f in self.fields]
        self.expected = frozenset(self.keys)
        self.contract = frozenset(spec.field_names)
        self.source_schema = pa.schema(self.fields)
        self._getter = operator.itemgetter(*self.keys)
        self._deferrable = len(self.fields) > 1 and all(plain(f) for f in self.fields)

    def check(self, page: Page) -> tuple[_Checked, _Anomaly | None]:
        """The page checked, and how it differs from the expected shape (None: it does not)."""
        absent, unknown = scan_keys(page.items, self.expected)
        # Only the contract's fields count as missing; a new field may come and go.
        missing = Counter({k: v for k, v in absent.items() if k in self.contract})
        checked = _Checked(page, None, missing)
        type_error = None
        if not unknown and not absent and self._deferrable and page.items:
            # The common page: every field present with its contract type. Converting
            # it here would cost a GIL hand-off per column in a busy thread pool.
            columns = list(zip(*map(self._getter, page.items), strict=True))
            if all(exact(f, v) for f, v in zip(self.fields, columns, strict=True)):
                checked.columns = columns
        if not unknown and checked.columns is None:
            try:
                checked.batch = self.batch(page, complete=not absent)
            except FieldTypeError as exc:
                type_error = exc
        if not (unknown or missing or type_error):
            return checked, None
        key = (tuple(sorted(unknown)), tuple(sorted(missing)),
               type_error.kind if type_error else None)
        return checked, _Anomaly(key, unknown, type_error)

    def batch(self, page: Page, complete: bool) -> pa.RecordBatch:
        """The page's source columns; run metadata is added per batch, cheaper.

        Args:
            page: The page.
            complete: Every item has every field, so a C-level transpose
                (itemgetter + zip, several times faster) can replace a lookup
                per field and item.
        """
        items = page.items
        if complete and items:
            values: Iterable[Sequence[Any]] = zip(*map(self._getter, items), strict=True) \
                if len(self.fields) > 1 else [[item[self.keys[0]] for item in items]]
        else:
            values = ([item.get(key) for item in items] for key in self.keys)
        return pa.RecordBatch.from_arrays(
            [column(f, v) for f, v in zip(self.fields, values, strict=True)],
            schema=self.source_schema)

    def convert(self, parts: list[_Checked]) -> pa.RecordBatch:
        """The pages' source columns, in order; runs of deferred pages in one conversion."""
        out: list[pa.RecordBatch] = []
        run: list[_Checked] = []

        def flush() -> None:
            if run:
                out.append(pa.RecordBatch.from_arrays(
                    [pa.array(list(itertools.chain.from_iterable(c.columns[i] for c in run)),
                              f.type) for i, f in enumerate(self.fields)],
                    schema=self.source_schema))
                run.clear()

        for part in parts:
            if part.batch is None:
                run.append(part)
            else:
                flush()
                out.append(part.batch)
        flush()
        return out[0] if len(out) == 1 else pa.concat_batches(out)


class _ReReadConfirmer:
    """Reads pages; a page that looks different is read again until that is confirmed.

    A real schema change is there on every read, a corrupted answer is not.
    Only a difference seen on ``DRIFT_CONFIRM_READS`` reads in a row is taken
    as drift; later pages with the same difference (``confirmed``, shared by
    the endpoint's reads) are then accepted at once.
    """

    def __init__(self, client: ApiClient, spec: EndpointSpec, page_size: int,
                 checker: _PageChecker, confirmed: set[tuple]):
        self.client = client
        self.spec = spec
        self.size = page_size
        self.checker = checker
        self.confirmed = confirmed
        self._lock = threading.Lock()

    def read(self, number: int) -> _Checked:
        """Page ``number``, checked; runs in the paginator's worker threads.

        Raises:
            _Restart: Confirmed new fields: read the endpoint again with them.
            FieldTypeError: A confirmed change of type.
        """
        page = self.client.get_page(self.spec.path, number, self.size)
        streak, last = 0, None
        for reads in range(1, 2 * DRIFT_CONFIRM_READS + 1):
            checked, anomaly = self.checker.check(page)
            if anomaly is None:
                return checked
            streak = streak + 1 if anomaly.key == last else 1
            last = anomaly.key
            with self._lock:
                known = anomaly.key in self.confirmed
                if not known and (streak >= DRIFT_CONFIRM_READS
                                  or reads == 2 * DRIFT_CONFIRM_READS):
                    self.confirmed.add(anomaly.key)
                    known = True
            if known:
                return _accept(checked, anomaly, number)
            log.info("%s page %d: %s; reading it again", self.spec.name, number,
                     _describe(anomaly))
            self.client.note_retry()
            page = self.client.get_page(self.spec.path, number, self.size)
        raise AssertionError("unreachable")  # pragma: no cover


def _accept(checked: _Checked, anomaly: _Anomaly, number: int) -> _Checked:
    if anomaly.type_error is not None:
        raise anomaly.type_error.on_page(number)
    if anomaly.new_fields:
        raise _Restart(f"new field(s) {', '.join(sorted(anomaly.new_fields))} on page "
                       f"{number}", anomaly.new_fields)
    return checked


class _BatchBuilder:
    """Checked pages -> record batches of about ``BATCH_ROWS`` rows, with run metadata."""

    def __init__(self, checker: _PageChecker, run_id: str, date: dt.date):
        self.checker = checker
        self.run_id = run_id
        self.date = date
        self.schema = pa.schema(checker.fields + list(META_FIELDS))
        self._pending: list[_Checked] = []
        self._rows = 0

    def add(self, checked: _Checked) -> pa.RecordBatch | None:
        """Keep the page; a batch once enough rows are pending."""
        if checked.rows:
            self._pending.append(checked)
            self._rows += checked.rows
        return self.flush() if self._rows >= BATCH_ROWS else None

    def flush(self) -> pa.RecordBatch | None:
        """The pending pages as one batch (None if there are none)."""
        if not self._pending:
            return None
        parts, self._pending, self._rows = self._pending, [], 0
        return self.with_meta(parts)

    def with_meta(self, parts: list[_Checked]) -> pa.RecordBatch:
        """The pages' rows with ``_run_id``, ``_ingested_at``, ``_page`` and ``ingest_date``."""
        batch = self.checker.convert(parts)
        n = batch.num_rows
        rows = [c.rows for c in parts]
        micros = [int(c.page.fetched_at.timestamp() * 1_000_000) for c in parts]
        meta = [
            pa.repeat(pa.scalar(self.run_id, pa.string()), n),
            pa.array(np.repeat(np.array(micros, dtype=np.int64), rows)).cast(
                pa.timestamp("us", tz="UTC")),
            pa.array(np.repeat(np.array([c.page.number for c in parts], dtype=np.int64), rows)),
            pa.repeat(pa.scalar(self.date, pa.date32()), n),
        ]
        return pa.RecordBatch.from_arrays(batch.columns + meta, schema=self.schema)


class _EndpointStream:
    """Pages of one endpoint -> record batches of its raw schema, checked and complete.

    Wires a :class:`_PageChecker`, a :class:`_ReReadConfirmer` and a
    :class:`_BatchBuilder`, and checks completeness: the records read must
    add up to the envelope's ``total``, which must not change. Nothing is read
    until :meth:`open`.
    """

    def __init__(self, client: ApiClient, spec: EndpointSpec, settings: Settings,
                 extras: list[pa.Field], run_id: str, date: dt.date, confirmed: set[tuple]):
        self.spec = spec
        self.extras = extras
        self.checker = _PageChecker(spec, extras)
        self.reader = _ReReadConfirmer(client, spec, settings.page_size, self.checker,
                                       confirmed)
        self.builder = _BatchBuilder(self.checker, run_id, date)
        self.schema = self.builder.schema
        self.workers = settings.workers
        self.records = 0
        self.pages = 0
        self.missing: Counter[str] = Counter()
        self.on_page: Any = None
        self.first: _Checked | None = None
        self.total: int | None = None

    def open(self) -> _Checked:
        """Read page 1: the envelope says how many pages and records to expect."""
        self.first = self.reader.read(1)
        self.total = self.first.page.total
        return self.first

    @property
    def expected_pages(self) -> int:
        return self.first.page.pages if self.first else 0

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Record batches of about ``BATCH_ROWS`` rows, in page order.

        Raises:
            _Restart: The total changed, the records do not add up to it, or a
                new field appeared; the commit is then never made.
            FieldTypeError: A field changed type (confirmed by re-reads).
        """
        first = self.first or self.open()
        later = fetch_in_order(self.reader.read, range(2, first.page.pages + 1),
                               workers=self.workers)
        for checked in itertools.chain([first], later):
            page = checked.page
            if page.total != self.total:
                raise _Restart(f"total went from {self.total} to {page.total} "
                               f"by page {page.number}")
            self.missing.update(checked.missing)
            self.pages += 1
            self.records += len(page.items)
            if self.on_page:
                self.on_page(1)
            if (batch := self.builder.add(checked)) is not None:
                yield batch
        if self.records != self.total:
            raise _Restart(f"read {self.records} records but total is {self.total}")
        if (batch := self.builder.flush()) is not None:
            yield batch

    def drift(self) -> list[str]:
        """The run's schema drift against the contract, in words."""
        out = []
        for f in self.extras:
            kind = "JSON text" if f.metadata and f.metadata.get(JSON_TEXT) else str(f.type)
            key = source_key(f)
            if key != f.name:
                out.append(f"new field {key} ({kind}) kept as column {f.name}: its name "
                           "collides with one of the lake's columns")
            else:
                out.append(f"new field {f.name} ({kind}) kept as a column")
        for name in self.spec.field_names:
            if self.missing.get(name):
                out.append(f"missing field {name}: null in {self.missing[name]} of "
                           f"{self.records} records")
        return out


def _describe(anomaly: _Anomaly) -> str:
    new, missing, changed = anomaly.key
    parts = []
    if new:
        parts.append(f"new field(s) {', '.join(new)}")
    if missing:
        parts.append(f"missing field(s) {', '.join(missing)}")
    if changed:
        parts.append(changed)
    return "; ".join(parts)


def _specs(endpoints: Sequence[str] | None) -> list[EndpointSpec]:
    if endpoints is None or len(endpoints) == 0:
        return list(ENDPOINTS.values())
    if isinstance(endpoints, str):
        endpoints = [endpoints]
    unknown = [e for e in endpoints if e not in ENDPOINTS]
    if unknown:
        raise ConfigError(f"unknown endpoint(s) {', '.join(map(repr, unknown))}: "
                          f"choose from {', '.join(ENDPOINTS)}")
    seen: dict[str, EndpointSpec] = {}
    for e in endpoints:
        seen.setdefault(e, ENDPOINTS[e])
    return list(seen.values())


def _check_settings(settings: Settings) -> None:
    # Ranges (page size, workers, retries) were checked when the settings loaded.
    check_base_url(settings.api_url)


def _one_line(exc: BaseException, prefix: str = "", secrets: Sequence[str | None] = ()) -> str:
    # Messages can quote the server (error bodies, field names, values): scrubbed.
    text = " ".join(scrub(str(exc), secrets).split()) or type(exc).__name__
    return prefix + (text if len(text) <= 400 else text[:397] + "...")

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
import itertools
import logging
import operator
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import click
import numpy as np
import pyarrow as pa

from lakehouse import history, names
from lakehouse.config import Settings, check_date
from lakehouse.errors import ConfigError, LakehouseError, SourceError
from lakehouse.lake import Lake, WriteResult, utc_now
from lakehouse.locking import lake_lock
from lakehouse.runlog import RunRecord, record_run
from lakehouse.source.client import MAX_PAGE_SIZE, ApiClient, Page, check_base_url, redact
from lakehouse.source.endpoints import ENDPOINTS, META_FIELDS, EndpointSpec
from lakehouse.source.errors import (
    EmptySourceError,
    FieldTypeError,
    HttpStatusError,
    NotTheApiError,
    SourceMovedError,
)
from lakehouse.source.paginator import fetch_in_order
from lakehouse.source.records import JSON_TEXT, column, exact, infer_field, plain, scan_keys
from lakehouse.source.scrub import scrub

log = logging.getLogger(__name__)

PIPELINE = "ingest"
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


def ingest(settings: Settings, endpoints: Sequence[str] | None = None, *,
           date: dt.date | None = None, wait: bool = True,
           progress: bool | None = None, accept_reset: bool = False,
           allow_empty: bool = False) -> list[RunRecord]:
    """Ingest endpoints of the source API into the raw zone, one commit each.

    Args:
        settings: Lake, API URL/token, workers, page size, timeouts, retries.
        endpoints: Endpoint names (``users``, ``tracks``, ``listen_history``),
            run in this order; None for all three.
        date: The ingest date, i.e. the ``ingest_date`` partition replaced
            (default: today, UTC).
        wait: Wait for another ingest holding the lake's lock; if False, raise.
        progress: True: a progress bar per endpoint on stderr; False: silent;
            None: a bar on a terminal, else one line per endpoint (cron logs).
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
        LockedError: Another ingest holds the lock and ``wait`` is False.
        SourceError: The API is unreachable or is not the MooVitamix API
            (checked once before any endpoint is read).
    """
    specs = _specs(endpoints)
    day = _check_date(date)
    _check_settings(settings)
    lake = Lake(settings.lake)
    lake.check_writable()
    bar = sys.stderr.isatty() if progress is None else progress
    lines = progress is None and not bar
    records: list[RunRecord] = []
    with lake_lock(settings.locks_dir, PIPELINE, wait=wait):
        preflight(settings, specs[0])
        for spec in specs:
            record = ingest_endpoint(lake, settings, spec, day, progress=bar,
                                     allow_empty=allow_empty)
            history.merge_run(lake, settings, record, accept_reset=accept_reset)
            try:
                record_run(lake, record)
            except LakehouseError as exc:
                log.error("could not append the %s run to %s: %s",
                          spec.name, names.META_RUNS, exc)
            if lines:
                click.echo(summary_line(record), err=True)
            records.append(record)
    return records


def preflight(settings: Settings, spec: EndpointSpec) -> None:
    """Check once, before any work, that the URL is the API and answers.

    Statuses that may be transient (429, 5xx) pass: that endpoint's own run
    will fail or succeed on its own, leaving the others alone.

    Raises:
        SourceError: Unreachable, not the API, or refused (e.g. 401/404).
    """
    with ApiClient.from_settings(settings.replace(workers=1)) as client:
        try:
            client.get_page(spec.path, 1, 1)
        except HttpStatusError as exc:
            if exc.status == 429 or exc.status >= 500:
                log.warning("pre-flight: %s", exc)
                return
            hint = ("set LAKEHOUSE_API_TOKEN" if exc.status in (401, 403)
                    else "is --api-url the MooVitamix API?")
            raise NotTheApiError(f"{redact(client.base_url)}: {exc}; {hint}") from None


def ingest_endpoint(lake: Lake, settings: Settings, spec: EndpointSpec | str,
                    date: dt.date, *, progress: bool = False,
                    allow_empty: bool = False) -> RunRecord:
    """Ingest one endpoint into its raw partition for ``date``; never raises.

    An endpoint that serves no records while its last snapshot (the newest
    partition up to ``date``) had some fails, unless ``allow_empty``: an
    outage serving empty lists must not replace a good day.

    The caller holds the ingest lock and appends the record to ``meta.runs``.

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
                                                       record.run_id, progress, allow_empty)
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
                    date: dt.date, run_id: str, progress: bool, allow_empty: bool = False
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
            if stream.total == 0 and not allow_empty:
                _refuse_empty(lake, spec, date)
            bar = click.progressbar(length=stream.first.page.pages, label=f"{spec.name:<15}",
                                    file=sys.stderr) if progress else nullcontext()
            with bar as shown:
                stream.on_page = shown.update if progress else None
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


class _EndpointStream:
    """Pages of one endpoint -> record batches of its raw schema, checked.

    A page that differs from the expected shape (a new field, a missing
    field, a changed type) is read again: a real schema change is there on
    every read, a corrupted answer is not. Only a difference seen on
    ``DRIFT_CONFIRM_READS`` reads in a row is taken as drift; later pages with
    the same difference are then accepted at once.
    """

    def __init__(self, client: ApiClient, spec: EndpointSpec, settings: Settings,
                 extras: list[pa.Field], run_id: str, date: dt.date, confirmed: set[tuple]):
        self.client = client
        self.spec = spec
        self.fields = list(spec.fields) + extras
        self.extras = extras
        # The source's key of each field: a field whose name collides with one of
        # ours is kept under another column name (see _extra_field).
        self.keys = [source_key(f) for f in self.fields]
        self.expected = frozenset(self.keys)
        self.contract = frozenset(spec.field_names)
        self.source_schema = pa.schema(self.fields)
        self._getter = operator.itemgetter(*self.keys)
        self._deferrable = len(self.fields) > 1 and all(plain(f) for f in self.fields)
        self.schema = pa.schema(self.fields + list(META_FIELDS))
        self.run_id = run_id
        self.date = date
        self.size = settings.page_size
        self.workers = settings.workers
        self.confirmed = confirmed
        self._lock = threading.Lock()
        self.records = 0
        self.pages = 0
        self.missing: Counter[str] = Counter()
        self.on_page: Any = None
        self.first = self.read(1)
        self.total = self.first.page.total

    def read(self, number: int) -> _Checked:
        """Page ``number``, checked; runs in the paginator's worker threads."""
        page = self.client.get_page(self.spec.path, number, self.size)
        streak, last = 0, None
        for reads in range(1, 2 * DRIFT_CONFIRM_READS + 1):
            checked, anomaly = self._check(page)
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
                return self._accept(checked, anomaly, number)
            log.info("%s page %d: %s; reading it again", self.spec.name, number,
                     _describe(anomaly))
            self.client.note_retry()
            page = self.client.get_page(self.spec.path, number, self.size)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check(self, page: Page) -> tuple[_Checked, _Anomaly | None]:
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
                checked.batch = self._batch(page, complete=not absent)
            except FieldTypeError as exc:
                type_error = exc
        if not (unknown or missing or type_error):
            return checked, None
        key = (tuple(sorted(unknown)), tuple(sorted(missing)),
               str(type_error).split(" (e.g.")[0] if type_error else None)
        return checked, _Anomaly(key, unknown, type_error)

    def _accept(self, checked: _Checked, anomaly: _Anomaly, number: int) -> _Checked:
        if anomaly.type_error is not None:
            raise FieldTypeError(f"{anomaly.type_error} on page {number}")
        if anomaly.new_fields:
            raise _Restart(f"new field(s) {', '.join(sorted(anomaly.new_fields))} on page "
                           f"{number}", anomaly.new_fields)
        return checked

    def _batch(self, page: Page, complete: bool) -> pa.RecordBatch:
        """The page's source columns; run metadata is added per batch, cheaper.

        Args:
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

    def _source_batch(self, parts: list[_Checked]) -> pa.RecordBatch:
        """The pages' source columns, in order; runs of deferred pages in one conversion."""
        out: list[pa.RecordBatch] = []
        run: list[_Checked] = []

        def convert() -> None:
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
                convert()
                out.append(part.batch)
        convert()
        return out[0] if len(out) == 1 else pa.concat_batches(out)

    def _with_meta(self, parts: list[_Checked]) -> pa.RecordBatch:
        batch = self._source_batch(parts)
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

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Record batches of about ``BATCH_ROWS`` rows, in page order.

        Raises:
            _Restart: The total changed, the records do not add up to it, or a
                new field appeared; the commit is then never made.
            FieldTypeError: A field changed type (confirmed by re-reads).
        """
        pending: list[_Checked] = []
        rows = 0
        later = fetch_in_order(self.read, range(2, self.first.page.pages + 1),
                               workers=self.workers)
        for checked in itertools.chain([self.first], later):
            page = checked.page
            if page.total != self.total:
                raise _Restart(f"total went from {self.total} to {page.total} "
                               f"by page {page.number}")
            self.missing.update(checked.missing)
            self.pages += 1
            self.records += len(page.items)
            if self.on_page:
                self.on_page(1)
            if checked.rows:
                pending.append(checked)
                rows += checked.rows
            if rows >= BATCH_ROWS:
                yield self._with_meta(pending)
                pending, rows = [], 0
        if self.records != self.total:
            raise _Restart(f"read {self.records} records but total is {self.total}")
        if pending:
            yield self._with_meta(pending)

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


def _check_date(date: dt.date | str | None) -> dt.date:
    if date is None:
        return utc_now().date()
    if isinstance(date, dt.datetime):
        return check_date(date.date(), "ingest date")
    if isinstance(date, dt.date):
        return check_date(date, "ingest date")
    try:
        return check_date(dt.date.fromisoformat(str(date)), "ingest date")
    except ValueError:
        raise ConfigError(f"bad ingest date {date!r}: use YYYY-MM-DD, e.g. 2026-11-26") \
            from None


def _check_settings(settings: Settings) -> None:
    check_base_url(settings.api_url)
    if not 1 <= settings.page_size <= MAX_PAGE_SIZE:
        raise ConfigError(f"page size {settings.page_size} is out of range: the API "
                          f"serves 1..{MAX_PAGE_SIZE} (LAKEHOUSE_PAGE_SIZE)")
    if settings.workers < 1:
        raise ConfigError(f"workers must be at least 1, got {settings.workers} "
                          "(--workers or LAKEHOUSE_WORKERS)")
    if settings.max_retries < 0:
        raise ConfigError(f"max_retries must be >= 0, got {settings.max_retries}")


def _one_line(exc: BaseException, prefix: str = "", secrets: Sequence[str | None] = ()) -> str:
    # Messages can quote the server (error bodies, field names, values): scrubbed.
    text = " ".join(scrub(str(exc), secrets).split()) or type(exc).__name__
    return prefix + (text if len(text) <= 400 else text[:397] + "...")

"""Checked pages -> raw record batches: the page checks, schema drift and batching.

What stands between the client's pages and the lake's writer, for one
endpoint (:class:`EndpointStream`): each page is checked against the
endpoint's fields (:class:`PageChecker`: missing fields, new fields, changed
types), a page that looks different is read again until the difference is
confirmed as drift rather than a corrupted answer (:class:`ReReadConfirmer`),
pages become record batches of about ``BATCH_ROWS`` rows with the run's
metadata (:class:`BatchBuilder`), and the records must add up to the
envelope's ``total``. A new field or a moving total raises :class:`Restart`
inside the stream, so the commit is never made; :mod:`lakehouse.ingest`
reads the endpoint again.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import operator
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from lakehouse.config import Settings
from lakehouse.source.client import ApiClient, Page
from lakehouse.source.endpoints import META_FIELDS, EndpointSpec
from lakehouse.source.errors import FieldTypeError
from lakehouse.source.paginator import fetch_in_order
from lakehouse.source.records import JSON_TEXT, column, exact, infer_field, plain, scan_keys

log = logging.getLogger("lakehouse.ingest")

# Field metadata: the source key of a field kept under another column name.
SOURCE_KEY = b"lakehouse.source_key"
# Rows per record batch handed to the writer: big enough to amortize the
# conversion, small enough to keep memory flat.
BATCH_ROWS = 5000
# A page that differs from the expected shape must differ the same way on this
# many reads in a row to count as schema drift rather than a corrupted answer.
DRIFT_CONFIRM_READS = 4


class Restart(Exception):
    """Raised inside the stream to abort the commit and read the endpoint again."""

    def __init__(self, reason: str, new_fields: dict[str, Any] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.new_fields = new_fields or {}


def extra_field(name: str, example: Any, table_schema: pa.Schema | None,
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


def taken_names(spec: EndpointSpec, extras: dict[str, pa.Field]) -> set[str]:
    return {n.lower() for n in [*spec.field_names, *(f.name for f in META_FIELDS),
                                *(f.name for f in extras.values())]}


def source_key(field: pa.Field) -> str:
    """The key in the source's items that ``field`` holds."""
    key = (field.metadata or {}).get(SOURCE_KEY)
    return key.decode() if key else field.name


@dataclass
class CheckedPage:
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
class Anomaly:
    """How a page differs from the expected shape; ``key`` identifies the kind."""

    key: tuple
    new_fields: dict[str, Any]
    type_error: FieldTypeError | None


class PageChecker:
    """Checks a page against the fields it should have, and converts it; no I/O.

    A well-formed page (every field present with its contract type) is only
    proven convertible, and converted later with other pages
    (:meth:`convert`); any other page is converted at once, the careful way,
    and what differs is returned as an :class:`Anomaly`.
    """

    def __init__(self, spec: EndpointSpec, extras: list[pa.Field]):
        self.fields = list(spec.fields) + extras
        # The source's key of each field: a field whose name collides with one of
        # ours is kept under another column name (see extra_field).
        self.keys = [source_key(f) for f in self.fields]
        self.expected = frozenset(self.keys)
        self.contract = frozenset(spec.field_names)
        self.source_schema = pa.schema(self.fields)
        self._getter = operator.itemgetter(*self.keys)
        self._deferrable = len(self.fields) > 1 and all(plain(f) for f in self.fields)

    def check(self, page: Page) -> tuple[CheckedPage, Anomaly | None]:
        """The page checked, and how it differs from the expected shape (None: it does not)."""
        absent, unknown = scan_keys(page.items, self.expected)
        # Only the contract's fields count as missing; a new field may come and go.
        missing = Counter({k: v for k, v in absent.items() if k in self.contract})
        checked = CheckedPage(page, None, missing)
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
        return checked, Anomaly(key, unknown, type_error)

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

    def convert(self, parts: list[CheckedPage]) -> pa.RecordBatch:
        """The pages' source columns, in order; runs of deferred pages in one conversion."""
        out: list[pa.RecordBatch] = []
        run: list[CheckedPage] = []

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


class ReReadConfirmer:
    """Reads pages; a page that looks different is read again until that is confirmed.

    A real schema change is there on every read, a corrupted answer is not.
    Only a difference seen on ``DRIFT_CONFIRM_READS`` reads in a row is taken
    as drift; later pages with the same difference (``confirmed``, shared by
    the endpoint's reads) are then accepted at once.
    """

    def __init__(self, client: ApiClient, spec: EndpointSpec, page_size: int,
                 checker: PageChecker, confirmed: set[tuple]):
        self.client = client
        self.spec = spec
        self.size = page_size
        self.checker = checker
        self.confirmed = confirmed
        self._lock = threading.Lock()

    def read(self, number: int) -> CheckedPage:
        """Page ``number``, checked; runs in the paginator's worker threads.

        Raises:
            Restart: Confirmed new fields: read the endpoint again with them.
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


def _accept(checked: CheckedPage, anomaly: Anomaly, number: int) -> CheckedPage:
    if anomaly.type_error is not None:
        raise anomaly.type_error.on_page(number)
    if anomaly.new_fields:
        raise Restart(f"new field(s) {', '.join(sorted(anomaly.new_fields))} on page "
                       f"{number}", anomaly.new_fields)
    return checked


class BatchBuilder:
    """Checked pages -> record batches of about ``BATCH_ROWS`` rows, with run metadata."""

    def __init__(self, checker: PageChecker, run_id: str, date: dt.date):
        self.checker = checker
        self.run_id = run_id
        self.date = date
        self.schema = pa.schema(checker.fields + list(META_FIELDS))
        self._pending: list[CheckedPage] = []
        self._rows = 0

    def add(self, checked: CheckedPage) -> pa.RecordBatch | None:
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

    def with_meta(self, parts: list[CheckedPage]) -> pa.RecordBatch:
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


class EndpointStream:
    """Pages of one endpoint -> record batches of its raw schema, checked and complete.

    Wires a :class:`PageChecker`, a :class:`ReReadConfirmer` and a
    :class:`BatchBuilder`, and checks completeness: the records read must
    add up to the envelope's ``total``, which must not change. Nothing is read
    until :meth:`open`.
    """

    def __init__(self, client: ApiClient, spec: EndpointSpec, settings: Settings,
                 extras: list[pa.Field], run_id: str, date: dt.date, confirmed: set[tuple]):
        self.spec = spec
        self.extras = extras
        self.checker = PageChecker(spec, extras)
        self.reader = ReReadConfirmer(client, spec, settings.page_size, self.checker,
                                       confirmed)
        self.builder = BatchBuilder(self.checker, run_id, date)
        self.schema = self.builder.schema
        self.workers = settings.workers
        self.records = 0
        self.pages = 0
        self.missing: Counter[str] = Counter()
        self.on_page: Any = None
        self.first: CheckedPage | None = None
        self.total: int | None = None

    def open(self) -> CheckedPage:
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
            Restart: The total changed, the records do not add up to it, or a
                new field appeared; the commit is then never made.
            FieldTypeError: A field changed type (confirmed by re-reads).
        """
        first = self.first or self.open()
        later = fetch_in_order(self.reader.read, range(2, first.page.pages + 1),
                               workers=self.workers)
        for checked in itertools.chain([first], later):
            page = checked.page
            if page.total != self.total:
                raise Restart(f"total went from {self.total} to {page.total} "
                               f"by page {page.number}")
            self.missing.update(checked.missing)
            self.pages += 1
            self.records += len(page.items)
            if self.on_page:
                self.on_page(1)
            if (batch := self.builder.add(checked)) is not None:
                yield batch
        if self.records != self.total:
            raise Restart(f"read {self.records} records but total is {self.total}")
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


def _describe(anomaly: Anomaly) -> str:
    new, missing, changed = anomaly.key
    parts = []
    if new:
        parts.append(f"new field(s) {', '.join(new)}")
    if missing:
        parts.append(f"missing field(s) {', '.join(missing)}")
    if changed:
        parts.append(changed)
    return "; ".join(parts)


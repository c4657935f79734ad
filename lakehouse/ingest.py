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
import logging
from collections.abc import Callable, Sequence

import pyarrow as pa

from lakehouse import history, names
from lakehouse.config import Settings, check_date
from lakehouse.context import ProgressFn, RunContext
from lakehouse.errors import ConfigError, LakehouseError, SourceError
from lakehouse.lake import Lake, WriteResult
from lakehouse.monitor.sinks import step_context
from lakehouse.runlog import RunRecord
from lakehouse.source.client import ApiClient, check_base_url, redact
from lakehouse.source.endpoints import ENDPOINTS, EndpointSpec
from lakehouse.source.errors import (
    CutShortError,
    EmptySourceError,
    FieldTypeError,
    HttpStatusError,
    NotTheApiError,
    SourceMovedError,
)
from lakehouse.source.scrub import scrub
from lakehouse.source.stream import EndpointStream, Restart, extra_field, taken_names
from lakehouse.steps import StepRun, run_step

log = logging.getLogger(__name__)

PIPELINE = names.INGEST
# Reads of an endpoint whose total keeps changing before giving up.
MOVED_TRIES = 3
# Restarts allowed because a new field first appeared after page 1.
NEW_FIELD_RESTARTS = 3

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
def _read_and_write(lake: Lake, client: ApiClient, settings: Settings, spec: EndpointSpec,
                    date: dt.date, run_id: str, on_pages: PagesFn | None,
                    allow_empty: bool = False
                    ) -> tuple[WriteResult, EndpointStream, int]:
    table_schema = lake.schema(spec.table) if lake.exists(spec.table) else None
    extras: dict[str, pa.Field] = {}
    confirmed: set[tuple] = set()
    moved = restarts = 0
    attempt = 0
    while True:
        attempt += 1
        try:
            stream = EndpointStream(client, spec, settings, list(extras.values()), run_id,
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
        except Restart as restart:
            if restart.new_fields:
                restarts += 1
                if restarts > NEW_FIELD_RESTARTS:
                    raise SourceError(f"new fields kept appearing mid-read ({restart.reason}); "
                                      "nothing written; rerun later") from None
                for n, v in sorted(restart.new_fields.items()):
                    extras[n] = extra_field(n, v, table_schema, taken_names(spec, extras))
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


def _pages_read(on_pages: PagesFn, stream: EndpointStream, _new: int) -> None:
    on_pages(stream.pages, stream.expected_pages)


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
    history.check_merge_memory(settings)  # before any page is read


def _one_line(exc: BaseException, prefix: str = "", secrets: Sequence[str | None] = ()) -> str:
    # Messages can quote the server (error bodies, field names, values): scrubbed.
    text = " ".join(scrub(str(exc), secrets).split()) or type(exc).__name__
    return prefix + (text if len(text) <= 400 else text[:397] + "...")

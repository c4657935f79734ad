"""The ``lakehouse`` command: one click group, one thin function per command.

Each command parses its options, calls one function of the package, and
prints a short summary. Expected failures (:class:`LakehouseError`) become
``Error: ...`` with exit code 1; usage errors keep click's exit code 2.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from lakehouse import __version__, names
from lakehouse.config import BOUNDS, CHOICES, ENGINES, MAX_K, Settings, check_date
from lakehouse.config import parse_date as config_parse_date
from lakehouse.errors import ConfigError, LakehouseError
from lakehouse.output import FORMATS, human_bytes, render


class OneLineUsageError(click.UsageError):
    """A usage error shown as one line (click shows usage, a hint, a blank and the error)."""

    def show(self, file: Any = None) -> None:
        where = f" (see '{self.ctx.command_path} --help')" if self.ctx else ""
        click.echo(f"Error: {self.format_message()}{where}", err=True, file=file)


class LakehouseGroup(click.Group):
    """A click group whose errors are one line: :class:`LakehouseError` becomes
    ``Error: ...`` (exit 1), a usage error ``Error: ... (see --help)`` (exit 2)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LakehouseError as exc:
            raise click.ClickException(_safe(ctx, str(exc))) from None
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.epilog:
            formatter.write_paragraph()
            for line in self.epilog.splitlines():
                formatter.write_text(line)


def _safe(ctx: click.Context, text: str) -> str:
    """An error line without secrets or control characters (it can quote the server)."""
    from lakehouse.source.scrub import scrub

    current = ctx.find_root().obj
    token = current.api_token if isinstance(current, Settings) else None
    return scrub(text, [token])


def _one_line(exc: click.UsageError) -> click.UsageError:
    if isinstance(exc, OneLineUsageError):
        return exc
    one = OneLineUsageError(exc.format_message(), exc.ctx)
    one.exit_code = exc.exit_code
    return one


def settings(ctx: click.Context | None = None) -> Settings:
    """The settings of the running command (group options applied)."""
    ctx = ctx or click.get_current_context()
    return ctx.find_root().obj


def with_settings(**option_to_field: str) -> Callable:
    """Apply the named command options to the settings, then drop them.

    Options the user did not give arrive as None and leave the environment's
    value (or the default) in place.
    """
    def decorator(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = click.get_current_context()
            root = ctx.find_root()
            changes = {field: kwargs.pop(opt) for opt, field in option_to_field.items()}
            root.obj = root.obj.replace(**changes)
            return fn(*args, **kwargs)
        return wrapper
    return decorator


def parse_date(_ctx: click.Context | None, _param: Any, value: str | None) -> dt.date | None:
    """Click callback: ``YYYY-MM-DD`` (or ``today``) -> date, with a usable message."""
    if value is None:
        return None
    try:
        return check_date(config_parse_date(value), "date")
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def setting_range(name: str) -> click.ParamType:
    """The click type of an option that sets ``name``: the setting's own range."""
    bounds = BOUNDS[name]
    if Settings.__dataclass_fields__[name].type == "int":
        return click.IntRange(bounds.low, bounds.high, min_open=bounds.low_open,
                              max_open=bounds.high_open)
    return click.FloatRange(bounds.low, bounds.high, min_open=bounds.low_open,
                            max_open=bounds.high_open)


# Bounds of the mock's data set: beyond them generation runs out of memory (--listens
# 10**11 asked for 743 GiB) or dates overflow (--days 10**8).
MOCK_MAX_ITEMS = 10_000_000
MOCK_MAX_LISTENS = 100_000_000
MOCK_MAX_DAYS = 3650

# Shared options, defined once.
date_option = click.option(
    "--date", "date", callback=parse_date, metavar="YYYY-MM-DD",
    help="Date to process (default: today, UTC).")
api_url_option = click.option(
    "--api-url", metavar="URL", help="Source API base URL [env LAKEHOUSE_API_URL].")
wait_option = click.option(
    "--wait/--no-wait", default=True, show_default=True,
    help="Wait for another run of this step on the lake (up to LAKEHOUSE_LOCK_TIMEOUT "
         "seconds, default 900), or exit at once.")
format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
    help="Output format.")


@click.group(cls=LakehouseGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Example:\n  lakehouse --lake ./lake tables")
@click.option("--lake", type=click.Path(), metavar="PATH",
              help="Lake root folder [env LAKEHOUSE_LAKE; default ./lake].")
@click.option("--env-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Settings from LAKEHOUSE_<SETTING>=value lines, under the environment "
                   "and options; mode 0600 (it holds secrets) [env LAKEHOUSE_ENV_FILE].")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="lakehouse")
@click.pass_context
def cli(ctx: click.Context, lake: str | None, env_file: str | None, verbose: int) -> None:
    """MooVitamix lakehouse: ingest, build, monitor and recommend on a local Delta lake."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        ctx.obj = Settings.load(env_file=env_file, lake=lake)
    except LakehouseError as exc:
        raise click.ClickException(str(exc)) from None


class TerminalProgress:
    """Renders the library's progress events on stderr.

    On a terminal: one bar per task (an endpoint, the training epochs), with
    the latest message beside it. Elsewhere (cron, a log file): each message
    as one line, so the log reads one line per endpoint or epoch.
    """

    def __init__(self, bars: bool):
        self.bars = bars
        self._open: dict[tuple[str, str], Any] = {}

    @classmethod
    def for_stderr(cls, progress: bool | None = None) -> TerminalProgress | None:
        """Bars on a terminal, lines otherwise (None); True: bars; False: nothing."""
        if progress is False:
            return None
        return cls(bars=sys.stderr.isatty() if progress is None else True)

    def __call__(self, event: Any) -> None:
        if not self.bars:
            if event.message:
                click.echo(event.message, err=True)
            return
        key = (event.step, event.task)
        bar = self._open.get(key)
        if bar is None:
            bar = click.progressbar(length=event.total or 0, label=f"{event.task:<15}",
                                    file=sys.stderr, item_show_func=lambda m: m)
            self._open[key] = bar.__enter__()
        if event.message:
            bar.current_item = event.message
        steps = event.done - bar.pos
        if steps:
            bar.update(steps)
        else:  # click draws only on a step; a message alone must show too
            bar.render_progress()
        if event.finished:
            bar.__exit__(None, None, None)
            del self._open[key]


def step_context(progress: bool | None = None):
    """The run context of a pipeline command: the settings, bars or lines on stderr."""
    from lakehouse.context import RunContext
    from lakehouse.monitor.sinks import SettingsSinks

    current = settings()
    return RunContext.open(current, alerts=SettingsSinks(current),
                           progress=TerminalProgress.for_stderr(progress))


def open_lake_for(write: bool = False):
    """The lake of the current settings; writers get it created and checked."""
    from lakehouse.lake import Lake

    lake = Lake(settings().lake, create=write)
    if write:
        lake.check_writable()
    return lake


@cli.command()
@format_option
def tables(fmt: str) -> None:
    """List the lake's tables with rows, size, version and last change.

    \b
    Example:
      lakehouse tables --format csv
    """
    lake = open_lake_for()
    infos = lake.tables()
    if not infos and fmt == "table":
        click.echo(f"No tables in {lake.root} yet; run 'lakehouse ingest' to start.")
        return
    rows = [(i.name, i.rows, i.files,
             human_bytes(i.size_bytes) if fmt == "table" else i.size_bytes,
             i.version, i.last_modified, ",".join(i.partition_by)) for i in infos]
    click.echo(render(["table", "rows", "files", "size", "version", "last_modified",
                       "partitioned_by"], rows, fmt))
    broken = [i for i in infos if i.problem]
    if broken:
        raise click.ClickException(f"{len(broken)} table(s) cannot be read: "
                                   + " | ".join(i.problem for i in broken))


@cli.command()
@click.argument("query")
@format_option
@click.option("--limit", type=click.IntRange(min=0), metavar="N",
              help="Print at most N rows (0: all) [default: 1000 for table, all for csv "
                   "and json]; what is left out is counted on stderr.")
def sql(query: str, fmt: str, limit: int | None) -> None:
    """Run one read-only DuckDB SQL QUERY on the lake; tables are named zone.name.

    SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE and EXPLAIN run; anything that could
    change a file (COPY, INSERT, CREATE, SET, ATTACH...) is refused. Export
    with --format csv or json, which print every row.

    \b
    Example:
      lakehouse sql "SELECT count(*) FROM standardized.listens"
      lakehouse sql "SELECT * FROM consumption.recommendations" --format csv > recs.csv
    """
    if limit is None:
        limit = 1000 if fmt == "table" else 0
    result = open_lake_for().query(query, limit or None)
    if not result.columns:
        return
    click.echo(render(result.columns, result.rows, fmt))
    if result.left_out:
        click.echo(f"{result.left_out} more row(s) not shown (--limit {limit}); "
                   "--limit 0 shows all", err=True)


# ---- mock-api (bundled source API) ----
@cli.command("mock-api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0: any free port).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=42, show_default=True,
              help="Seed of the data set and of the fault schedule.")
@click.option("--profile", type=click.Choice(["realistic", "reference", "opaque"]),
              default="realistic", show_default=True,
              help="realistic: learnable taste and documented defects; reference: the "
                   "reference server's distributions (1000 per endpoint by default); opaque: "
                   "realistic, but taste from hidden factors that metadata does not reveal.")
@click.option("--users", type=click.IntRange(1, MOCK_MAX_ITEMS),
              help="Users at the end of the window [default: 2000; reference: 1000].")
@click.option("--tracks", type=click.IntRange(1, MOCK_MAX_ITEMS),
              help="Tracks at the end of the window [default: 3000; reference: 1000].")
@click.option("--listens", type=click.IntRange(0, MOCK_MAX_LISTENS),
              help="Listen records (sessions) at the end of the window [default: 20000; "
                   "reference: one per user].")
@click.option("--start", callback=parse_date, metavar="YYYY-MM-DD",
              help="First simulated day [default: 2026-10-01].")
@click.option("--days", type=click.IntRange(1, MOCK_MAX_DAYS), default=30, show_default=True,
              help="Length of the simulated window.")
@click.option("--as-of", "as_of", callback=parse_date, metavar="YYYY-MM-DD",
              help="Serve the state at the end of this day [default: the window's last day].")
@click.option("--admin", is_flag=True,
              help="Enable POST /_mock/as-of {\"as_of\": \"YYYY-MM-DD\"} to switch the served "
                   "day without a restart (outside the contract).")
@click.option("--fault-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of requests that fail, deterministically by seed.")
@click.option("--faults", metavar="KINDS",
              help="Comma-separated fault kinds among 429,500,503,reset,slow,truncated,drift "
                   "[default: all].")
@click.option("--fail-endpoint", type=click.Choice(["users", "tracks", "listen_history"]),
              help="Answer every request to this endpoint with a 500.")
@click.option("--slow-seconds", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="Delay of a 'slow' fault; make it exceed the client's read timeout.")
@click.option("--data", "data", type=click.Path(), metavar="DIR",
              help="Serve this folder's users, tracks and listen_history files (JSON lines "
                   "or Parquet, see README) instead of generated data.")
def mock_api(host: str, port: int, seed: int, profile: str, users: int | None,
             tracks: int | None, listens: int | None, start: dt.date | None, days: int,
             as_of: dt.date | None, admin: bool, fault_rate: float, faults: str | None,
             fail_endpoint: str | None, slow_seconds: float, data: str | None) -> None:
    """Serve the bundled MooVitamix API (same contract as the client's) with seeded data.

    The data set is a pure function of the seed, the sizes, the profile and the as-of
    day; serving day D then D+1 shows growth and updates like a daily source.

    \b
    Example:
      lakehouse mock-api --port 8000 --seed 42
      lakehouse mock-api --users 100000 --tracks 50000 --listens 1000000 --admin
      lakehouse mock-api --fault-rate 0.1 --faults 429,503,reset --slow-seconds 2
      lakehouse mock-api --data ./my-dataset
    """
    from lakehouse.mockapi.data import MockConfig
    from lakehouse.mockapi.server import serve

    small = 1000 if profile == "reference" else None
    fields = {"users": users or small, "tracks": tracks or small, "listens": listens,
              "start": start, "as_of": as_of}
    config = MockConfig(
        seed=seed, profile=profile, days=days, fault_rate=fault_rate,
        faults=tuple(f.strip() for f in (faults or "").split(",") if f.strip()),
        fail_endpoint=fail_endpoint, slow_seconds=slow_seconds,
        **{k: v for k, v in fields.items() if v is not None})
    serve(config, host=host, port=port, admin=admin, announce=click.echo, data=data)


# ---- ingest ----
@cli.command()
@click.argument("endpoints", nargs=-1, metavar="[ENDPOINT]...")
@api_url_option
@date_option
@click.option("--workers", type=setting_range("workers"), metavar="N",
              help="Concurrent page requests [env LAKEHOUSE_WORKERS; default 8].")
@wait_option
@click.option("--progress/--no-progress", default=None,
              help="Progress bars (default: on a terminal; else one line per endpoint).")
@click.option("--accept-reset", is_flag=True,
              help="Merge snapshots into the history even if they look like a source "
                   "reset (too few keys of the previous one).")
@click.option("--allow-empty", is_flag=True,
              help="Accept an endpoint serving 0 records although its last snapshot had some "
                   "(by default that endpoint fails and keeps its data).")
@format_option
@with_settings(api_url="api_url", workers="workers")
def ingest(endpoints: tuple[str, ...], date: dt.date | None, wait: bool,
           progress: bool | None, accept_reset: bool, allow_empty: bool,
           fmt: str) -> None:
    """Ingest ENDPOINTs of the source API into the raw zone (all three by default).

    Each endpoint (users, tracks, listen_history) replaces its --date
    partition of raw.<endpoint> in one atomic commit, merges what changed into
    history.<endpoint>, drops raw dates older than LAKEHOUSE_RAW_RETENTION_DAYS
    once verified in the history, and appends a run record to meta.runs.
    A snapshot sharing too few keys with the previous one fails as "source
    reset?" and is not merged unless --accept-reset. Endpoints are
    independent; exit code 0 only if all succeeded.

    \b
    Example:
      lakehouse ingest --api-url http://127.0.0.1:8000 --date 2026-11-26
      lakehouse ingest tracks --no-wait
    """
    from lakehouse.ingest import ingest as run_ingest

    records = run_ingest(step_context(progress), list(endpoints) or None, date=date,
                         wait=wait, accept_reset=accept_reset, allow_empty=allow_empty)
    rows = [(r.target, r.status, r.records, r.pages, r.requests, r.retries,
             human_bytes(r.bytes) if fmt == "table" else r.bytes, r.table_version,
             r.duration_s, "; ".join(r.schema_changes) or None, r.error) for r in records]
    click.echo(render(["endpoint", "status", "records", "pages", "requests", "retries", "bytes",
                       "version", "seconds", "schema_changes", "error"], rows, fmt))
    if not all(r.ok for r in records):
        sys.exit(1)


# ---- build ----
@cli.command()
@date_option
@click.option("--kpi-days", type=setting_range("kpi_days"), metavar="N",
              help="Days of consumption.daily_kpis ending on --date "
                   "[env LAKEHOUSE_KPI_DAYS; default 90].")
@click.option("--engine", type=click.Choice(ENGINES),
              help="Where the views run [env LAKEHOUSE_ENGINE; default duckdb]; spark needs "
                   "pip install 'lakehouse[spark]'.")
@click.option("--spark-master", metavar="URL",
              help="Spark master for --engine spark [env LAKEHOUSE_SPARK_MASTER; default "
                   "local[*]]; SPARK_REMOTE=sc://host:15002 uses Spark Connect instead.")
@format_option
@with_settings(kpi_days="kpi_days", engine="engine", spark_master="spark_master")
@wait_option
def build(date: dt.date | None, wait: bool, fmt: str) -> None:
    """Build the standardized and consumption zones from the history up to --date.

    Every table is validated before anything is written; rows failing a
    row-level check go to quarantine.<table> with the reason. Building the
    same date twice gives the same tables, on DuckDB or on Spark. Appends
    one record per table to meta.runs.

    \b
    Example:
      lakehouse build --date 2026-11-26
      lakehouse build --engine spark --spark-master 'local[4]'
      lakehouse sql "SELECT _reason, count(*) FROM quarantine.listens GROUP BY 1"
    """
    from lakehouse.zones.build import build as run_build

    records = run_build(step_context(), date=date, wait=wait)
    rows = [(r.target, r.status, r.rows_in, r.records, r.quarantined, r.table_version,
             r.duration_s) for r in records]
    click.echo(render(["table", "status", "rows_in", "rows", "quarantined", "version",
                       "seconds"], rows, fmt))


# ---- history and maintenance ----
@cli.command("snapshot")
@click.argument("endpoint", type=click.Choice(["users", "tracks", "listen_history"]))
@click.option("--date", "date", callback=parse_date, metavar="YYYY-MM-DD", required=True,
              help="The ingest date whose snapshot to rebuild.")
@click.option("--out", type=click.Path(dir_okay=False), metavar="PATH",
              help="Write every record to PATH (.parquet, .csv or .jsonl) instead of printing.")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="Print at most this many records (0: all).")
@format_option
def snapshot_command(endpoint: str, date: dt.date, out: str | None, limit: int,
                     fmt: str) -> None:
    """Rebuild what ENDPOINT served on --date, exactly, from history.<endpoint>.

    Works for every merged date, also after its raw partition was dropped.

    \b
    Example:
      lakehouse snapshot users --date 2026-11-26 --out users-2026-11-26.parquet
      lakehouse snapshot listen_history --date 2026-11-20 --limit 5
    """
    from lakehouse.history import snapshot
    from lakehouse.output import write_records

    lake = open_lake_for()
    table = snapshot(lake, endpoint, date)
    if out:
        path = write_records(table, out, lake=lake)
        click.echo(f"{table.num_rows} {endpoint} records of {date} written to {path}")
        return
    shown = table if not limit else table.slice(0, limit)
    click.echo(render(shown.column_names, [tuple(r.values()) for r in shown.to_pylist()], fmt))
    if fmt == "table":
        click.echo(f"({shown.num_rows} of {table.num_rows} records)")


@cli.group("drop-date")
def drop_date() -> None:
    """Remove a date written by mistake: a score date, or an ingest date.

    Both go through the lock of the step that writes the date, delete in
    atomic Delta commits and add a drop_date record to meta.runs. Runs can
    no longer be for a date more than one day after today (UTC); these
    commands remove such a date written before.

    \b
    Example:
      lakehouse drop-date recommendations --date 2999-12-31
      lakehouse drop-date ingest --date 2026-12-24 users
    """


@drop_date.command("recommendations")
@click.option("--date", "date", callback=parse_date, metavar="YYYY-MM-DD", required=True,
              help="The score_date to delete.")
@wait_option
def drop_date_recommendations(date: dt.date, wait: bool) -> None:
    """Delete one score_date of consumption.recommendations (one commit).

    serve and status then use the newest remaining date.

    \b
    Example:
      lakehouse drop-date recommendations --date 2999-12-31
    """
    from lakehouse.drop import drop_score_date

    record = drop_score_date(step_context(False).replace(wait=wait), date)
    click.echo(f"Dropped score_date {date}: {record.records} rows deleted from "
               f"consumption.recommendations (version {record.table_version}).")


@drop_date.command("ingest")
@click.argument("endpoints", nargs=-1, metavar="[ENDPOINT]...",
                type=click.Choice(["users", "tracks", "listen_history"]))
@click.option("--date", "date", callback=parse_date, metavar="YYYY-MM-DD", required=True,
              help="The ingest_date to remove.")
@wait_option
def drop_date_ingest(endpoints: tuple[str, ...], date: dt.date, wait: bool) -> None:
    """Remove ingest date --date of ENDPOINTs (default: all that have it) from raw and history.

    The raw partition is deleted, the history's events of that date removed,
    and every later merged date merged again from its raw snapshot, as if
    the date had never been ingested; the snapshots of the other dates stay
    exactly what was served. Refused, with nothing deleted, when a later
    date's raw snapshot was already dropped by raw retention
    (LAKEHOUSE_RAW_RETENTION_DAYS): the history after it could not be
    rebuilt. Run 'lakehouse build' afterwards: the zones keep what they were
    built from until then.

    \b
    Example:
      lakehouse drop-date ingest --date 2026-12-24
      lakehouse drop-date ingest --date 2026-12-24 users tracks
    """
    from lakehouse.drop import drop_ingest_date

    records = drop_ingest_date(step_context(False).replace(wait=wait), date,
                               list(endpoints) or None)
    for r in records:
        again = r.details.get("history_replayed") or []
        click.echo(f"Dropped ingest date {date} of {r.target.split('.', 1)[1]}: {r.records} "
                   f"raw rows deleted, {len(again)} later date(s) merged again.")
    click.echo("Run 'lakehouse build' to rebuild the zones without it.")


@cli.command("maintain")
@click.argument("tables", nargs=-1, metavar="[TABLE]...")
@click.option("--time-travel-days", type=setting_range("time_travel_days"), metavar="N",
              help="Keep every version of the last N days readable "
                   "[env LAKEHOUSE_TIME_TRAVEL_DAYS; default 30].")
@wait_option
@format_option
@with_settings(time_travel_days="time_travel_days")
def maintain_command(tables: tuple[str, ...], wait: bool, fmt: str) -> None:
    """Compact small files, checkpoint, and vacuum files older than the time travel.

    Every TABLE (zone.name; default all). The daily job runs it weekly.

    \b
    Example:
      lakehouse maintain
      lakehouse maintain raw.listen_history --time-travel-days 7
    """
    from lakehouse.maintain import maintain

    report = maintain(step_context(False), list(tables) or None, wait=wait)
    size = (lambda n: human_bytes(n)) if fmt == "table" else (lambda n: n)
    rows = [(t.name, t.files_before, t.files_after, size(t.bytes_before), size(t.bytes_after),
             t.compacted, t.vacuumed, t.version) for t in report.tables]
    if fmt == "table":
        rows.append(("total", report.files_before, report.files_after,
                     size(report.bytes_before), size(report.bytes_after),
                     sum(t.compacted for t in report.tables),
                     sum(t.vacuumed for t in report.tables), None))
    click.echo(render(["table", "files_before", "files_after", "bytes_before", "bytes_after",
                       "compacted", "vacuumed", "version"], rows, fmt))
    if report.scratch_bytes:
        click.echo(f"removed {human_bytes(report.scratch_bytes)} of scratch files killed "
                   "builds left in .tmp", err=True)


# ---- train, recommend, models ----
def parse_budget(_ctx: click.Context | None, _param: Any, value: str | None) -> float | None:
    """Click callback: ``90``, ``90s``, ``5m`` or ``1h`` -> seconds."""
    if value is None:
        return None
    text = value.strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1:])
    number = text[:-1] if scale else text
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise click.BadParameter(f"{value!r} is not a duration; use e.g. 90s, 5m or 1h")
    return seconds


@cli.command("train")
@date_option
@click.option("--promote", type=click.Choice(["auto", "never", "force"]), default="auto",
              show_default=True,
              help="auto: promote if the bootstrap interval of (challenger - champion "
                   "retrained on the same split) clears the margin; never; force.")
@click.option("--budget", callback=parse_budget, metavar="DURATION",
              help="Time for the hyperparameter search, e.g. 90s, 5m (each family's "
                   "first trial runs even past it; the refit and the gate come after) "
                   "[env LAKEHOUSE_TRAIN_BUDGET in seconds; default 30].")
@click.option("--trials", type=setting_range("train_trials"), metavar="N",
              help="At most N trials per family (0: the budget decides) "
                   "[env LAKEHOUSE_TRAIN_TRIALS].")
@click.option("--epochs", type=setting_range("epochs"), metavar="N",
              help="LightFM's maximum epochs (early stopping picks fewer) "
                   "[env LAKEHOUSE_EPOCHS; default 30].")
@click.option("--components", type=setting_range("components"), metavar="N",
              help="LightFM's first-trial embedding size [env LAKEHOUSE_COMPONENTS; default 64].")
@click.option("--learning-rate", type=setting_range("learning_rate"), metavar="F",
              help="LightFM's first-trial learning rate [env LAKEHOUSE_LEARNING_RATE; "
                   "default 0.05].")
@click.option("--loss", type=click.Choice(CHOICES["loss"]),
              help="LightFM loss [env LAKEHOUSE_LOSS; default warp].")
@click.option("--seed", type=setting_range("seed"),
              help="Random seed [env LAKEHOUSE_SEED; default 42].")
@click.option("--holdout-share", type=setting_range("holdout_share"),
              metavar="F", help="Share of the most recent listens held out "
                                "[env LAKEHOUSE_HOLDOUT_SHARE; default 0.2].")
@click.option("--promote-margin", type=setting_range("promote_margin"), metavar="F",
              help="Lower bound of (challenger - champion) needed, in the primary metric "
                   "[env LAKEHOUSE_PROMOTE_MARGIN; default 0].")
@with_settings(epochs="epochs", components="components", learning_rate="learning_rate",
               loss="loss", seed="seed", holdout_share="holdout_share",
               promote_margin="promote_margin", budget="train_budget", trials="train_trials")
@wait_option
def train_command(date: dt.date | None, wait: bool, promote: str) -> None:
    """Select, refit and register a recommender; promote it if it beats the champion.

    The most recent listens are held out. Popularity, implicit's ALS and
    LightFM (identity only, then with user, track or both metadata) are tuned
    within the budget and compared on the same holdout users; a model must
    beat popularity (and metadata the same model without it) by a paired
    bootstrap. The winner is refit on every listen and stored in
    <lake>/models; the champion's configuration is retrained on the same
    split for a fair comparison. The first training always leaves a
    champion (popularity if nothing beats it).

    \b
    Example:
      lakehouse train
      lakehouse train --budget 5m
      lakehouse train --trials 3 --promote never
    """
    from lakehouse.recsys.train import train

    ctx = step_context()
    result = train(ctx, promote=promote, date=date, wait=wait)
    click.echo(result.summary())
    if result.previous_champion:
        from lakehouse.monitor.outcomes import champion_lift_line

        line = champion_lift_line(ctx.lake(), ctx.settings, result.previous_champion)
        click.echo(f"in production: {line}")


@cli.command("recommend")
@date_option
@click.option("--k", type=setting_range("k"), metavar="N",
              help=f"Tracks per user, at most {MAX_K} and the catalogue's size "
                   "[env LAKEHOUSE_K; default 10].")
@wait_option
def recommend_command(date: dt.date | None, wait: bool, k: int | None) -> None:
    """Score every user with the champion and write consumption.recommendations.

    Each user gets their k best tracks they have not listened to yet (users
    and tracks new since training are scored through their features). The
    --date partition (score_date) is replaced in one commit.

    \b
    Example:
      lakehouse recommend --k 10 --date 2026-11-26
      lakehouse sql "SELECT * FROM consumption.recommendations WHERE user_id = 42"
    """
    from lakehouse.recsys.score import recommend

    record = recommend(step_context(), k=k, date=date, wait=wait)
    d = record.details
    click.echo(f"Wrote {record.records} recommendations for {d['users']} users "
               f"({d['cold_start_users']} cold start, k={d['k']}; routes "
               + ", ".join(f"{r} {n}" for r, n in d.get("routes", {}).items() if n)
               + ") with model "
               f"{d['model_version']} to consumption.recommendations "
               f"(score_date {record.run_date}, version {record.table_version}) "
               f"in {record.duration_s:.1f}s.")


@cli.command("outcomes")
@click.option("--full", is_flag=True, default=False,
              help="Recompute every score date, not only the open, new or re-scored ones "
                   "(after past listens changed, e.g. a re-ingested day).")
@click.option("--horizon-days", type=setting_range("online_horizon_days"), metavar="N",
              help="Ingest days after a score date whose new listens judge its lists "
                   "[env LAKEHOUSE_ONLINE_HORIZON_DAYS; default 7].")
@wait_option
@with_settings(horizon_days="online_horizon_days")
def outcomes_command(full: bool, wait: bool) -> None:
    """Measure the served lists against what users played next: recommendation_outcomes.

    For each score date, the users who started a track of that day's catalogue
    on a later ingest date (within the horizon) are judged: the served top-k's
    precision, recall, hit rate and nDCG against popularity's top-k as of that
    date. The daily job runs this after recommend; 'lakehouse kpis' shows it.

    \b
    Example:
      lakehouse outcomes
      lakehouse sql "SELECT score_date, lift, complete FROM consumption.recommendation_outcomes"
    """
    from lakehouse.monitor.outcomes_step import refresh_outcomes

    record = refresh_outcomes(step_context(), full=full, wait=wait)
    d = record.details
    if not d["computed"]:
        click.echo(f"No score date to measure in {names.CONS_RECOMMENDATION_OUTCOMES} "
                   f"({record.records} rows, last ingest date {d['observed_through']}).")
        return
    written = f"version {record.table_version}" if d["written"] else "unchanged"
    click.echo(f"Measured {len(d['computed'])} score date(s) ({d['computed'][0]} .. "
               f"{d['computed'][-1]}) through ingest date {d['observed_through']}, horizon "
               f"{d['horizon_days']} days: {record.records} rows in "
               f"{names.CONS_RECOMMENDATION_OUTCOMES} ({written}).")


@cli.group("models")
def models() -> None:
    """List, inspect, promote and roll back the registered models.

    \b
    Example:
      lakehouse models list
      lakehouse models rollback
    """


def _registry():
    from lakehouse.recsys.registry import Registry

    return Registry(settings().models_dir)


@models.command("list")
@format_option
def models_list(fmt: str) -> None:
    """List model versions, oldest first, with their aliases and metrics.

    \b
    Example:
      lakehouse models list --format csv
    """
    from lakehouse.recsys.registry import UnreadableVersion

    registry = _registry()
    found = registry.scan()
    if not found and fmt == "table":
        click.echo(f"No models in {registry.root} yet; run 'lakehouse train'.")
        return
    aliases = {v: a for a in (names.CHAMPION, names.CHALLENGER) if (v := registry.alias(a))}
    rows = []
    for i in found:
        if isinstance(i, UnreadableVersion):  # listed, marked; the others still show
            rows.append((i.version, aliases.get(i.version), "UNREADABLE", *[None] * 8))
            continue
        model, baseline = i.metrics.get("model") or {}, i.metrics.get("baseline") or {}
        rows.append((i.version, aliases.get(i.version), i.params.get("candidate", "lightfm+both"),
                     i.created_at, model.get("precision_at_10"),
                     baseline.get("precision_at_10"), model.get("ndcg_at_10"), model.get("auc"),
                     model.get("coverage"), i.params.get("epochs"), i.params.get("components")))
    click.echo(render(["version", "alias", "model", "created_at", "p@10", "popularity_p@10",
                       "ndcg@10",
                       "auc", "coverage", "epochs", "components"], rows, fmt))
    broken = [i for i in found if isinstance(i, UnreadableVersion)]
    if broken:
        raise click.ClickException(f"{len(broken)} model version(s) cannot be read: "
                                   + " | ".join(i.problem for i in broken))


@models.command("show")
@click.argument("version")
def models_show(version: str) -> None:
    """Show everything stored about VERSION (or 'champion'/'challenger') as JSON.

    "metrics" holds its holdout metrics; "online" the outcome of each score
    date it served (consumption.recommendation_outcomes).

    \b
    Example:
      lakehouse models show champion
    """
    import dataclasses
    import json

    from lakehouse.lake import Lake
    from lakehouse.monitor.outcomes import online_metrics

    info = _registry().get(version)
    # Every trial is in model.json; here it would bury the rest.
    data = {k: v for k, v in dataclasses.asdict(info).items() if k not in ("history", "trials")}
    root = settings().lake
    lake = Lake(root, create=False) if root.is_dir() else None
    # Beside the holdout metrics: how the lists it served did in production.
    online = online_metrics(lake, info.version) if lake is not None else []
    data = {**{k: v for k, v in data.items() if k != "metrics"},
            "metrics": data.get("metrics"), "online": online}
    click.echo(json.dumps(data, indent=2, default=str))


@models.command("promote")
@click.argument("version")
@click.option("--reason", default="manual promotion", show_default=True,
              help="Why, kept in the promotion log.")
def models_promote(version: str, reason: str) -> None:
    """Make VERSION the champion (logged in the promotion log).

    \b
    Example:
      lakehouse models promote v0003 --reason "validated offline"
    """
    from lakehouse.recsys.tracking import track_aliases

    entry = _registry().promote(version, reason)
    track_aliases(settings())
    click.echo(f"Champion is now {entry['to']} (was {entry['from'] or 'none'}).")


@models.command("rollback")
@click.option("--reason", default="manual rollback", show_default=True,
              help="Why, kept in the promotion log.")
def models_rollback(reason: str) -> None:
    """Make the previous champion the champion again.

    \b
    Example:
      lakehouse models rollback --reason "complaints about v0004"
    """
    from lakehouse.recsys.tracking import track_aliases

    entry = _registry().rollback(reason)
    track_aliases(settings())
    click.echo(f"Champion is now {entry['to']} (rolled back from {entry['from']}).")


# ---- status, kpis, report, alert ----
@cli.command("status")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@click.option("--alert", "send", is_flag=True,
              help="Also send an alert for each problem (once per alert window).")
def status_command(fmt: str, send: bool) -> None:
    """Show the pipeline's health; exit code 0 healthy, 1 unhealthy.

    For each endpoint its last ingest and how old its last success is, the
    last build, training and scoring runs, every table's rows, size and
    version, the champion model against the popularity baseline, and the
    problems found: a failed last run, data older than --stale-hours
    (LAKEHOUSE_STALE_HOURS, default 26), a champion whose scoring did not run.

    \b
    Example:
      lakehouse status
      lakehouse status --alert --format json > status.json || echo unhealthy
    """
    import dataclasses
    import json

    from lakehouse.monitor.alerts import send_alerts
    from lakehouse.monitor.status import status, status_sections

    current = settings()
    st = status(current)
    if fmt == "json":
        click.echo(json.dumps(dataclasses.asdict(st), indent=2, default=lambda v: (
            v.isoformat() if isinstance(v, dt.date | dt.datetime) else str(v))))
    else:
        verdict = "HEALTHY" if st.healthy else "UNHEALTHY"
        click.echo(f"Lake {st.lake}: {verdict} ({len(st.errors)} error(s), "
                   f"{len(st.problems) - len(st.errors)} warning(s)); "
                   f"{human_bytes(st.lake_bytes)} on disk; last recommendations: "
                   f"{st.last_recommendations or 'none'}")
        for title, columns, rows in status_sections(st):
            if rows:
                click.echo(f"\n{title}\n{render(columns, rows)}")
    if send:
        sent = [a for a in send_alerts(current, st.alerts()) if not a.suppressed]
        click.echo(f"{len(sent)} alert(s) sent.", err=True)
    if not st.healthy:
        sys.exit(1)


@cli.command("kpis")
@click.option("--since", callback=parse_date, metavar="YYYY-MM-DD",
              help="Only dates on or after this one.")
@click.option("--section", "sections", multiple=True,
              type=click.Choice(["users", "daily", "monthly", "tables", "lake", "outcomes"]),
              help="Only these sections (repeatable; default: all). csv needs exactly one.")
@format_option
def kpis_command(since: dt.date | None, sections: tuple[str, ...], fmt: str) -> None:
    """Print user and pipeline KPIs.

    Sections: users (total and new users and tracks, listens, active
    listeners, average listen-history size per day); daily and monthly
    (runs succeeded and failed, average and p95 duration, records, CPU
    seconds and estimated cost per pipeline); tables and lake (size over
    time); outcomes (per score date: the served top-k's precision against
    popularity's for the users who started new tracks afterwards, the lift,
    and a note while a date is open or too few users had new listens). json
    prints one object keyed by section.

    \b
    Example:
      lakehouse kpis --since 2026-11-01
      lakehouse kpis --section daily --format csv > runs.csv
    """
    import json

    from lakehouse.monitor.kpis import KPI_SECTIONS, frame_rows, kpi_tables

    if fmt == "csv" and len(sections) != 1:
        raise click.UsageError("--format csv needs exactly one --section")
    tables = kpi_tables(settings(), since, list(sections) or None)
    if fmt == "json":
        out = {name: json.loads(render(list(f.columns), frame_rows(f), "json"))
               for name, f in tables.items()}
        click.echo(json.dumps(out, indent=2))
        return
    for name, frame in tables.items():
        text = render(list(frame.columns), frame_rows(frame), fmt)
        if fmt == "csv":
            click.echo(text)
        else:
            click.echo(f"{KPI_SECTIONS[name]}\n{text if len(frame) else '(none yet)'}\n")


@cli.command("report")
@click.option("--out", type=click.Path(), metavar="PATH",
              help="File (or folder) to write [default: <lake>/reports/report-<date>.html].")
def report_command(out: str | None) -> None:
    """Write the HTML monitoring report: one file, charts inline, opens offline.

    Health, user KPIs, pipeline KPIs (runs, durations, records, cost, table
    and lake size over time), recent failures, quarantine by reason, model
    metrics per version against the popularity baseline, recent alerts.

    \b
    Example:
      lakehouse report --out /tmp/lakehouse-report.html
    """
    from pathlib import Path

    from lakehouse.monitor.report import write_report

    path = write_report(settings(), Path(out) if out else None)
    click.echo(f"Report written to {path}")


@cli.command("alert")
@click.option("--test", "test", is_flag=True,
              help="Send a test alert to every configured sink (no de-duplication).")
@click.option("--message", metavar="TEXT",
              help="Send a job_failed alert with this text (what scripts/daily.sh does).")
@click.option("--job", default="daily", show_default=True, metavar="NAME",
              help="With --message: the job the alert is about (its de-duplication key).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="Without --test/--message: how many recent alerts to list.")
@format_option
def alert_command(test: bool, message: str | None, job: str, limit: int, fmt: str) -> None:
    """List recent alerts, send a test alert, or send a job failure alert.

    Sinks come from the environment: LAKEHOUSE_ALERT_WEBHOOK (a Slack or
    Teams incoming webhook URL; a secret, never printed) and/or
    LAKEHOUSE_ALERT_COMMAND (receives the alert JSON on stdin). The same
    alert is not repeated within LAKEHOUSE_ALERT_WINDOW_MINUTES.

    \b
    Example:
      LAKEHOUSE_ALERT_COMMAND="tee -a /tmp/alerts.jsonl" lakehouse alert --test
      lakehouse alert --limit 5
    """
    from lakehouse.monitor.alerts import job_failed_alert, read_alerts, send_test_alert

    current = settings()
    if test or message:
        sent = send_test_alert(current) if test else job_failed_alert(current, job, message)
        if sent.suppressed:
            click.echo(f"Not sent: {sent.key} was already sent within "
                       f"{current.alert_window_minutes:g} min.")
            return
        outcome = ", ".join(f"{sink}: {res}" for sink, res in sent.delivered.items())
        click.echo(f"Alert {sent.key}: {outcome or 'no sink configured (logged only)'}")
        if any(res != "ok" for res in sent.delivered.values()):
            sys.exit(1)
        return
    rows = [(a["created_at"], a["severity"], a["kind"], a["subject"],
             "suppressed" if a["suppressed"] else "sent", a["message"])
            for a in read_alerts(current, limit)]
    click.echo(render(["created_at", "severity", "kind", "subject", "delivery", "message"],
                      rows, fmt))


# ---- daily ----
@cli.command("daily")
@api_url_option
@date_option
@click.option("--retrain/--no-retrain", default=None,
              help="Train today, or not [default: on LAKEHOUSE_RETRAIN_WEEKDAY (0 = Monday, "
                   "-1: never by weekday) or while there is no champion].")
@wait_option
@click.option("--progress/--no-progress", default=None,
              help="Progress bars (default: on a terminal; else one line per step).")
@with_settings(api_url="api_url")
def daily_command(date: dt.date | None, retrain: bool | None, wait: bool,
                  progress: bool | None) -> None:
    """Run the scheduled daily job: ingest, build, train (when due), recommend, outcomes, report,
    status.

    One failing endpoint does not stop the others; the build needs at least
    one endpoint ingested, train and recommend a successful build. Each step
    records and alerts as its own command does, and a failed job sends one
    job_failed alert. Exit code: 0 all well, else the sum of 1 (unhealthy),
    4 (ingest), 8 (build), 16 (train), 32 (recommend), 64 (report), 128 (maintain),
    256 (outcomes).

    \b
    Example:
      lakehouse daily --api-url http://127.0.0.1:8000
      lakehouse daily --date 2026-11-26 --no-retrain || echo "exit $?"
    """
    from lakehouse.daily import daily

    ctx = step_context(progress).replace(wait=wait)
    result = daily(ctx, date=date, retrain=retrain)
    rows = [(s.name, s.status, s.detail) for s in result.steps]
    verdict = "done" if not result.exit_code else f"FAILED (exit {result.exit_code})"
    click.echo(f"Daily job for {result.date} on {ctx.settings.lake}: {verdict}")
    click.echo(render(["step", "status", "detail"], rows))
    if result.exit_code:
        sys.exit(result.exit_code)


# ---- serve ----
@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; anything but loopback needs LAKEHOUSE_SERVE_TOKEN.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="TCP port (0: any free port).")
@click.option("--reload-seconds", type=setting_range("serve_reload_seconds"), metavar="S",
              help="How often to look for a new recommendations version "
                   "[env LAKEHOUSE_SERVE_RELOAD_SECONDS; default 5].")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="Log one line per request.")
@with_settings(reload_seconds="serve_reload_seconds")
def serve_command(host: str, port: int, access_log: bool) -> None:
    """Serve the champion's recommendations over HTTP until Ctrl-C.

    GET /recommendations/{user_id}?k=10 answers from the newest score_date of
    consumption.recommendations (?date= picks another); a user it does not
    know gets the champion's cold-start tracks (?favorite_genre=Rock) or
    popular ones. GET /health says what is served and whether it is stale.
    A new table version is served without a restart. Binding anything but
    127.0.0.1 needs LAKEHOUSE_SERVE_TOKEN, sent by clients as a bearer token.

    \b
    Example:
      lakehouse serve --port 8080
      curl -s 'http://127.0.0.1:8080/recommendations/42?k=5'
      LAKEHOUSE_SERVE_TOKEN=s3cret lakehouse serve --host 0.0.0.0
    """
    from lakehouse.serve.server import serve

    if logging.getLogger().level > logging.INFO:
        logging.getLogger("lakehouse.serve").setLevel(logging.INFO)  # reloads are news
    serve(settings(), host=host, port=port, access_log=access_log, announce=click.echo)


# ---- demo ----
@cli.command()
@click.option("--days", type=click.IntRange(3, 30), default=5, show_default=True,
              help="Simulated days to run.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=42, show_default=True,
              help="Mock API seed.")
@click.option("--budget", callback=parse_budget, metavar="DURATION", default="5s",
              show_default=True,
              help="Hyperparameter search time per training: the demo's own, short "
                   "(lakehouse train's default is 30s).")
def demo(days: int, seed: int, budget: float) -> None:
    """Run the whole daily job on the bundled mock API over several simulated days.

    Starts the mock API on a free loopback port, ingests, builds, trains and
    recommends day by day, writes the HTML report and stops the API. The lake
    is emptied first if the demo created it; a lake holding other data is
    refused.

    \b
    Example:
      lakehouse --lake demo-lake demo --days 5
    """
    from lakehouse.demo import run_demo

    result = run_demo(settings(), days=days, seed=seed, train_budget=budget, echo=click.echo)
    if result.candidates:
        click.echo("Model search (last training): each family's trials, time and "
                   "precision@10 on the holdout's test users")
        click.echo("\n".join(result.candidates_lines()))
    if result.precision:
        model, popularity = result.precision
        click.echo(f"Champion model: {result.champion}: precision@10 {model:.3f} on the holdout, "
                   f"popularity baseline {popularity:.3f} ({model / popularity:.1f}x)")
    else:
        click.echo("Champion model: none")
    click.echo(f"Report: {result.report}")
    # From `make demo` the command is .venv/bin/lakehouse, not on the PATH: say so.
    me = os.path.relpath(sys.argv[0])
    me = me if os.path.basename(me) == "lakehouse" and not me.startswith("..") else "lakehouse"
    click.echo(f"Done in {result.seconds:.0f} s. Next: {me} --lake {result.lake} status | "
               "tables | sql \"SELECT ...\"; make lab")
    _demo_next_steps(result, me)
    if result.failed_steps:
        raise click.ClickException(f"{len(result.failed_steps)} step(s) failed, first: "
                                   f"{result.failed_steps[0]}")


def _demo_next_steps(result, me: str) -> None:
    """How to open the report, serve the recommendations and query one user."""
    from lakehouse.lake import Lake
    from lakehouse.monitor.report import LATEST
    from lakehouse.serve.store import a_served_user

    if result.report is not None:
        latest = (result.report.parent / LATEST).resolve()
        click.echo(f"Open the report in a browser: {latest.as_uri()}")
    user = a_served_user(Lake(result.lake, create=False))
    if user is not None:
        click.echo(f"Serve the recommendations: {me} --lake {result.lake} serve --port 8080 "
                   "(or: make serve), then, from another terminal, query one user:\n"
                   f"  curl -s 'http://127.0.0.1:8080/recommendations/{user}?k=5'")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="lakehouse")

"""The ``lakehouse`` command: one click group, one thin function per command.

Each command parses its options, calls one function of the package, and
prints a short summary. Expected failures (:class:`LakehouseError`) become
``Error: ...`` with exit code 1; usage errors keep click's exit code 2.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from lakehouse import __version__
from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.output import FORMATS, human_bytes, render


class LakehouseGroup(click.Group):
    """A click group that turns :class:`LakehouseError` into a one-line error."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LakehouseError as exc:
            raise click.ClickException(str(exc)) from None

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.epilog:
            formatter.write_paragraph()
            for line in self.epilog.splitlines():
                formatter.write_text(line)


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
    """Click callback: ``YYYY-MM-DD`` -> date, with a usable message."""
    if value is None:
        return None
    if value == "today":
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD, e.g. 2026-11-26") \
            from None


# Shared options, defined once.
date_option = click.option(
    "--date", "date", callback=parse_date, metavar="YYYY-MM-DD",
    help="Date to process (default: today, UTC).")
api_url_option = click.option(
    "--api-url", metavar="URL", help="Source API base URL [env LAKEHOUSE_API_URL].")
format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
    help="Output format.")


@click.group(cls=LakehouseGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Example:\n  lakehouse --lake ./lake tables")
@click.option("--lake", type=click.Path(), metavar="PATH",
              help="Lake root folder [env LAKEHOUSE_LAKE; default ./lake].")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="lakehouse")
@click.pass_context
def cli(ctx: click.Context, lake: str | None, verbose: int) -> None:
    """MooVitamix lakehouse: ingest, build, monitor and recommend on a local Delta lake."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        ctx.obj = Settings.load(lake=lake)
    except LakehouseError as exc:
        raise click.ClickException(str(exc)) from None


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


@cli.command()
@click.argument("query")
@format_option
@click.option("--limit", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Print at most this many rows (0: all).")
def sql(query: str, fmt: str, limit: int) -> None:
    """Run a DuckDB SQL QUERY on the lake; tables are named zone.name.

    Example:
      lakehouse sql "SELECT count(*) FROM standardized.listens"
    """
    rel = open_lake_for().sql(query)
    if rel is None:
        return
    columns = rel.columns
    rows = rel.fetchmany(limit) if limit else rel.fetchall()
    click.echo(render(columns, rows, fmt))


# ---- mock-api (bundled source API) ----

# ---- ingest ----
@cli.command()
@click.argument("endpoints", nargs=-1, metavar="[ENDPOINT]...")
@api_url_option
@date_option
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="Concurrent page requests [env LAKEHOUSE_WORKERS; default 8].")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for another ingest of this lake, or exit at once.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars (default: on a terminal; else one line per endpoint).")
@format_option
@with_settings(api_url="api_url", workers="workers")
def ingest(endpoints: tuple[str, ...], date: dt.date | None, wait: bool,
           progress: bool | None, fmt: str) -> None:
    """Ingest ENDPOINTs of the source API into the raw zone (all three by default).

    Each endpoint (users, tracks, listen_history) replaces its --date
    partition of raw.<endpoint> in one atomic commit and appends a run record
    to meta.runs. Endpoints are independent; exit code 0 only if all succeeded.

    Example:
      lakehouse ingest --api-url http://127.0.0.1:8000 --date 2026-11-26
      lakehouse ingest tracks --no-wait
    """
    from lakehouse.ingest import ingest as run_ingest

    records = run_ingest(settings(), list(endpoints) or None, date=date, wait=wait,
                         progress=progress)
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
@click.option("--kpi-days", type=click.IntRange(min=1), metavar="N",
              help="Days of consumption.daily_kpis ending on --date "
                   "[env LAKEHOUSE_KPI_DAYS; default 90].")
@format_option
@with_settings(kpi_days="kpi_days")
def build(date: dt.date | None, fmt: str) -> None:
    """Build the standardized and consumption zones from raw snapshots up to --date.

    Every table is validated before anything is written; rows failing a
    row-level check go to quarantine.<table> with the reason. Building the
    same date twice gives the same tables. Appends one record per table to
    meta.runs.

    Example:
      lakehouse build --date 2026-11-26
      lakehouse sql "SELECT _reason, count(*) FROM quarantine.listens GROUP BY 1"
    """
    from lakehouse.zones.build import build as run_build

    records = run_build(settings(), date=date)
    rows = [(r.target, r.status, r.rows_in, r.records, r.quarantined, r.table_version,
             r.duration_s) for r in records]
    click.echo(render(["table", "status", "rows_in", "rows", "quarantined", "version",
                       "seconds"], rows, fmt))


# ---- train, recommend, models ----

# ---- status, kpis, report, alert ----

# ---- demo ----
@cli.command()
@click.option("--days", type=click.IntRange(3, 30), default=5, show_default=True,
              help="Simulated days to run.")
@click.option("--seed", type=int, default=42, show_default=True, help="Mock API seed.")
def demo(days: int, seed: int) -> None:
    """Run the whole daily job on the bundled mock API over several simulated days.

    Starts the mock API on a free loopback port, ingests, builds, trains and
    recommends day by day, writes the HTML report and stops the API. The lake
    is emptied first if the demo created it; a lake holding other data is
    refused.

    Example:
      lakehouse --lake demo-lake demo --days 5
    """
    from lakehouse.demo import run_demo

    result = run_demo(settings(), days=days, seed=seed, echo=click.echo)
    click.echo(f"Champion model: {result.champion or 'none'}")
    click.echo(f"Report: {result.report}")
    click.echo(f"Done in {result.seconds:.0f} s. Try: lakehouse --lake {result.lake} status")
    if result.failed_steps:
        raise click.ClickException(f"{len(result.failed_steps)} step(s) failed, first: "
                                   f"{result.failed_steps[0]}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="lakehouse")

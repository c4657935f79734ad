"""Benchmark daily processing over D days against a one-snapshot lake of the same data.

A source of fixed final size (the bundled generator, realistic profile) is
served for D days: each day's full snapshot is written to ``raw`` (directly,
without HTTP: fetching costs the same in both layouts) and merged into the
history exactly as ``lakehouse ingest`` does (:func:`lakehouse.history.update`,
raw retention included); then ``build`` runs. Printed per day: records,
versions opened and closed, ingest seconds (raw write + merge), build seconds.

Then, in the same run, a one-snapshot lake gets only day D's snapshot and one
build, and the lake of today's code layout (``--baseline-code``, e.g. a
checkout of main before the history) writes that same one snapshot to raw
with its own writer settings and builds it. Each
final build runs in its own spawned process, for its own peak RSS. Reported:
build time and peak RSS, bytes of raw, history and the zones (live: files the
latest versions reference; on disk: everything, time travel included), data
files per table before and after ``maintain``.

``--merge-check`` also measures updating ``standardized.listen_history`` in
place with a Delta MERGE of the last day's changes against rewriting it.

Usage:
    .venv/bin/python scripts/bench_days.py --days 1 7 30                 # full size
    .venv/bin/python scripts/bench_days.py --users 2000 --tracks 1000 --listens 10000 --days 7
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse import history, names
from lakehouse.config import Settings
from lakehouse.lake import Lake
from lakehouse.lake.health import du as _du
from lakehouse.mockapi.data import MockConfig, generate

ZONE_ORDER = (names.RAW, names.HISTORY, names.STANDARDIZED, names.CONSUMPTION,
              names.QUARANTINE, names.META)


def settings_for(root: Path) -> Settings:
    return Settings.load(env={}, lake=root)


def raw_snapshot(table: pa.Table, day: dt.date) -> pa.Table:
    n = table.num_rows
    return (table
            .append_column(names.RUN_ID, pa.array([f"bench-{day}"] * n, pa.string()))
            .append_column(names.INGESTED_AT, pa.array(
                [dt.datetime.combine(day, dt.time(6), dt.UTC)] * n, pa.timestamp("us", tz="UTC")))
            .append_column(names.PAGE, pa.array([1] * n, pa.int64()))
            .append_column(names.INGEST_DATE, pa.array([day] * n, pa.date32())))


def ingest_day(lake: Lake, settings: Settings, cfg: MockConfig, day: dt.date) -> dict:
    """Day ``day``'s snapshot into raw, then merged into the history, as ingest does."""
    data = generate(cfg.replace(as_of=day))
    out = {"records": 0, "opened": 0, "closed": 0}
    t0 = time.perf_counter()
    history.bound_memory(lake, settings)
    for endpoint in names.ENDPOINTS:
        table = data.arrow(endpoint)
        out["records"] += table.num_rows
        lake.write(names.raw_table(endpoint), raw_snapshot(table, day),
                   mode="replace_partition", partition={names.INGEST_DATE: day},
                   partition_by=[names.INGEST_DATE])
        details = history.update(lake, settings, endpoint, day)
        for merge in details["history"]:
            out["opened"] += merge["opened"]
            out["closed"] += merge["closed"]
    out["seconds"] = time.perf_counter() - t0
    return out


# ---------------------------------------------------------------- builds in a child
def peak_rss() -> int:
    """This process's peak RSS in bytes.

    ``ru_maxrss`` is inherited across fork + exec (a spawned child reports at
    least its parent's RSS); ``VmHWM`` belongs to the process's own memory.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _build_child(root: str, date: dt.date, queue: mp.Queue) -> None:
    from lakehouse.zones.build import build

    t0 = time.perf_counter()
    build(settings_for(Path(root)), date=date)
    queue.put((time.perf_counter() - t0, peak_rss()))


def measured_build(root: Path, date: dt.date) -> tuple[float, int]:
    """Build in a fresh spawned process (deltalake cannot fork): seconds, peak RSS."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_build_child, args=(str(root), date, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def baseline_ingest(code: Path, root: Path, snapshot: dict[str, Path], date: dt.date) -> None:
    """Today's code (another checkout) writing one raw snapshot with its own settings."""
    script = ("import datetime, sys\n"
              "import pyarrow.parquet as pq\n"
              "from lakehouse.lake import Lake\n"
              f"lake, day = Lake({str(root)!r}), datetime.date.fromisoformat({str(date)!r})\n"
              f"for endpoint, path in {({k: str(v) for k, v in snapshot.items()})!r}.items():\n"
              "    lake.write('raw.' + endpoint, pq.read_table(path), mode='replace_partition',\n"
              "               partition={'ingest_date': day}, partition_by=['ingest_date'])\n")
    subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(code)},
                   cwd=code, check=True)


def baseline_build(code: Path, root: Path, date: dt.date) -> tuple[float, int]:
    """Today's code (another checkout) building ``root`` from raw: seconds, peak RSS."""
    script = ("import datetime, sys, time\n"
              "from lakehouse.config import Settings\n"
              "from lakehouse.zones.build import build\n"
              "t0 = time.perf_counter()\n"
              f"build(Settings.load(env={{}}, lake={str(root)!r}), "
              f"date=datetime.date.fromisoformat({str(date)!r}))\n"
              "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
              "print(time.perf_counter() - t0, int(hwm[0].split()[1]) * 1024)\n")
    env = {**os.environ, "PYTHONPATH": str(code)}
    # cwd too: "python -c" puts the working directory first on sys.path.
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, cwd=code,
                         text=True, check=True)
    seconds, peak = out.stdout.split()[-2:]
    return float(seconds), int(peak)


# ---------------------------------------------------------------- sizes
def zone_bytes(lake: Lake) -> dict[str, tuple[int, int, int]]:
    """zone -> (live bytes, bytes on disk, largest data-file count of a table)."""
    out = {}
    for zone in ZONE_ORDER:
        tables = [t for t in lake.table_names() if t.startswith(zone + ".")]
        infos = [lake.info(t) for t in tables]
        out[zone] = (sum(i.size_bytes for i in infos), _du(lake.root / zone),
                     max((i.files for i in infos), default=0))
    return out


def data_files(lake: Lake) -> dict[str, int]:
    return {t: sum(1 for p in lake.path(t).rglob("*.parquet") if "_delta_log" not in p.parts)
            for t in lake.table_names()}


def mib(n: int) -> str:
    return f"{n / 2**20:8.1f}"


# ---------------------------------------------------------------- MERGE vs rewrite
def _merge_child(path: str, source: str, how: str, queue: mp.Queue) -> None:
    import pyarrow.parquet as pq
    from deltalake import DeltaTable, write_deltalake

    t0 = time.perf_counter()
    data = pq.read_table(source)
    if how == "merge":
        (DeltaTable(path).merge(data, predicate="t.record_id = s.record_id",
                                source_alias="s", target_alias="t")
         .when_matched_update_all().when_not_matched_insert_all().execute())
    else:
        write_deltalake(path, data, mode="overwrite")
    queue.put((time.perf_counter() - t0, peak_rss()))


def merge_check(lake: Lake, work: Path) -> None:
    """Last day's change of standardized.listen_history: MERGE in place vs rewrite."""
    import pyarrow.parquet as pq
    from deltalake import write_deltalake

    name = names.STD_LISTEN_HISTORY
    latest = lake.version(name)
    old, new = lake.to_arrow(name, version=latest - 1), lake.to_arrow(name)
    con = lake.duckdb
    con.register("old_t", old)
    con.register("new_t", new)
    changed = con.sql("SELECT * FROM new_t EXCEPT ALL SELECT * FROM old_t").to_arrow_table()
    pq.write_table(changed, work / "changed.parquet")
    pq.write_table(new, work / "new.parquet")
    print(f"\nstandardized.listen_history: {new.num_rows:,} rows, {changed.num_rows:,} new or "
          "changed on the last day")
    ctx = mp.get_context("spawn")
    for how, source in (("merge", "changed.parquet"), ("rewrite", "new.parquet")):
        target = work / f"target-{how}"
        shutil.rmtree(target, ignore_errors=True)
        write_deltalake(str(target), old)
        queue = ctx.Queue()
        proc = ctx.Process(target=_merge_child, args=(str(target), str(work / source), how,
                                                       queue))
        proc.start()
        seconds, peak = queue.get()
        proc.join()
        print(f"  {how:<8} {seconds:7.2f} s  peak RSS {peak / 2**30:5.2f} GiB")


# ---------------------------------------------------------------- one run of D days
def run_days(args: argparse.Namespace, days: int, base: Path) -> None:
    cfg = MockConfig(seed=args.seed, users=args.users, tracks=args.tracks,
                     listens=args.listens, days=days, deletions=args.deletions)
    root = base / f"days-{days}"
    shutil.rmtree(root, ignore_errors=True)
    lake, settings = Lake(root), settings_for(root)
    print(f"\n=== {days} day(s): {args.users:,} users, {args.tracks:,} tracks, "
          f"{args.listens:,} listen records at the end; deletions {args.deletions:.0%} ===")
    print(f"{'day':<11}{'records':>11}{'opened':>11}{'closed':>9}{'ingest s':>10}{'build s':>9}")
    for i in range(days):
        day = cfg.start + dt.timedelta(days=i)
        out = ingest_day(lake, settings, cfg, day)
        if args.maintain_every and (i + 1) % args.maintain_every == 0:
            from lakehouse.maintain import maintain

            t0 = time.perf_counter()
            maintain(settings)  # what the daily job does once a week
            out["seconds"] += time.perf_counter() - t0
        build_s = "-"
        # --merge-check compares the last two days' builds: the day before must be built.
        if i < days - 1 and (args.daily_build or (args.merge_check and i == days - 2)):
            from lakehouse.zones.build import build

            t0 = time.perf_counter()
            build(settings, date=day)
            build_s = f"{time.perf_counter() - t0:.1f}"
        print(f"{day!s:<11}{out['records']:>11,}{out['opened']:>11,}{out['closed']:>9,}"
              f"{out['seconds']:>10.1f}{build_s:>9}", flush=True)
    final = cfg.end

    one = base / f"one-{days}"
    shutil.rmtree(one, ignore_errors=True)
    one_lake = Lake(one)
    ingest_day(one_lake, settings_for(one), cfg, final)
    runs = {f"history lake, day {days}": (lambda: measured_build(root, final), lake),
            "one-snapshot lake": (lambda: measured_build(one, final), one_lake)}
    if args.baseline_code:
        old = base / f"old-{days}"
        shutil.rmtree(old, ignore_errors=True)
        # The one-snapshot lake's raw rows, for the other code to write with its own writer.
        dump = base / f"snapshot-{days}"
        dump.mkdir(exist_ok=True)
        snapshot = {}
        for endpoint in names.ENDPOINTS:
            snapshot[endpoint] = dump / f"{endpoint}.parquet"
            pq.write_table(one_lake.to_arrow(names.raw_table(endpoint)), snapshot[endpoint])
        baseline_ingest(args.baseline_code, old, snapshot, final)
        shutil.rmtree(dump)
        runs[f"today's code ({args.baseline_code.name}), one snapshot"] = (
            lambda: baseline_build(args.baseline_code, old, final), Lake(old))
    # Interleaved, best of each: the machine is shared, a burst of load must not
    # land on one lake only. Builds are idempotent, so rebuilding measures the same.
    best: dict[str, tuple[float, int]] = {}
    for round_ in range(args.repeat):
        for label, (run, _) in runs.items():
            seconds, peak = run()
            print(f"  build {round_ + 1}/{args.repeat} {label}: {seconds:.1f} s, peak RSS "
                  f"{peak / 2**30:.2f} GiB", flush=True)
            if label not in best or seconds < best[label][0]:
                best[label] = (seconds, peak)
    report([(label, *best[label], lake_) for label, (_, lake_) in runs.items()], days)
    before = data_files(lake)
    from lakehouse.maintain import maintain

    t0 = time.perf_counter()
    maintain(settings)
    took = time.perf_counter() - t0
    after = data_files(lake)
    print(f"maintain: {took:.1f} s; data files per table before -> after (time travel "
          f"{settings.time_travel_days} days kept):")
    for table in before:
        print(f"  {table:<34}{before[table]:>5} -> {after[table]:<5} "
              f"(live {lake.info(table).files})")
    vacuumed = base / f"steady-{days}"
    shutil.rmtree(vacuumed, ignore_errors=True)
    shutil.copytree(root, vacuumed)
    maintain(settings_for(vacuumed).replace(time_travel_days=0))
    print(f"on disk once the time travel window has passed (maintain with 0 days, a copy): "
          f"{mib(_du(vacuumed)).strip()} MiB vs one-snapshot lake "
          f"{mib(_du(one)).strip()} MiB")
    if args.merge_check and days > 1:
        merge_check(lake, base)
    if not args.keep:
        for path in (root, one, vacuumed, base / f"old-{days}"):
            shutil.rmtree(path, ignore_errors=True)


def report(rows: list, days: int) -> None:
    print(f"\n{'lake':<44}{'build s':>8}{'peak RSS GiB':>13}{'raw MiB':>9}{'hist MiB':>9}"
          f"{'zones MiB':>10}{'disk MiB':>10}{'max files':>10}")
    for label, seconds, peak, lake in rows:
        z = zone_bytes(lake)
        zones = sum(z[k][0] for k in (names.STANDARDIZED, names.CONSUMPTION, names.QUARANTINE))
        print(f"{label:<44}{seconds:8.1f}{peak / 2**30:13.2f}{mib(z[names.RAW][0]):>9}"
              f"{mib(z[names.HISTORY][0]):>9}{mib(zones):>10}{mib(_du(lake.root)):>10}"
              f"{max(v[2] for v in z.values()):>10}")
    hist, one = rows[0], rows[1]
    def raw_and_history(lake: Lake) -> int:
        z = zone_bytes(lake)
        return z[names.RAW][0] + z[names.HISTORY][0]

    def live(lake: Lake) -> int:
        return sum(v[0] for v in zone_bytes(lake).values())

    live_hist, live_one = live(hist[3]), live(one[3])
    print(f"build day {days} / one-snapshot build: {hist[1] / one[1]:.2f}x; lake on disk: "
          f"{_du(hist[3].root) / _du(one[3].root):.2f}x; live raw+history: "
          f"{raw_and_history(hist[3]) / max(1, raw_and_history(one[3])):.2f}x; live total: "
          f"{mib(live_hist).strip()} / {mib(live_one).strip()} MiB = "
          f"{live_hist / live_one:.2f}x")
    # What each retained raw day costs: the lake a shorter LAKEHOUSE_RAW_RETENTION_DAYS keeps.
    per_day: dict = {}
    for endpoint in names.ENDPOINTS:
        actions = pa.table(hist[3].delta(names.raw_table(endpoint)).get_add_actions(flatten=True))
        for day, size in zip(actions[f"partition.{names.INGEST_DATE}"].to_pylist(),
                             actions["size_bytes"].to_pylist(), strict=True):
            per_day[str(day)] = per_day.get(str(day), 0) + size
    kept = live_hist - sum(per_day.values())
    print("live total by raw retention (newest days kept):", ", ".join(
        f"{n}: {(kept := kept + size) / live_one:.2f}x"
        for n, (_, size) in enumerate(sorted(per_day.items(), reverse=True), start=1)))
    for label, seconds, _, lake in rows[2:]:
        print(f"vs {label}: build {hist[1] / seconds:.2f}x; live total "
              f"{mib(live(lake)).strip()} MiB, {live_hist / live(lake):.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--tracks", type=int, default=50_000)
    parser.add_argument("--listens", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, nargs="+", default=[1, 7, 30])
    parser.add_argument("--deletions", type=float, default=0.01,
                        help="share of each collection deleted during the window")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--daily-build", action=argparse.BooleanOptionalAction, default=True,
                        help="build every day (the daily job), not only on the last")
    parser.add_argument("--baseline-code", type=Path,
                        help="a checkout of today's code, to build the one snapshot with it")
    parser.add_argument("--merge-check", action="store_true")
    parser.add_argument("--maintain-every", type=int, default=0, metavar="N",
                        help="run maintain every N days, as the daily job does weekly "
                             "(its time counts in that day's ingest); 0: only at the end")
    parser.add_argument("--repeat", type=int, default=2,
                        help="interleaved final builds of each lake; the best counts")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the lakes")
    args = parser.parse_args(argv)
    base = args.workdir or Path(tempfile.mkdtemp(prefix="bench-days-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores; ingest = raw write + history merge (no HTTP)")
    for days in args.days:
        run_days(args, days, base)
    if not args.workdir and not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Benchmark the monitoring report: how long it takes and how often it opens the lake.

Renders the report of an existing lake (e.g. the demo's) several times in one
process and prints, per render, the wall time, the number of ``Lake`` handles
opened (each has its own DuckDB connection) and the number of ``meta.runs``
reads. The median is what BENCHMARKS.md records; run it before and after a
change to compare.

Usage:
    .venv/bin/lakehouse --lake /tmp/bench-lake demo --days 5    # once, to have a lake
    .venv/bin/python scripts/bench_report.py --lake /tmp/bench-lake --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from lakehouse import lake as lake_module
    from lakehouse.config import Settings
    from lakehouse.monitor import report, runs

    counts = {"lakes": 0, "runs_reads": 0}
    original_init = lake_module.Lake.__init__
    original_read = runs.read_runs

    def counting_init(self, *a, **k):
        counts["lakes"] += 1
        original_init(self, *a, **k)

    def counting_read(*a, **k):
        counts["runs_reads"] += 1
        return original_read(*a, **k)

    lake_module.Lake.__init__ = counting_init
    # Every module that imported read_runs by name gets the counting one.
    import lakehouse.monitor.kpis as kpis
    import lakehouse.monitor.status as status

    for module in (runs, report, kpis, status):
        if hasattr(module, "read_runs"):
            module.read_runs = counting_read

    settings = Settings.load(lake=args.lake)
    seconds = []
    for i in range(args.repeat):
        counts.update(lakes=0, runs_reads=0)
        t0 = time.perf_counter()
        html = report.render_report(settings)
        seconds.append(time.perf_counter() - t0)
        print(f"render {i + 1}: {seconds[-1]:.3f} s, {len(html) / 1024:.0f} KiB, "
              f"{counts['lakes']} lake handle(s), {counts['runs_reads']} meta.runs read(s)")
    print(f"median {statistics.median(seconds):.3f} s over {args.repeat} renders "
          f"(first {seconds[0]:.3f} s)")


if __name__ == "__main__":
    main()

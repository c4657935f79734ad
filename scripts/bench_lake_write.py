"""Peak memory of a streamed ``Lake.write``: the lake's row-group bound vs delta-rs's default.

A raw ingest streams pages into one Delta commit. delta-rs buffers a whole
Parquet row group before flushing it, so with its default (about a million
rows) memory grows with the table. ``Lake.write`` bounds row groups; this
script shows the effect, each write in its own spawned process (peak RSS is
per process), on listen_history-shaped batches of 5,000 rows.

Usage:
    .venv/bin/python scripts/bench_lake_write.py [--sizes 100000 300000 900000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import resource
import tempfile

DAY = dt.date(2026, 11, 1)


def _write(n: int, row_group_rows: int | None, out: mp.Queue) -> None:
    import numpy as np
    import pyarrow as pa

    import lakehouse.lake as lake_module

    lake_module._ROW_GROUP_ROWS = row_group_rows  # None: delta-rs's default
    lake = lake_module.Lake(tempfile.mkdtemp())
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rng = np.random.default_rng(0)
    schema = pa.schema([
        ("user_id", pa.int64()), ("items", pa.list_(pa.int64())), ("created_at", pa.string()),
        ("updated_at", pa.string()), ("_run_id", pa.string()),
        ("_ingested_at", pa.timestamp("us", tz="UTC")), ("_page", pa.int64()),
        ("ingest_date", pa.date32())])
    now = dt.datetime.now(dt.UTC)

    def batches():
        for start in range(0, n, 5000):
            m = min(5000, n - start)
            offsets = np.concatenate([[0], np.cumsum(rng.integers(1, 30, m))])
            items = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()),
                                             pa.array(rng.integers(1, 50_000, offsets[-1])))
            ts = pa.array([f"2026-10-{i % 28 + 1:02d}T12:00:00.{i % 999_999:06d}"
                           for i in range(start, start + m)])
            yield pa.RecordBatch.from_arrays([
                pa.array(np.arange(start, start + m)), items, ts, ts, pa.array(["run"] * m),
                pa.array([now] * m, pa.timestamp("us", tz="UTC")),
                pa.array(np.arange(m) // 100), pa.array([DAY] * m, pa.date32())], schema=schema)

    lake.write("raw.listen_history", batches(), schema=schema, mode="replace_partition",
               partition_by=["ingest_date"], partition={"ingest_date": DAY})
    out.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 900_000])
    args = parser.parse_args()
    from lakehouse.lake import _ROW_GROUP_ROWS

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    print(f"{'rows':>9}  {'delta-rs default':>18}  {f'lake ({_ROW_GROUP_ROWS} rows/group)':>26}")
    for n in args.sizes:
        growth = []
        for rows in (None, _ROW_GROUP_ROWS):
            proc = ctx.Process(target=_write, args=(n, rows, out))
            proc.start()
            proc.join()
            growth.append(out.get())
        print(f"{n:>9}  {growth[0]:>15.0f} MB  {growth[1]:>23.0f} MB", flush=True)
    print("(peak RSS growth of the writing process over its RSS before the write)")


if __name__ == "__main__":
    main()

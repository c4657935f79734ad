"""Peak memory of a streamed ``Lake.write``: the lake's row-group bounds vs delta-rs's default.

A raw ingest streams pages into one Delta commit. delta-rs buffers a whole
Parquet row group before flushing it, so with its default (about a million
rows) memory grows with the table. ``Lake.write`` bounds row groups: 20,000
rows in the zones read all day, 250,000 (with ZSTD) in raw and
history, written for size. This script shows the effect, each write in its
own spawned process (peak RSS is per process), on listen_history-shaped
batches of 5,000 rows, and the bytes written.

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


def _write(n: int, table: str, out: mp.Queue) -> None:
    import numpy as np
    import pyarrow as pa

    import lakehouse.lake as lake_module
    import lakehouse.lake.storage as storage_module

    if table == "default":  # delta-rs's own settings: Snappy, ~1 M-row groups
        storage_module.writer_properties = lambda name, schema=None: None
        table = "standardized.listen_history"
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

    lake.write(table, batches(), schema=schema, mode="replace_partition",
               partition_by=["ingest_date"], partition={"ingest_date": DAY})
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    out.put((grown, lake.info(table).size_bytes / 2**20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 900_000])
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    tables = {"delta-rs default": "default", "zones (20k rows, Snappy)": "standardized.listens",
              "raw (250k rows, ZSTD)": "raw.listen_history"}
    print(f"{'rows':>9}" + "".join(f"  {label:>26}" for label in tables))
    for n in args.sizes:
        cells = []
        for table in tables.values():
            proc = ctx.Process(target=_write, args=(n, table, out))
            proc.start()
            proc.join()
            grown, size = out.get()
            cells.append(f"{grown:.0f} MB, {size:.1f} MiB")
        print(f"{n:>9}" + "".join(f"  {cell:>26}" for cell in cells), flush=True)
    print("(peak RSS growth of the writing process over its RSS before the write; "
          "bytes of the table written)")


if __name__ == "__main__":
    main()

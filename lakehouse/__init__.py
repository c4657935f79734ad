"""MooVitamix lakehouse: ingest the source API into a local Delta lake, build
standardized and consumption zones, monitor the pipeline and recommend tracks.

Analysts start with::

    import lakehouse
    lake = lakehouse.open_lake("lake")
    lake.sql("SELECT count(*) FROM standardized.listens")
"""

__version__ = "0.1.0"

import os  # noqa: E402

# delta-rs allocates with a jemalloc of its own, which keeps the pages it freed for
# ~10 s by default: a Delta write's buffers then stay resident under the next stage
# (the history merge's DuckDB, the next endpoint's fetch), ~25 MB a 100k-row write,
# growing with each one. Given back at once instead (~0.03 s of CPU a 100k-row write;
# see BENCHMARKS.md). Read when deltalake loads, so set before it is imported; a value
# of the user's own is kept. The prefixed name reaches only that allocator (DuckDB's and
# Arrow's read none of it).
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")

from lakehouse.lake import Lake, open_lake  # noqa: E402

__all__ = ["Lake", "open_lake", "__version__"]

"""MooVitamix lakehouse: ingest the source API into a local Delta lake, build
standardized and consumption zones, monitor the pipeline and recommend tracks.

Analysts start with::

    import lakehouse
    lake = lakehouse.open_lake("lake")
    lake.sql("SELECT count(*) FROM standardized.listens")
"""

__version__ = "0.1.0"

from lakehouse.lake import Lake, open_lake  # noqa: E402

__all__ = ["Lake", "open_lake", "__version__"]

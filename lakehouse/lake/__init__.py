"""The lake: the only package that reads and writes tables.

:class:`Lake` is the front door (``lake.write``, ``lake.table``, ``lake.sql``,
``lake.check``...); behind it each concept has its module:

- :mod:`~lakehouse.lake.storage`: Delta writes and deletes, schema evolution;
- :mod:`~lakehouse.lake.catalog`: the DuckDB views and read-only SQL;
- :mod:`~lakehouse.lake.health`: checks, repair hints, uncommitted files, scratch;
- :mod:`~lakehouse.lake.external`: committing Parquet files another engine wrote.

Example::

    from lakehouse.lake import open_lake

    lake = open_lake("lake")
    lake.sql("SELECT count(*) FROM raw.users").df()
"""

from lakehouse.lake.catalog import QueryResult
from lakehouse.lake.front import Lake, TableInfo, check_outside_lake, open_lake, utc_now
from lakehouse.lake.health import BUILD_SCRATCH_PREFIX, remove_build_scratch
from lakehouse.lake.naming import parse_table_name
from lakehouse.lake.storage import (
    WriteMode,
    WriteResult,
    describe_schema_changes,
    normalize_schema,
    schema_diff,
    writer_properties,
)

__all__ = [
    "BUILD_SCRATCH_PREFIX", "Lake", "check_outside_lake", "QueryResult", "TableInfo", "WriteMode", "WriteResult",
    "describe_schema_changes", "normalize_schema", "open_lake", "parse_table_name",
    "remove_build_scratch", "schema_diff", "utc_now", "writer_properties",
]

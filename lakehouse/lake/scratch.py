"""A DuckDB connection of its own, beside the lake's shared one: capped, private, closed after.

The lake's shared connection (:mod:`lakehouse.lake.catalog`) serves every
read of a process through ibis, with the build's memory cap, and lives as
long as the process. Work that needs DuckDB for a moment (the history merge
after each endpoint of an ingest) opens a :class:`ScratchDb` instead: plain
DuckDB, no ibis, a small ``memory_limit`` beyond which it spills to a folder
of its own, and closed when done, so its memory goes back::

    with ScratchDb(lake, "128MB", setting="merge_memory") as db:
        db.con.execute(f"SELECT count(*) FROM {db.rel('raw.users')}").fetchone()
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from lakehouse.errors import ConfigError
from lakehouse.lake.naming import parse_table_name
from lakehouse.sqlguard import first_line
from lakehouse.sqltext import ident, literal

if TYPE_CHECKING:
    from lakehouse.lake.front import Lake


class ScratchDb:
    """A private DuckDB connection reading the lake's tables: memory capped, closed after.

    Tables are read from the same files with the same checks as the lake's
    views (:meth:`~lakehouse.lake.catalog.Catalog.checked_select`).

    Args:
        lake: The lake whose tables it reads (None: reads none, e.g. to check ``memory``).
        memory: DuckDB's ``memory_limit``.
        setting: The setting ``memory`` came from, for the error message.

    Raises:
        ConfigError: ``memory`` is not a DuckDB size.
    """

    # Rows per Arrow batch handed out by :meth:`batches`.
    CHUNK_ROWS = 20_000

    def __init__(self, lake: Lake | None, memory: str, *, setting: str):
        import duckdb

        self.lake = lake
        self.memory = memory
        # Its own folder: DuckDB names its spill files per database, not per process. Not
        # made here: DuckDB makes it when it first spills, so a process killed mid-merge
        # leaves nothing behind unless it had spilled.
        self.spill = os.path.join(tempfile.gettempdir(),
                                  f"lakehouse-scratch-{os.getpid()}-{uuid.uuid4().hex[:12]}")
        try:
            # One thread: hashing a 100k-row raw partition took 0.12 s of CPU on one,
            # 0.20-0.33 s on two, and no less wall time (2 shared cores).
            self.con = duckdb.connect(config={"memory_limit": memory, "threads": 1,
                                              "temp_directory": self.spill})
        except duckdb.Error as exc:  # the message names the bad value
            shutil.rmtree(self.spill, ignore_errors=True)
            raise ConfigError(f"bad {setting} {memory!r} (LAKEHOUSE_{setting.upper()}): "
                              f"{first_line(exc)}") from None
        self.con.execute("SET TimeZone = 'UTC'")  # as the lake's connection

    def rel(self, name: str) -> str:
        """The name of a view of table ``name`` on this connection, at its latest commit.

        Raises:
            TableNotFoundError: No such table.
            BrokenTableError: Its log does not parse or a data file is not as logged.
        """
        assert self.lake is not None, "a ScratchDb without a lake reads no table"
        zone, table = parse_table_name(name)
        view = ident(f"_{zone}__{table}")
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS "
                         f"{self.lake.catalog.checked_select(name, self.con)}")
        return view

    def batches(self, table: str, *, select: str = "*", tail: str | None = None
                ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The rows of table ``table`` as Arrow batches of ``CHUNK_ROWS``, fetched lazily.

        Each chunk is one query run in the thread that pulls it (a DuckDB
        result stream handed to delta-rs directly was seen to deadlock), so
        only a chunk at a time is in Arrow memory. The table must not change
        while they are read.

        Args:
            table: The table to read.
            select: The select list applied to each of its rows.
            tail: SQL of rows to send after the table's, with the same columns
                and types as ``select`` gives.
        """
        schema = self.con.execute(f"SELECT {select} FROM {table} LIMIT 0").to_arrow_table().schema

        def chunks() -> Iterator[pa.RecordBatch]:
            (last,) = self.con.execute(f"SELECT max(rowid) FROM {table}").fetchone()
            # By rowid: each chunk is a range of the table, not a re-sort of it.
            for start in range(0, -1 if last is None else last + 1, self.CHUNK_ROWS):
                chunk = self.con.execute(
                    f"SELECT {select} FROM {table} WHERE rowid >= {start} "
                    f"AND rowid < {start + self.CHUNK_ROWS}").to_arrow_table()
                self.release()  # the chunk's query buffers, before delta-rs takes it
                yield from chunk.to_batches()
            if tail is not None:
                yield from self.con.execute(tail).to_arrow_table().cast(schema).to_batches()

        return schema, chunks()

    def release(self) -> None:
        """Give the memory of dropped tables and finished queries back to the system.

        DuckDB keeps what it freed in its allocator for reuse until the
        connection closes; setting the memory limit again (to the same value)
        flushes it. Called between the merge's stages so that the next one
        (the delta-rs writer) does not stack on top of what is no longer used.
        """
        self.con.execute(f"SET memory_limit = {literal(self.memory)}")

    def close(self) -> None:
        """Close the connection (DuckDB frees its memory) and remove the spill folder."""
        self.con.close()
        shutil.rmtree(self.spill, ignore_errors=True)

    def __enter__(self) -> ScratchDb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

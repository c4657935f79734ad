"""A 64-bit hash both engines compute identically: Spark's ``xxhash64``.

``standardized.listen_history.record_id`` must be the same number whether
the build ran on DuckDB or on Spark, and 64 bits wide (Spark's ``hash()`` is
32-bit: it would merge distinct records at scale). Spark has ``xxhash64``
built in; DuckDB has no xxhash64, so on DuckDB the same algorithm runs as a
vectorized Arrow UDF (numpy over whole columns, no Python loop per row).

Spark's ``xxhash64(a, b, ...)`` starts from seed 42 and hashes each argument
into the running hash: a 64-bit integer or a timestamp (microseconds since
the epoch) with XXH64 of its 8 bytes; an array element by element; a null
argument or element leaves the hash unchanged. :func:`xxhash64_arrays` is
that, for int64, timestamp and list<int64> columns.
"""

# No `from __future__ import annotations`: ibis reads the UDF signatures
# from the annotations as dtype objects.

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.zones.base import backend_name

SEED = 42
_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)

_TS = dt.Timestamp(timezone="UTC", scale=6)
_IDS = dt.Array(dt.int64)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


def _hash_long(value: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """XXH64 of each 8-byte little-endian ``value`` with its own ``seed`` (Spark's hashLong)."""
    with np.errstate(over="ignore"):
        h = seed + _P5 + np.uint64(8)
        h ^= _rotl(value * _P2, 31) * _P1
        h = _rotl(h, 27) * _P1 + _P4
        h ^= h >> np.uint64(33)
        h *= _P2
        h ^= h >> np.uint64(29)
        h *= _P3
        h ^= h >> np.uint64(32)
    return h


def _as_int64(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(values as uint64 bits, validity) of an int64 or timestamp column."""
    if pa.types.is_timestamp(array.type):
        array = pc.cast(array, pa.timestamp("us", tz=array.type.tz)).cast(pa.int64())
    array = array.cast(pa.int64())
    valid = np.asarray(array.is_valid()) if array.null_count else np.ones(len(array), bool)
    values = np.asarray(array.fill_null(0)).view(np.uint64)
    return values, valid


def _mix_list(h: np.ndarray, lists: pa.Array) -> np.ndarray:
    """Fold each row's list elements into its hash, in order, skipping nulls."""
    lists = lists.cast(pa.list_(pa.int64()))
    present = np.asarray(lists.is_valid())
    lengths = np.asarray(pc.list_value_length(lists).fill_null(0), dtype=np.int64)
    flat, flat_valid = _as_int64(pc.list_flatten(lists))
    # Offsets of each row's first element in the flattened values (null lists are empty).
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    rows = np.flatnonzero(present & (lengths > 0))
    position = 0
    # One vectorized step per list position, over the rows that are that long:
    # the chain is sequential within a row but independent across rows.
    while rows.size:
        idx = starts[rows] + position
        keep = flat_valid[idx]
        mixed = _hash_long(flat[idx], h[rows])
        h[rows] = np.where(keep, mixed, h[rows])
        position += 1
        rows = rows[lengths[rows] > position]
    return h


def xxhash64_arrays(*columns: pa.Array) -> pa.Array:
    """Spark's ``xxhash64`` of int64, timestamp and list<int64> columns, row by row."""
    columns = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns]
    n = len(columns[0])
    h = np.full(n, SEED, dtype=np.uint64)
    for column in columns:
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            h = _mix_list(h, column)
        else:
            values, valid = _as_int64(column)
            h = np.where(valid, _hash_long(values, h), h)
    return pa.array(h.view(np.int64), pa.int64())


@ibis.udf.scalar.builtin(name="xxhash64")
def _spark_xxhash64(user_id: dt.int64, created_at: _TS, items: _IDS) -> dt.int64:
    """Spark's own xxhash64 (and any engine's with that builtin)."""


@ibis.udf.scalar.pyarrow(name="lakehouse_xxhash64", null_handling="special",
                         side_effects=False)
def _duckdb_xxhash64(user_id: dt.int64, created_at: _TS, items: _IDS) -> dt.int64:
    """The same, computed with numpy for engines without it (DuckDB)."""
    return xxhash64_arrays(user_id, created_at, items)


def record_hash(user_id: ir.IntegerValue, created_at: ir.TimestampValue,
                items: ir.ArrayValue) -> ir.IntegerValue:
    """``xxhash64(user_id, created_at, items)``, the same on DuckDB and Spark.

    The engine is the one the expression is bound to; an unbound expression
    (compiled to SQL for another engine) uses the builtin.
    """
    if backend_name(user_id) == "duckdb":
        return _duckdb_xxhash64(user_id, created_at, items)
    return _spark_xxhash64(user_id, created_at, items)

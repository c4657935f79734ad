"""Any data set, read from files, to serve through the contract (``lakehouse mock-api --data``).

A data folder holds one file per endpoint, named after it: ``users``, ``tracks`` and
``listen_history``, each as JSON lines (``.jsonl``, ``.ndjson`` or ``.json``: one JSON
object per line) or Parquet (``.parquet``). Fields are the contract's
(``/work/shared/API_CONTRACT.md``): extra fields are refused, missing ones are refused,
except that ``created_at``/``updated_at`` may be left out (they are then served as the
folder's modification time, the same for every record, as some exports do). Values keep
their order and are served as they are: duplicate ids, dangling references, repeated
track ids in a list, null ``user_id`` or ``items`` are the data's, not errors.

Timestamps may be ISO strings (served as they are) or Parquet timestamps (served as the
contract's ISO strings without a time zone, in UTC).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse.errors import ConfigError
from lakehouse.mockapi.data import SCHEMAS
from lakehouse.names import ENDPOINTS
from lakehouse.sqlguard import first_line

SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet")
_TIMES = ("created_at", "updated_at")


def load_dir(folder: str | Path) -> dict[str, pa.Table]:
    """The three endpoints' items from ``folder``, in the contract's Arrow schemas.

    Args:
        folder: A folder with ``users``, ``tracks`` and ``listen_history`` files.

    Returns:
        One table per endpoint, in file order.

    Raises:
        ConfigError: A file is missing, ambiguous, unreadable or not of the contract's
            shape (one line that names the file, and the line or field at fault).
    """
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"data folder {root} does not exist; give a folder with users, "
                          f"tracks and listen_history files ({'/'.join(SUFFIXES)})")
    stamp = dt.datetime.fromtimestamp(root.stat().st_mtime, dt.UTC).replace(tzinfo=None)
    return {e: _conform(_read(_find(root, e)), e, stamp) for e in ENDPOINTS}


def _find(root: Path, endpoint: str) -> Path:
    found = [root / f"{endpoint}{s}" for s in SUFFIXES if (root / f"{endpoint}{s}").is_file()]
    if not found:
        raise ConfigError(f"no {endpoint} file in {root}; add {endpoint}.jsonl or "
                          f"{endpoint}.parquet")
    if len(found) > 1:
        raise ConfigError(f"several {endpoint} files in {root} "
                          f"({', '.join(p.name for p in found)}); keep one")
    return found[0]


def _read(path: Path) -> tuple[Path, list[dict] | pa.Table]:
    if path.suffix == ".parquet":
        try:
            return path, pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise ConfigError(f"{path} is not a readable Parquet file "
                              f"({first_line(exc)[:200]})") from None
    rows: list[dict] = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path} line {number} is not JSON ({exc.msg}); write "
                                      f"one JSON object per line") from None
                if not isinstance(row, dict):
                    raise ConfigError(f"{path} line {number} is not a JSON object; write one "
                                      f"object per line") from None
                rows.append(row)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path} ({exc}); give a UTF-8 JSON lines file") \
            from None
    return path, rows


def _conform(read: tuple[Path, list[dict] | pa.Table], endpoint: str,
             stamp: dt.datetime) -> pa.Table:
    """The file's items in the endpoint's schema, or a one-line error naming what is wrong."""
    path, data = read
    schema = SCHEMAS[endpoint]
    names = set(data.column_names) if isinstance(data, pa.Table) else set().union(*data)
    extra = sorted(names - set(schema.names))
    if extra:
        raise ConfigError(f"{path}: field(s) {', '.join(extra)} are not in the {endpoint} "
                          f"contract ({', '.join(schema.names)})")
    missing = [n for n in schema.names if n not in names and n not in _TIMES]
    if missing and (isinstance(data, pa.Table) or data):
        raise ConfigError(f"{path}: field(s) {', '.join(missing)} are missing; every "
                          f"{endpoint} record needs {', '.join(schema.names)}")
    table = data if isinstance(data, pa.Table) else None
    columns = []
    for field in schema:
        if table is not None:
            column = table.column(field.name) if field.name in names else None
        else:
            column = _column(path, field, data) if field.name in names else None
        columns.append(_cast(path, endpoint, field, column, stamp,
                             table.num_rows if table is not None else len(data)))
    return pa.Table.from_arrays(columns, schema=schema)


def _column(path: Path, field: pa.Field, rows: list[dict]) -> pa.Array:
    try:
        return pa.array([r.get(field.name) for r in rows])
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        raise ConfigError(f"{path}: field {field.name} mixes types; every value must be "
                          f"{_kind(field.type)}") from None


def _cast(path: Path, endpoint: str, field: pa.Field, column, stamp: dt.datetime,
          rows: int) -> pa.Array:
    if column is None:  # an optional timestamp left out
        return pa.array([stamp.isoformat(timespec="microseconds")] * rows, pa.string())
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if field.type == pa.string() and pa.types.is_timestamp(column.type):
        if column.type.tz is not None:
            column = column.cast(pa.timestamp(column.type.unit, "UTC")).cast(
                pa.timestamp(column.type.unit))
        column = pc.strftime(column.cast(pa.timestamp("us")), "%Y-%m-%dT%H:%M:%S")  # %S has the microseconds
    try:
        cast = column.cast(field.type) if column.type != pa.null() else pa.nulls(
            rows, field.type)
    except (pa.ArrowException, ValueError) as exc:
        raise ConfigError(f"{path}: field {field.name} is not {_kind(field.type)} "
                          f"({first_line(exc)[:160]})") from None
    if field.type == pa.string() and pa.types.is_integer(column.type) or (
            field.type == pa.int64() and not pa.types.is_integer(column.type)
            and column.type != pa.null()):
        raise ConfigError(f"{path}: field {field.name} is not {_kind(field.type)} "
                          f"(found {column.type})")
    nullable = endpoint == "listen_history" and field.name in ("user_id", "items")
    if not nullable and cast.null_count:
        first = pc.index(pc.is_null(cast), True).as_py() + 1
        raise ConfigError(f"{path}: record {first} has no {field.name}; only listen_history "
                          f"user_id and items may be null")
    return cast


def _kind(kind: pa.DataType) -> str:
    if kind == pa.int64():
        return "an integer"
    if pa.types.is_list(kind):
        return "a list of integers"
    return "a string"

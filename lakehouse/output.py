"""Rendering rows for people (aligned table) and for programs (csv, json); record files."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.errors import ConfigError
from lakehouse.sqlguard import first_line

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.lake import Lake

FORMATS = ("table", "csv", "json")


def human_bytes(n: float | None) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def format_cell(value: Any) -> str:
    """One value as people read it: ISO datetimes, 4 significant digits, '' for None."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _visible(text: str) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``), not acted on."""
    return _INVISIBLE.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "table") -> str:
    """Render ``rows`` under ``columns`` as ``table``, ``csv`` or ``json``.

    Example:
        >>> print(render(["a", "b"], [(1, "x")]))
        a  b
        -  -
        1  x
    """
    if fmt == "json":
        return json.dumps([{c: _jsonable(v) for c, v in zip(columns, r, strict=True)}
                           for r in rows], indent=2, default=str)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[format_cell(v) for v in r] for r in rows])
        return buf.getvalue().rstrip("\n")
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}")
    # The table is for a terminal: data (raw keeps what the source sent) must not
    # carry escape sequences or line breaks into it; csv and json stay faithful.
    cells = [[_visible(format_cell(v)) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
              for r in cells]
    return "\n".join(lines)


def write_records(table: pa.Table, path: str | os.PathLike[str], *,
                  lake: Lake | None = None) -> Path:
    """Write records to ``path`` as Parquet, CSV or JSON lines, by its suffix.

    The file appears whole or not at all (written beside it, then renamed).

    Args:
        table: The records.
        path: The file to write.
        lake: The lake the records came from: a path inside it is refused
            (:func:`~lakehouse.lake.check_outside_lake`).

    Returns:
        The path written.

    Raises:
        ConfigError: The suffix is none of ``.parquet``, ``.csv``, ``.jsonl``;
            the path is inside ``lake``; or it cannot be written.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from lakehouse.lake import check_outside_lake

    target = Path(path).expanduser()
    if lake is not None:
        check_outside_lake(lake.root, target, "the records")
    suffix = target.name.rsplit(".", 1)[-1].lower()
    if suffix not in ("parquet", "csv", "jsonl"):
        raise ConfigError(f"cannot write {target}: use a .parquet, .csv or .jsonl file name")
    if target.is_dir():
        raise ConfigError(f"cannot write {target}: it is a folder; give a file name")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        if suffix == "parquet":
            pq.write_table(table, tmp)
        elif suffix == "csv":
            # CSV has no lists: a list column is written as its JSON text.
            for i, f in enumerate(table.schema):
                if pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
                    text = [None if v is None else json.dumps(v)
                            for v in table.column(i).to_pylist()]
                    table = table.set_column(i, f.name, pa.array(text, pa.string()))
            pcsv.write_csv(table, tmp)
        else:
            with open(tmp, "w", encoding="utf-8") as out:
                for row in table.to_pylist():
                    out.write(json.dumps(row, default=str) + "\n")
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        reason = exc.strerror or first_line(exc)
        raise ConfigError(f"cannot write {target}: {reason}; choose another --out") from None
    return target

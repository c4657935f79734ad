"""Rendering rows for people (aligned table) and for programs (csv, json)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Sequence
from typing import Any

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

"""Table names (``zone.name``) and where a table lives under the lake root."""

from __future__ import annotations

import re

from lakehouse import names
from lakehouse.errors import LakeError

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def parse_table_name(name: str) -> tuple[str, str]:
    """Split ``zone.name`` and check both parts.

    Raises:
        LakeError: The name is not ``zone.name`` with a known zone.
    """
    zone, _, table = name.partition(".")
    if zone not in names.ZONES or not _NAME.match(table or ""):
        raise LakeError(
            f"bad table name {name!r}: use zone.name with zone one of "
            f"{', '.join(names.ZONES)} (e.g. raw.users)"
        )
    return zone, table


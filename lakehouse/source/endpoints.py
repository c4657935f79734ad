"""The three endpoints of the source API and the raw schema of their items.

Field types follow docs/API_CONTRACT.md. Raw is faithful, so timestamps
stay the ISO strings the source sent; only ``items`` of ``listen_history`` is
a native ``list<int64>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from lakehouse import names

_STR = pa.string()
_INT = pa.int64()


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint: its name, URL path, the contract's item fields, and what they mean.

    Attributes:
        name: The endpoint (``users``...).
        path: Its URL path.
        fields: The items' fields as raw stores them (all nullable: raw keeps
            whatever the source sent).
        optional: Fields the contract itself allows to be null.
        description: What one item is, in the contract's words.
    """

    name: str
    path: str
    fields: tuple[pa.Field, ...]
    optional: tuple[str, ...] = ()
    description: str = ""

    @property
    def table(self) -> str:
        """The raw table the endpoint lands in."""
        return names.raw_table(self.name)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


def _spec(name: str, description: str, *columns: tuple[str, pa.DataType],
          optional: tuple[str, ...] = ()) -> EndpointSpec:
    return EndpointSpec(name, "/" + name,
                        tuple(pa.field(c, t, nullable=True) for c, t in columns),
                        optional, description)


ENDPOINTS: dict[str, EndpointSpec] = {
    names.USERS: _spec(
        names.USERS, "A user account.", ("id", _INT), ("first_name", _STR), ("last_name", _STR),
        ("email", _STR), ("gender", _STR), ("favorite_genres", _STR),
        ("created_at", _STR), ("updated_at", _STR)),
    names.TRACKS: _spec(
        names.TRACKS, "A track of the catalogue.", ("id", _INT), ("name", _STR), ("artist", _STR),
        ("songwriters", _STR), ("duration", _STR), ("genres", _STR), ("album", _STR),
        ("created_at", _STR), ("updated_at", _STR)),
    names.LISTEN_HISTORY: _spec(
        names.LISTEN_HISTORY, "A listening record of one user: a list of track ids.",
        ("user_id", _INT), ("items", pa.list_(_INT)), ("created_at", _STR), ("updated_at", _STR),
        optional=("user_id", "items")),
}

# Run metadata and partition columns every raw table ends with.
META_FIELDS = (
    pa.field(names.RUN_ID, _STR),
    pa.field(names.INGESTED_AT, pa.timestamp("us", tz="UTC")),
    pa.field(names.PAGE, _INT),
    pa.field(names.INGEST_DATE, pa.date32()),
)


def endpoint(name: str) -> EndpointSpec:
    """The spec of endpoint ``name``.

    Raises:
        KeyError: Unknown endpoint (callers turn it into a user error).
    """
    return ENDPOINTS[name]

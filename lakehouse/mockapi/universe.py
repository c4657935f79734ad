"""The simulated window every profile fills: entities, listen records, their timeline.

A profile (:mod:`~lakehouse.mockapi.realistic`, :mod:`~lakehouse.mockapi.reference`,
:mod:`~lakehouse.mockapi.opaque`) draws a :class:`Universe`; its
:meth:`Universe.snapshot` is what the mock API serves as of one day. The
draws and Arrow helpers the profiles share are here too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import ConfigError
from lakehouse.mockapi.words import DOMAINS
from lakehouse.names import LISTEN_HISTORY, TRACKS, USERS
from lakehouse.source.endpoints import ENDPOINTS

if TYPE_CHECKING:
    from lakehouse.mockapi.data import MockConfig


_US_PER_DAY = 86_400_000_000


_EPOCH = dt.date(1970, 1, 1)


# Arrow schemas of the contract's items (timestamps as the ISO strings the API sends):
# the source client's endpoint specs, so the mock serves exactly what ingest expects.
SCHEMAS: dict[str, pa.Schema] = {name: pa.schema(spec.fields) for name, spec in ENDPOINTS.items()}


class Dataset:
    """The state of the mock source as of one day: one Arrow table per endpoint."""

    def __init__(self, config: MockConfig, tables: dict[str, pa.Table]):
        self.config = config
        self._tables = tables

    @property
    def as_of(self) -> dt.date:
        """The day this state is served for."""
        return self.config.effective_as_of

    def arrow(self, endpoint: str) -> pa.Table:
        """The endpoint's items as a table with the contract's field names and types."""
        return self._tables[_check_endpoint(endpoint)]

    def records(self, endpoint: str) -> list[dict]:
        """The endpoint's items as the contract's JSON objects, in serving order."""
        return self.arrow(endpoint).to_pylist()

    def total(self, endpoint: str) -> int:
        """Number of items the endpoint serves."""
        return self.arrow(endpoint).num_rows


def _check_endpoint(endpoint: str) -> str:
    if endpoint not in ENDPOINTS:
        raise ConfigError(f"unknown endpoint {endpoint!r}; use one of {', '.join(ENDPOINTS)}")
    return endpoint


@dataclass
class _Entities:
    """Users or tracks over the window: a base version and an optional update each."""

    ids: np.ndarray
    created: np.ndarray          # int64 microseconds since the epoch (naive UTC)
    base_updated: np.ndarray     # updated_at of the base version
    update_time: np.ndarray      # time of the one update; int64 max when there is none
    base: dict[str, pa.Array]    # string columns of the base version
    changed: dict[str, pa.Array]  # string columns that an update replaces (same length)
    order: np.ndarray | None = None  # serving order; None keeps generation order
    deleted: np.ndarray | None = None  # time of deletion; None: never deleted

    def snapshot(self, cutoff: int, schema: pa.Schema) -> pa.Table:
        if self.order is None:
            visible = np.flatnonzero(self.created < cutoff)
        else:
            visible = self.order[self.created[self.order] < cutoff]
        if self.deleted is not None:
            visible = visible[self.deleted[visible] >= cutoff]
        upd = self.update_time[visible] < cutoff
        updated_at = np.where(upd, self.update_time[visible], self.base_updated[visible])
        index = pa.array(visible)
        mask = pa.array(upd)
        cols: dict[str, pa.Array] = {"id": pa.array(self.ids[visible], pa.int64())}
        for name, values in self.base.items():
            col = values.take(index)
            if name in self.changed:
                col = pc.if_else(mask, self.changed[name].take(index), col)
            cols[name] = col
        cols["created_at"] = _iso(self.created[visible])
        cols["updated_at"] = _iso(updated_at)
        return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)


@dataclass
class _Listens:
    """Listen records over the window, in serving order (duplicates included)."""

    user_ids: pa.Array   # int64, nullable
    items: pa.Array      # list<int64>, nullable
    created: np.ndarray
    updated: np.ndarray
    visible_from: np.ndarray  # the record is served once cutoff > visible_from
    deleted: np.ndarray | None = None  # served while cutoff <= deleted; None: always

    def snapshot(self, cutoff: int) -> pa.Table:
        shown = self.visible_from < cutoff
        if self.deleted is not None:
            shown &= self.deleted >= cutoff
        index = pa.array(np.flatnonzero(shown))
        return pa.Table.from_arrays(
            [self.user_ids.take(index), self.items.take(index),
             _iso(self.created[index.to_numpy()]), _iso(self.updated[index.to_numpy()])],
            schema=SCHEMAS[LISTEN_HISTORY])


@dataclass
class Universe:
    """Every entity and record of the simulated window, with its timeline."""

    users: _Entities
    tracks: _Entities
    listens: _Listens

    def snapshot(self, config: MockConfig) -> Dataset:
        """The state at the end of ``config.effective_as_of``."""
        cutoff = _day_us(config.effective_as_of) + _US_PER_DAY
        tables = {
            USERS: self.users.snapshot(cutoff, SCHEMAS[USERS]),
            TRACKS: self.tracks.snapshot(cutoff, SCHEMAS[TRACKS]),
            LISTEN_HISTORY: self.listens.snapshot(cutoff),
        }
        return Dataset(config, tables)


def _day_us(day: dt.date) -> int:
    return (day - _EPOCH).days * _US_PER_DAY


def _iso(us: np.ndarray) -> pa.Array:
    """Naive ISO 8601 strings with microseconds, as the reference's pydantic sends them."""
    text = pa.array(us, pa.timestamp("us")).cast(pa.string())
    return pc.replace_substring(text, " ", "T", max_replacements=1)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """An independent random stream per component, so changing one size moves nothing else."""
    return np.random.default_rng([seed, *stream])


def _uniform_us(rng: np.random.Generator, lo, hi, n: int) -> np.ndarray:
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    return lo + (rng.random(n) * (hi - lo)).astype(np.int64)


def _log_index(rng: np.random.Generator, n: np.ndarray | int, size: int) -> np.ndarray:
    """Zipf-like ranks in ``0..n-1`` (P(k) roughly proportional to 1/(k+1))."""
    n = np.asarray(n, dtype=np.float64).ravel()
    k = np.floor(np.exp(rng.random(size) * np.log(n + 1.0))).astype(np.int64) - 1
    return np.minimum(k, np.maximum(n.astype(np.int64) - 1, 0))


def _words(values: Sequence[str]) -> pa.Array:
    return pa.array(list(values), pa.string())


def _pick(values: pa.Array, index: np.ndarray) -> pa.Array:
    return values.take(pa.array(index, pa.int64()))


def _join(*parts, sep: str = "") -> pa.Array:
    return pc.binary_join_element_wise(*parts, sep)


def _genre_weights() -> np.ndarray:
    # Mainstream genres dominate a streaming catalogue; niche ones still have artists.
    w = np.array([14, 16, 12, 4, 7, 3, 6, 3, 8, 3, 4, 5, 3, 2, 6, 5, 4], dtype=np.float64)
    return w / w.sum()


def _gender_weights() -> np.ndarray:
    w = np.array([46, 46, 2, 1, 1, 1, 1, 1, 1], dtype=np.float64)
    return w / w.sum()


def _sequential_ids(rng: np.random.Generator, n: int, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Autoincrement ids with ~5% gaps (deleted rows); returns (ids, unused gap ids)."""
    gaps = 1 + (rng.random(n) < 0.05)
    ids = first + np.cumsum(gaps) - 1
    ghosts = ids[gaps == 2] - 1
    if ghosts.size == 0:
        ghosts = ids[-1:] + 1_000_000
    return ids.astype(np.int64), ghosts.astype(np.int64)


def _emails(rng: np.random.Generator, first: pa.Array, last: pa.Array, n: int) -> pa.Array:
    number = _pick(_words(["", *[str(i) for i in range(1, 100)]]),
                   np.where(rng.random(n) < 0.5, 0, rng.integers(1, 100, n)))
    domain = _pick(_words(DOMAINS), rng.integers(0, len(DOMAINS), n))
    sep = _pick(_words(["", ".", "_"]), rng.integers(0, 3, n))
    local = _join(pc.utf8_lower(first), sep, pc.utf8_lower(last), number)
    return pc.replace_substring(_join(local, "@", domain), "'", "")


def _distinct_picks(rng: np.random.Generator, rows: int, n: int, k: int) -> np.ndarray:
    """``rows`` x ``k`` indices in ``0..n-1``, distinct within each row."""
    picks = rng.integers(0, n, (rows, k))
    while True:
        s = np.sort(picks, axis=1)
        dup_rows = np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1))
        if dup_rows.size == 0:
            return picks
        picks[dup_rows] = rng.integers(0, n, (dup_rows.size, k))

"""The served partition of ``consumption.recommendations``, held in compact arrays.

One :class:`BatchStore` is one ``score_date`` partition at one table version.
Rows are sorted by user, then rank, and kept column-wise: ``user_ids``
(sorted, unique), ``offsets`` (user ``i``'s rows are
``offsets[i]:offsets[i + 1]``), then ``track_ids``, ``ranks`` and ``scores``
per row. A lookup is one binary search and a slice, with no Python object per
row: 100,000 users x 10 rows take ~20 MB instead of the ~1 GB a dict of row
objects would.

Columns other than the ones the service knows (for instance a ``route``
column the recommender may add) are kept as Arrow arrays and passed through
into each item of the answer. ``input_versions`` (one JSON string per row,
lineage for auditors) is not served.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from lakehouse import names
from lakehouse.errors import LakeError
from lakehouse.lake import Lake

log = logging.getLogger(__name__)

RANK = "rank"
SCORE = "score"
MODEL_VERSION = "model_version"
# Columns the service reads itself, and the lineage column it does not serve.
KNOWN_COLUMNS = (names.SCORE_DATE, names.USER_ID, RANK, names.TRACK_ID, SCORE, MODEL_VERSION)
NOT_SERVED = ("input_versions",)


@dataclass(frozen=True)  # cached_property needs the instance __dict__: no slots
class BatchStore:
    """One ``score_date`` partition, sorted by user then rank, column-wise.

    Attributes:
        score_date: The partition.
        table_version: The Delta version of ``consumption.recommendations`` it was read at.
        user_ids: Sorted unique user ids, ``int64``.
        offsets: ``len(user_ids) + 1`` row offsets, ``int64``.
        track_ids: One per row, ``int64``.
        ranks: One per row, ``int32``.
        scores: One per row, ``float32``.
        user_model: Per user, an index into ``model_versions``.
        model_versions: The distinct model versions of the partition.
        extras: Other columns of the table, one Arrow array each, in row order.
    """

    score_date: dt.date
    table_version: int
    user_ids: np.ndarray
    offsets: np.ndarray
    track_ids: np.ndarray
    ranks: np.ndarray
    scores: np.ndarray
    user_model: np.ndarray
    model_versions: tuple[str, ...]
    extras: dict[str, pa.Array] = field(default_factory=dict)

    @property
    def users(self) -> int:
        return len(self.user_ids)

    @property
    def rows(self) -> int:
        return len(self.track_ids)

    @functools.cached_property
    def k(self) -> int:
        """The stored k: the most rows any user has."""
        return int(np.diff(self.offsets).max()) if self.users else 0

    @property
    def nbytes(self) -> int:
        arrays = (self.user_ids, self.offsets, self.track_ids, self.ranks, self.scores,
                  self.user_model)
        return sum(a.nbytes for a in arrays) + sum(e.nbytes for e in self.extras.values())

    def find(self, user_id: int) -> int | None:
        """The position of ``user_id`` in :attr:`user_ids`, or None."""
        i = int(np.searchsorted(self.user_ids, user_id))
        if i < len(self.user_ids) and self.user_ids[i] == user_id:
            return i
        return None

    def items(self, position: int, k: int) -> list[dict]:
        """The first ``k`` rows of the user at ``position``, as answer items."""
        start = int(self.offsets[position])
        stop = min(int(self.offsets[position + 1]), start + k)
        out = [{"rank": r, "track_id": t, "score": s} for r, t, s in zip(
            self.ranks[start:stop].tolist(), self.track_ids[start:stop].tolist(),
            self.scores[start:stop].tolist(), strict=True)]
        for name, column in self.extras.items():
            for item, value in zip(out, column[start:stop].to_pylist(), strict=True):
                item[name] = value
        return out

    def model_version(self, position: int) -> str:
        return self.model_versions[int(self.user_model[position])]


def score_dates(lake: Lake) -> list[dt.date]:
    """The ``score_date`` partitions of ``consumption.recommendations``, oldest first."""
    return score_dates_of(lake.delta(names.CONS_RECOMMENDATIONS))


def score_dates_of(delta: DeltaTable) -> list[dt.date]:
    """The ``score_date`` partitions of an open Delta table, oldest first.

    Read from the Delta log's file list: no data file is opened.
    """
    actions = pa.table(delta.get_add_actions(flatten=True))
    column = f"partition.{names.SCORE_DATE}"
    if not actions.num_rows or column not in actions.column_names:
        return []
    values = {v for v in actions.column(column).to_pylist() if v is not None}
    return sorted(v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v))
                  for v in values)


def load_batch(lake: Lake, score_date: dt.date | None = None,
               version: int | None = None) -> BatchStore | None:
    """Read one partition of ``consumption.recommendations`` into a :class:`BatchStore`.

    Args:
        lake: The lake.
        score_date: The partition (default: the newest).
        version: The Delta version to read (default: the current one).

    Returns:
        The store, or None when the table has no such (or no) partition.

    Raises:
        TableNotFoundError: There is no recommendations table.
        LakeError: The partition cannot be read or lacks a needed column.
    """
    delta = lake.delta(names.CONS_RECOMMENDATIONS, version)
    dates = score_dates_of(delta)
    if not dates or (score_date is not None and score_date not in dates):
        return None
    day = score_date or dates[-1]
    dataset = delta.to_pyarrow_dataset()
    missing = [c for c in KNOWN_COLUMNS if c not in dataset.schema.names]
    if missing:
        raise LakeError(f"{names.CONS_RECOMMENDATIONS} lacks column(s) {', '.join(missing)}; "
                        "re-run 'lakehouse recommend'")
    only_day = pc.field(names.SCORE_DATE) == pa.scalar(day, pa.date32())

    def column(name: str) -> pa.ChunkedArray:
        # One column at a time, single-threaded: the peak is one column, not the partition.
        return dataset.to_table(columns=[name], filter=only_day, use_threads=False).column(0)

    extras = [c for c in dataset.schema.names if c not in KNOWN_COLUMNS + NOT_SERVED]
    return to_store(column, extras, day, delta.version())


def to_store(column: Callable[[str], pa.ChunkedArray], extras: list[str], day: dt.date,
             version: int) -> BatchStore:
    """A :class:`BatchStore` from the partition's columns (``column(name)`` reads one)."""
    users = _int64(column(names.USER_ID))
    ranks = _int64(column(RANK))
    # The recommender writes rows by user then rank; sort only when they are not.
    ordered = bool(np.all((users[1:] > users[:-1]) | (
        (users[1:] == users[:-1]) & (ranks[1:] > ranks[:-1])))) if len(users) else True
    order = None if ordered else np.lexsort((ranks, users))

    def rows(values: np.ndarray) -> np.ndarray:
        return values if order is None else values[order]

    users, ranks = rows(users), rows(ranks).astype(np.int32)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else \
        np.empty(0, np.int64)
    models = column(MODEL_VERSION).combine_chunks().dictionary_encode()
    codes = rows(np.asarray(models.indices.to_numpy(zero_copy_only=False), np.int32))
    take = None if order is None else pa.array(order)
    kept = {}
    for name in extras:
        values = column(name).combine_chunks()
        kept[name] = values if take is None else values.take(take)
    return BatchStore(
        score_date=day, table_version=version, user_ids=users[starts].copy(),
        offsets=np.append(starts, len(users)).astype(np.int64),
        track_ids=rows(_int64(column(names.TRACK_ID))), ranks=ranks,
        scores=rows(np.asarray(column(SCORE).to_numpy(), np.float32)),
        user_model=codes[starts].copy(),
        model_versions=tuple(str(v) for v in models.dictionary.to_pylist()), extras=kept)


def _int64(values: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(values.to_numpy(), np.int64)


def a_served_user(lake: Lake) -> int | None:
    """The smallest user id of the newest partition, from the Delta log's statistics.

    For examples ("query this user"); None when nothing is scored yet.
    """
    if not lake.exists(names.CONS_RECOMMENDATIONS):
        return None
    delta = lake.delta(names.CONS_RECOMMENDATIONS)
    dates = score_dates_of(delta)
    actions = pa.table(delta.get_add_actions(flatten=True))
    column = f"min.{names.USER_ID}"
    if not dates or column not in actions.column_names:
        return None
    mine = actions.filter(pc.equal(actions.column(f"partition.{names.SCORE_DATE}"),
                                   pa.scalar(dates[-1], actions.schema.field(
                                       f"partition.{names.SCORE_DATE}").type)))
    value = pc.min(mine.column(column)).as_py()
    return int(value) if value is not None else None

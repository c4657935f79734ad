"""Recommender inputs from the lake, and the time split used to evaluate honestly.

Listens come from ``standardized.listens`` (one row per listen, with its
time), or, if that table is missing, from ``consumption.interactions`` (one
row per user and track, at its first listen). Metadata comes from
``consumption.user_features`` and ``consumption.track_features``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from lakehouse import names
from lakehouse.errors import ModelError
from lakehouse.lake import Lake

log = logging.getLogger(__name__)

# Seed of the random order of listens with the same time (see _per_user_split).
TIE_SEED = 0
# Below this many users with both training and holdout listens, a global time
# cutoff says too little: fall back to holding out each user's latest listens.
MIN_EVAL_USERS = 20


@dataclass
class Inputs:
    """Everything the recommender reads from the lake, as of one date."""

    users: np.ndarray                  # sorted user ids (features or listens)
    items: np.ndarray                  # sorted track ids: the catalogue
    user_meta: dict[int, list[str]]    # user id -> metadata tokens
    item_meta: dict[int, list[str]]
    ev_user: np.ndarray                # one entry per listen: row in `users`
    ev_item: np.ndarray                # column in `items`
    ev_time: np.ndarray                # microseconds since the epoch, UTC
    ev_seq: np.ndarray                 # order within the same time (position)
    lineage: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)


@dataclass
class Split:
    """A train/holdout split of :class:`Inputs` (rows: users, columns: items)."""

    method: str                 # "time_cutoff" or "per_user_latest"
    cutoff: dt.datetime | None  # listens after it are the holdout (time_cutoff only)
    train: sp.csr_matrix        # listen counts before the cutoff
    holdout: sp.csr_matrix      # 1 where a user first listened to a track after it
    # Day of each training pair's last training listen (see :func:`last_days`).
    train_last_day: sp.csr_matrix | None = None

    @property
    def warm_users(self) -> np.ndarray:
        """Rows (users) with at least one training listen."""
        return np.diff(self.train.indptr) > 0

    def eval_users(self, warm: bool) -> np.ndarray:
        """Row indices of users with holdout tracks, warm or cold."""
        has_holdout = np.diff(self.holdout.indptr) > 0
        return np.flatnonzero(has_holdout & (self.warm_users == warm))

    def describe(self) -> dict[str, Any]:
        return {"method": self.method,
                "cutoff": self.cutoff.isoformat() if self.cutoff else None,
                "train_pairs": int(self.train.nnz), "holdout_pairs": int(self.holdout.nnz),
                "train_listens": int(self.train.sum()),
                "eval_users": len(self.eval_users(True)),
                "cold_eval_users": len(self.eval_users(False))}


def user_tokens(table: pa.Table) -> dict[int, list[str]]:
    """Metadata tokens per user from ``consumption.user_features`` rows."""
    cols = [c for c in ("favorite_genre", "gender") if c in table.column_names]
    out: dict[int, list[str]] = {}
    data = {c: table.column(c).to_pylist() for c in cols}
    for r, uid in enumerate(table.column(names.USER_ID).to_pylist()):
        out[uid] = [f"{c}={data[c][r]}" for c in cols if data[c][r] is not None]
    return out


def item_tokens(table: pa.Table) -> dict[int, list[str]]:
    """Metadata tokens per track from ``consumption.track_features`` rows."""
    genres = table.column("genres").to_pylist() if "genres" in table.column_names else None
    cols = [c for c in ("artist", "duration_bucket") if c in table.column_names]
    data = {c: table.column(c).to_pylist() for c in cols}
    out: dict[int, list[str]] = {}
    for r, tid in enumerate(table.column(names.TRACK_ID).to_pylist()):
        tokens = [f"genre={g}" for g in (genres[r] or ()) if g] if genres else []
        tokens += [f"{c}={data[c][r]}" for c in cols if data[c][r] is not None]
        out[tid] = tokens
    return out


def _lineage(lake: Lake, name: str, rows: int, time_col: str | None,
             table: pa.Table | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"version": lake.version(name), "rows": rows}
    if time_col and table is not None and table.num_rows:
        col = table.column(time_col)
        entry["min_time"] = pc.min(col).as_py().isoformat()
        entry["max_time"] = pc.max(col).as_py().isoformat()
    return entry


def load_inputs(lake: Lake, as_of: dt.date | None = None) -> Inputs:
    """Read listens and metadata up to the end of ``as_of`` (UTC; None: everything).

    Raises:
        ModelError: There are no listens to learn from.
    """
    end = (dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
           if as_of else None)
    lineage: dict[str, Any] = {}
    if lake.exists(names.STD_LISTENS):
        t = lake.table(names.STD_LISTENS)
        expr = t.select(names.USER_ID, names.TRACK_ID, "created_at",
                        seq=t.position if "position" in t.columns else ibis.literal(0))
        if end is not None:
            expr = expr.filter(expr.created_at < end)
        listens = expr.to_pyarrow()
        lineage[names.STD_LISTENS] = _lineage(lake, names.STD_LISTENS, listens.num_rows,
                                              "created_at", listens)
    elif lake.exists(names.CONS_INTERACTIONS):
        t = lake.table(names.CONS_INTERACTIONS)
        expr = t.select(names.USER_ID, names.TRACK_ID, created_at=t.first_listen_at,
                        seq=ibis.literal(0))
        if end is not None:
            expr = expr.filter(expr.created_at < end)
        listens = expr.to_pyarrow()
        lineage[names.CONS_INTERACTIONS] = _lineage(
            lake, names.CONS_INTERACTIONS, listens.num_rows, "created_at", listens)
    else:
        raise ModelError(f"no listens in {lake.root}: {names.STD_LISTENS} and "
                         f"{names.CONS_INTERACTIONS} are missing; run 'lakehouse build' first")
    listens = listens.filter(pc.and_(pc.is_valid(listens.column(names.USER_ID)),
                                     pc.is_valid(listens.column(names.TRACK_ID))))
    if listens.num_rows == 0:
        raise ModelError("no listens to train on" + (f" up to {as_of}" if as_of else "")
                         + "; ingest and build some data first")

    feature_users, user_meta, feature_items, item_meta = _load_metadata(lake, lineage)
    lu = np.asarray(listens.column(names.USER_ID).to_numpy(), np.int64)
    li = np.asarray(listens.column(names.TRACK_ID).to_numpy(), np.int64)
    users = np.unique(np.concatenate([feature_users, lu]))
    items = np.unique(np.concatenate([feature_items, li]))
    times = listens.column("created_at").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return Inputs(
        users=users, items=items, user_meta=user_meta, item_meta=item_meta,
        ev_user=np.searchsorted(users, lu), ev_item=np.searchsorted(items, li),
        ev_time=np.asarray(times.to_numpy(zero_copy_only=False), np.int64),
        ev_seq=np.asarray(listens.column("seq").cast(pa.int64()).to_numpy(), np.int64),
        lineage=lineage,
    )


def _load_metadata(lake: Lake, lineage: dict[str, Any]
                   ) -> tuple[np.ndarray, dict[int, list[str]], np.ndarray, dict[int, list[str]]]:
    """User ids and tokens, track ids and tokens (empty when a table is missing)."""
    user_meta: dict[int, list[str]] = {}
    item_meta: dict[int, list[str]] = {}
    feature_users = np.empty(0, np.int64)
    feature_items = np.empty(0, np.int64)
    if lake.exists(names.CONS_USER_FEATURES):
        uf = lake.to_arrow(names.CONS_USER_FEATURES)
        user_meta = user_tokens(uf)
        feature_users = np.asarray(uf.column(names.USER_ID).to_numpy(), np.int64)
        lineage[names.CONS_USER_FEATURES] = _lineage(lake, names.CONS_USER_FEATURES,
                                                     uf.num_rows, "created_at", uf)
    if lake.exists(names.CONS_TRACK_FEATURES):
        tf = lake.to_arrow(names.CONS_TRACK_FEATURES)
        item_meta = item_tokens(tf)
        feature_items = np.asarray(tf.column(names.TRACK_ID).to_numpy(), np.int64)
        lineage[names.CONS_TRACK_FEATURES] = _lineage(lake, names.CONS_TRACK_FEATURES,
                                                      tf.num_rows, None)
    return feature_users, user_meta, feature_items, item_meta


@dataclass
class ScoringInputs:
    """Who to score, over which catalogue, and what each user already heard."""

    users: np.ndarray                  # sorted user ids
    items: np.ndarray                  # sorted track ids
    user_meta: dict[int, list[str]]
    item_meta: dict[int, list[str]]
    seen: sp.csr_matrix                # users x items, 1 where listened
    versions: dict[str, int | None]    # Delta version of each input table
    # users x items: day (since the epoch, fractional) of each pair's last listen.
    last_day: sp.csr_matrix | None = None


def load_scoring_inputs(lake: Lake) -> ScoringInputs:
    """Every known user and track, and every interaction of ``consumption.interactions``.

    The seen mask is the table as built, with no event-time filter: a listen
    the lake knows is never recommended again, whatever its timestamp says
    (a source in another time zone, a backfill scored with an earlier date).

    Raises:
        ModelError: ``consumption.interactions`` is missing.
    """
    if not lake.exists(names.CONS_INTERACTIONS):
        raise ModelError(f"{names.CONS_INTERACTIONS} is missing in {lake.root}; "
                         "run 'lakehouse build' first")
    lineage: dict[str, Any] = {}
    feature_users, user_meta, feature_items, item_meta = _load_metadata(lake, lineage)
    version = lake.version(names.CONS_INTERACTIONS)
    pairs = lake.to_arrow(names.CONS_INTERACTIONS, version=version)
    pairs = pairs.select([c for c in (names.USER_ID, names.TRACK_ID, "last_listen_at")
                          if c in pairs.column_names])
    pairs = pairs.filter(pc.and_(pc.is_valid(pairs.column(names.USER_ID)),
                                 pc.is_valid(pairs.column(names.TRACK_ID))))
    lineage[names.CONS_INTERACTIONS] = {"version": version}
    pu = np.asarray(pairs.column(names.USER_ID).to_numpy(zero_copy_only=False), np.int64)
    pi = np.asarray(pairs.column(names.TRACK_ID).to_numpy(zero_copy_only=False), np.int64)
    users = np.unique(np.concatenate([feature_users, pu]))
    items = np.unique(np.concatenate([feature_items, pi]))
    seen = sp.csr_matrix((np.ones(len(pu), np.float32),
                          (np.searchsorted(users, pu), np.searchsorted(items, pi))),
                         shape=(len(users), len(items)))
    seen.sum_duplicates()
    last_day = None
    if "last_listen_at" in pairs.column_names:
        when = pairs.column("last_listen_at").cast(pa.timestamp("us", tz="UTC")) \
            .cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        # One row per (user, track) in interactions: no duplicates to sum.
        last_day = sp.csr_matrix((when / 86_400e6, (np.searchsorted(users, pu),
                                                    np.searchsorted(items, pi))),
                                 shape=seen.shape)
    return ScoringInputs(users, items, user_meta, item_meta, seen,
                         {name: entry["version"] for name, entry in sorted(lineage.items())},
                         last_day)


def _pairs(inputs: Inputs, mask: np.ndarray) -> sp.csr_matrix:
    shape = (inputs.n_users, inputs.n_items)
    ones = np.ones(int(mask.sum()), np.float32)
    mat = sp.csr_matrix((ones, (inputs.ev_user[mask], inputs.ev_item[mask])), shape=shape)
    mat.sum_duplicates()
    return mat


def last_days(inputs: Inputs, mask: np.ndarray) -> sp.csr_matrix:
    """Per (user, track) the day of its last listen among ``mask``'s (days since the epoch).

    Days are fractional (float64); pairs with no listen in ``mask`` are absent.
    """
    shape = (inputs.n_users, inputs.n_items)
    u, i = inputs.ev_user[mask], inputs.ev_item[mask]
    days = inputs.ev_time[mask] / 86_400e6
    key = u.astype(np.int64) * inputs.n_items + i
    order = np.lexsort((days, key))
    key, days = key[order], days[order]
    last = np.r_[key[1:] != key[:-1], True] if len(key) else np.zeros(0, bool)
    key, days = key[last], days[last]
    return sp.csr_matrix((days, (key // inputs.n_items, key % inputs.n_items)), shape=shape)


def split(inputs: Inputs, holdout_share: float) -> Split:
    """Hold out the most recent listens.

    The cutoff is the time before which ``1 - holdout_share`` of all listens
    happened; nothing after it is used for training. The holdout is each
    user's tracks first listened to after the cutoff (tracks they already had
    before are not "new" and are excluded from ranking anyway). If fewer than
    :data:`MIN_EVAL_USERS` users have listens on both sides, e.g. when all
    listens share a few timestamps, each user's latest ``holdout_share`` of
    distinct tracks (at least one, keeping at least one) is held out instead.

    Raises:
        ModelError: ``holdout_share`` is not strictly between 0 and 1.
    """
    if not 0 < holdout_share < 1:
        raise ModelError(f"holdout share must be between 0 and 1, got {holdout_share}; "
                         "set LAKEHOUSE_HOLDOUT_SHARE e.g. to 0.2")
    times = np.sort(inputs.ev_time)
    cut_at = max(0, min(len(times) - 1, int(np.floor(len(times) * (1 - holdout_share))) - 1))
    cutoff = times[cut_at]
    before = inputs.ev_time <= cutoff
    train = _pairs(inputs, before)
    later = _pairs(inputs, ~before)
    # A track the user already had before the cutoff is not a new discovery.
    holdout = (later - later.multiply(train > 0)).tocsr()
    holdout.eliminate_zeros()
    holdout.data[:] = 1.0
    result = Split("time_cutoff",
                   dt.datetime.fromtimestamp(cutoff / 1e6, dt.UTC), train, holdout,
                   last_days(inputs, before))
    if len(result.eval_users(True)) >= MIN_EVAL_USERS:
        return result
    log.info("time cutoff leaves %d users to evaluate; holding out each user's latest listens",
             len(result.eval_users(True)))
    return _per_user_split(inputs, holdout_share)


def _per_user_split(inputs: Inputs, share: float) -> Split:
    # Listens with the same time have no order: a list's positions are not evidence of
    # when (an export with one timestamp may list a user's items by id or by play count,
    # and holding out the last positions would hold out that ranking's tail), so ties
    # are broken at random, seeded: a time tie's holdout is a random share of it.
    tie = np.random.default_rng(TIE_SEED).random(len(inputs.ev_user))
    order = np.lexsort((tie, inputs.ev_time, inputs.ev_user))
    u, i = inputs.ev_user[order], inputs.ev_item[order]
    # First listen of each (user, track), in time order within each user.
    key = u.astype(np.int64) * inputs.n_items + i
    _, first = np.unique(key, return_index=True)
    first.sort()
    pu, pi = u[first], i[first]
    starts = np.searchsorted(pu, pu, side="left")
    counts = np.bincount(pu, minlength=inputs.n_users)
    rank = np.arange(len(pu)) - starts
    n = counts[pu]
    n_hold = np.where(n >= 2, np.maximum(1, np.floor(share * n)).astype(np.int64), 0)
    held = rank >= n - n_hold
    shape = (inputs.n_users, inputs.n_items)
    held_pairs = sp.csr_matrix((np.ones(int(held.sum()), np.float32), (pu[held], pi[held])),
                               shape=shape)
    all_counts = _pairs(inputs, np.ones(len(inputs.ev_user), bool))
    train = (all_counts - all_counts.multiply(held_pairs > 0)).tocsr()
    train.eliminate_zeros()
    last = last_days(inputs, np.ones(len(inputs.ev_user), bool))
    last = last.multiply(train > 0).tocsr()
    return Split("per_user_latest", None, train, held_pairs.tocsr(), last)

"""Batch scoring: the champion's top-k unseen tracks for every user.

:func:`recommend` writes ``consumption.recommendations``, one partition per
``score_date`` (re-running a date replaces its partition): ``user_id``,
``rank`` (1..k), ``track_id``, ``score``, ``model_version`` and
``input_versions`` (JSON: the Delta version of each input table). Before the
write the rows are checked (:data:`RECOMMENDATIONS_SCHEMA` and
:func:`check_recommendations`): exactly k rows per user (fewer only for a
user who has heard almost the whole catalogue), ranks 1..k, no track the
user already listened to.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

import ibis
import numpy as np
import pandas as pd
import pandera.pandas as pa_schema
import pyarrow as pa

from lakehouse import names
from lakehouse.config import MAX_K, Settings, check_date
from lakehouse.errors import ConfigError, LakehouseError, ValidationError
from lakehouse.lake import Lake
from lakehouse.locking import lake_lock
from lakehouse.recsys.data import ScoringInputs, load_scoring_inputs
from lakehouse.recsys.model import RecModel
from lakehouse.recsys.registry import Registry
from lakehouse.recsys.topk import top_k
from lakehouse.recsys.train import load_model
from lakehouse.runlog import RunRecord, record_run

log = logging.getLogger(__name__)

# Grain: one row per (score_date, user_id, rank).
KEY = (names.SCORE_DATE, names.USER_ID, "rank")

RECOMMENDATIONS_ARROW = pa.schema([
    (names.SCORE_DATE, pa.date32()),
    (names.USER_ID, pa.int64()),
    ("rank", pa.int64()),
    (names.TRACK_ID, pa.int64()),
    ("score", pa.float32()),
    ("model_version", pa.string()),
    ("input_versions", pa.string()),
])

RECOMMENDATIONS_SCHEMA = pa_schema.DataFrameSchema(
    {
        names.USER_ID: pa_schema.Column("int64", nullable=False),
        "rank": pa_schema.Column("int64", pa_schema.Check.ge(1), nullable=False),
        names.TRACK_ID: pa_schema.Column("int64", nullable=False),
        "score": pa_schema.Column("float32", pa_schema.Check(np.isfinite), nullable=False),
        "model_version": pa_schema.Column(str, nullable=False),
        "input_versions": pa_schema.Column(str, nullable=False),
    },
    unique=[names.USER_ID, "rank"],
    strict=False,
    name=names.CONS_RECOMMENDATIONS,
)


def score_users(model: RecModel, inputs: ScoringInputs, k: int,
                chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` unseen catalogue positions and scores for every user in ``inputs``.

    Returns:
        ``(indices into inputs.items, scores)``, ``n_users × k``; -1 / -inf
        pad users with fewer than ``k`` unseen tracks.
    """
    users = model.user_vectors(inputs.users, inputs.user_meta)
    items = model.item_vectors(inputs.items, inputs.item_meta)
    kwargs = {"chunk": chunk} if chunk else {}
    return top_k(users, items, k, seen=inputs.seen, **kwargs)


def check_recommendations(table: pa.Table, k: int, inputs: ScoringInputs) -> None:
    """Check the rows about to be written; raise before anything is written.

    Raises:
        ValidationError: Schema, key, rank, per-user count or seen-track check failed.
    """
    import pandera.errors

    frame = table.drop_columns([names.SCORE_DATE]).to_pandas()
    try:
        RECOMMENDATIONS_SCHEMA.validate(frame, lazy=False)
    except (pandera.errors.SchemaError, pandera.errors.SchemaErrors) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValidationError(f"{names.CONS_RECOMMENDATIONS} failed its schema: {first}") \
            from None
    user = np.searchsorted(inputs.users, frame[names.USER_ID].to_numpy())
    item = np.searchsorted(inputs.items, frame[names.TRACK_ID].to_numpy())
    expected = np.minimum(k, len(inputs.items) - np.diff(inputs.seen.indptr))
    got = np.bincount(user, minlength=len(inputs.users))
    bad = np.flatnonzero(got != expected)
    if len(bad):
        u = int(inputs.users[bad[0]])
        raise ValidationError(f"{names.CONS_RECOMMENDATIONS}: user {u} has {got[bad[0]]} rows, "
                              f"expected {expected[bad[0]]} (k={k}); not written")
    rank = frame["rank"].to_numpy()
    if rank.max(initial=1) > k:
        raise ValidationError(f"{names.CONS_RECOMMENDATIONS}: rank {rank.max()} > k={k}")
    hits = np.asarray(inputs.seen[user, item]).ravel() > 0
    if hits.any():
        i = int(np.flatnonzero(hits)[0])
        raise ValidationError(
            f"{names.CONS_RECOMMENDATIONS}: user {frame[names.USER_ID].iat[i]} is recommended "
            f"track {frame[names.TRACK_ID].iat[i]} they already listened to; not written")


def recommendations_table(inputs: ScoringInputs, idx: np.ndarray, scores: np.ndarray,
                          score_date: dt.date, model_version: str) -> pa.Table:
    """The rows of ``consumption.recommendations`` for one scoring run."""
    n_users, k = idx.shape
    ok = idx.ravel() >= 0
    user_rows = np.repeat(np.arange(n_users), k)[ok]
    ranks = np.tile(np.arange(1, k + 1, dtype=np.int64), n_users)[ok]
    n = int(ok.sum())
    versions = json.dumps(inputs.versions, sort_keys=True)
    return pa.table({
        names.SCORE_DATE: pa.array(np.full(n, score_date), pa.date32()),
        names.USER_ID: pa.array(inputs.users[user_rows], pa.int64()),
        "rank": pa.array(ranks, pa.int64()),
        names.TRACK_ID: pa.array(inputs.items[idx.ravel()[ok]], pa.int64()),
        "score": pa.array(scores.ravel()[ok], pa.float32()),
        "model_version": pa.array([model_version] * n, pa.string()),
        "input_versions": pa.array([versions] * n, pa.string()),
    }, schema=RECOMMENDATIONS_ARROW)


def recommend(settings: Settings, *, k: int | None = None,
              date: dt.date | None = None) -> RunRecord:
    """Score every user with the champion and write their top-k unseen tracks.

    Args:
        settings: The lake and the default ``k``.
        k: Tracks per user (default ``settings.k``).
        date: The ``score_date`` partition to (re)write, and the last day of
            listens taken into account (default: today, UTC).

    Returns:
        The ``meta.runs`` record (pipeline ``recommend``), also appended to
        the run log, success or failure.

    Raises:
        ModelError: No champion, or its artifact fails its checksum.
        ValidationError: The rows failed their checks (nothing is written).
        LockedError: Another scoring run holds the lake's lock.
        LakeError: The lake is missing or not writable.
    """
    k = settings.k if k is None else k
    if not 1 <= k <= MAX_K:
        raise ConfigError(f"k must be from 1 to {MAX_K}, got {k}")
    date = check_date(date or dt.datetime.now(dt.UTC).date(), "score date")
    lake = Lake(settings.lake, create=False)
    # Up front, as ingest and build do: a read-only lake fails here in one line, not
    # in delta-rs (a Rust panic) while recording the failure.
    lake.check_writable()
    record = RunRecord(pipeline="recommend", target=names.CONS_RECOMMENDATIONS, run_date=date)
    try:
        with lake_lock(settings.locks_dir, "recommend", wait=False):
            _recommend(settings, lake, k, date, record)
    except Exception as exc:
        error = str(exc) if isinstance(exc, LakehouseError) else f"{type(exc).__name__}: {exc}"
        record.finish(names.FAILED, error)
        try:
            record_run(lake, record)
        except LakehouseError:
            log.exception("could not record the failed scoring run")
        raise
    return record


def _recommend(settings: Settings, lake: Lake, k: int, date: dt.date,
               record: RunRecord) -> None:
    registry = Registry(settings.models_dir)
    info = registry.get("champion")
    model = load_model(registry, info.version)
    inputs = load_scoring_inputs(lake, date)
    k = max(1, min(k, len(inputs.items)))  # no user can get more tracks than there are
    t0 = time.perf_counter()
    idx, scores = score_users(model, inputs, k)
    seconds = time.perf_counter() - t0
    table = recommendations_table(inputs, idx, scores, date, info.version)
    check_recommendations(table, k, inputs)
    result = lake.write(names.CONS_RECOMMENDATIONS, table, mode="replace_partition",
                        partition={names.SCORE_DATE: date.isoformat()},
                        partition_by=[names.SCORE_DATE],
                        metadata={"run_id": record.run_id, "model_version": info.version})
    cold = int(len(inputs.users) - np.isin(inputs.users, model.user_ids).sum())
    record.rows_in = len(inputs.users)
    record.records = result.rows
    record.table_version = result.version
    record.details = {"model_version": info.version, "k": k, "users": len(inputs.users),
                      "cold_start_users": cold, "tracks": len(inputs.items),
                      "scoring_seconds": round(seconds, 3), "input_versions": inputs.versions}
    record.finish(names.SUCCESS)
    record_run(lake, record)



def user_report(settings: Settings, user_id: int,
                score_date: dt.date | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One user's listening history next to their recommendations, with track details.

    Args:
        settings: Which lake.
        user_id: The user.
        score_date: Which scoring run (default: the latest).

    Returns:
        ``(history, recommendations)``: the tracks they listened to (most
        listened first) and their ranked recommendations, each with the
        track's genres and artist.

    Raises:
        TableNotFoundError: The lake has no recommendations yet.
    """
    lake = Lake(settings.lake, create=False)
    tracks = lake.table(names.CONS_TRACK_FEATURES).select(names.TRACK_ID, "genres", "artist")
    pairs = lake.table(names.CONS_INTERACTIONS)
    history = (pairs.filter(pairs[names.USER_ID] == int(user_id))
               .left_join(tracks, names.TRACK_ID)
               .select(names.TRACK_ID, "listens", "last_listen_at", "genres", "artist")
               .order_by([ibis.desc("listens"), names.TRACK_ID]).to_pandas())
    recs = lake.table(names.CONS_RECOMMENDATIONS)
    mine = recs.filter(recs[names.USER_ID] == int(user_id))
    day = score_date or mine[names.SCORE_DATE].max().to_pyarrow().as_py()
    ranked = (mine.filter(mine[names.SCORE_DATE] == day)
              .left_join(tracks, names.TRACK_ID)
              .select("rank", names.TRACK_ID, "score", "genres", "artist", "model_version")
              .order_by("rank").to_pandas())
    return history, ranked

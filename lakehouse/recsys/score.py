"""Batch scoring: the champion's top-k unseen tracks for every user.

:func:`recommend` writes ``consumption.recommendations``, one partition per
``score_date`` (re-running a date replaces its partition): ``user_id``,
``rank`` (1..k), ``track_id``, ``score``, ``model_version``,
``input_versions`` (JSON: the Delta version of each input table) and
``route``: which model of the served bundle produced the row (``warm:<family>``
for users the model learned from, ``cold:<family>`` for the others, e.g.
``cold:popularity``). Before the write the rows are checked
(:data:`RECOMMENDATIONS_SCHEMA` and :func:`check_recommendations`): exactly k
rows per user (fewer only for a user who has heard almost the whole
catalogue), ranks 1..k, and no track the user already listened to, against
``consumption.interactions`` re-read by the check itself.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse import names
from lakehouse.config import MAX_K, Settings, check_date
from lakehouse.context import RunContext
from lakehouse.errors import ConfigError, ValidationError
from lakehouse.lake import Lake
from lakehouse.monitor.sinks import step_context
from lakehouse.recsys.data import ScoringInputs, load_scoring_inputs
from lakehouse.recsys.families import Routed, TrainData
from lakehouse.recsys.registry import Registry
from lakehouse.recsys.topk import top_k_scores
from lakehouse.runlog import RunRecord
from lakehouse.sqlguard import first_line
from lakehouse.steps import StepRun, run_step
from lakehouse.tablespec import Column, TableSpec

log = logging.getLogger(__name__)

# Grain: one row per (score_date, user_id, rank).
KEY = (names.SCORE_DATE, names.USER_ID, "rank")

RECOMMENDATIONS = TableSpec(names.CONS_RECOMMENDATIONS, (
    Column(names.SCORE_DATE, pa.date32(), partition=True),
    Column(names.USER_ID, pa.int64(), nullable=False),
    Column("rank", pa.int64(), nullable=False, checks=(lambda pdr: pdr.Check.ge(1),)),
    Column(names.TRACK_ID, pa.int64(), nullable=False),
    Column("score", pa.float32(), nullable=False, checks=(lambda pdr: pdr.Check(np.isfinite),)),
    Column("model_version", pa.string(), nullable=False),
    Column("input_versions", pa.string(), nullable=False),
    # Added after the others so readers of the earlier columns are unaffected.
    Column("route", pa.string(), nullable=False,
           checks=(lambda pdr: pdr.Check.str_matches(r"^(warm|cold):"),)),
), unique=(names.USER_ID, "rank"))
RECOMMENDATIONS_ARROW = RECOMMENDATIONS.arrow()
RECOMMENDATIONS_SCHEMA = RECOMMENDATIONS.pandera()


def score_users(model: Routed, inputs: ScoringInputs, k: int, chunk: int | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Top-``k`` unseen catalogue positions and scores for every user in ``inputs``.

    Users the warm model learned from are scored by it; the others by the
    bundle's cold-start model.

    Returns:
        ``(indices into inputs.items, scores, route per user, route names)``;
        the first two are ``n_users × k``, -1 / -inf pad users with fewer
        than ``k`` unseen tracks; a route is an index into the names.
    """
    route, route_names = model.routes(inputs.users, inputs.seen, inputs.items)
    idx = np.full((len(inputs.users), k), -1, np.int64)
    scores = np.full((len(inputs.users), k), -np.inf, np.float32)
    kwargs = {"chunk": chunk} if chunk else {}
    for r, part in enumerate((model.warm, model.cold_model)):
        rows = np.flatnonzero(route == r)
        if not len(rows):
            continue
        seen = inputs.seen[rows]
        part_scores = part.scores(inputs.users[rows], seen, inputs.items, inputs.user_meta,
                                  inputs.item_meta)
        idx[rows], scores[rows] = top_k_scores(part_scores, k, seen=seen, **kwargs)
    return idx, scores, route, route_names


def _interactions(lake: Lake, version: int | None) -> pa.Table:
    table = lake.to_arrow(names.CONS_INTERACTIONS, version=version) \
        .select([names.USER_ID, names.TRACK_ID])
    return table.filter(pc.and_(pc.is_valid(table.column(names.USER_ID)),
                                pc.is_valid(table.column(names.TRACK_ID))))


def check_recommendations(table: pa.Table, k: int, lake: Lake, users: np.ndarray,
                          items: np.ndarray, version: int | None = None) -> None:
    """Check the rows about to be written; raise before anything is written.

    The heard tracks come from ``consumption.interactions`` read here (at
    ``version``, default the latest), not from the mask the scorer used, so
    a wrong mask cannot pass its own check.

    Args:
        table: The rows (:data:`RECOMMENDATIONS_ARROW`).
        k: Rows expected per user.
        lake: The lake whose interactions are the truth.
        users: Every user that must have rows (sorted ids).
        items: The catalogue (sorted track ids).
        version: Delta version of the interactions the scoring read.

    Raises:
        ValidationError: Schema, key, rank, per-user count or seen-track check failed.
    """
    import pandera.errors

    frame = table.drop_columns([names.SCORE_DATE]).to_pandas()
    try:
        RECOMMENDATIONS_SCHEMA.validate(frame, lazy=False)
    except (pandera.errors.SchemaError, pandera.errors.SchemaErrors) as exc:
        first = first_line(exc)
        raise ValidationError(f"{names.CONS_RECOMMENDATIONS} failed its schema: {first}") \
            from None
    heard = _interactions(lake, version)
    in_catalogue = heard.filter(pc.is_in(heard.column(names.TRACK_ID), pa.array(items)))
    heard_counts = np.bincount(
        np.searchsorted(users, in_catalogue.column(names.USER_ID).to_numpy()),
        minlength=len(users) + 1)[:len(users)]
    expected = np.minimum(k, len(items) - heard_counts)
    user = np.searchsorted(users, frame[names.USER_ID].to_numpy())
    got = np.bincount(user, minlength=len(users))
    bad = np.flatnonzero(got != expected)
    if len(bad):
        u = int(users[bad[0]])
        raise ValidationError(f"{names.CONS_RECOMMENDATIONS}: user {u} has {got[bad[0]]} rows, "
                              f"expected {expected[bad[0]]} (k={k}); not written")
    rank = frame["rank"].to_numpy()
    if rank.max(initial=1) > k:
        raise ValidationError(f"{names.CONS_RECOMMENDATIONS}: rank {rank.max()} > k={k}")
    both = table.select([names.USER_ID, names.TRACK_ID]).join(
        heard.group_by([names.USER_ID, names.TRACK_ID]).aggregate([]),
        keys=[names.USER_ID, names.TRACK_ID], join_type="inner")
    if both.num_rows:
        row = both.slice(0, 1).to_pylist()[0]
        raise ValidationError(
            f"{names.CONS_RECOMMENDATIONS}: user {row[names.USER_ID]} is recommended "
            f"track {row[names.TRACK_ID]} they already listened to; not written")


def recommendations_table(inputs: ScoringInputs, idx: np.ndarray, scores: np.ndarray,
                          score_date: dt.date, model_version: str,
                          route: np.ndarray | None = None,
                          route_names: list[str] | None = None) -> pa.Table:
    """The rows of ``consumption.recommendations`` for one scoring run."""
    n_users, k = idx.shape
    ok = idx.ravel() >= 0
    user_rows = np.repeat(np.arange(n_users), k)[ok]
    ranks = np.tile(np.arange(1, k + 1, dtype=np.int64), n_users)[ok]
    n = int(ok.sum())
    versions = json.dumps(inputs.versions, sort_keys=True)
    route = np.zeros(n_users, np.int64) if route is None else route
    route_names = route_names or ["warm:unknown"]
    routes = pa.DictionaryArray.from_arrays(pa.array(route[user_rows], pa.int32()),
                                            pa.array(route_names, pa.string()))
    return pa.table({
        names.SCORE_DATE: pa.array(np.full(n, score_date), pa.date32()),
        names.USER_ID: pa.array(inputs.users[user_rows], pa.int64()),
        "rank": pa.array(ranks, pa.int64()),
        names.TRACK_ID: pa.array(inputs.items[idx.ravel()[ok]], pa.int64()),
        "score": pa.array(scores.ravel()[ok], pa.float32()),
        "model_version": pa.array([model_version] * n, pa.string()),
        "input_versions": pa.array([versions] * n, pa.string()),
        "route": routes.cast(pa.string()),
    }, schema=RECOMMENDATIONS_ARROW)


def recommend(target: RunContext | Settings | None = None, *, k: int | None = None,
              date: dt.date | str | None = None, wait: bool | None = None) -> RunRecord:
    """Score every user with the champion and write their top-k unseen tracks.

    A pipeline step (:func:`lakehouse.steps.run_step`): takes the lake's
    ``recommend`` lock, records the run (failed ones too) and alerts.

    Args:
        target: The run context, or settings (the lake and the default ``k``).
        k: Tracks per user (default ``settings.k``).
        date: The ``score_date`` partition to (re)write, and the last day of
            listens taken into account (default: the context's date, today
            UTC for settings).
        wait: Wait for another scoring run holding the lock (default: the
            context's policy); False: raise at once.

    Returns:
        The ``meta.runs`` record (pipeline ``recommend``), also appended to
        the run log, success or failure.

    Raises:
        ModelError: No champion, or its artifact fails its checksum.
        ValidationError: The rows failed their checks (nothing is written).
        LockedError: Another scoring run holds the lake's lock.
        LakeError: The lake is missing or not writable.
    """
    ctx = step_context(target, date=date, wait=wait)
    k = ctx.settings.k if k is None else k
    if not 1 <= k <= MAX_K:
        raise ConfigError(f"k must be from 1 to {MAX_K}, got {k}")
    check_date(ctx.date, "score date")

    def body(run: StepRun) -> RunRecord:
        record = run.start(names.CONS_RECOMMENDATIONS)
        _recommend(ctx.settings, run.lake, k, run.date, record)
        return record

    return run_step(ctx, names.RECOMMEND, body)


def _recommend(settings: Settings, lake: Lake, k: int, date: dt.date,
               record: RunRecord) -> None:
    registry = Registry(settings.models_dir)
    info = registry.get(names.CHAMPION)
    inputs = load_scoring_inputs(lake)
    model, refreshed = registry.load_bundle(info.version).refreshed(TrainData(
        inputs.users, inputs.items, inputs.user_meta, inputs.item_meta, inputs.seen,
        inputs.last_day))
    k = max(1, min(k, len(inputs.items)))  # no user can get more tracks than there are
    t0 = time.perf_counter()
    idx, scores, route, route_names = score_users(model, inputs, k)
    seconds = time.perf_counter() - t0
    table = recommendations_table(inputs, idx, scores, date, info.version, route, route_names)
    check_recommendations(table, k, lake, inputs.users, inputs.items,
                          inputs.versions.get(names.CONS_INTERACTIONS))
    result = lake.write(names.CONS_RECOMMENDATIONS, table, mode="replace_partition",
                        partition={names.SCORE_DATE: date.isoformat()},
                        partition_by=[names.SCORE_DATE],
                        metadata={"run_id": record.run_id, "model_version": info.version})
    per_route = np.bincount(route, minlength=len(route_names))
    record.rows_in = len(inputs.users)
    record.records = result.rows
    record.table_version = result.version
    record.details = {"model_version": info.version, "k": k, "users": len(inputs.users),
                      "cold_start_users": int(per_route[1]), "tracks": len(inputs.items),
                      "routes": {n: int(c) for n, c in zip(route_names, per_route, strict=True)},
                      "scoring_seconds": round(seconds, 3), "input_versions": inputs.versions,
                      "refreshed_on_scoring_day": refreshed}
    record.finish(names.SUCCESS)


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

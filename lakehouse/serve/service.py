"""The recommendation service: what is served now, how it reloads, what it answers.

A :class:`Service` holds one immutable :class:`Snapshot` (the served batch
partition, the popularity ranking, the champion's cold-start scorer) and
replaces it whole when something it was built from changes, so a request
sees one consistent state without taking a lock. :meth:`Service.refresh`
is cheap when nothing changed: it compares the ``_delta_log`` folder's
modification time with the last one seen (and re-reads the Delta version only
when it moved, or every :data:`FULL_CHECK_SECONDS` in case the file system's
clock is coarse), and re-reads the registry's small alias file. A new version
that fails to load is logged once; the previous one keeps serving and
``/health`` shows the error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.errors import KLimitError, LakeError, NothingToServeError, NotServedError
from lakehouse.lake import Lake, utc_now
from lakehouse.serve import worker
from lakehouse.serve.coldstart import CHAMPION, POPULARITY, ColdStartLists, Ranked, load_popularity
from lakehouse.serve.store import BatchStore, load_batch, score_dates
from lakehouse.sqlguard import first_line

log = logging.getLogger(__name__)

FULL_CHECK_SECONDS = 30.0
HEALTH_SECONDS = 60.0
# A part that failed to load is not retried with the same inputs sooner than this.
RETRY_SECONDS = 60.0
OTHER_DATES_KEPT = 3
# The key of /health's reload_errors for a reload check that failed as a whole.
RELOAD_CHECK = "reload check"
BATCH, COLD_START = "batch", "cold_start"


@dataclass(frozen=True)
class Snapshot:
    """Everything one request is answered from; replaced whole, never changed."""

    batch: BatchStore | None = None
    recs_version: int | None = None
    dates: tuple[dt.date, ...] = ()
    popularity: Ranked | None = None
    interactions_version: int | None = None
    champion: ColdStartLists | None = None
    champion_key: tuple[str | None, int | None] = (None, None)
    loaded_at: dt.datetime | None = None


@dataclass(frozen=True)
class Freshness:
    """The staleness verdict of :func:`lakehouse.monitor.status.status` for serving."""

    stale: bool | None
    healthy: bool | None
    problems: list[str] = field(default_factory=list)
    checked_at: dt.datetime | None = None


def freshness(settings: Settings) -> Freshness:
    """Whether the lake's data is stale, by the rules of ``lakehouse status``.

    Computed in a child process (:mod:`lakehouse.serve.worker`), so the
    server never imports the analytical stack nor holds the GIL for it.

    Raises:
        LakehouseError: The check failed.
    """
    answer = worker.call(settings, "freshness")
    checked = answer.get("checked_at")
    return Freshness(stale=answer["stale"], healthy=answer["healthy"],
                     problems=list(answer["problems"]),
                     checked_at=dt.datetime.fromisoformat(checked) if checked else None)


def _release_memory() -> None:
    """Give the previous snapshot's and the load's freed memory back to the system."""
    import ctypes

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: it keeps it, no harm
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class Service:
    """Answers recommendation requests from the lake, reloading as it changes.

    Args:
        settings: The lake, the models folder, ``stale_hours`` and
            ``serve_reload_seconds`` (how often to look for a new version).
        health_seconds: How often to re-judge staleness (a child process each time).

    Raises:
        LakeError: There is no lake at ``settings.lake``.
    """

    def __init__(self, settings: Settings, *, health_seconds: float = HEALTH_SECONDS):
        self.settings = settings
        self.lake = Lake(settings.lake, create=False)
        self.reload_seconds = float(settings.serve_reload_seconds)
        self.health_seconds = health_seconds
        self._snap = Snapshot()
        self._stamps: dict[str, tuple[int, float, int | None]] = {}
        self._errors: dict[str, str] = {}
        self._failed: dict[str, tuple[object, float]] = {}
        self._freshness = Freshness(stale=None, healthy=None)
        self._dates: OrderedDict[tuple[int | None, dt.date], BatchStore] = OrderedDict()
        self._dates_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def snapshot(self) -> Snapshot:
        """What is served now."""
        return self._snap

    @property
    def reload_errors(self) -> dict[str, str]:
        """What failed to load at the last attempt, by part (empty when all loaded)."""
        return dict(self._errors)

    # ------------------------------------------------------------- reloading
    def start(self) -> None:
        """Load what there is, then keep reloading and re-judging freshness in the background."""
        self.refresh()
        for target, name in ((self._reload_loop, "reload"), (self._freshness_loop, "health")):
            thread = threading.Thread(target=target, name=f"lakehouse-serve-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the background threads."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _reload_loop(self) -> None:
        while not self._stop.wait(self.reload_seconds):
            self.refresh()

    def _freshness_loop(self) -> None:
        while True:
            self.check_freshness()
            if self._stop.wait(self.health_seconds):
                return

    def refresh(self) -> bool:
        """Load whatever changed since the last call; never raises.

        Returns:
            Whether the served snapshot was replaced.
        """
        with self._refresh_lock:
            try:
                changed = self._refresh()
            except Exception as exc:  # noqa: BLE001 - the previous snapshot keeps serving
                # A bug, not a damaged table (see _version): its traceback once, then the
                # line in /health, not a traceback at every check (issue 21).
                message = f"reload check failed: {first_line(exc)}"
                if self._errors.get(RELOAD_CHECK) != message:
                    log.exception("%s; still serving what was loaded", message)
                self._errors[RELOAD_CHECK] = message
                changed = False
            else:
                self._errors.pop(RELOAD_CHECK, None)
            if changed:
                _release_memory()
            return changed

    def _refresh(self) -> bool:
        snap, new = self._snap, {}
        recs = self._version(names.CONS_RECOMMENDATIONS)
        if recs != snap.recs_version:
            loaded = self._attempt("recommendations", recs, lambda: (
                load_batch(self.lake, version=recs), tuple(score_dates(self.lake)))) \
                if recs is not None else (None, ())
            if loaded is not None:
                batch, dates = loaded
                new.update(batch=batch, recs_version=recs, dates=dates)
                log.info("serving %s version %s: score_date %s, %d users, k=%d",
                         names.CONS_RECOMMENDATIONS, recs, batch and batch.score_date,
                         batch.users if batch else 0, batch.k if batch else 0)
        pairs = self._version(names.CONS_INTERACTIONS)
        if pairs != snap.interactions_version:
            loaded = self._attempt("popularity", pairs,
                                   lambda: (load_popularity(self.lake, pairs),)) \
                if pairs is not None else (None,)
            if loaded is not None:
                new.update(popularity=loaded[0], interactions_version=pairs)
        key = (self._champion_version(), self._version(names.CONS_TRACK_FEATURES))
        if key != snap.champion_key:
            loaded = self._attempt(names.CHAMPION, key, lambda: (ColdStartLists(
                worker.call(self.settings, "cold-start", key[0])),)) \
                if key[0] is not None else (None,)
            if loaded is not None:
                new.update(champion=loaded[0], champion_key=key)
                if loaded[0] is not None:
                    log.info("cold start: champion %s, %d feature combinations over %s",
                             key[0], len(loaded[0]), ", ".join(loaded[0].features) or "none")
        if not new:
            return False
        self._snap = dataclasses.replace(snap, **new, loaded_at=utc_now())
        return True

    def _attempt(self, part: str, key: object, load: Callable[[], tuple]) -> tuple | None:
        """``load()``, or None after logging its failure.

        A failure is logged once per part and error; the same ``key`` (table
        version, model version) is not tried again for :data:`RETRY_SECONDS`.
        """
        failed = self._failed.get(part)
        if failed and failed[0] == key and time.monotonic() - failed[1] < RETRY_SECONDS:
            return None
        try:
            result = load()
        except Exception as exc:  # noqa: BLE001 - keep serving the previous version
            what = f"version {key}" if not isinstance(key, tuple) else f"{key[0]}"
            message = f"cannot load {part} at {what}: {exc}"
            if self._errors.get(part) != message:
                log.error("%s; still serving the previous one", message)
            self._errors[part] = message
            self._failed[part] = (key, time.monotonic())
            return None
        self._errors.pop(part, None)
        self._failed.pop(part, None)
        return result

    def _version(self, name: str) -> int | None:
        """The table's Delta version, re-read only when its log folder changed.

        A log that does not read (torn, garbled) is logged once and shown in
        ``/health`` under the table's name until it reads again; meanwhile the
        version last seen is returned, so what was loaded keeps serving.
        """
        try:
            mtime = (self.lake.path(name) / "_delta_log").stat().st_mtime_ns
        except FileNotFoundError:
            return None
        now = time.monotonic()
        seen = self._stamps.get(name)
        if seen and seen[0] == mtime and now - seen[1] < FULL_CHECK_SECONDS:
            return seen[2]
        try:
            version = self.lake.version(name)
        except LakeError as exc:
            message = f"cannot read the Delta log of {name}: {first_line(exc)}"
            if self._errors.get(name) != message:
                log.error("%s; still serving what was loaded", message)
            self._errors[name] = message
            # Not stamped: the next check reads the log again (a repair shows at once).
            return seen[2] if seen else self._served_version(name)
        self._errors.pop(name, None)
        self._stamps[name] = (mtime, now, version)
        return version

    def _served_version(self, name: str) -> int | None:
        snap = self._snap
        return {names.CONS_RECOMMENDATIONS: snap.recs_version,
                names.CONS_INTERACTIONS: snap.interactions_version}.get(
            name, snap.champion_key[1] if name == names.CONS_TRACK_FEATURES else None)

    def _champion_version(self) -> str | None:
        try:
            from lakehouse.recsys.registry import Registry

            return Registry(self.settings.models_dir).alias(names.CHAMPION)
        except Exception as exc:  # noqa: BLE001 - a damaged registry: popularity serves
            log.warning("cannot read the champion alias: %s", exc)
            return self._snap.champion_key[0]

    def check_freshness(self) -> None:
        """Re-judge whether the lake's data is stale (what ``/health`` reports)."""
        try:
            self._freshness = freshness(self.settings)
        except Exception as exc:  # noqa: BLE001 - unknown freshness, not a crash
            log.warning("cannot judge freshness: %s", exc)
            self._freshness = Freshness(stale=None, healthy=None, problems=[str(exc)])

    # -------------------------------------------------------------- answers
    def needs_io(self, score_date: dt.date | None) -> bool:
        """Whether answering for ``score_date`` may read the lake (an older partition)."""
        batch = self._snap.batch
        return score_date is not None and batch is not None and score_date != batch.score_date

    def recommend(self, user_id: int, k: int | None = None, score_date: dt.date | None = None,
                  features: Mapping[str, str | None] | None = None) -> dict[str, Any]:
        """The answer for one user: their stored rows, or a cold-start ranking.

        Args:
            user_id: The user.
            k: How many tracks (default: the stored k).
            score_date: Which partition (default: the newest).
            features: User features for the champion's cold-start route.

        Raises:
            NothingToServeError: No recommendations loaded (or no way to rank
                for an unknown user).
            NotServedError: No partition for ``score_date``.
            KLimitError: ``k`` is larger than the stored k.
        """
        snap = self._snap
        batch = self._batch(snap, score_date)
        limit = batch.k
        k = limit if k is None else k
        if k > limit:
            raise KLimitError(f"k={k} is more than the {limit} tracks stored per user", limit)
        answer: dict[str, Any] = {"user_id": user_id, "score_date": batch.score_date.isoformat()}
        position = batch.find(user_id)
        if position is not None:
            answer.update(model_version=batch.model_version(position), source=BATCH,
                          cold_start_route=None, items=batch.items(position, k))
            return answer
        ranked, route, version = None, POPULARITY, None
        if snap.champion is not None and features:
            ranked = snap.champion.rank(features)
            route, version = CHAMPION, snap.champion.version
        if ranked is None:
            ranked, route, version = snap.popularity, POPULARITY, None
        if ranked is None:
            raise NothingToServeError(f"user {user_id} is unknown and there are no listens to "
                                      "rank popular tracks by; run 'lakehouse build'")
        answer.update(model_version=version, source=COLD_START, cold_start_route=route,
                      items=ranked.items(k))
        return answer

    def _batch(self, snap: Snapshot, score_date: dt.date | None) -> BatchStore:
        if snap.batch is None:
            raise NothingToServeError(
                f"no recommendations to serve in {self.lake.root}: run 'lakehouse recommend'")
        if score_date is None or score_date == snap.batch.score_date:
            return snap.batch
        if score_date not in snap.dates:
            shown = ", ".join(d.isoformat() for d in snap.dates[-5:])
            raise NotServedError(f"no recommendations for score_date {score_date}; "
                                 f"latest dates: {shown}")
        key = (snap.recs_version, score_date)
        with self._dates_lock:
            if key in self._dates:
                self._dates.move_to_end(key)
                return self._dates[key]
        batch = load_batch(self.lake, score_date, version=snap.recs_version)
        if batch is None:
            raise NotServedError(f"no recommendations for score_date {score_date}")
        with self._dates_lock:
            self._dates[key] = batch
            while len(self._dates) > OTHER_DATES_KEPT:
                self._dates.popitem(last=False)
        return batch

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``(can serve, body)`` for ``/health``."""
        snap, fresh = self._snap, self._freshness
        batch = snap.batch
        status = "unavailable" if batch is None else "stale" if fresh.stale else "ok"
        cold = ([CHAMPION] if snap.champion is not None and snap.champion.features else []) \
            + ([POPULARITY] if snap.popularity is not None else [])
        return batch is not None, {
            "status": status,
            names.CHAMPION: snap.champion_key[0],
            "score_date": batch.score_date.isoformat() if batch else None,
            "table_version": batch.table_version if batch else None,
            "users": batch.users if batch else 0,
            "k": batch.k if batch else 0,
            "stale": fresh.stale,
            "problems": fresh.problems,
            "checked_at": fresh.checked_at.isoformat() if fresh.checked_at else None,
            "cold_start_routes": cold,
            "cold_start_features": list(snap.champion.features) if snap.champion else [],
            "loaded_at": snap.loaded_at.isoformat() if snap.loaded_at else None,
            "reload_errors": self.reload_errors,
        }

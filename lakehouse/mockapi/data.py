"""Seeded, simulated MooVitamix data: what the bundled mock API serves.

The data set is a pure function of :class:`MockConfig` (seed, sizes, profile, window and
"as of" date): the same arguments give the same bytes. Generation is vectorized with numpy
and pyarrow, so 100,000 users, 50,000 tracks and 1,000,000 listen records take seconds.

Simulated days
    One fixed universe is generated for the window ``start .. end`` (``days`` days). The
    state served "as of" a date D holds the users and tracks created up to the end of D (in
    their latest version whose ``updated_at`` is up to the end of D) and the listen records
    whose session ended (``updated_at``) by the end of D. Ids are stable: D's ids are a subset
    of D+1's, and some users and tracks change between D and D+1. ``users`` and ``tracks``
    are the counts at the end of the window. Collections are ordered by creation time, so a
    new day appends at the end of each collection (records are offset-paginated).

The profiles live in :mod:`~lakehouse.mockapi.realistic`,
:mod:`~lakehouse.mockapi.reference` and :mod:`~lakehouse.mockapi.opaque`; the
simulated timeline they share in :mod:`~lakehouse.mockapi.universe`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from dataclasses import dataclass

import numpy as np

from lakehouse.config import parse_date
from lakehouse.errors import ConfigError
from lakehouse.mockapi.opaque import _opaque_universe
from lakehouse.mockapi.realistic import _realistic_universe
from lakehouse.mockapi.reference import _reference_universe
from lakehouse.mockapi.universe import (  # noqa: F401 - SCHEMAS, Dataset re-exported
    _US_PER_DAY,
    SCHEMAS,
    Dataset,
    Universe,
    _day_us,
    _rng,
)
from lakehouse.names import ENDPOINTS, GENRES

PROFILES = ("realistic", "reference", "opaque")


FAULT_KINDS = ("429", "500", "503", "reset", "slow", "truncated", "drift")


DEFAULT_START = dt.date(2026, 10, 1)


@dataclass(frozen=True)
class MockConfig:
    """Everything that determines what the mock API serves, and how it misbehaves.

    Attributes:
        seed: Seed of the whole data set and of the fault schedule.
        profile: ``"realistic"`` (learnable taste, defects) or ``"reference"`` (the
            reference server's distributions).
        users: Number of users at the end of the window.
        tracks: Number of tracks at the end of the window.
        listens: Number of listen records (sessions) at the end of the window, defects
            included; ignored by the reference profile (one record per user).
        start: First simulated day.
        days: Length of the simulated window in days.
        as_of: The day whose state is served; None serves the last day (``end``).
        fault_rate: Share of requests to the three endpoints that fail (0..1).
        faults: Fault kinds drawn from (see ``FAULT_KINDS``); empty means all kinds.
        fail_endpoint: An endpoint that fails every request with a 500.
        slow_seconds: Delay of a ``slow`` response; make it exceed the client's read timeout.
        retry_after: ``Retry-After`` seconds sent with 429 and 503 answers.
        deletions: Share (0..1) of users, tracks and listen records deleted at a random
            time between their appearance and the window end (0: nothing is ever deleted).
    """

    seed: int = 42
    profile: str = "realistic"
    users: int = 2000
    tracks: int = 3000
    listens: int = 20000
    start: dt.date = DEFAULT_START
    days: int = 30
    as_of: dt.date | None = None
    fault_rate: float = 0.0
    faults: tuple[str, ...] = ()
    fail_endpoint: str | None = None
    slow_seconds: float = 3.0
    retry_after: int = 1
    deletions: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.faults, str):
            object.__setattr__(self, "faults", tuple(f for f in self.faults.split(",") if f))
        else:
            object.__setattr__(self, "faults", tuple(str(f) for f in self.faults))
        if isinstance(self.start, str):
            object.__setattr__(self, "start", parse_date(self.start, "mock start"))
        if isinstance(self.as_of, str):
            object.__setattr__(self, "as_of", parse_date(self.as_of, "mock as_of"))
        if self.profile not in PROFILES:
            raise ConfigError(f"unknown mock profile {self.profile!r}; use one of "
                              f"{', '.join(PROFILES)}")
        min_tracks = 5 if self.profile == "reference" else len(GENRES)
        for name, value, low in (("users", self.users, 1), ("tracks", self.tracks, min_tracks),
                                 ("listens", self.listens, 0), ("days", self.days, 1)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"mock {name} must be an integer >= {low}, got {value!r}")
        if not 0.0 <= self.deletions <= 1.0:
            raise ConfigError(f"mock deletions must be between 0 and 1, got {self.deletions}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ConfigError(f"fault rate must be between 0 and 1, got {self.fault_rate}")
        unknown = [f for f in self.faults if f not in FAULT_KINDS]
        if unknown:
            raise ConfigError(f"unknown fault kind(s) {', '.join(unknown)}; use some of "
                              f"{','.join(FAULT_KINDS)}")
        if self.fail_endpoint is not None and self.fail_endpoint not in ENDPOINTS:
            raise ConfigError(f"unknown endpoint {self.fail_endpoint!r} to fail; use one of "
                              f"{', '.join(ENDPOINTS)}")
        if self.slow_seconds < 0 or self.retry_after < 0:
            raise ConfigError("slow seconds and retry-after must not be negative")

    @property
    def end(self) -> dt.date:
        """The last simulated day of the window."""
        return self.start + dt.timedelta(days=self.days - 1)

    @property
    def effective_as_of(self) -> dt.date:
        """The day whose state is served (``as_of``, or ``end`` when it is None)."""
        return self.as_of if self.as_of is not None else self.end

    @property
    def fault_kinds(self) -> tuple[str, ...]:
        """The fault kinds in use: the configured ones, or all of them."""
        return self.faults or FAULT_KINDS

    def replace(self, **changes) -> MockConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def generate(config: MockConfig) -> Dataset:
    """The data set served for ``config`` as of ``config.effective_as_of``.

    Args:
        config: Seed, sizes, profile, window and as-of date (fault settings are ignored).

    Returns:
        The state of the three endpoints at the end of the as-of day.
    """
    return universe(config).snapshot(config)


def universe(config: MockConfig) -> Universe:
    """The whole simulated window for ``config`` (cached: switching days is cheap)."""
    key = dataclasses.replace(config, as_of=None, fault_rate=0.0, faults=(), fail_endpoint=None,
                              slow_seconds=0.0, retry_after=0)
    return _universe(key)


@functools.lru_cache(maxsize=1)
def _universe(key: MockConfig) -> Universe:
    if key.profile == "reference":
        made = _reference_universe(key)
    elif key.profile == "opaque":
        made = _opaque_universe(key)
    else:
        made = _realistic_universe(key)
    if key.deletions:
        _delete_some(made, key)
    return made


def _delete_some(made: Universe, cfg: MockConfig) -> None:
    """Delete ``cfg.deletions`` of each collection at a random time after it appears."""
    rng = _rng(cfg.seed, 99)
    end = _day_us(cfg.end) + _US_PER_DAY
    for appears, target in ((made.users.created, made.users), (made.tracks.created, made.tracks),
                            (made.listens.visible_from, made.listens)):
        lo = np.maximum(appears, _day_us(cfg.start))
        when = lo + (rng.random(appears.size) * np.maximum(end - lo, 0)).astype(np.int64)
        target.deleted = np.where(rng.random(appears.size) < cfg.deletions, when,
                                  np.iinfo(np.int64).max)

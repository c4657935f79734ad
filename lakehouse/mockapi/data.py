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

Profile ``realistic`` (default)
    About 75% of the users exist before the window, the rest sign up during it; 90% of the
    tracks are older than the listening history, the rest are released during it. Artists
    have a home genre (one of the contract's 17) and Zipf-like popularity; a track has its
    artist's genre, sometimes a second one (``genres`` is then ``"Rock, Indie"``, joined by
    ``", "``), an album of its artist and a duration around 3.5 minutes. A user has a
    favourite genre (``favorite_genres``, the stated one matches their listening for 90% of
    users), two favourite artists in it, one in another genre, and a few personal favourite
    tracks. ``listens`` is the number of listen records: one per listening session, over the
    60 days before the window and the window itself, several per user (activity is
    log-normal), each with 1..30 track ids. A listened track is drawn from the user's
    favourite artists (45%), personal favourites (20%, so tracks repeat across sessions),
    favourite genre (27%, Zipf-like within the genre), global hits (5%) or anywhere (3%).
    (Tuned so that LightFM, WARP, 64 components, 30 epochs, beats popularity by ~3x in
    precision@10 on a time-based 80/20 holdout of the default data, seen tracks masked.)
    About 30% of users and tracks get one update (users: email, sometimes last name or
    favourite genre; tracks: a second genre or a deluxe album), spread over the 30 days
    before the window and the window itself.

    Realistic defects, by design (shares of the full universe, approximate):

    ============================================  =======
    listen track id that is not a track (orphan)  0.5% of track ids in ``items``
    listen ``user_id`` that is not a user         0.2% of records
    exact duplicate listen record                 0.3% of records
    ``items`` null                                0.2% of records
    ``user_id`` null                              0.05% of records
    user ``updated_at`` earlier than created_at   1% of users
    track ``updated_at`` earlier than created_at  1% of tracks
    ============================================  =======

    Emails are not unique (names repeat). Unknown ids are ids left free by deleted accounts
    or tracks (gaps in the id sequence), so they never become valid later.

Profile ``reference``
    Reproduces the reference server's distributions relative to its "now" (the window
    end): ids unique in 1..100000 (1..10*n above that), ``created_at`` uniform over the last
    two years, ``updated_at`` drawn independently over the last year (so it can be earlier
    than ``created_at``), track ``name``/``genres``/``album`` single random English words,
    favourite genre and gender uniform, and exactly one listen record per user (in user
    order) with 5 distinct track ids of the whole catalogue; its ``created_at`` is uniform
    over the two years and ``updated_at`` between it and "now". ``listens`` is ignored. A
    user (and their record) or track appears once its ``created_at`` is reached; the record
    and entity timestamps are the reference's, so before the window end some lie after D,
    and a record may name a track not created yet.

Profile ``opaque``
    The realistic profile's users, tracks, sessions, timeline and defects, but taste that
    metadata does not reveal: every track belongs to one of a few dozen hidden taste
    clusters (latent factors, one-hot), drawn independently of its artist, genres, album
    and duration, with its own Zipf-like popularity; every user likes three hidden clusters
    (weights 0.6/0.3/0.1) drawn independently of their gender and stated favourite genre.
    A listened track comes from the user's clusters (55%, Zipf-like within a cluster), a
    few personal favourites from them (20%), hidden-popularity hits (15%) or anywhere
    (10%). Collaborative filtering can learn it; metadata only adds noise, which is what
    model selection must notice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.config import parse_date
from lakehouse.errors import ConfigError
from lakehouse.names import ENDPOINTS, GENDERS, GENRES, LISTEN_HISTORY, TRACKS, USERS

PROFILES = ("realistic", "reference", "opaque")
FAULT_KINDS = ("429", "500", "503", "reset", "slow", "truncated", "drift")

DEFAULT_START = dt.date(2026, 10, 1)

# Where a listened track comes from: favourite artists, personal favourites, favourite genre,
# global hits, anywhere.
LISTEN_MIX = (0.45, 0.20, 0.27, 0.05, 0.03)

_US_PER_DAY = 86_400_000_000
_EPOCH = dt.date(1970, 1, 1)

# Arrow schemas of the contract's items (timestamps as the ISO strings the API sends).
SCHEMAS: dict[str, pa.Schema] = {
    USERS: pa.schema([
        ("id", pa.int64()), ("first_name", pa.string()), ("last_name", pa.string()),
        ("email", pa.string()), ("gender", pa.string()), ("favorite_genres", pa.string()),
        ("created_at", pa.string()), ("updated_at", pa.string()),
    ]),
    TRACKS: pa.schema([
        ("id", pa.int64()), ("name", pa.string()), ("artist", pa.string()),
        ("songwriters", pa.string()), ("duration", pa.string()), ("genres", pa.string()),
        ("album", pa.string()), ("created_at", pa.string()), ("updated_at", pa.string()),
    ]),
    LISTEN_HISTORY: pa.schema([
        pa.field("user_id", pa.int64(), nullable=True),
        pa.field("items", pa.list_(pa.int64()), nullable=True),
        ("created_at", pa.string()), ("updated_at", pa.string()),
    ]),
}


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


# ---------------------------------------------------------------------------- universe


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


@dataclass
class _Window:
    """The simulated time, in microseconds: the served window and the history before it."""

    start: int
    end: int      # exclusive
    history: int  # the first listening session


@dataclass
class _Artists:
    """Artists: a home genre each, a Zipf-like popularity, a name, a first album word."""

    genre: np.ndarray
    pop: np.ndarray
    names: pa.Array
    album_base: np.ndarray


@dataclass
class _Catalogue:
    """What listening draws tracks from: their artist, genre, release, ids, rankings."""

    artist: np.ndarray
    genre: np.ndarray
    created: np.ndarray
    ids: np.ndarray
    ghosts: np.ndarray       # ids that no track has (orphan references)
    by_genre: np.ndarray     # track positions by genre, most popular first
    genre_start: np.ndarray
    genre_count: np.ndarray
    by_artist: np.ndarray    # track positions by artist, most popular first
    artist_start: np.ndarray
    artist_count: np.ndarray
    by_score: np.ndarray     # track positions, most popular first


@dataclass
class _Tastes:
    """Users' real taste (what they listen to), their creation time and ids."""

    fav_genre: np.ndarray
    fav_artists: np.ndarray  # users x 3
    fav_tracks: np.ndarray   # users x _FAV_TRACKS
    created: np.ndarray
    ids: np.ndarray
    ghosts: np.ndarray


_FAV_TRACKS = 8


def _realistic_universe(cfg: MockConfig) -> Universe:
    # Each part draws from its own seeded stream, so each is a function of the seed alone.
    start = _day_us(cfg.start)
    window = _Window(start=start, end=_day_us(cfg.end) + _US_PER_DAY,
                     history=start - 60 * _US_PER_DAY)
    artists = _artists(cfg)
    tracks, catalogue = _tracks(cfg, window, artists)
    users, tastes = _users(cfg, window, artists, catalogue)
    listens = _sessions(cfg, window, catalogue, tastes)
    return Universe(users=users, tracks=tracks, listens=listens)


def _artists(cfg: MockConfig) -> _Artists:
    """Every genre gets at least one artist; popularity is Zipf-like."""
    n_genres = len(GENRES)
    rng = _rng(cfg.seed, 1)
    n_artists = max(n_genres, min(cfg.tracks, cfg.tracks // 8))
    genre = rng.choice(n_genres, size=n_artists, p=_genre_weights())
    genre[:n_genres] = np.arange(n_genres)
    pop = 1.0 / (1.0 + rng.permutation(n_artists)) ** 0.8
    first = rng.integers(0, len(FIRST_NAMES), n_artists)
    last = rng.integers(0, len(LAST_NAMES), n_artists)
    names = _join(_pick(_words(FIRST_NAMES), first), _pick(_words(LAST_NAMES), last), sep=" ")
    return _Artists(genre, pop, names, rng.integers(0, len(WORDS), n_artists))


def _catalogue(rng: np.random.Generator, n_tracks: int, window: _Window,
               artists: _Artists) -> _Catalogue:
    """Tracks' artists (popular artists have more), release times, ids and rankings."""
    n_artists, n_genres = len(artists.genre), len(GENRES)
    track_artist = np.concatenate([np.arange(n_artists), rng.choice(
        n_artists, size=n_tracks - n_artists, p=artists.pop / artists.pop.sum())])
    track_genre = artists.genre[track_artist]
    score = artists.pop[track_artist] * rng.lognormal(0.0, 1.0, n_tracks)
    by_genre = np.lexsort((-score, track_genre))
    genre_count = np.bincount(track_genre, minlength=n_genres)
    genre_start = np.concatenate([[0], np.cumsum(genre_count)[:-1]])
    by_artist = np.lexsort((-score, track_artist))
    artist_count = np.bincount(track_artist, minlength=n_artists)
    artist_start = np.concatenate([[0], np.cumsum(artist_count)[:-1]])
    by_score = np.argsort(-score, kind="stable")
    # 90% of the catalogue predates the listening history; the rest is released during it.
    new_track = rng.random(n_tracks) < 0.10
    genre_top = by_genre[genre_start[genre_count > 0]]
    new_track[genre_top] = False  # fallbacks for listens before a track's release
    created = np.where(new_track, _uniform_us(rng, window.history, window.end, n_tracks),
                       _uniform_us(rng, window.start - 5 * 365 * _US_PER_DAY, window.history,
                                   n_tracks))
    order = np.argsort(created, kind="stable")
    ids_sorted, ghosts = _sequential_ids(rng, n_tracks, 1)
    ids = np.empty(n_tracks, dtype=np.int64)
    ids[order] = ids_sorted
    return _Catalogue(track_artist, track_genre, created, ids, ghosts, by_genre, genre_start,
                      genre_count, by_artist, artist_start, artist_count, by_score)


def _tracks(cfg: MockConfig, window: _Window,
            artists: _Artists) -> tuple[_Entities, _Catalogue]:
    """The tracks endpoint's entities, and the catalogue listening draws from."""
    n_tracks, n_genres = cfg.tracks, len(GENRES)
    genre_names = _words(GENRES)
    rng = _rng(cfg.seed, 2)
    cat = _catalogue(rng, n_tracks, window, artists)
    rank_in_artist = np.empty(n_tracks, dtype=np.int64)
    rank_in_artist[cat.by_artist] = np.arange(n_tracks) - np.repeat(cat.artist_start,
                                                                    cat.artist_count)
    seconds = np.clip(rng.lognormal(np.log(215.0), 0.3, n_tracks), 30, 3599).astype(np.int64)
    second_genre = (cat.genre + 1 + rng.integers(0, n_genres - 1, n_tracks)) % n_genres
    has_second = rng.random(n_tracks) < 0.2
    genre_col = _pick(genre_names, cat.genre)
    two_genres = _join(genre_col, _pick(genre_names, second_genre), sep=", ")
    name_len2 = rng.random(n_tracks) < 0.5
    name1 = _pick(_words(TITLE_WORDS), rng.integers(0, len(TITLE_WORDS), n_tracks))
    name2 = _pick(_words(TITLE_WORDS), rng.integers(0, len(TITLE_WORDS), n_tracks))
    album_idx = (artists.album_base[cat.artist] + 17 * (rank_in_artist // 10)) % len(WORDS)
    album = pc.utf8_capitalize(_pick(_words(WORDS), album_idx))
    writer_is_artist = rng.random(n_tracks) < 0.6
    writer = _join(_pick(_words(FIRST_NAMES), rng.integers(0, len(FIRST_NAMES), n_tracks)),
                   _pick(_words(LAST_NAMES), rng.integers(0, len(LAST_NAMES), n_tracks)),
                   sep=" ")
    artist_col = _pick(artists.names, cat.artist)
    update_kind = rng.random(n_tracks) < 0.5
    tracks = _Entities(
        order=np.argsort(cat.created, kind="stable"),
        ids=cat.ids,
        created=cat.created,
        base_updated=cat.created.copy(),
        update_time=_updates(rng, cat.created, window.start, window.end, n_tracks),
        base={
            "name": pc.if_else(pa.array(name_len2), _join(name1, name2, sep=" "), name1),
            "artist": artist_col,
            "songwriters": pc.if_else(pa.array(writer_is_artist), artist_col, writer),
            "duration": _pick(_words(_DURATIONS), seconds),
            "genres": pc.if_else(pa.array(has_second), two_genres, genre_col),
            "album": album,
        },
        changed={
            "genres": pc.if_else(pa.array(update_kind | has_second), two_genres, genre_col),
            "album": pc.if_else(pa.array(update_kind), album,
                                _join(album, "(Deluxe Edition)", sep=" ")),
        },
    )
    _backdate(rng, tracks, 0.01)
    return tracks, cat


def _tastes(rng: np.random.Generator, n_users: int, window: _Window, artists: _Artists,
            cat: _Catalogue) -> tuple[_Tastes, np.ndarray]:
    """A favourite genre, three favourite artists and a few favourite tracks per user.

    Returns:
        The tastes, and each user's second genre (a stated-genre update moves to it).
    """
    n_genres = len(GENRES)
    fav_genre = rng.choice(n_genres, size=n_users, p=_genre_weights())
    created = np.where(rng.random(n_users) < 0.75,
                       _uniform_us(rng, window.start - 2 * 365 * _US_PER_DAY, window.start,
                                   n_users),
                       _uniform_us(rng, window.start, window.end, n_users))
    order = np.argsort(created, kind="stable")
    ids_sorted, ghosts = _sequential_ids(rng, n_users, 1000)
    ids = np.empty(n_users, dtype=np.int64)
    ids[order] = ids_sorted
    by_artist_genre = np.argsort(artists.genre, kind="stable")
    ag_count = np.bincount(artists.genre, minlength=n_genres)
    ag_start = np.concatenate([[0], np.cumsum(ag_count)[:-1]])
    other_genre = (fav_genre + 1 + rng.integers(0, n_genres - 1, n_users)) % n_genres
    taste_genre = np.stack([fav_genre, fav_genre, other_genre], axis=1)
    fav_artists = by_artist_genre[ag_start[taste_genre] + np.floor(
        rng.random(taste_genre.shape) * ag_count[taste_genre]).astype(np.int64)]
    ft_artist = fav_artists[np.arange(n_users)[:, None],
                            rng.integers(0, 3, (n_users, _FAV_TRACKS))]
    fav_tracks = cat.by_artist[cat.artist_start[ft_artist]
                               + _log_index(rng, cat.artist_count[ft_artist], ft_artist.size)
                               .reshape(ft_artist.shape)]
    return _Tastes(fav_genre, fav_artists, fav_tracks, created, ids, ghosts), other_genre


def _users(cfg: MockConfig, window: _Window, artists: _Artists,
           cat: _Catalogue) -> tuple[_Entities, _Tastes]:
    """The users endpoint's entities, and the tastes their listening follows."""
    n_users, n_genres = cfg.users, len(GENRES)
    genre_names = _words(GENRES)
    rng = _rng(cfg.seed, 3)
    tastes, other_genre = _tastes(rng, n_users, window, artists, cat)
    first = rng.integers(0, len(FIRST_NAMES), n_users)
    last = rng.integers(0, len(LAST_NAMES), n_users)
    first_col = _pick(_words(FIRST_NAMES), first)
    last_col = _pick(_words(LAST_NAMES), last)
    new_last_col = _pick(_words(LAST_NAMES), rng.integers(0, len(LAST_NAMES), n_users))
    stated = np.where(rng.random(n_users) < 0.9, tastes.fav_genre,
                      rng.integers(0, n_genres, n_users))
    update_kind = rng.random(n_users)
    new_last = update_kind < 0.3
    new_genre = update_kind > 0.8
    u_update = _updates(rng, tastes.created, window.start, window.end, n_users)
    users = _Entities(
        order=np.argsort(tastes.created, kind="stable"),
        ids=tastes.ids,
        created=tastes.created,
        base_updated=tastes.created.copy(),
        update_time=u_update,
        base={
            "first_name": first_col,
            "last_name": last_col,
            "email": _emails(rng, first_col, last_col, n_users),
            "gender": _pick(_words(GENDERS), rng.choice(len(GENDERS), n_users,
                                                        p=_gender_weights())),
            "favorite_genres": _pick(genre_names, stated),
        },
        changed={
            "last_name": pc.if_else(pa.array(new_last), new_last_col, last_col),
            "email": _emails(rng, first_col,
                             pc.if_else(pa.array(new_last), new_last_col, last_col), n_users),
            "favorite_genres": _pick(genre_names, np.where(new_genre, other_genre, stated)),
        },
    )
    _backdate(rng, users, 0.01)
    return users, tastes


def _pick_tracks(rng: np.random.Generator, item_user: np.ndarray, cat: _Catalogue,
                 tastes: _Tastes) -> np.ndarray:
    """The track position of each listened item, by where listening comes from (LISTEN_MIX)."""
    n_items = len(item_user)
    mode = rng.random(n_items)
    edges = np.cumsum(LISTEN_MIX)
    pick = np.empty(n_items, dtype=np.int64)
    # Favourite artists: a Zipf-like pick among the artist's tracks.
    m = mode < edges[0]
    a = tastes.fav_artists[item_user[m], rng.integers(0, 3, int(m.sum()))]
    pick[m] = cat.by_artist[cat.artist_start[a] + _log_index(rng, cat.artist_count[a], a.size)]
    # Personal favourites: the same few tracks come back session after session.
    m = (mode >= edges[0]) & (mode < edges[1])
    pick[m] = tastes.fav_tracks[item_user[m], rng.integers(0, _FAV_TRACKS, int(m.sum()))]
    # Favourite genre (as the user really listens, not as stated).
    m = (mode >= edges[1]) & (mode < edges[2])
    g = tastes.fav_genre[item_user[m]]
    pick[m] = cat.by_genre[cat.genre_start[g] + _log_index(rng, cat.genre_count[g], g.size)]
    # Global hits.
    m = (mode >= edges[2]) & (mode < edges[3])
    pick[m] = cat.by_score[_log_index(rng, len(cat.ids), int(m.sum()))]
    # Exploration.
    m = mode >= edges[3]
    pick[m] = rng.integers(0, len(cat.ids), int(m.sum()))
    return pick


def _sessions(cfg: MockConfig, window: _Window, cat: _Catalogue, tastes: _Tastes) -> _Listens:
    """Listen records: sessions of active users over the history and the window."""
    rng = _rng(cfg.seed, 4)
    n_rec, n_users = cfg.listens, cfg.users
    n_dup = int(round(n_rec * 0.003)) if n_rec >= 100 else 0
    n_sess = n_rec - n_dup
    activity = rng.lognormal(0.0, 1.0, n_users)
    s_user = rng.choice(n_users, size=n_sess, p=activity / activity.sum())
    length = np.minimum(1 + rng.negative_binomial(2, 0.2, n_sess), 30)
    per_track = rng.integers(150_000_000, 260_000_000, n_sess)
    lo = np.maximum(tastes.created[s_user], window.history)
    # Sessions end within the window, so ``listens`` records are served on its last day.
    per_track = np.minimum(per_track, (window.end - 1 - lo) // length)
    hi = window.end - length * per_track - 1
    s_time = _uniform_us(rng, lo, hi, n_sess)
    n_items = int(length.sum())
    item_sess = np.repeat(np.arange(n_sess), length)
    pick = _pick_tracks(rng, s_user[item_sess], cat, tastes)
    # Nobody listens to a track before its release: fall back to the genre's top track.
    early = cat.created[pick] > s_time[item_sess]
    pick[early] = cat.by_genre[cat.genre_start[cat.genre[pick[early]]]]
    item_ids = cat.ids[pick]
    orphan = rng.random(n_items) < 0.005
    item_ids[orphan] = cat.ghosts[rng.integers(0, cat.ghosts.size, int(orphan.sum()))]

    s_user_id = tastes.ids[s_user]
    unknown = rng.random(n_sess) < 0.002
    s_user_id[unknown] = tastes.ghosts[rng.integers(0, tastes.ghosts.size, int(unknown.sum()))]
    null_user = rng.random(n_sess) < 0.0005
    null_items = rng.random(n_sess) < 0.002
    s_updated = s_time + length * per_track

    # Serve in creation order; an exact duplicate sits right after its original.
    dup = np.sort(rng.choice(n_sess, size=n_dup, replace=False)) if n_dup else np.array([], int)
    order = np.argsort(s_time, kind="stable")
    rank = np.empty(n_sess, dtype=np.int64)
    rank[order] = np.arange(n_sess)
    rows = np.concatenate([order, dup])
    keys = np.concatenate([np.arange(n_sess) * 2, rank[dup] * 2 + 1])
    rows = rows[np.argsort(keys, kind="stable")]

    offsets = np.concatenate([[0], np.cumsum(length)]).astype(np.int64)
    all_items = pa.LargeListArray.from_arrays(
        pa.array(offsets), pa.array(item_ids, pa.int64()), mask=pa.array(null_items))
    all_items = all_items.cast(pa.list_(pa.int64()))
    index = pa.array(rows)
    return _Listens(
        user_ids=pa.array(s_user_id, pa.int64(), mask=null_user).take(index),
        items=all_items.take(index),
        created=s_time[rows],
        updated=s_updated[rows],
        visible_from=s_updated[rows],
    )


def _updates(rng: np.random.Generator, created: np.ndarray, start: int, end: int,
             n: int) -> np.ndarray:
    """One update for ~30% of entities, after creation, in the month before or in the window."""
    never = np.iinfo(np.int64).max
    lo = np.maximum(created, start - 30 * _US_PER_DAY) + 60_000_000
    t = _uniform_us(rng, lo, end, n)
    return np.where((rng.random(n) < 0.3) & (lo < end), t, never)


def _backdate(rng: np.random.Generator, entities: _Entities, share: float) -> None:
    """A defect: ``updated_at`` before ``created_at`` for a share of entities."""
    n = entities.created.size
    bad = rng.random(n) < share
    days = rng.integers(1, 300, n) * _US_PER_DAY
    entities.base_updated[bad] = entities.created[bad] - days[bad]
    # Those rows never get a (correctly stamped) update, so the defect stays served.
    entities.update_time[bad] = np.iinfo(np.int64).max


def _emails(rng: np.random.Generator, first: pa.Array, last: pa.Array, n: int) -> pa.Array:
    number = _pick(_words(["", *[str(i) for i in range(1, 100)]]),
                   np.where(rng.random(n) < 0.5, 0, rng.integers(1, 100, n)))
    domain = _pick(_words(DOMAINS), rng.integers(0, len(DOMAINS), n))
    sep = _pick(_words(["", ".", "_"]), rng.integers(0, 3, n))
    local = _join(pc.utf8_lower(first), sep, pc.utf8_lower(last), number)
    return pc.replace_substring(_join(local, "@", domain), "'", "")


def _reference_universe(cfg: MockConfig) -> Universe:
    now = _day_us(cfg.end) + _US_PER_DAY - 1
    two_years, one_year = 730 * _US_PER_DAY, 365 * _US_PER_DAY
    n_users, n_tracks = cfg.users, cfg.tracks
    words = _words(WORDS)

    def ids(rng: np.random.Generator, n: int) -> np.ndarray:
        high = 100_000 if n <= 100_000 else 10 * n
        return (rng.choice(high, size=n, replace=False) + 1).astype(np.int64)

    def person(rng: np.random.Generator, n: int) -> pa.Array:
        return _join(_pick(_words(FIRST_NAMES), rng.integers(0, len(FIRST_NAMES), n)),
                     _pick(_words(LAST_NAMES), rng.integers(0, len(LAST_NAMES), n)), sep=" ")

    rng = _rng(cfg.seed, 11)
    t_created = _uniform_us(rng, now - two_years, now, n_tracks)
    mm = rng.integers(0, 3600, n_tracks)
    tracks = _Entities(
        ids=ids(rng, n_tracks),
        created=t_created,
        base_updated=_uniform_us(rng, now - one_year, now, n_tracks),
        update_time=np.full(n_tracks, np.iinfo(np.int64).max),
        base={
            "name": _pick(words, rng.integers(0, len(WORDS), n_tracks)),
            "artist": person(rng, n_tracks),
            "songwriters": person(rng, n_tracks),
            "duration": _pick(_words(_DURATIONS), mm),
            "genres": _pick(words, rng.integers(0, len(WORDS), n_tracks)),
            "album": _pick(words, rng.integers(0, len(WORDS), n_tracks)),
        },
        changed={},
    )

    rng = _rng(cfg.seed, 12)
    first = _pick(_words(FIRST_NAMES), rng.integers(0, len(FIRST_NAMES), n_users))
    last = _pick(_words(LAST_NAMES), rng.integers(0, len(LAST_NAMES), n_users))
    u_created = _uniform_us(rng, now - two_years, now, n_users)
    users = _Entities(
        ids=ids(rng, n_users),
        created=u_created,
        base_updated=_uniform_us(rng, now - one_year, now, n_users),
        update_time=np.full(n_users, np.iinfo(np.int64).max),
        base={
            "first_name": first,
            "last_name": last,
            "email": _emails(rng, first, last, n_users),
            "gender": _pick(_words(GENDERS), rng.integers(0, len(GENDERS), n_users)),
            "favorite_genres": _pick(_words(GENRES), rng.integers(0, len(GENRES), n_users)),
        },
        changed={},
    )

    rng = _rng(cfg.seed, 13)
    picks = _distinct_picks(rng, n_users, n_tracks, 5)
    l_created = _uniform_us(rng, now - two_years, now, n_users)
    l_updated = _uniform_us(rng, l_created, now, n_users)
    listens = _Listens(
        user_ids=pa.array(users.ids, pa.int64()),
        items=pa.ListArray.from_arrays(pa.array(np.arange(n_users + 1, dtype=np.int32) * 5),
                                       pa.array(tracks.ids[picks.ravel()], pa.int64())),
        created=l_created,
        updated=l_updated,
        visible_from=u_created,
    )
    return Universe(users=users, tracks=tracks, listens=listens)


# Where an opaque listen comes from: the user's hidden clusters, personal favourites,
# hidden-popularity hits, anywhere.
OPAQUE_MIX = (0.55, 0.20, 0.15, 0.10)


def _opaque_universe(cfg: MockConfig) -> Universe:
    """The realistic universe with every listened track redrawn from hidden taste."""
    base = _realistic_universe(cfg)
    tracks, users, listens = base.tracks, base.users, base.listens
    n_users, n_tracks = len(users.ids), len(tracks.ids)
    rng = _rng(cfg.seed, 21)
    n_clusters = int(np.clip(n_tracks // 60, 4, 64))
    cluster = rng.integers(0, n_clusters, n_tracks)
    popularity = rng.lognormal(0.0, 1.0, n_tracks)
    by_cluster = np.lexsort((-popularity, cluster))
    c_count = np.bincount(cluster, minlength=n_clusters)
    c_start = np.concatenate([[0], np.cumsum(c_count)[:-1]])
    by_pop = np.argsort(-popularity, kind="stable")
    likes = np.stack([rng.permutation(n_clusters)[:3] for _ in range(n_users)]) \
        if n_users <= 5000 else rng.integers(0, n_clusters, (n_users, 3))
    n_fav = 8
    fav_c = likes[np.arange(n_users)[:, None], rng.choice(3, (n_users, n_fav), p=[.6, .3, .1])]
    favourites = by_cluster[c_start[fav_c] + _log_index(rng, c_count[fav_c], fav_c.size)
                            .reshape(fav_c.shape)]

    # Exact duplicate records must stay exact: draw once per distinct session.
    user_ids = listens.user_ids.fill_null(-1).to_numpy()
    lengths = pc.list_value_length(listens.items).fill_null(0).to_numpy()
    old = pc.list_flatten(listens.items).to_numpy()
    item_sum = np.bincount(np.repeat(np.arange(len(lengths)), lengths), weights=old,
                           minlength=len(lengths)).astype(np.int64)
    key = np.stack([listens.created, listens.updated, user_ids, lengths, item_sum], axis=1)
    _, first_row, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(users.ids)
    pos = np.clip(np.searchsorted(users.ids, user_ids, sorter=order), 0, n_users - 1)
    session_user = np.where(users.ids[order[pos]] == user_ids, order[pos],
                            rng.integers(0, n_users, len(user_ids)))
    # One draw per item of each distinct session; duplicates reuse their original's.
    src = first_row[inverse.ravel()]
    src_len = lengths[src]
    item_session = np.repeat(src, src_len)
    offsets_src = np.concatenate([[0], np.cumsum(lengths)])
    within = np.arange(len(item_session)) - np.repeat(np.cumsum(src_len) - src_len, src_len)
    draws = _opaque_draws(_rng(cfg.seed, 22), session_user, listens.created, lengths,
                          likes, favourites, by_cluster, c_start, c_count, by_pop,
                          tracks.created)
    picks = draws[offsets_src[item_session] + within]
    # Orphan track ids (a source defect) stay orphans.
    t_order = np.argsort(tracks.ids)
    t_pos = np.clip(np.searchsorted(tracks.ids, old, sorter=t_order), 0, n_tracks - 1)
    orphan = tracks.ids[t_order[t_pos]] != old
    new_ids = np.where(orphan, old, tracks.ids[picks])
    offsets = np.concatenate([[0], np.cumsum(src_len)]).astype(np.int32)
    items = pa.ListArray.from_arrays(pa.array(offsets), pa.array(new_ids, pa.int64()),
                                     mask=listens.items.is_null())
    return Universe(users=users, tracks=tracks, listens=dataclasses.replace(listens, items=items))


def _opaque_draws(rng: np.random.Generator, session_user: np.ndarray, when: np.ndarray,
                  lengths: np.ndarray, likes: np.ndarray, favourites: np.ndarray,
                  by_cluster: np.ndarray, c_start: np.ndarray, c_count: np.ndarray,
                  by_pop: np.ndarray, created: np.ndarray) -> np.ndarray:
    """Track indices for every item slot of every record, from each user's hidden taste."""
    item_session = np.repeat(np.arange(len(lengths)), lengths)
    user = session_user[item_session]
    n = len(user)
    mode = rng.random(n)
    edges = np.cumsum(OPAQUE_MIX)
    pick = rng.integers(0, len(created), n)               # anywhere
    m = mode < edges[0]
    c = likes[user[m], rng.choice(3, int(m.sum()), p=[.6, .3, .1])]
    pick[m] = by_cluster[c_start[c] + _log_index(rng, c_count[c], c.size)]
    m = (mode >= edges[0]) & (mode < edges[1])
    pick[m] = favourites[user[m], rng.integers(0, favourites.shape[1], int(m.sum()))]
    m = (mode >= edges[1]) & (mode < edges[2])
    pick[m] = by_pop[_log_index(rng, len(by_pop), int(m.sum()))]
    # Nobody listens to a track before its release: fall back to the most popular track of
    # the same hidden cluster that predates every session (or the oldest track).
    early = created[pick] > when[item_session]
    cluster_of = np.empty(len(created), np.int64)
    cluster_of[by_cluster] = np.repeat(np.arange(len(c_count)), c_count)
    old_enough = created[by_cluster] <= when.min()
    fallback = np.full(len(c_count), int(np.argmin(created)))
    for c in range(len(c_count)):
        members = by_cluster[c_start[c]:c_start[c] + c_count[c]]
        ok = members[old_enough[c_start[c]:c_start[c] + c_count[c]]]
        if len(ok):
            fallback[c] = ok[0]
    pick[early] = fallback[cluster_of[pick[early]]]
    return pick


def _distinct_picks(rng: np.random.Generator, rows: int, n: int, k: int) -> np.ndarray:
    """``rows`` x ``k`` indices in ``0..n-1``, distinct within each row."""
    picks = rng.integers(0, n, (rows, k))
    while True:
        s = np.sort(picks, axis=1)
        dup_rows = np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1))
        if dup_rows.size == 0:
            return picks
        picks[dup_rows] = rng.integers(0, n, (dup_rows.size, k))


# ---------------------------------------------------------------------------- vocabularies

_DURATIONS = [f"{s // 60:02d}:{s % 60:02d}" for s in range(3600)]

DOMAINS = ("example.org", "example.com", "example.net")

FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Christopher", "Nancy", "Daniel", "Lisa", "Matthew", "Betty", "Anthony",
    "Margaret", "Mark", "Sandra", "Donald", "Ashley", "Steven", "Kimberly", "Paul", "Emily",
    "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Dorothy", "Kevin", "Carol", "Brian",
    "Amanda", "George", "Melissa", "Edward", "Deborah", "Ronald", "Stephanie", "Timothy",
    "Rebecca", "Jason", "Sharon", "Jeffrey", "Laura", "Ryan", "Cynthia", "Jacob", "Kathleen",
    "Gary", "Amy", "Nicholas", "Shirley", "Eric", "Angela", "Jonathan", "Helen", "Stephen",
    "Anna", "Larry", "Brenda", "Justin", "Pamela", "Scott", "Nicole", "Brandon", "Emma",
    "Benjamin", "Samantha", "Samuel", "Katherine", "Gregory", "Christine", "Frank", "Debra",
    "Alexander", "Rachel", "Raymond", "Catherine", "Patrick", "Carolyn", "Jack", "Janet",
    "Dennis", "Ruth", "Jerry", "Maria", "Tyler", "Heather", "Aaron", "Diane", "Jose", "Virginia",
)

LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans",
    "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris",
    "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson",
    "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson",
    "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price",
    "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez",
    "Gilmore", "McCoy", "O'Neil",
)

WORDS = (
    "able", "about", "above", "accept", "across", "act", "action", "add", "admit", "after",
    "again", "against", "agent", "agree", "ahead", "air", "all", "allow", "almost", "alone",
    "along", "already", "also", "always", "among", "amount", "and", "animal", "another",
    "answer", "any", "anyone", "appear", "apply", "area", "argue", "arm", "around", "arrive",
    "art", "article", "artist", "ask", "attack", "author", "available", "avoid", "away", "baby",
    "back", "bad", "bag", "ball", "bank", "bar", "base", "beat", "beautiful", "because",
    "become", "bed", "before", "begin", "behind", "believe", "best", "better", "between",
    "beyond", "big", "bill", "bit", "black", "blood", "blue", "board", "body", "book", "born",
    "both", "box", "boy", "break", "bring", "brother", "budget", "build", "building", "call",
    "camera", "campaign", "cancer", "capital", "car", "card", "care", "career", "carry", "case",
    "catch", "cause", "cell", "center", "central", "century", "certain", "chair", "chance",
    "change", "choice", "church", "citizen", "city", "civil", "claim", "class", "clear", "close",
    "coach", "cold", "color", "come", "common", "community", "cost", "country", "couple",
    "course", "court", "cover", "create", "crime", "cultural", "culture", "cup", "current",
    "dark", "daughter", "dead", "deal", "death", "debate", "decade", "decide", "deep", "degree",
    "design", "detail", "develop", "die", "different", "difficult", "dinner", "direction",
    "discover", "discuss", "doctor", "dog", "door", "down", "draw", "dream", "drive", "drop",
    "during", "each", "early", "east", "easy", "eat", "economy", "edge", "effect", "effort",
    "eight", "either", "election", "else", "end", "energy", "enjoy", "enough", "enter",
    "entire", "environment", "especially", "evening", "event", "ever", "every", "evidence",
    "exactly", "example", "experience", "expert", "explain", "eye", "face", "fact", "factor",
    "fall", "family", "far", "fast", "father", "fear", "feel", "feeling", "few", "field",
    "fight", "figure", "fill", "film", "final", "find", "fine", "finger", "finish", "fire",
    "firm", "first", "fish", "five", "floor", "fly", "focus", "follow", "food", "foot", "force",
    "forget", "form", "forward", "four", "free", "friend", "front", "full", "fund", "future",
    "game", "garden", "gas", "general", "girl", "give", "glass", "goal", "good", "great",
    "green", "ground", "group", "grow", "growth", "guess", "gun", "guy", "hair", "half", "hand",
    "hang", "happen", "happy", "hard", "head", "health", "hear", "heart", "heat", "heavy",
    "help", "here", "herself", "high", "history", "hit", "hold", "home", "hope", "hospital",
    "hot", "hotel", "hour", "house", "however", "huge", "human", "hundred", "idea", "image",
    "imagine", "impact", "improve", "include", "increase", "indeed", "inside", "instead",
    "interest", "into", "issue", "item", "itself", "job", "join", "just", "keep", "key", "kid",
    "kill", "kind", "kitchen", "know", "land", "language", "large", "last", "late", "later",
    "laugh", "law", "lawyer", "lay", "lead", "leader", "learn", "least", "leave", "left", "leg",
    "less", "letter", "level", "lie", "life", "light", "like", "likely", "line", "list",
    "listen", "little", "live", "local", "long", "look", "lose", "loss", "lot", "love", "low",
    "machine", "magazine", "main", "maintain", "major", "make", "manage", "many", "market",
    "marriage", "matter", "maybe", "mean", "measure", "media", "medical", "meet", "meeting",
    "member", "memory", "mention", "message", "method", "middle", "might", "million", "mind",
    "minute", "miss", "mission", "model", "modern", "moment", "money", "month", "more",
    "morning", "most", "mother", "mouth", "move", "movement", "movie", "much", "music", "must",
    "myself", "name", "nation", "natural", "nature", "near", "nearly", "need", "network",
    "never", "new", "news", "next", "nice", "night", "none", "north", "note", "nothing",
    "notice", "now", "number", "occur", "off", "offer", "office", "often", "oil", "old", "once",
    "only", "open", "option", "order", "other", "others", "outside", "own", "owner", "page",
    "pain", "painting", "paper", "parent", "part", "party", "pass", "past", "pattern", "peace",
    "people", "perform", "perhaps", "period", "person", "phone", "pick", "picture", "piece",
    "place", "plan", "plant", "play", "player", "point", "police", "policy", "poor", "popular",
    "power", "practice", "prepare", "present", "pretty", "prevent", "price", "private",
    "probably", "process", "produce", "program", "project", "prove", "public", "pull", "push",
    "put", "quality", "question", "quickly", "quite", "radio", "raise", "range", "rate",
    "rather", "reach", "read", "ready", "real", "reality", "reason", "receive", "recent",
    "record", "red", "reflect", "region", "remain", "remember", "report", "rest", "result",
    "return", "reveal", "rich", "right", "rise", "risk", "river", "road", "rock", "role",
    "room", "rule", "run", "safe", "same", "save", "say", "scene", "school", "science", "sea",
    "season", "seat", "second", "section", "see", "seek", "seem", "sell", "send", "sense",
    "serve", "set", "seven", "several", "shake", "share", "shoot", "short", "shot", "should",
    "show", "side", "sign", "simple", "since", "sing", "single", "sister", "sit", "site",
    "size", "skill", "skin", "small", "smile", "social", "society", "soldier", "some",
    "someone", "song", "soon", "sort", "sound", "south", "space", "speak", "special", "spend",
    "sport", "spring", "staff", "stage", "stand", "star", "start", "state", "station", "stay",
    "step", "still", "stock", "stop", "store", "story", "strategy", "street", "strong",
    "student", "study", "stuff", "style", "subject", "success", "suddenly", "suffer", "summer",
    "support", "sure", "surface", "system", "table", "take", "talk", "task", "teach", "team",
    "tell", "ten", "term", "test", "thank", "theory", "there", "thing", "think", "third",
    "though", "thought", "thousand", "threat", "three", "through", "throw", "thus", "time",
    "today", "together", "tonight", "too", "top", "total", "tough", "toward", "town", "trade",
    "travel", "treat", "tree", "trial", "trip", "trouble", "true", "truth", "try", "turn",
    "two", "type", "under", "unit", "until", "upon", "use", "usually", "value", "various",
    "very", "view", "visit", "voice", "vote", "wait", "walk", "wall", "want", "war", "watch",
    "water", "way", "weapon", "wear", "week", "weight", "well", "west", "western", "whatever",
    "wheel", "whether", "while", "white", "whole", "why", "wide", "wife", "will", "win", "wind",
    "window", "wish", "with", "within", "without", "woman", "wonder", "word", "work", "worker",
    "world", "worry", "would", "write", "writer", "wrong", "yard", "yeah", "year", "yes",
    "yet", "you", "young", "yourself",
)

TITLE_WORDS = tuple(w.capitalize() for w in (
    "midnight", "river", "golden", "echo", "summer", "neon", "heart", "fire", "shadow", "dream",
    "electric", "blue", "wild", "silver", "ocean", "city", "lights", "broken", "velvet",
    "thunder", "paper", "crystal", "highway", "moon", "sun", "rain", "storm", "gravity", "sugar",
    "honey", "ghost", "paradise", "rebel", "angel", "diamond", "desert", "winter", "runaway",
    "forever", "tonight", "lonely", "satellite", "radio", "cherry", "wolf", "mirror", "shine",
    "fever", "horizon", "rhythm", "soul", "love", "night", "morning", "kingdom", "island",
    "machine", "memory", "stranger", "garden", "starlight", "falling", "rising", "burning",
    "hollow", "frozen", "sweet", "cold", "slow", "fast", "high", "deep", "home", "road", "sky",
))

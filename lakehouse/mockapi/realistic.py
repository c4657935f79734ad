"""The mock profile ``realistic`` (default)
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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.mockapi.universe import (
    _US_PER_DAY,
    Universe,
    _day_us,
    _emails,
    _Entities,
    _gender_weights,
    _genre_weights,
    _join,
    _Listens,
    _log_index,
    _pick,
    _rng,
    _sequential_ids,
    _uniform_us,
    _words,
)
from lakehouse.mockapi.words import _DURATIONS, FIRST_NAMES, LAST_NAMES, TITLE_WORDS, WORDS
from lakehouse.names import GENDERS, GENRES

if TYPE_CHECKING:
    from lakehouse.mockapi.data import MockConfig


# Where a listened track comes from: favourite artists, personal favourites, favourite genre,
# global hits, anywhere.
LISTEN_MIX = (0.45, 0.20, 0.27, 0.05, 0.03)


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

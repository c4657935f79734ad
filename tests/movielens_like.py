"""A seeded ratings data set of the shape of MovieLens-100k, with timestamps that drift.

The real one (kept aside, never downloaded): 943 users, 1,682 movies, 100,000
ratings over seven months, at least 20 ratings per user. What makes it hard,
and what this generator reproduces:

- power-law popularity (a few movies have hundreds of raters, most a handful);
- taste clusters: each movie is in one of ``clusters`` hidden genres, each
  user likes a few (Dirichlet weights);
- time: movies are released through the window and draw most of their
  ratings in the weeks after release (novelty decay), so what is popular
  drifts; users arrive through the window and most rate in a burst (within
  a day of arrival, a few coming back later), while regulars keep rating.

Served through the contract as one ``listen_history`` record per rating (its
time as ``created_at``), so ``lakehouse daily`` over snapshots replays it as a
user would. :func:`write_snapshots` writes the served folder of each day
(every rating up to that day's cutoff) and the ratings after the last one:
the hold-out the last day's lists are scored on.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from lakehouse.names import GENDERS, GENRES, LISTEN_HISTORY, TRACKS, USERS

START = dt.datetime(1997, 9, 20, tzinfo=dt.UTC)
DAYS = 215


def ratings(users: int = 943, items: int = 1682, *, per_user: float = 106.0,
            clusters: int = 18, zipf: float = 0.9, taste: float = 0.15, mix: float = 0.7,
            novelty_days: float = 25.0, regular_share: float = 0.35, seed: int = 0) -> dict[str, np.ndarray]:
    """Every rating: ``user`` and ``item`` ids (1-based) and ``time`` (seconds since the epoch).

    Args:
        users: Number of users.
        items: Number of movies.
        per_user: Mean ratings per user (log-normal, at least 20).
        clusters: Hidden taste clusters (each movie is in one).
        zipf: Exponent of the popularity law.
        taste: Dirichlet concentration of a user's cluster weights (smaller: fewer).
        mix: Share of a user's choices driven by taste (the rest by what is popular now).
        novelty_days: How fast a movie's draw decays after its release (days).
        regular_share: Share of users who keep rating through the window.
        seed: Seed of everything.
    """
    rng = np.random.default_rng(seed)
    appeal = 1.0 / np.arange(1, items + 1) ** zipf
    rng.shuffle(appeal)
    cluster = rng.integers(clusters, size=items)
    # A third of the catalogue is out before the window; the rest is released through it.
    release = np.where(rng.random(items) < 0.35, -rng.uniform(0, 400, items),
                       rng.uniform(0, DAYS, items))
    user_f = rng.dirichlet(np.full(clusters, taste), size=users)
    arrive = rng.uniform(0, DAYS - 2, users)
    regular = rng.random(users) < regular_share
    sizes = np.clip(np.round(rng.lognormal(np.log(per_user) - 0.45, 0.95, users)), 20, 737)
    out_u, out_i, out_t = [], [], []
    for u in range(users):
        n = int(sizes[u])
        # Most users rate in a burst at arrival and come back a little; regulars (a third)
        # keep rating through the window.
        later = rng.random(n) < (0.7 if regular[u] else 0.1)
        days = np.where(later, rng.uniform(arrive[u], DAYS, n),
                        arrive[u] + rng.exponential(0.3, n))
        days = np.sort(np.minimum(days, DAYS - 1e-3))
        chosen: set[int] = set()
        taste_u = user_f[u][cluster]
        for day in np.unique(np.round(days, 1)):
            k = int((np.round(days, 1) == day).sum())
            out = release <= day
            age = np.maximum(day - release, 0)
            now = appeal * (0.25 + np.exp(-age / novelty_days)) * out
            weight = mix * taste_u * now / max(now.sum(), 1e-12) * clusters \
                + (1 - mix) * now / max(now.sum(), 1e-12)
            if chosen:
                weight[list(chosen)] = 0
            k = min(k, int((weight > 0).sum()))
            if k <= 0:
                continue
            pick = rng.choice(items, size=k, replace=False, p=weight / weight.sum())
            chosen.update(pick.tolist())
            secs = (START.timestamp() + (day + rng.uniform(0, 0.1, k)) * 86400).astype(np.int64)
            out_u += [u + 1] * k
            out_i += (pick + 1).tolist()
            out_t += secs.tolist()
    order = np.argsort(out_t, kind="stable")
    return {"user": np.asarray(out_u)[order], "item": np.asarray(out_i)[order],
            "time": np.asarray(out_t)[order]}


def _stamp(seconds: int) -> str:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def write_snapshots(folder: Path, days: tuple[float, ...] = (0.80, 0.85, 0.90), **kwargs
                    ) -> dict:
    """One served folder per snapshot day, and the hold-out after the last.

    Args:
        folder: Where to write ``day1/``, ``day2/``... (each a ``mock-api --data`` folder).
        days: Each snapshot's cutoff as a share of all ratings (time quantiles).
        **kwargs: Passed to :func:`ratings`.

    Returns:
        ``{"dates": [...], "cutoffs": [...], "holdout": (user, item) arrays after the
        last cutoff, "ratings": every rating}``.
    """
    r = ratings(**kwargs)
    n_users, n_items = int(r["user"].max()), int(r["item"].max())
    rng = np.random.default_rng(kwargs.get("seed", 0) + 1)
    users = [{"id": u, "first_name": f"f{u}", "last_name": f"l{u}",
              "email": f"u{u}@example.org", "gender": GENDERS[rng.integers(len(GENDERS))],
              "favorite_genres": GENRES[rng.integers(len(GENRES))],
              "created_at": _stamp(r["time"].min()), "updated_at": _stamp(r["time"].min())}
             for u in range(1, n_users + 1)]
    tracks = [{"id": i, "name": f"movie {i}", "artist": f"studio {i % 50}",
               "songwriters": "unknown", "duration": "01:30:00", "genres": "unknown",
               "album": "unknown", "created_at": _stamp(r["time"].min()),
               "updated_at": _stamp(r["time"].min())} for i in range(1, n_items + 1)]
    cutoffs = [int(np.quantile(r["time"], q)) for q in days]
    dates = []
    for d, cut in enumerate(cutoffs, 1):
        day = folder / f"day{d}"
        day.mkdir(parents=True, exist_ok=True)
        keep = r["time"] <= cut
        with (day / f"{USERS}.jsonl").open("w") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in users)
        with (day / f"{TRACKS}.jsonl").open("w") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in tracks)
        with (day / f"{LISTEN_HISTORY}.jsonl").open("w") as fh:
            for u, i, t in zip(r["user"][keep], r["item"][keep], r["time"][keep], strict=True):
                fh.write(json.dumps({"user_id": int(u), "items": [int(i)],
                                     "created_at": _stamp(t), "updated_at": _stamp(t)}) + "\n")
        dates.append(dt.datetime.fromtimestamp(cut, dt.UTC).date())
    after = r["time"] > cutoffs[-1]
    return {"dates": dates, "cutoffs": cutoffs, "ratings": r,
            "holdout": (r["user"][after], r["item"][after])}

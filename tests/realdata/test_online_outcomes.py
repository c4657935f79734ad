"""Online outcomes end to end: a ratings-like data set replayed day by day through ``daily``.

A hetrec-like data set (``tests/hetrec_like.py``: Zipf popularity, latent taste,
dangling and repeated ids, an empty list, null fields) is cut into four ingest
dates: each user's items are spread over the days (most on the first), a day's
items of a user are one listen record created that day, and what was served once
stays served (ratings accumulate). Forty tracks enter the catalogue only on the
third day. Each day's files are served by the mock (what ``lakehouse mock-api
--data DIR`` serves) over loopback, and ``lakehouse daily`` runs for that date.

The outcome row of the third score date must equal, to 0.001, an evaluation
written here in plain Python from the files served (not from the lake), with the
module's definition: the users scored that day who started, on the fourth day, a
track of the third day's catalogue they had not heard; the served top-k and
popularity's (listeners up to the third day, ties by lower id, heard removed).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.lake import open_lake
from lakehouse.mockapi.files import load_dir
from lakehouse.mockapi.testing import running_mock_api
from lakehouse.names import LISTEN_HISTORY, TRACKS, USERS
from tests import hetrec_like

pytestmark = pytest.mark.slow

DAYS = [dt.date(2026, 5, 4) + dt.timedelta(days=n) for n in range(4)]
SHARES = (0.55, 0.15, 0.15, 0.15)
LATE_TRACKS, LATE_DAY = 40, 2
ENV = {"LAKEHOUSE_EPOCHS": "5", "LAKEHOUSE_COMPONENTS": "16", "LAKEHOUSE_WORKERS": "4",
       "LAKEHOUSE_TRAIN_TRIALS": "1", "LAKEHOUSE_TRAIN_THREADS": "1",
       "LAKEHOUSE_TRAIN_BUDGET": "5", "LAKEHOUSE_RETRAIN_WEEKDAY": "-1",
       "LAKEHOUSE_MAINTAIN_WEEKDAY": "-1", "LAKEHOUSE_ALERT_WEBHOOK": "",
       "LAKEHOUSE_ALERT_COMMAND": ""}


def day_files(root: Path, seed: int = 5) -> list[Path]:
    """One data folder per ingest date; returns them in date order."""
    data = hetrec_like.records(users=300, items=800, seed=seed)
    rng = np.random.default_rng(seed)
    track_ids = [t["id"] for t in data[TRACKS]]
    late = {int(t) for t in rng.choice(track_ids, LATE_TRACKS, replace=False)}
    dated: list[tuple[int, dict]] = []
    for record in data[LISTEN_HISTORY]:
        if record["user_id"] is None or not record["items"]:
            dated.append((0, record))  # the defects stay as they are, every day
            continue
        when = rng.choice(len(DAYS), size=len(record["items"]), p=SHARES)
        for day in range(len(DAYS)):
            items = [t for t, d in zip(record["items"], when, strict=True)
                     if max(d, LATE_DAY if t in late else 0) == day]
            if items:
                stamp = f"{DAYS[day].isoformat()}T12:00:00.000000"
                dated.append((day, {**record, "items": items, "created_at": stamp,
                                    "updated_at": stamp}))
    folders = []
    for day in range(len(DAYS)):
        folder = root / f"day{day}"
        folder.mkdir(parents=True)
        served = {
            USERS: data[USERS],
            TRACKS: [t for t in data[TRACKS] if day >= LATE_DAY or t["id"] not in late],
            LISTEN_HISTORY: [r for d, r in dated if d <= day],
        }
        for endpoint, rows in served.items():
            with (folder / f"{endpoint}.jsonl").open("w") as out:
                out.writelines(json.dumps(row) + "\n" for row in rows)
        folders.append(folder)
    return folders


def served(folder: Path) -> tuple[set[int], set[int], set[tuple[int, int]]]:
    """Users, tracks and (user, track) pairs of known users and tracks served in a folder."""
    def rows(endpoint):
        with (folder / f"{endpoint}.jsonl").open() as f:
            return [json.loads(line) for line in f]
    users = {u["id"] for u in rows(USERS)}
    tracks = {t["id"] for t in rows(TRACKS)}
    pairs = {(r["user_id"], t) for r in rows(LISTEN_HISTORY)
             if r["user_id"] in users and r["items"] for t in r["items"]}
    return users, tracks, pairs


def independent_outcome(folders: list[Path], score: int, lists: dict[int, list[int]],
                        horizon: int) -> dict:
    """The module's definition, evaluated by hand from the files served."""
    _, catalogue, heard = served(folders[score])
    later = set()
    for day in range(score + 1, min(score + horizon, len(folders) - 1) + 1):
        _, tracks_then, pairs = served(folders[day])
        later |= {(u, t) for u, t in pairs if t in tracks_then}
    new = defaultdict(set)
    for u, t in later - heard:
        if t in catalogue:
            new[u].add(t)
    heard_by = defaultdict(set)
    listeners = defaultdict(int)
    for u, t in heard:
        if t in catalogue:
            heard_by[u].add(t)
            listeners[t] += 1
    ranking = sorted(catalogue, key=lambda t: (-listeners[t], t))
    k = max(len(ts) for ts in lists.values())
    per_user = []
    for user, served_list in lists.items():
        relevant = new.get(user)
        if not relevant:
            continue
        hits = [t in relevant for t in served_list]
        dcg = sum(1 / math.log2(r + 2) for r, hit in enumerate(hits) if hit)
        ideal = sum(1 / math.log2(r + 2) for r in range(min(len(relevant), k)))
        popular = [t for t in ranking if t not in heard_by[user]][:k]
        pop_hits = sum(t in relevant for t in popular)
        per_user.append((sum(hits) / k, sum(hits) / len(relevant), float(any(hits)),
                         dcg / ideal, pop_hits / k, pop_hits / len(relevant),
                         float(pop_hits > 0)))
    means = np.array(per_user).mean(axis=0)
    keys = ("precision_at_k", "recall_at_k", "hit_rate_at_k", "ndcg_at_k",
            "popularity_precision_at_k", "popularity_recall_at_k", "popularity_hit_rate_at_k")
    out = dict(zip(keys, means.tolist(), strict=True))
    out["lift"] = out["precision_at_k"] / out["popularity_precision_at_k"]
    out["users"] = len(per_user)
    return out


def test_a_replayed_ratings_data_set_matches_an_independent_evaluation(tmp_path, monkeypatch):
    for var in ("LAKEHOUSE_LAKE", "LAKEHOUSE_API_URL", "LAKEHOUSE_ONLINE_HORIZON_DAYS"):
        monkeypatch.delenv(var, raising=False)
    folders = day_files(tmp_path / "data")
    lake_dir = tmp_path / "lake"
    for day, folder in zip(DAYS, folders, strict=True):
        with running_mock_api(tables=load_dir(folder), admin=False) as api:
            result = CliRunner().invoke(cli, ["--lake", str(lake_dir), "daily", "--api-url",
                                              api.url, "--date", day.isoformat()], env=ENV)
        assert result.exit_code == 0, result.output
        assert "outcomes" in result.stdout

    lake = open_lake(lake_dir)
    rows = {r[names.SCORE_DATE]: r for r in
            lake.to_arrow(names.CONS_RECOMMENDATION_OUTCOMES).to_pylist()}
    assert sorted(rows) == DAYS[:3]  # the last score date has no later ingest date yet
    third = rows[DAYS[2]]
    assert third["complete"] is False and third["days_observed"] == 1  # horizon 7, one day
    recs = lake.to_arrow(names.CONS_RECOMMENDATIONS).to_pylist()
    lists: dict[int, list[int]] = defaultdict(list)
    for r in sorted((r for r in recs if r[names.SCORE_DATE] == DAYS[2]),
                    key=lambda r: (r[names.USER_ID], r["rank"])):
        lists[r[names.USER_ID]].append(r[names.TRACK_ID])
    expected = independent_outcome(folders, 2, lists, horizon=7)
    assert third["users"] == expected["users"] > 50
    assert expected["precision_at_k"] > 0 and expected["popularity_precision_at_k"] > 0
    for key, value in expected.items():
        assert third[key] == pytest.approx(value, abs=0.001), key
    # The late tracks entered the catalogue on the third day: on the second score date
    # they are not in the catalogue, so their first listens on day 3 do not count there.
    second = independent_outcome(folders, 1, _lists(recs, DAYS[1]), horizon=7)
    assert rows[DAYS[1]]["users"] == second["users"]
    assert rows[DAYS[1]]["precision_at_k"] == pytest.approx(second["precision_at_k"], abs=1e-3)
    assert rows[DAYS[1]]["days_observed"] == 2


def _lists(recs: list[dict], day: dt.date) -> dict[int, list[int]]:
    lists: dict[int, list[int]] = defaultdict(list)
    for r in sorted((r for r in recs if r[names.SCORE_DATE] == day),
                    key=lambda r: (r[names.USER_ID], r["rank"])):
        lists[r[names.USER_ID]].append(r[names.TRACK_ID])
    return lists

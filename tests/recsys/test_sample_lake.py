"""The recommender on the shared sample lake: real ingest over HTTP, real build."""

from __future__ import annotations

import json

import pytest

from lakehouse import names
from lakehouse.lake import Lake
from lakehouse.recsys.families import CANDIDATES
from lakehouse.recsys.registry import Registry

pytestmark = pytest.mark.slow


def test_trained_lake_has_a_champion_and_complete_recommendations(trained_lake, sample_days):
    lake = Lake(trained_lake.lake)
    champion = Registry(trained_lake.models_dir).get("champion")
    assert champion.refit and len(champion.candidates) == len(CANDIDATES)
    assert all(t["epochs"] <= 10 for t in champion.trials if not t["candidate"].startswith("als"))
    assert champion.lineage["tables"][names.STD_LISTENS]["rows"] > 0
    assert champion.metrics["model"]["auc"] > champion.metrics["baseline"]["auc"] - 0.05

    checks = lake.sql(f"""
        WITH r AS (SELECT * FROM {names.CONS_RECOMMENDATIONS}
                   WHERE {names.SCORE_DATE} = DATE '{sample_days[-1]}')
        SELECT
          (SELECT count(DISTINCT user_id) FROM r) AS users,
          (SELECT count(*) FROM (SELECT user_id FROM r GROUP BY 1
                                 HAVING count(*) <> 10 OR min(rank) <> 1 OR max(rank) <> 10))
              AS bad_users,
          (SELECT count(*) FROM r JOIN {names.CONS_INTERACTIONS} i USING (user_id, track_id))
              AS seen,
          (SELECT count(*) FROM {names.CONS_USER_FEATURES}) AS known_users
    """).fetchone()
    users, bad_users, seen, known_users = checks
    assert users >= known_users > 0
    assert bad_users == 0 and seen == 0
    runs = lake.sql(f"SELECT pipeline, status, details FROM {names.META_RUNS} "
                    "WHERE pipeline IN ('train', 'recommend')").fetchall()
    assert sorted((p, s) for p, s, _ in runs) == [("recommend", names.SUCCESS),
                                                  ("train", names.SUCCESS)]
    train_details = json.loads(next(d for p, _, d in runs if p == "train"))
    assert train_details["promoted"] is True and train_details["version"] == champion.version

"""The cold-start helper: the champion's cold route, as batch scoring would rank it."""

from __future__ import annotations

import numpy as np
import pytest

from lakehouse.lake import Lake
from lakehouse.recsys.data import load_scoring_inputs
from lakehouse.recsys.families import (
    ALSRecommender,
    Config,
    LightFMRecommender,
    Popularity,
    Routed,
)
from lakehouse.recsys.registry import Registry
from lakehouse.serve.coldstart import MAX_K
from lakehouse.serve.worker import cold_start_lists
from tests.conftest import fresh_python


def test_the_lists_are_the_champions_cold_route_ranking(trained_lake):
    registry = Registry(trained_lake.models_dir)
    version = registry.alias("champion")
    bundle = registry.load_bundle(version)
    cold = bundle.cold_model
    answer = cold_start_lists(trained_lake, version)
    assert answer["version"] == version
    assert answer["route"] == f"cold:{cold.config.name}"
    # The sample lake's champion scores new users from their metadata (the live test's
    # ?favorite_genre answers depend on it too); the other routes are the test below.
    assert cold.can_score_new_users
    assert answer["features"] and answer["lists"]
    inputs = load_scoring_inputs(Lake(trained_lake.lake, create=False))
    entry = answer["lists"][0]
    tokens = [f"{f}={v}" for f, v in entry["features"].items()]
    scores = cold.item_vectors(inputs.items, inputs.item_meta) @ \
        cold.user_vectors(np.array([-1]), {-1: tokens})[0]
    best = np.sort(scores)[::-1][:MAX_K]
    np.testing.assert_allclose(entry["scores"], best, rtol=1e-5)
    assert set(entry["track_ids"]) <= set(inputs.items.tolist())


def _no_user_features() -> LightFMRecommender:
    return LightFMRecommender(Config("lightfm", {"features": "item"}))


@pytest.mark.parametrize(("bundle", "route"), [
    (Routed(ALSRecommender(Config("als")), Popularity(Config("popularity"))), "cold:popularity"),
    (Routed(ALSRecommender(Config("als"))), "cold:als"),
    (Routed(_no_user_features()), "cold:lightfm+item"),
])
def test_a_cold_route_without_user_features_leaves_it_to_popularity(
        bundle, route, trained_lake, monkeypatch):
    # Nothing is ranked (not even the model's arrays are touched): the server's popularity
    # list answers unknown users, as batch scoring's cold route would not use features.
    monkeypatch.setattr(Registry, "load_bundle", lambda registry, version: bundle)
    answer = cold_start_lists(trained_lake, "v0042")
    assert answer == {"version": "v0042", "route": route, "features": [], "lists": []}


@pytest.mark.slow
def test_the_serving_process_keeps_the_analytical_stack_out(trained_lake, tmp_path):
    # The champion's lists come from the helper child; loading them, the partition and
    # popularity must not pull DuckDB, ibis or the model libraries into the server.
    # (pandas is not in the list: pyarrow.dataset, which reads the partition, imports it.)
    script = (
        "import sys\n"
        "from lakehouse.config import Settings\n"
        "from lakehouse.serve.service import Service\n"
        f"service = Service(Settings.load(env={{}}, lake={str(trained_lake.lake)!r}))\n"
        "service.refresh()\n"
        "assert service._snap.champion is not None and len(service._snap.champion)\n"
        "print(sorted(m for m in ('duckdb', 'ibis', 'lightfm', 'implicit', 'scipy',\n"
        "                         'pandera', 'sqlglot') if m in sys.modules))\n")
    done = fresh_python(script)
    assert done.stdout.strip().splitlines()[-1] == "[]"

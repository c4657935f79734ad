"""The pipeline as a user runs it, on the opaque and reference mock profiles."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from lakehouse import names
from lakehouse.lake import Lake
from lakehouse.mockapi.data import MockConfig, generate
from lakehouse.recsys.registry import Registry
from tests.conftest import settings_for

SMALL = {"users": 300, "tracks": 400, "listens": 4000}


def _genre_share(config: MockConfig) -> float:
    """Share of listens in the listener's stated favourite genre."""
    data = generate(config)
    users = data.arrow("users").to_pandas().set_index("id")["favorite_genres"]
    tracks = data.arrow("tracks").to_pandas().set_index("id")["genres"]
    listens = data.arrow("listen_history").to_pandas().dropna().explode("items")
    listens = listens[listens["user_id"].isin(users.index) & listens["items"].isin(tracks.index)]
    fav = users.loc[listens["user_id"]].to_numpy()
    genres = tracks.loc[listens["items"].astype(int)].to_numpy()
    return float(np.mean([f in g for f, g in zip(fav, genres, strict=True)]))


def test_opaque_keeps_the_realistic_catalogue_and_defects_but_hides_taste():
    realistic, opaque = MockConfig(seed=5, **SMALL), MockConfig(seed=5, profile="opaque",
                                                                 **SMALL)
    a, b = generate(realistic), generate(opaque)
    assert a.arrow("users").equals(b.arrow("users"))
    assert a.arrow("tracks").equals(b.arrow("tracks"))
    la, lb = a.arrow("listen_history"), b.arrow("listen_history")
    assert la.num_rows == lb.num_rows and la["items"].null_count == lb["items"].null_count
    assert la["user_id"].equals(lb["user_id"]) and la["created_at"].equals(lb["created_at"])
    assert pc.list_value_length(la["items"]).equals(pc.list_value_length(lb["items"]))
    assert not la["items"].equals(lb["items"])
    # Exact duplicate records stay exact duplicates.
    rows = lb.to_pylist()
    dups = [i for i in range(1, len(rows)) if rows[i] == rows[i - 1]]
    assert dups and all(rows[i] == rows[i - 1] for i in dups)
    # Stated favourite genres reveal realistic taste, not opaque taste.
    assert _genre_share(realistic) > 0.4 and _genre_share(opaque) < 0.2
    assert generate(opaque).arrow("listen_history").equals(lb)  # deterministic


def _run_pipeline(tmp_path, **mock):
    from lakehouse.ingest import ingest
    from lakehouse.mockapi.testing import running_mock_api
    from lakehouse.recsys.score import recommend
    from lakehouse.recsys.train import train
    from lakehouse.zones.build import build

    with running_mock_api(seed=11, **mock) as api:
        day = api.config.end
        settings = settings_for(tmp_path / "lake", api.url, workers=4, train_trials=2,
                                train_budget=600, train_threads=1)
        assert all(r.ok for r in ingest(settings, date=day, progress=False))
        build(settings, date=day)
    result = train(settings, date=day)
    record = recommend(settings, date=day)
    return settings, result, record


@pytest.mark.slow
def test_opaque_profile_drops_metadata_and_beats_popularity(tmp_path):
    settings, result, record = _run_pipeline(tmp_path, profile="opaque", users=600,
                                             tracks=600, listens=8000)
    assert result.promoted and result.chosen in ("als", "lightfm"), result.summary()
    model, popularity = result.metrics["model"], result.metrics["baseline"]
    assert model["precision_at_10"] > popularity["precision_at_10"]
    users = Lake(settings.lake).to_arrow(names.CONS_USER_FEATURES).num_rows
    recs = Lake(settings.lake).to_arrow(names.CONS_RECOMMENDATIONS).to_pandas()
    assert record.records == len(recs) == 10 * recs[names.USER_ID].nunique()
    assert recs[names.USER_ID].nunique() >= users


@pytest.mark.slow
def test_reference_profile_always_has_a_champion_and_recommendations(tmp_path):
    settings, result, record = _run_pipeline(tmp_path, profile="reference", users=300,
                                             tracks=300)
    champion = Registry(settings.models_dir).alias("champion")
    assert champion == result.version and result.promoted
    assert result.chosen == "popularity" and "nothing beats popularity" in result.selection
    recs = Lake(settings.lake).to_arrow(names.CONS_RECOMMENDATIONS).to_pandas()
    assert record.records == 300 * 10 and recs.groupby(names.USER_ID).size().eq(10).all()

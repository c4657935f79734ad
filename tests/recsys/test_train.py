"""Training, the promotion gate, save -> load, and the run log."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lakehouse import names
from lakehouse.errors import ConfigError, LockedError, ModelError
from lakehouse.lake import Lake
from lakehouse.locking import lake_lock
from lakehouse.recsys.data import load_inputs, load_scoring_inputs, split
from lakehouse.recsys.registry import Registry
from lakehouse.recsys.score import score_users
from lakehouse.recsys.train import evaluate_split, fit, load_model, train

from .conftest import LAST_DAY

METRIC_KEYS = {"precision_at_10", "recall_at_10", "ndcg_at_10", "auc", "coverage"}


def _runs(settings):
    return Lake(settings.lake).to_arrow(names.META_RUNS).to_pylist()


def test_first_model_beats_popularity_and_is_promoted(tiny_settings):
    seen = []
    result = train(tiny_settings, date=LAST_DAY, progress=lambda e, p: seen.append((e, p)))
    assert result.version == "v0001" and result.promoted
    assert result.reason.startswith("first model")
    model, pop = result.metrics["model"], result.metrics["baseline"]
    assert set(model) >= METRIC_KEYS and set(pop) >= METRIC_KEYS
    assert model["precision_at_10"] > 2 * pop["precision_at_10"]
    assert model["auc"] > pop["auc"]
    assert [e for e, _ in seen] == list(range(1, 16))
    assert "precision_at_10" in seen[-1][1]
    assert "popularity" in result.summary() and "PROMOTED" in result.summary()

    reg = Registry(tiny_settings.models_dir)
    info = reg.get("champion")
    assert info.version == "v0001" and reg.alias("challenger") is None
    assert set(info.metrics["model"]) >= METRIC_KEYS and "cold_start" in info.metrics
    assert info.lineage["tables"][names.STD_LISTENS]["version"] == 0
    assert info.lineage["split"]["method"] == "time_cutoff"
    assert info.params["components"] == 8 and info.params["loss"] == "warp"
    assert "numpy" in info.library_versions and len(info.history) == 15

    (run,) = [r for r in _runs(tiny_settings) if r["pipeline"] == "train"]
    assert run["status"] == names.SUCCESS and run["target"] == "models"
    details = json.loads(run["details"])
    assert details["version"] == "v0001" and details["promoted"] is True
    assert details["metrics"]["model"]["precision_at_10"] == model["precision_at_10"]


def test_worse_challenger_is_kept_out_and_better_one_promoted(tiny_settings):
    weak = tiny_settings.replace(epochs=1, components=1, learning_rate=1e-4)
    first = train(weak, date=LAST_DAY, promote="force")
    assert first.promoted and first.reason.startswith("forced")

    better = train(tiny_settings, date=LAST_DAY)
    assert better.promoted and better.previous_champion == "v0001"
    assert better.metrics["champion"]["precision_at_10"] < better.metrics["model"][
        "precision_at_10"]
    assert "vs champion v0001" in better.reason

    worse = train(weak, date=LAST_DAY)
    assert not worse.promoted
    reg = Registry(tiny_settings.models_dir)
    assert reg.alias("champion") == "v0002" and reg.alias("challenger") == "v0003"
    assert [e["to"] for e in reg.promotions()] == ["v0001", "v0002"]
    assert reg.promotions()[1]["deltas"]["precision_at_10"] > 0


def test_promote_never_keeps_the_champion(tiny_settings):
    result = train(tiny_settings, date=LAST_DAY, promote="never")
    assert not result.promoted and "--promote never" in result.reason
    assert Registry(tiny_settings.models_dir).alias("champion") is None


def test_bad_options_are_config_errors(tiny_settings):
    with pytest.raises(ConfigError, match="promote must be one of"):
        train(tiny_settings, promote="sometimes")
    with pytest.raises(ConfigError, match="unknown loss"):
        train(tiny_settings.replace(loss="mse"), date=LAST_DAY)


def test_nothing_to_train_on_is_recorded_as_a_failed_run(lake_settings):
    Lake(lake_settings.lake)  # an empty lake
    with pytest.raises(ModelError, match="run 'lakehouse build' first"):
        train(lake_settings)
    (run,) = _runs(lake_settings)
    assert run["pipeline"] == "train" and run["status"] == names.FAILED
    assert "lakehouse build" in run["error"]


def test_concurrent_training_is_refused(tiny_settings):
    with lake_lock(tiny_settings.locks_dir, "train"), pytest.raises(LockedError):
        train(tiny_settings, date=LAST_DAY, wait=False)


def test_save_then_load_gives_identical_recommendations(tiny_settings):
    lake = Lake(tiny_settings.lake)
    inputs = load_inputs(lake, LAST_DAY)
    data = split(inputs, 0.2)
    model, _ = fit(inputs, data, tiny_settings)
    reg = Registry(tiny_settings.models_dir)
    info = reg.save(model.to_arrays(), {"params": {"components": 8, "loss": "warp"},
                                        "metrics": evaluate_split(model, inputs, data)})
    loaded = load_model(reg, info.version)
    scoring = load_scoring_inputs(lake, LAST_DAY)
    before_idx, before_scores = score_users(model, scoring, 10)
    after_idx, after_scores = score_users(loaded, scoring, 10)
    assert np.array_equal(before_idx, after_idx)
    assert np.array_equal(before_scores, after_scores)
    # LightFM's own predict() agrees with the representation product.
    ids = np.arange(len(scoring.items), dtype=np.int32)
    uf = loaded.user_features(scoring.users[:1], scoring.user_meta)
    itf = loaded.item_features(scoring.items, scoring.item_meta)
    predicted = loaded.lightfm.predict(np.zeros_like(ids), ids, user_features=uf,
                                       item_features=itf)
    best = [i for i in np.argsort(-predicted, kind="stable") if not scoring.seen[0, i]][:10]
    assert list(before_idx[0]) == best

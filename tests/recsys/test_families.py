"""Every family behind one interface: fit, score, save -> load gives identical results."""

from __future__ import annotations

import numpy as np
import pytest

from lakehouse.errors import ConfigError, ModelError
from lakehouse.lake import Lake
from lakehouse.recsys.data import load_inputs, load_scoring_inputs
from lakehouse.recsys.families import Config, configs_of, make
from lakehouse.recsys.model import feature_matrix
from lakehouse.recsys.registry import Registry
from lakehouse.recsys.score import score_users
from lakehouse.recsys.train import refit

LIGHTFM = {"components": 8, "epochs": 5, "seed": 3, "meta_weight": 0.3}
CONFIGS = [
    Config("popularity"),
    Config("als", {"factors": 8, "iterations": 4, "regularization": 0.1, "alpha": 5.0,
                   "confidence": "linear", "seed": 3}),
    Config("lightfm", {**LIGHTFM, "features": "none"}),
    Config("lightfm", {**LIGHTFM, "features": "user"}),
    Config("lightfm", {**LIGHTFM, "features": "item"}),
    Config("lightfm", {**LIGHTFM, "features": "both"}),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_save_then_load_gives_identical_recommendations(tiny_settings, config):
    lake = Lake(tiny_settings.lake)
    inputs = load_inputs(lake)
    cold = Config("lightfm", {**LIGHTFM, "features": "user"})
    bundle = refit(config, cold, inputs, threads=1)
    registry = Registry(tiny_settings.models_dir)
    info = registry.save(bundle.to_arrays(), {"params": bundle.params(), "metrics": {}})
    loaded = registry.load_bundle(info.version)
    assert type(loaded.warm) is type(bundle.warm) and loaded.warm.config == config
    scoring = load_scoring_inputs(lake)
    before = score_users(bundle, scoring, 10)
    after = score_users(loaded, scoring, 10)
    for a, b in zip(before[:3], after[:3], strict=True):
        assert np.array_equal(a, b)
    assert before[3] == after[3] == [f"warm:{config.name}", "cold:lightfm+user"]
    # Every user with listens is warm; learned models rank differently for different users.
    assert (before[2] == 0).all()
    if config.family != "popularity":
        assert len({tuple(row) for row in before[0][:20]}) > 5


def test_lightfm_scores_agree_with_its_own_predict(tiny_settings):
    lake = Lake(tiny_settings.lake)
    bundle = refit(CONFIGS[5], None, load_inputs(lake), threads=1)
    scoring = load_scoring_inputs(lake)
    idx, _, _, _ = score_users(bundle, scoring, 10)
    model = bundle.warm.model
    ids = np.arange(len(scoring.items), dtype=np.int32)
    predicted = model.lightfm.predict(
        np.zeros_like(ids), ids, user_features=model.user_features(scoring.users[:1],
                                                                    scoring.user_meta),
        item_features=model.item_features(scoring.items, scoring.item_meta))
    best = [i for i in np.argsort(-predicted, kind="stable") if not scoring.seen[0, i]][:10]
    assert list(idx[0]) == best


def test_metadata_weight_is_relative_to_the_identity():
    ids = np.array([1, 2, 3])
    vocab = {"genre=Rock": 0, "gender=Male": 1}
    meta = {1: ["genre=Rock", "gender=Male"], 2: ["genre=Rock"]}
    mat = feature_matrix(ids, np.array([1, 3]), vocab, meta, meta_weight=0.25).toarray()
    # Warm user 1: identity 1, two tokens sharing 0.25, normalised to sum 1.
    assert np.allclose(mat[0], [1 / 1.25, 0, 0.125 / 1.25, 0.125 / 1.25])
    # Cold user 2: metadata only, whatever its weight.
    assert np.allclose(mat[1], [0, 0, 1, 0])
    # Warm user 3 without metadata: identity only.
    assert np.allclose(mat[2], [0, 1, 0, 0])
    legacy = feature_matrix(ids, np.array([1, 3]), vocab, meta).toarray()
    assert np.allclose(legacy[0], [1 / 3, 0, 1 / 3, 1 / 3])


def test_bad_configurations_are_config_errors():
    with pytest.raises(ConfigError, match="unknown model family"):
        make(Config("ease"))
    with pytest.raises(ConfigError, match="unknown LightFM features"):
        make(Config("lightfm", {"features": "artist"}))
    with pytest.raises(ConfigError, match="unknown ALS confidence"):
        make(Config("als", {"confidence": "bm25"}))
    with pytest.raises(ConfigError, match="at least 1"):
        make(Config("als", {"factors": 0}))
    with pytest.raises(ModelError, match="unknown model family"):
        configs_of({"config": {"family": "svd"}})


def test_a_model_saved_before_families_loads_as_lightfm_with_both_metadata():
    warm, cold = configs_of({"components": 16, "epochs": 5, "loss": "warp"})
    assert warm.name == "lightfm+both" and warm.params["meta_weight"] is None and cold is None

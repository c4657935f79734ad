"""Every family behind one interface: fit, score, save -> load gives identical results."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from lakehouse.errors import ConfigError, ModelError
from lakehouse.lake import Lake
from lakehouse.recsys.data import load_inputs, load_scoring_inputs
from lakehouse.recsys.families import Config, TrainData, configs_of, load, make
from lakehouse.recsys.model import feature_matrix
from lakehouse.recsys.registry import Registry
from lakehouse.recsys.score import score_users
from lakehouse.recsys.train import refit

LIGHTFM = {"components": 8, "epochs": 5, "seed": 3, "meta_weight": 0.3}
CONFIGS = [
    Config("popularity"),
    Config("recent_popularity", {"days": 3.0}),
    Config("item_knn", {"neighbours": 20, "weighting": "bm25"}),
    Config("item_knn", {"neighbours": 20, "weighting": "binary", "shrink": 0.0, "alpha": 0.2}),
    Config("item_knn", {"neighbours": 20, "weighting": "tfidf"}),
    Config("ease", {"lam": 50.0, "min_users": 1}),
    Config("als", {"factors": 8, "iterations": 4, "regularization": 0.1, "alpha": 5.0,
                   "confidence": "linear", "seed": 3}),
    Config("als", {"factors": 8, "iterations": 4, "regularization": 0.1, "alpha": 5.0,
                   "confidence": "bm25", "bm25_k1": 50.0, "bm25_b": 0.5, "seed": 3}),
    Config("als", {"factors": 8, "iterations": 4, "regularization": 0.1, "alpha": 5.0,
                   "confidence": "tfidf", "seed": 3}),
    Config("ease", {"lam": 50.0, "min_users": 1, "trend": 0.4, "trend_days": 3.0}),
    Config("als", {"factors": 8, "iterations": 4, "regularization": 0.1, "alpha": 5.0,
                   "confidence": "log", "seed": 3, "trend": 0.2, "trend_days": 7.0}),
    Config("lightfm", {**LIGHTFM, "features": "none"}),
    Config("lightfm", {**LIGHTFM, "features": "user"}),
    Config("lightfm", {**LIGHTFM, "features": "item"}),
    Config("lightfm", {**LIGHTFM, "features": "both"}),
]


@pytest.mark.parametrize("config", CONFIGS,
                         ids=lambda c: "-".join([c.name, *map(str, c.params.values())][:3]))
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
    if "popularity" not in config.family:
        assert len({tuple(row) for row in before[0][:20]}) > 5


def test_lightfm_scores_agree_with_its_own_predict(tiny_settings):
    lake = Lake(tiny_settings.lake)
    bundle = refit(Config("lightfm", {**LIGHTFM, "features": "both"}), None, load_inputs(lake),
                   threads=1)
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
        make(Config("svd"))
    with pytest.raises(ConfigError, match="unknown LightFM features"):
        make(Config("lightfm", {"features": "artist"}))
    with pytest.raises(ConfigError, match="unknown ALS confidence"):
        make(Config("als", {"confidence": "cube"}))
    with pytest.raises(ConfigError, match="unknown item_knn weighting"):
        make(Config("item_knn", {"weighting": "jaccard"}))
    with pytest.raises(ConfigError, match="shrink >= 0"):
        make(Config("item_knn", {"shrink": -1}))
    with pytest.raises(ConfigError, match="lam > 0"):
        make(Config("ease", {"lam": 0}))
    with pytest.raises(ConfigError, match="at least 1"):
        make(Config("als", {"factors": 0}))
    with pytest.raises(ModelError, match="unknown model family"):
        configs_of({"config": {"family": "svd"}})


def test_a_model_saved_before_families_loads_as_lightfm_with_both_metadata():
    warm, cold = configs_of({"components": 16, "epochs": 5, "loss": "warp"})
    assert warm.name == "lightfm+both" and warm.params["meta_weight"] is None and cold is None


def _listens(rows: list[list[int]], n_items: int) -> TrainData:
    users = np.arange(len(rows), dtype=np.int64) + 100
    items = np.arange(n_items, dtype=np.int64) + 10
    r = [u for u, row in enumerate(rows) for _ in row]
    c = [i for row in rows for i in row]
    mat = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(rows), n_items))
    return TrainData(users, items, {}, {}, mat)


def test_ease_is_the_closed_form_solution():
    rng = np.random.default_rng(0)
    rows = [sorted(rng.choice(12, 5, replace=False).tolist()) for _ in range(40)]
    data = _listens(rows, 12)
    model = make(Config("ease", {"lam": 7.0, "min_users": 1}))
    model.fit(data)
    x = data.matrix.toarray().astype(np.float64)
    keep = x.sum(axis=0) >= 1
    p = np.linalg.inv(x[:, keep].T @ x[:, keep] + 7.0 * np.eye(keep.sum()))
    expected = np.eye(keep.sum()) - p / np.diag(p)
    assert np.allclose(model.weights, expected, atol=1e-4)
    assert np.array_equal(model.item_ids, data.items[keep])
    # A user is scored from their history: history @ B, unknown tracks below every known one.
    scores = model.scores(data.users[:2], data.matrix[:2], data.items, {}, {}).block(slice(0, 2))
    assert np.allclose(scores[:, keep], x[:2, keep] @ expected, atol=1e-4)


def test_ease_skips_itself_when_the_catalogue_would_not_fit(monkeypatch):
    from lakehouse.recsys import neighbours

    rows = [[0, 1, 2], [1, 2, 3], [0, 3]]
    data = _listens(rows, 4)
    assert neighbours.EASE.skip_reason(data) is None
    monkeypatch.setattr(neighbours, "EASE_MAX_ITEMS", 3)
    assert "4 tracks with 2+ listeners > 3" in neighbours.EASE.skip_reason(data)
    monkeypatch.setattr(neighbours, "EASE_MAX_ITEMS", 25_000)
    monkeypatch.setattr(neighbours, "available_memory", lambda: 100)
    assert "more than a quarter of the memory available" in neighbours.EASE.skip_reason(data)


def test_item_knn_neighbours_are_capped_and_item_models_know_users_by_history():
    rng = np.random.default_rng(1)
    rows = [sorted(rng.choice(30, 8, replace=False).tolist()) for _ in range(60)]
    data = _listens(rows, 30)
    model = make(Config("item_knn", {"neighbours": 3, "weighting": "binary", "shrink": 5.0,
                                      "alpha": 0.3}))
    model.fit(data, threads=1)
    assert np.diff(model.sim_indptr).max() <= 3
    # Each row holds the 3 largest of c_ij / (n_i^0.3 n_j^0.7 + 5), the diagonal excluded.
    x = data.matrix.toarray()
    co, n = x.T @ x, x.sum(axis=0)
    sim = co / (n[:, None] ** 0.3 * n[None, :] ** 0.7 + 5.0 + 1e-12)
    np.fill_diagonal(sim, -1)
    got = model._weights().toarray()
    for i in range(30):
        assert np.allclose(np.sort(got[i][got[i] > 0])[::-1], np.sort(sim[i])[::-1][:3],
                           atol=1e-5)
    # A user the model never saw, with a listen of a known track, is warm for it.
    history = sp.csr_matrix(np.array([[1] + [0] * 29, [0] * 30], np.float32))
    assert model.knows(np.array([1, 2]), history, data.items).tolist() == [True, False]
    assert model.knows(np.array([100, 1])).tolist() == [True, False]


@pytest.mark.parametrize("block_pairs", [1, 40, 300])
def test_item_knn_built_in_blocks_of_tracks_is_the_same_model(block_pairs, monkeypatch):
    # Block sizes from one track per block to a few tracks: the same neighbours and
    # similarities as the whole co-occurrence at once, and no block above the bound
    # unless it is a single track.
    from lakehouse.recsys import neighbours

    rng = np.random.default_rng(4)
    rows = [sorted(rng.choice(40, rng.integers(1, 8), replace=False).tolist())
            for _ in range(80)]
    data = _listens(rows, 40)
    config = Config("item_knn", {"neighbours": 5, "weighting": "bm25", "shrink": 2.0,
                                 "alpha": 0.5})
    whole = make(config)
    whole.fit(data, threads=1)
    sizes = []
    blocks = neighbours._blocks
    monkeypatch.setattr(neighbours, "KNN_BLOCK_PAIRS", block_pairs)
    monkeypatch.setattr(neighbours, "_blocks", lambda bound, limit: sizes.extend(
        (b - a, bound[a:b].sum()) for a, b in blocks(bound, limit)) or blocks(bound, limit))
    blocked = make(config)
    blocked.fit(data, threads=1)
    assert sum(n for n, _ in sizes) == 40 and len(sizes) > 1
    assert all(n == 1 or pairs <= block_pairs for n, pairs in sizes)
    np.testing.assert_allclose(blocked._weights().toarray(), whole._weights().toarray(),
                               rtol=1e-6)


def test_recent_popularity_counts_the_last_days_and_breaks_ties_by_all_time():
    data = _listens([[0, 1], [0, 2], [0, 3], [3]], 4)
    days = data.matrix.copy()
    # Track 0: three listeners long ago; track 3: two in the last day; 1 and 2: one each, old.
    days.data = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 10.0, 10.0])
    data.last_day = days
    model = make(Config("recent_popularity", {"days": 2.0}))
    model.fit(data)
    order = np.argsort(-model.item_vectors(data.items, {}).ravel(), kind="stable")
    assert order.tolist() == [3, 0, 1, 2]
    flat = _listens([[0, 1]], 2)
    flat.last_day = flat.matrix.copy()
    assert "less than a day" in type(model).skip_reason(flat)


@pytest.mark.parametrize("config", [c for c in CONFIGS if c.family != "lightfm"],
                         ids=lambda c: c.name)
def test_damaged_arrays_are_refused_on_load(tiny_settings, config):
    from lakehouse.recsys.families import FAMILIES

    bundle = refit(config, None, load_inputs(Lake(tiny_settings.lake)), threads=1)
    arrays = bundle.warm.to_arrays()
    assert type(load(config, arrays)) is type(bundle.warm)
    if not config.params.get("trend"):
        assert FAMILIES[config.family].from_arrays(config, arrays).check() is None
    for name, value in arrays.items():
        # A blend's trend arrays are named under its prefix (trend__listeners).
        with pytest.raises(ModelError, match=name.removeprefix("trend__")):
            load(config, {k: v for k, v in arrays.items() if k != name})
        broken = dict(arrays)
        if value.ndim == 2 and value.size or value.ndim == 1 and len(value) > 1 \
                and not name.endswith("user_ids"):
            broken[name] = value[:-1]
        else:
            continue
        with pytest.raises(ModelError):
            load(config, broken)


def _timed(rows: list[list[int]], n_items: int, days: list[float]) -> TrainData:
    data = _listens(rows, n_items)
    data.last_day = data.matrix.copy()
    data.last_day.data = np.asarray(days, np.float64)
    return data


def test_a_trend_blend_mixes_the_models_ranking_with_what_is_played_lately():
    from lakehouse.recsys.popularity import Trended

    # Track 0 co-occurs with 1 for every old user; track 3 is what the last day played.
    rows = [[0, 1], [0, 1], [0, 1], [3], [3, 2], [0]]
    data = _timed(rows, 4, [1, 1, 1, 1, 1, 1, 10, 10, 10, 1])
    alone = make(Config("item_knn", {"neighbours": 5, "weighting": "binary", "shrink": 0.0}))
    alone.fit(data, threads=1)
    light = make(Config("item_knn", {"neighbours": 5, "weighting": "binary", "shrink": 0.0,
                                     "trend": 0.1, "trend_days": 2.0}))
    heavy = make(Config("item_knn", {"neighbours": 5, "weighting": "binary", "shrink": 0.0,
                                     "trend": 0.9, "trend_days": 2.0}))
    assert isinstance(heavy, Trended) and heavy.config.name == "item_knn+trend"
    for model in (light, heavy):
        model.fit(data, threads=1)
    user = sp.csr_matrix(np.array([[1, 0, 0, 0]], np.float32))  # listened to track 0

    def ranking(model):
        block = model.scores(np.array([105]), user, data.items, {}, {}).block(slice(0, 1))
        return np.argsort(-block[0, :4], kind="stable").tolist(), block[0, :4]

    assert ranking(alone)[0][0] == 1
    assert ranking(light)[0][0] == 1  # a light trend keeps the model's pick first
    order, values = ranking(heavy)
    assert order[0] == 3 and values.min() >= 0 and values.max() <= 1.0 + 1e-6
    # The trend is a count: scoring recomputes it on the scoring day's listens, the model
    # itself stays as trained.
    later = _timed(rows, 4, [1, 1, 1, 1, 20, 20, 10, 10, 10, 1])  # now track 0 and 1 are recent
    fresh = heavy.refreshed(later)
    assert fresh.base is heavy.base and fresh.config == heavy.config
    assert ranking(fresh)[0][0] != 3


def test_bad_trend_settings_are_config_errors():
    with pytest.raises(ConfigError, match="0 < trend < 1"):
        make(Config("ease", {"lam": 10.0, "trend": 1.5}))
    with pytest.raises(ConfigError, match="trend_days > 0"):
        make(Config("ease", {"lam": 10.0, "trend": 0.5, "trend_days": -1}))
    assert make(Config("ease", {"lam": 10.0, "trend": 0})).config.name == "ease"


def test_a_trend_variant_reuses_its_parents_fitted_model_and_skips_timeless_data():
    from lakehouse.recsys.families import EASETrend
    from lakehouse.recsys.popularity import Trended

    data = _timed([[0, 1], [0, 1], [1, 2], [2]], 3, [1, 1, 2, 2, 5, 9, 9])
    parent = make(Config("ease", {"lam": 10.0, "min_users": 1}))
    parent.fit(data, threads=1)
    config = EASETrend.default_config(None, parent.fitted_config())
    assert config.name == "ease+trend" and config.without_trend() == parent.config
    reused = EASETrend.from_parent(config, parent, data)
    assert isinstance(reused, Trended) and reused.base is parent
    other = config.with_params(lam=20.0)
    assert EASETrend.from_parent(other, parent, data) is None  # another model: fit it
    # Listens without time: the trend is all-time popularity, and the blend still runs.
    flat = _listens([[0, 1], [1], [1, 2]], 3)
    assert EASETrend.skip_reason(flat) is None
    blend = make(config)
    blend.fit(flat, threads=1)
    assert blend.trend.item_vectors(flat.items, {})[:, 0].tolist() == [1.0, 3.0, 1.0]
    with pytest.raises(ConfigError, match="extends a fitted ease"):
        EASETrend.default_config(None, None)


def test_eases_time_estimate_measures_one_blas_thread(monkeypatch):
    """Several threads on a busy machine wait for each other: the measure swung 100x."""
    import threadpoolctl

    from lakehouse.recsys import neighbours

    limits, real = [], threadpoolctl.threadpool_limits

    def spy(*args, **kwargs):
        limits.append(kwargs.get("limits"))
        return real(*args, **kwargs)

    monkeypatch.setattr(threadpoolctl, "threadpool_limits", spy)
    monkeypatch.setattr(neighbours, "_SPEED", [])
    assert neighbours._flops_per_second() > 1e8
    assert limits == [1]

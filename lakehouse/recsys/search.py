"""Hyperparameter search over every family within a time budget, and model selection.

The holdout users of a :class:`~lakehouse.recsys.data.Split` are cut in two
seeded halves: the search tunes on one (``tune``: the objective and LightFM's
early stopping) and every candidate's best configuration is compared on the
other (``test``), so the winner's reported metrics are not the ones it was
picked for. With few holdout users both halves are the same users (the entry
says so).

Candidates, simplest first: ``popularity``; ``als`` (implicit: factors,
regularisation, iterations, confidence weighting); ``lightfm`` with identity
features (components, learning rate, regularisation, epochs by early
stopping); then ``lightfm+item``, ``lightfm+user`` and ``lightfm+both``,
which reuse the identity model's best hyperparameters and search the weight
of the metadata relative to the identity. Metadata thus has to beat the same
model without it on the holdout to be kept.

The search uses optuna's TPE sampler, seeded, with the defaults of the
settings enqueued as every family's first trial. Trials stop at the budget
(each family has a share; time a family does not use passes to the next), or
at ``max_trials`` per family, whichever comes first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lakehouse.config import Settings
from lakehouse.errors import ConfigError
from lakehouse.recsys.data import Inputs, Split
from lakehouse.recsys.evaluate import (
    PER_USER_METRICS,
    evaluate,
    paired_bootstrap,
    per_user,
    sample_users,
)
from lakehouse.recsys.families import Config, LightFMRecommender, Recommender, TrainData, fit

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]

# Below this many warm holdout users, tuning and testing share them (halves would be noise).
MIN_SPLIT_USERS = 200
# Users scored for LightFM's early stopping, and how many evaluations without gain stop it.
EARLY_STOP_USERS = 1000
PATIENCE = 3
# Share of the budget per stage; what one stage leaves passes to the next.
SHARES = (("als", 0.2), ("lightfm", 0.4), ("lightfm+item", 0.4 / 3),
          ("lightfm+user", 0.4 / 3), ("lightfm+both", 0.4 / 3))


@dataclass
class Holdout:
    """Which holdout rows tune the search, which test the candidates, which are cold."""

    tune: np.ndarray
    test: np.ndarray
    cold: np.ndarray
    shared: bool

    def describe(self) -> dict[str, Any]:
        return {"tune_users": len(self.tune), "test_users": len(self.test),
                "cold_users": len(self.cold), "shared": self.shared}


def holdout_rows(data: Split, seed: int) -> Holdout:
    """Seeded halves of the warm holdout users (both halves alike when there are few)."""
    warm = sample_users(data.eval_users(True), seed=seed)
    cold = sample_users(data.eval_users(False), seed=seed)
    if len(warm) < MIN_SPLIT_USERS:
        return Holdout(warm, warm, cold, shared=True)
    perm = np.random.default_rng(seed).permutation(len(warm))
    half = len(warm) // 2
    return Holdout(np.sort(warm[perm[:half]]), np.sort(warm[perm[half:]]), cold, shared=False)


@dataclass
class Trial:
    """One configuration tried, and its score on the tuning users."""

    candidate: str
    number: int
    params: dict[str, Any]
    value: float
    epochs: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "number": self.number, "params": self.params,
                "value": round(self.value, 6), "epochs": self.epochs,
                "seconds": round(self.seconds, 3)}


@dataclass
class Candidate:
    """The best configuration of one candidate, fitted on the training split."""

    config: Config
    model: Recommender
    trials: list[Trial] = field(default_factory=list)
    seconds: float = 0.0
    tune_value: float = 0.0
    test: dict[str, Any] = field(default_factory=dict)
    test_user: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cold: dict[str, Any] | None = None
    cold_user: np.ndarray | None = None
    # Metadata variants: the same configuration fitted and scored with the metadata
    # shuffled among users and tracks (same structure, no information).
    placebo: dict[str, Any] | None = None
    placebo_user: np.ndarray | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def to_json(self, primary: str) -> dict[str, Any]:
        return {"name": self.name, "config": self.config.to_json(),
                "tune": round(self.tune_value, 6), "test": self.test, "cold_start": self.cold,
                "placebo": self.placebo,
                "trials": len(self.trials), "search_seconds": round(self.seconds, 3),
                "primary": primary}


def train_data(inputs: Inputs, matrix) -> TrainData:
    """The families' input: ``matrix`` (users x items of ``inputs``) and the metadata."""
    return TrainData(inputs.users, inputs.items, inputs.user_meta, inputs.item_meta,
                     matrix.tocsr())


def scorer(model: Recommender, inputs: Inputs, rows: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """User vectors of ``rows`` and item vectors of the whole catalogue."""
    return (model.user_vectors(inputs.users[rows], inputs.user_meta),
            model.item_vectors(inputs.items, inputs.item_meta))


def score_rows(model: Recommender, inputs: Inputs, data: Split, rows: np.ndarray,
               metric: str) -> np.ndarray:
    """Per-user ``metric`` of ``model`` on ``rows`` of the split."""
    users, items = scorer(model, inputs, rows)
    return per_user(metric, users, items, data.train[rows], data.holdout[rows])


def check_primary(metric: str) -> str:
    """``metric`` if it can rank candidates and be bootstrapped.

    Raises:
        ConfigError: It is not one of the per-user metrics.
    """
    if metric not in PER_USER_METRICS:
        raise ConfigError(f"primary metric must be one of {', '.join(PER_USER_METRICS)}, "
                          f"got {metric!r}; set LAKEHOUSE_PRIMARY_METRIC")
    return metric


def default_configs(settings: Settings) -> dict[str, Config]:
    """The first trial of each family: the settings' hyperparameters."""
    common = {"seed": settings.seed}
    lightfm = {**common, "components": settings.components, "epochs": settings.epochs,
               "learning_rate": settings.learning_rate, "loss": settings.loss,
               "item_alpha": settings.item_alpha, "user_alpha": settings.user_alpha,
               "max_sampled": settings.max_sampled, "features": "none", "meta_weight": 1.0}
    return {
        "popularity": Config("popularity", {}),
        "als": Config("als", {**common, "factors": 64, "regularization": 0.05, "alpha": 10.0,
                              "iterations": 15, "confidence": "log"}),
        "lightfm": Config("lightfm", lightfm),
    }


def _suggest(trial, name: str, base: Config) -> Config:
    """The configuration optuna proposes for candidate ``name`` around ``base``."""
    p = base.params

    def span(key: str, low: float, high: float) -> tuple[float, float]:
        # The first trial is the settings' value: the range must hold it.
        value = p.get(key, low)
        return min(low, value), max(high, value)

    if name == "als":
        return base.with_params(
            factors=trial.suggest_int("factors", *map(int, span("factors", 16, 192)), log=True),
            regularization=trial.suggest_float("regularization", *span("regularization",
                                                                       1e-3, 1.0), log=True),
            iterations=trial.suggest_int("iterations", *map(int, span("iterations", 5, 30))),
            alpha=trial.suggest_float("alpha", *span("alpha", 1.0, 100.0), log=True),
            confidence=trial.suggest_categorical("confidence", ["log", "linear"]))
    if name == "lightfm":
        return base.with_params(
            components=trial.suggest_int("components", *map(int, span("components", 16, 128)),
                                         log=True),
            learning_rate=trial.suggest_float("learning_rate",
                                              *span("learning_rate", 0.01, 0.1), log=True),
            item_alpha=trial.suggest_float("item_alpha", *span("item_alpha", 1e-8, 1e-4),
                                           log=True),
            user_alpha=trial.suggest_float("user_alpha", *span("user_alpha", 1e-8, 1e-4),
                                           log=True))
    return base.with_params(features=name.split("+", 1)[1],
                            meta_weight=trial.suggest_float("meta_weight", 0.01, 2.0, log=True))


def _first_trial(name: str, base: Config) -> dict[str, Any]:
    if name.startswith("lightfm+"):
        return {"meta_weight": 0.25}
    keys = {"als": ("factors", "regularization", "iterations", "alpha", "confidence"),
            "lightfm": ("components", "learning_rate", "item_alpha", "user_alpha")}[name]
    return {k: base.params[k] for k in keys}


class _Objective:
    """Fits one proposed configuration, early-stopped, and keeps the best model."""

    def __init__(self, name: str, base: Config, inputs: Inputs, data: Split,
                 holdout: Holdout, metric: str, seed: int, progress: Progress | None,
                 clock: dict[str, float], threads: int | None):
        self.name, self.base, self.inputs, self.data = name, base, inputs, data
        self.holdout, self.metric, self.progress, self.clock = holdout, metric, progress, clock
        self.train = train_data(inputs, data.train)
        self.stop_rows = sample_users(holdout.tune, EARLY_STOP_USERS, seed)
        self.best: tuple[float, Recommender, Config] | None = None
        self.trials: list[Trial] = []
        self.threads = threads

    def __call__(self, trial) -> float:
        t0 = time.perf_counter()
        config = _suggest(trial, self.name, self.base)
        model = fit(config, self.train, self._early_stopping(), self.threads)
        if isinstance(model, LightFMRecommender) and self._snapshot is not None:
            model.restore(*self._snapshot)
        value = float(score_rows(model, self.inputs, self.data, self.holdout.tune,
                                 self.metric).mean())
        config = config.with_params(epochs=model.epochs_run) \
            if config.family == "lightfm" else config
        record = Trial(self.name, trial.number, dict(config.params), value, model.epochs_run,
                       time.perf_counter() - t0)
        self.trials.append(record)
        if self.best is None or value > self.best[0]:
            self.best = (value, model, config)
        if self.progress is not None:
            self.progress({"event": "trial", **record.to_json(), "best": self.best[0],
                           "elapsed": round(time.perf_counter() - self.clock["start"], 1),
                           "budget": self.clock["budget"]})
        return value

    def _early_stopping(self):
        self._snapshot = None
        # Metadata variants train exactly the identity model's early-stopped epochs: the
        # comparison then differs in the metadata alone.
        if self.base.family != "lightfm" or self.name != "lightfm":
            return None
        epochs = int(self.base.params.get("epochs", 30))
        every = max(1, epochs // 15)
        state = {"best": -1.0, "since": 0}

        def on_epoch(epoch: int, model: Recommender) -> bool:
            if epoch % every and epoch != epochs:
                return False
            value = float(score_rows(model, self.inputs, self.data, self.stop_rows,
                                     self.metric).mean())
            if value > state["best"]:
                state["best"], state["since"] = value, 0
                self._snapshot = (model.snapshot(), epoch)
                return False
            state["since"] += 1
            return state["since"] >= PATIENCE
        return on_epoch


def _study(name: str, base: Config, objective: _Objective, seed: int, max_trials: int,
           seconds: float) -> None:
    import optuna

    # optuna logs every trial at INFO to stderr; the library reports through `progress`.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial(_first_trial(name, base))
    started = time.perf_counter()

    def stop_before_overrun(study, trial) -> None:
        # optuna's timeout lets a started trial run past it; do not start one that the
        # last trial's duration says would not finish in time.
        last = objective.trials[-1].seconds if objective.trials else 0.0
        if time.perf_counter() - started + last > seconds:
            study.stop()

    # A family always gets its first trial, even when earlier ones used up the budget.
    study.optimize(objective, n_trials=max_trials, callbacks=[stop_before_overrun])


def _metadata_base(found: list[Candidate]) -> Config:
    """The identity LightFM's best configuration (with its early-stopped epochs).

    The metadata variants extend it and only search the metadata weight, so
    that metadata is compared with the same model without it.
    """
    return next(c.config for c in found if c.name == "lightfm")


def search(inputs: Inputs, data: Split, holdout: Holdout, settings: Settings, *,
           budget: float, max_trials: int | None = None, metric: str = "precision_at_10",
           progress: Progress | None = None) -> list[Candidate]:
    """Every candidate's best configuration, fitted on ``data.train``, scored on ``test``.

    Args:
        inputs: The lake's inputs.
        data: The train/holdout split.
        holdout: Which holdout rows tune and which test.
        settings: Defaults of the first trials, and the seed.
        budget: Seconds for the whole search (popularity and first trials always run).
        max_trials: At most this many trials per searched candidate (None: budget only).
        metric: The primary metric (one of :data:`PER_USER_METRICS`).
        progress: Called with ``{"event": "trial", "candidate", "number", "value",
            "best", "params", "epochs", "seconds", "elapsed", "budget"}`` per trial.

    Returns:
        The candidates, simplest first.
    """
    metric = check_primary(metric)
    start = time.perf_counter()
    clock = {"start": start, "budget": budget}
    defaults = default_configs(settings)
    popularity = fit(defaults["popularity"], train_data(inputs, data.train))
    out = [Candidate(defaults["popularity"], popularity)]
    deadline = 0.0
    for name, share in SHARES:
        deadline += share * budget
        base = defaults.get(name) or _metadata_base(out)
        t0 = time.perf_counter()
        objective = _Objective(name, base, inputs, data, holdout, metric, settings.seed,
                               progress, clock, settings.train_threads or None)
        _study(name, base, objective, settings.seed, max_trials or 10_000,
               deadline - (t0 - start))
        value, model, config = objective.best
        out.append(Candidate(config, model, objective.trials, time.perf_counter() - t0, value))
    for cand in out:
        _score(cand, inputs, data, holdout, metric)
    identity = next(c for c in out if c.name == "lightfm")
    for cand in out:
        if cand.name.startswith("lightfm+") and cand.test[metric] > identity.test[metric]:
            _placebo(cand, inputs, data, holdout, metric, settings)
    return out


def shuffled_metadata(inputs: Inputs, seed: int) -> Inputs:
    """``inputs`` with each side's metadata token lists permuted among its entities.

    Every token keeps its frequency and every entity keeps a plausible token
    list, so a model sees the same feature structure (e.g. a token nearly
    everyone shares acts as a common vector) but no information about who
    likes what. Metadata that does no better than this earns nothing.
    """
    import dataclasses

    rng = np.random.default_rng(seed)

    def permute(meta: dict[int, list[str]]) -> dict[int, list[str]]:
        ids = list(meta)
        values = [meta[i] for i in ids]
        return {i: values[j] for i, j in zip(ids, rng.permutation(len(ids)), strict=True)}

    return dataclasses.replace(inputs, user_meta=permute(dict(inputs.user_meta)),
                               item_meta=permute(dict(inputs.item_meta)))


def _placebo(cand: Candidate, inputs: Inputs, data: Split, holdout: Holdout, metric: str,
             settings: Settings) -> None:
    """Fit and score ``cand``'s configuration on shuffled metadata (its control)."""
    shuffled = shuffled_metadata(inputs, settings.seed)
    model = fit(cand.config, train_data(shuffled, data.train),
                threads=settings.train_threads or None)
    users, items = scorer(model, shuffled, holdout.test)
    train, held = data.train[holdout.test], data.holdout[holdout.test]
    cand.placebo = evaluate(users, items, train, held)
    cand.placebo_user = per_user(metric, users, items, train, held)


def _score(cand: Candidate, inputs: Inputs, data: Split, holdout: Holdout,
           metric: str) -> None:
    """Test metrics, per-user test values, and cold-start metrics when it can score them."""
    users, items = scorer(cand.model, inputs, holdout.test)
    train, held = data.train[holdout.test], data.holdout[holdout.test]
    cand.test = evaluate(users, items, train, held)
    cand.test_user = per_user(metric, users, items, train, held)
    if cand.name == "popularity" and cand.tune_value == 0.0:
        cand.tune_value = float(score_rows(cand.model, inputs, data, holdout.tune,
                                           metric).mean())
    if len(holdout.cold) and (cand.model.can_score_new_users or cand.name == "popularity"):
        users, items = scorer(cand.model, inputs, holdout.cold)
        train, held = data.train[holdout.cold], data.holdout[holdout.cold]
        cand.cold = evaluate(users, items, train, held)
        cand.cold_user = per_user(metric, users, items, train, held)


@dataclass
class Selection:
    """The candidate chosen for warm users and the one for cold-start users, and why."""

    warm: Candidate
    cold: Candidate
    reason: str
    vs_popularity: dict[str, float] | None = None
    beats_popularity: bool = False


def select(candidates: list[Candidate], metric: str, seed: int = 0) -> Selection:
    """The best candidate on the test users; popularity unless a model really beats it.

    Metadata must earn its place: a LightFM variant with metadata is
    eligible only if a paired bootstrap over test users puts the lower bound
    of (variant - identity LightFM) above 0, and the lower bound of (variant -
    the same variant on shuffled metadata) too: a gain that shuffled metadata
    also brings comes from the features' structure, not from what they say. The best eligible learned
    candidate (ties to the simpler) must then beat popularity the same way;
    otherwise popularity is chosen. Cold-start users get popularity unless a
    model that scores new users through their metadata beats it likewise on
    the holdout's cold-start users.
    """
    popularity = candidates[0]
    identity = next((c for c in candidates if c.name == "lightfm"), None)
    eligible, notes = [], []
    for c in candidates[1:]:
        if c.name.startswith("lightfm+") and identity is not None:
            vs = paired_bootstrap(c.test_user, identity.test_user, seed=seed)
            if vs["low"] <= 0:
                notes.append(f"{c.name} not above lightfm ({vs['diff']:+.4f}, "
                             f"{vs['low']:+.4f} .. {vs['high']:+.4f})")
                continue
            placebo = paired_bootstrap(c.test_user, c.placebo_user, seed=seed) \
                if c.placebo_user is not None else None
            if placebo is None or placebo["low"] <= 0:
                shown = (f"{placebo['diff']:+.4f}, {placebo['low']:+.4f} .. "
                         f"{placebo['high']:+.4f}") if placebo else "not measured"
                notes.append(f"{c.name} not above its shuffled metadata ({shown})")
                continue
        eligible.append(c)
    best = min(eligible, key=lambda c: (-c.test[metric], c.config.complexity),
               default=popularity)
    cold = _cold_route(candidates, metric, seed)
    suffix = f"; metadata dropped: {'; '.join(notes)}" if notes else ""
    if best is popularity:
        return Selection(popularity, cold, "popularity is the only candidate" + suffix)
    interval = paired_bootstrap(best.test_user, popularity.test_user, seed=seed)
    label = metric.replace("_at_", "@")
    text = (f"best model {best.name} {label} {best.test[metric]:.4f} vs popularity "
            f"{popularity.test[metric]:.4f}, difference {interval['diff']:+.4f} "
            f"(95% interval {interval['low']:+.4f} .. {interval['high']:+.4f})") + suffix
    if interval["low"] > 0:
        return Selection(best, cold, text, interval, beats_popularity=True)
    return Selection(popularity, cold, f"nothing beats popularity: {text}", interval)


def _cold_route(candidates: list[Candidate], metric: str, seed: int) -> Candidate:
    """Popularity, or the feature model that beats it on the cold-start holdout users."""
    popularity = candidates[0]
    if popularity.cold_user is None:
        return popularity
    best = max((c for c in candidates[1:] if c.cold_user is not None),
               key=lambda c: (c.cold[metric], -c.config.complexity), default=None)
    if best is None:
        return popularity
    vs = paired_bootstrap(best.cold_user, popularity.cold_user, seed=seed)
    return best if vs["low"] > 0 else popularity

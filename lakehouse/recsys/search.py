"""Hyperparameter search over every family within a time budget, and model selection.

The holdout users of a :class:`~lakehouse.recsys.data.Split` are cut in two
seeded halves: the search tunes on one (``tune``: the objective and LightFM's
early stopping) and every candidate's best configuration is compared on the
other (``test``), so the winner's reported metrics are not the ones it was
picked for. With few holdout users both halves are the same users (the entry
says so).

Candidates, simplest first, are :data:`lakehouse.recsys.families.CANDIDATES`:
popularity (the baseline), recent popularity, item-kNN, EASE, ALS, LightFM,
and LightFM's metadata variants, which extend the identity model's best
configuration and search only the metadata weight, so metadata has to beat
the same model without it on the holdout to be kept. Each family owns its
defaults (the first trial), its search space and when it cannot run; this
module only spends the budget (:func:`search`) and selects (:func:`select`).

The search uses optuna's TPE sampler, seeded, one study per family (ask and
tell), with each family's defaults enqueued as its first trial.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lakehouse.config import Settings
from lakehouse.errors import ConfigError, LakehouseError
from lakehouse.recsys.data import Inputs, Split
from lakehouse.recsys.evaluate import (
    PER_USER_METRICS,
    evaluate,
    paired_bootstrap,
    per_user,
    sample_users,
)
from lakehouse.recsys.families import CANDIDATES, Config, Recommender, TrainData, fit
from lakehouse.recsys.topk import Scores

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]

# Below this many warm holdout users, tuning and testing share them (halves would be noise).
MIN_SPLIT_USERS = 200
# Users scored for LightFM's early stopping, and how many evaluations without gain stop it.
EARLY_STOP_USERS = 1000
PATIENCE = 3
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
    # Of ``seconds``: scoring it on the test (and cold) users, when it became its
    # candidate's best (the candidates' evaluation is part of the search's trials).
    eval_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "number": self.number, "params": self.params,
                "value": round(self.value, 6), "epochs": self.epochs,
                "seconds": round(self.seconds, 3), "eval_seconds": round(self.eval_seconds, 3)}


@dataclass
class Candidate:
    """The best configuration of one candidate, fitted on the training split."""

    config: Config
    model: Recommender | None
    trials: list[Trial] = field(default_factory=list)
    seconds: float = 0.0
    tune_value: float = 0.0
    # Of ``seconds``: scoring its best configurations on the test, cold and placebo users.
    eval_seconds: float = 0.0
    # Why the candidate was not fitted (memory, no timestamps, the budget); None: fitted.
    skipped: str | None = None
    # The candidate's name when its configuration cannot say it (a skipped variant).
    label: str = ""
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
        return self.label or self.config.name

    def to_json(self, primary: str) -> dict[str, Any]:
        return {"name": self.name, "config": self.config.to_json(),
                "tune": round(self.tune_value, 6), "test": self.test, "cold_start": self.cold,
                "placebo": self.placebo, "skipped": self.skipped,
                "trials": len(self.trials), "search_seconds": round(self.seconds, 3),
                "eval_seconds": round(self.eval_seconds, 3), "primary": primary}


def train_data(inputs: Inputs, matrix, last_day=None) -> TrainData:
    """The families' input: ``matrix`` (users x items of ``inputs``), metadata, listen days."""
    return TrainData(inputs.users, inputs.items, inputs.user_meta, inputs.item_meta,
                     matrix.tocsr(), None if last_day is None else last_day.tocsr())


def scorer(model: Recommender, inputs: Inputs, history, rows: np.ndarray) -> Scores:
    """Scores of ``rows`` (users) over the whole catalogue, from their ``history`` rows."""
    return model.scores(inputs.users[rows], history[rows], inputs.items, inputs.user_meta,
                        inputs.item_meta)


def score_rows(model: Recommender, inputs: Inputs, data: Split, rows: np.ndarray,
               metric: str) -> np.ndarray:
    """Per-user ``metric`` of ``model`` on ``rows`` of the split."""
    return per_user(metric, scorer(model, inputs, data.train, rows), data.train[rows],
                    data.holdout[rows])


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
    """Each stand-alone family's first trial (its defaults and the settings')."""
    return {c.family: c.default_config(settings) for c in CANDIDATES if c.parent is None}


# Errors a proposed configuration may raise while fitting: the trial fails, the search
# goes on (a family whose first trial fails is skipped with the reason).
_TRIAL_ERRORS = (LakehouseError, ValueError, ArithmeticError, np.linalg.LinAlgError)


class _FamilySearch:
    """One candidate's search: its optuna study (ask/tell), its trials, its best model."""

    def __init__(self, cls: type[Recommender], settings: Settings, run: _Run):
        import optuna

        self.cls, self.settings, self.run = cls, settings, run
        # optuna logs every study and trial at INFO; the library reports through `progress`.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.base = cls.default_config(settings, run.parent_config(cls))
        self.study = optuna.create_study(direction="maximize",
                                         sampler=optuna.samplers.TPESampler(seed=settings.seed))
        self.study.enqueue_trial(cls.first_params(self.base))
        self.trials: list[Trial] = []
        self.best: tuple[float, Recommender, Config] | None = None
        # The best configuration scored on the test users (its metrics, per-user values).
        self.scored: Candidate | None = None
        self.seconds = 0.0
        self.eval_seconds = 0.0
        self.error: str | None = None

    @property
    def name(self) -> str:
        return self.cls.candidate

    @property
    def value(self) -> float:
        return self.best[0] if self.best else -1.0

    def expected_seconds(self) -> float:
        """How long the next trial should take: the longest of the last three."""
        return max((t.seconds for t in self.trials[-3:]), default=0.0)

    def can_continue(self, max_trials: int | None) -> bool:
        limit = min(max_trials or 10**9, self.cls.max_trials or 10**9)
        return self.cls.searchable and self.best is not None and len(self.trials) < limit

    def trial(self, deadline: float) -> None:
        """Fit and score one proposed configuration (LightFM stops its epochs at ``deadline``)."""
        import optuna

        run = self.run
        t0 = time.perf_counter()
        if self.cls.parent is not None:
            # A variant extends its parent's current best configuration.
            self.base = self.cls.default_config(self.settings, run.parent_config(self.cls))
        trial = self.study.ask()
        config = self.cls.suggest(trial, self.base)
        state: dict[str, Any] = {"snapshot": None}
        try:
            # A variant that only adds to its parent's model (a trend blend) reuses it.
            model = self.cls.from_parent(config, run.parent_model(self.cls), run.train) \
                if self.cls.parent else None
            if model is None:
                model = fit(config, run.train, self._early_stopping(state, deadline),
                            run.threads)
            if state["snapshot"] is not None:
                model.restore(*state["snapshot"])
            value = float(score_rows(model, run.inputs, run.data, run.holdout.tune,
                                     run.metric).mean())
        except _TRIAL_ERRORS as exc:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.seconds += time.perf_counter() - t0
            self.error = " ".join(str(exc).split())[:200] or type(exc).__name__
            log.warning("%s trial %d failed: %s", self.name, trial.number, self.error)
            return
        self.study.tell(trial, value)
        config = model.fitted_config()
        eval_seconds = 0.0
        if self.best is None or value > self.best[0]:
            self.best = (value, model, config)
            eval_seconds = self._evaluate(model, config)
        seconds = time.perf_counter() - t0
        self.seconds += seconds
        record = Trial(self.name, trial.number, dict(config.params), value, model.epochs_run,
                       seconds, eval_seconds)
        self.trials.append(record)
        if run.progress is not None:
            run.progress({"event": "trial", **record.to_json(), "best": self.best[0],
                          "elapsed": round(time.perf_counter() - run.start, 1),
                          "budget": run.budget})

    def _evaluate(self, model: Recommender, config: Config) -> float:
        """Score a new best configuration on the test users (seconds taken).

        Part of the trial that found it, so the budget bounds the evaluation
        too: when the search stops, every candidate is already scored. A
        metadata variant ahead of the identity LightFM on the test users is
        also fitted on shuffled metadata (its placebo) here.
        """
        run = self.run
        t0 = time.perf_counter()
        cand = Candidate(config, model)
        _score(cand, run.inputs, run.data, run.holdout, run.metric)
        identity = run.searches.get(self.cls.parent) if self.cls.metadata_variant else None
        if identity is not None and identity.scored is not None and \
                cand.test[run.metric] > identity.scored.test[run.metric]:
            _placebo(cand, run.inputs, run.data, run.holdout, run.metric, self.settings)
        self.scored = cand
        seconds = time.perf_counter() - t0
        self.eval_seconds += seconds
        return seconds

    def result(self) -> Candidate:
        """The best configuration as a scored candidate, with the family's trials and time."""
        cand = self.scored
        if cand is None:
            raise LakehouseError(f"{self.name} has no fitted configuration")
        cand.trials, cand.seconds, cand.eval_seconds = self.trials, self.seconds, \
            self.eval_seconds
        cand.tune_value = self.value
        return cand

    def _early_stopping(self, state: dict[str, Any], deadline: float):
        if not self.cls.early_stopping:
            return None
        run = self.run
        epochs = int(self.base.params.get("epochs", 30))
        every = max(1, epochs // 15)
        best = {"value": -1.0, "since": 0}

        def on_epoch(epoch: int, model: Recommender) -> bool:
            if epoch % every and epoch != epochs and time.perf_counter() < deadline:
                return False
            value = float(score_rows(model, run.inputs, run.data, run.stop_rows,
                                     run.metric).mean())
            if value > best["value"]:
                best["value"], best["since"] = value, 0
                state["snapshot"] = (model.snapshot(), epoch)
            else:
                best["since"] += 1
            # The budget is a wall-clock bound: past it, keep the best epoch so far.
            return best["since"] >= PATIENCE or time.perf_counter() >= deadline
        return on_epoch


@dataclass
class _Run:
    """What every family's search shares: the data, the holdout, the clock."""

    inputs: Inputs
    data: Split
    holdout: Holdout
    metric: str
    train: TrainData
    stop_rows: np.ndarray
    threads: int | None
    progress: Progress | None
    start: float
    budget: float
    searches: dict[str, _FamilySearch] = field(default_factory=dict)

    def parent_config(self, cls: type[Recommender]) -> Config | None:
        parent = self.searches.get(cls.parent) if cls.parent else None
        return parent.best[2] if parent is not None and parent.best else None

    def parent_model(self, cls: type[Recommender]) -> Recommender | None:
        parent = self.searches.get(cls.parent) if cls.parent else None
        return parent.best[1] if parent is not None and parent.best else None


def search(inputs: Inputs, data: Split, holdout: Holdout, settings: Settings, *,
           budget: float, max_trials: int | None = None, metric: str = "precision_at_10",
           progress: Progress | None = None) -> list[Candidate]:
    """Every candidate's best configuration, fitted on ``data.train``, scored on ``test``.

    The budget is a wall-clock bound on the whole search, scoring on the test
    users included: a trial that finds its family's best configuration also
    scores it on the test (and cold-start) users, and fits a metadata
    variant's placebo when it needs one, so nothing is left to do when the
    trials stop. No trial starts after the budget, nor one that the family's
    recent trials say would end after it, and LightFM stops its epochs at it;
    so the search ends within ``budget`` plus one trial. It is spent where it
    pays:

    1. popularity (fitted and scored, no trial), then each family's default
       configuration, in
       :data:`~lakehouse.recsys.families.CANDIDATES` order (simplest first);
       a family that cannot run (memory, no timestamps), or whose first trial
       does not fit in the budget, is a skipped candidate with the reason;
       variants (a trend blend, LightFM with metadata) get theirs only when
       their parent is in the better half of the families fitted so far;
    2. successive halving: the better half of the searchable families (by
       their best score on the tuning users) share the next slice of the time
       left, then the better half of those, and so on; the last one standing
       gets the rest.

    Args:
        inputs: The lake's inputs.
        data: The train/holdout split.
        holdout: Which holdout rows tune and which test.
        settings: Defaults of the first trials, and the seed.
        budget: Seconds for the whole search.
        max_trials: At most this many trials per candidate (None: budget only).
        metric: The primary metric (one of :data:`PER_USER_METRICS`).
        progress: Called with ``{"event": "trial", "candidate", "number", "value",
            "best", "params", "epochs", "seconds", "elapsed", "budget"}`` per trial.

    Returns:
        The candidates, simplest first; skipped ones have ``skipped`` set.
    """
    metric = check_primary(metric)
    start = time.perf_counter()
    deadline = start + budget
    train = train_data(inputs, data.train, data.train_last_day)
    run = _Run(inputs, data, holdout, metric, train,
               sample_users(holdout.tune, EARLY_STOP_USERS, settings.seed),
               settings.train_threads or None, progress, start, budget)
    model = fit(CANDIDATES[0].default_config(settings), train)
    popularity = Candidate(model.config, model)
    _score(popularity, inputs, data, holdout, metric)
    popularity.seconds = popularity.eval_seconds = time.perf_counter() - start
    skipped = _first_round(run, settings, deadline)
    _halving(run, deadline, max_trials)
    out = [popularity]
    for cls in CANDIDATES[1:]:
        family = run.searches.get(cls.candidate)
        if family is not None and family.scored is not None:
            out.append(family.result())
        else:
            config = family.base if family else Config(cls.family, {})
            out.append(Candidate(config, None, family.trials if family else [],
                                 family.seconds if family else 0.0,
                                 skipped=skipped[cls.candidate], label=cls.candidate))
    return out


def _first_round(run: _Run, settings: Settings, deadline: float) -> dict[str, str]:
    """Each family's first trial, simplest first, then the variants worth one.

    Returns:
        Why each candidate that got no fitted configuration was skipped.
    """
    skipped: dict[str, str] = {}
    alone = [c for c in CANDIDATES[1:] if c.parent is None]
    # In CANDIDATES order: the trend blends (a scoring each) come before LightFM (the
    # slowest fit), so a loaded machine does not spend the budget before them; a variant
    # is ranked among the families fitted so far.
    for cls in CANDIDATES[1:]:
        reason = cls.skip_reason(run.train)
        if reason is None and cls.parent is not None:
            reason = _variant_reason(cls, run, alone)
        if reason is None and time.perf_counter() >= deadline:
            reason = f"the {run.budget:g} s budget was spent before its first trial"
        expected = cls.estimated_seconds(run.train) if reason is None else None
        if expected is not None and time.perf_counter() + expected > deadline:
            reason = (f"its fit would take ~{expected:.0f} s on this machine, more than the "
                      f"{max(0.0, deadline - time.perf_counter()):.0f} s left of the budget")
        if reason is not None:
            skipped[cls.candidate] = reason
            continue
        family = run.searches[cls.candidate] = _FamilySearch(cls, settings, run)
        family.trial(deadline)
        if family.scored is None:
            skipped[cls.candidate] = f"its first trial failed: {family.error}"
    return skipped


def _variant_reason(cls: type[Recommender], run: _Run,
                    alone: list[type[Recommender]]) -> str | None:
    """Why a variant is not tried: its parent is not fitted, or not among the leaders.

    A variant (LightFM with metadata, a model blended with the trend) is only
    worth its time when the parent is in the better half of the families, or,
    for a variant that scores new users from their metadata, when the holdout
    has cold-start users: it competes for the cold route there (against
    popularity), whatever the warm ranking says.
    """
    parent = run.searches.get(cls.parent)
    if parent is None or parent.best is None:
        return f"{cls.parent} has no fitted configuration to extend"
    if cls.cold_start and len(run.holdout.cold) and run.inputs.user_meta:
        return None
    ranked = sorted((f for f in run.searches.values() if f.cls in alone and f.best),
                    key=lambda f: -f.value)
    rank = ranked.index(parent) + 1
    if rank > math.ceil(len(ranked) / 2):
        return (f"{cls.parent} ranked {rank} of {len(ranked)} families on the tuning users: "
                "its variants are only tried when it is in the better half")
    return None


def _halving(run: _Run, deadline: float, max_trials: int | None) -> None:
    """Successive halving of the time left over the searchable families, best first."""
    pool = [f for f in run.searches.values() if f.can_continue(max_trials)]
    while pool and time.perf_counter() < deadline:
        pool.sort(key=lambda f: -f.value)
        if len(pool) > 1:
            pool = pool[:math.ceil(len(pool) / 2)]
        rounds = math.ceil(math.log2(len(pool))) + 1 if len(pool) > 1 else 1
        round_end = time.perf_counter() + (deadline - time.perf_counter()) / rounds
        share = (round_end - time.perf_counter()) / len(pool)
        ran = False
        for family in pool:
            until = min(deadline, time.perf_counter() + share)
            while family.can_continue(max_trials) and time.perf_counter() < until and \
                    time.perf_counter() + family.expected_seconds() <= deadline:
                family.trial(deadline)
                ran = True
        pool = [f for f in pool if f.can_continue(max_trials)]
        if not ran:
            # Nobody's next trial fits in what is left.
            break


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
    scores = scorer(model, shuffled, data.train, holdout.test)
    train, held = data.train[holdout.test], data.holdout[holdout.test]
    cand.placebo = evaluate(scores, train, held)
    cand.placebo_user = per_user(metric, scores, train, held)


def _score(cand: Candidate, inputs: Inputs, data: Split, holdout: Holdout,
           metric: str) -> None:
    """Test metrics, per-user test values, and cold-start metrics when it can score them."""
    scores = scorer(cand.model, inputs, data.train, holdout.test)
    train, held = data.train[holdout.test], data.holdout[holdout.test]
    cand.test = evaluate(scores, train, held)
    cand.test_user = per_user(metric, scores, train, held)
    if cand.name == "popularity" and cand.tune_value == 0.0:
        cand.tune_value = float(score_rows(cand.model, inputs, data, holdout.tune,
                                           metric).mean())
    if len(holdout.cold) and cand.model.ranks_new_users:
        scores = scorer(cand.model, inputs, data.train, holdout.cold)
        train, held = data.train[holdout.cold], data.holdout[holdout.cold]
        cand.cold = evaluate(scores, train, held)
        cand.cold_user = per_user(metric, scores, train, held)


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
    model that scores new users through their metadata, or recent
    popularity, beats it likewise on the holdout's cold-start users.
    """
    candidates = [c for c in candidates if c.skipped is None]
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
    """Popularity, or the model that beats it on the cold-start holdout users.

    The contenders: the metadata models, and recent popularity (on temporal
    data new users come for what is new).
    """
    candidates = [c for c in candidates if c.skipped is None]
    popularity = candidates[0]
    if popularity.cold_user is None:
        return popularity
    best = max((c for c in candidates[1:] if c.cold_user is not None),
               key=lambda c: (c.cold[metric], -c.config.complexity), default=None)
    if best is None:
        return popularity
    vs = paired_bootstrap(best.cold_user, popularity.cold_user, seed=seed)
    return best if vs["low"] > 0 else popularity

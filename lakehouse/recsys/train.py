"""Train: search every family, pick on the holdout, refit the winner, gate it, register it.

One call of :func:`train`:

1. reads every listen the lake knows (:func:`lakehouse.recsys.data.load_inputs`;
   no event-time filter) and holds out the most recent ones
   (:func:`lakehouse.recsys.data.split`);
2. searches each family's hyperparameters within the budget and scores the
   best configuration of each candidate on the same holdout users
   (:mod:`lakehouse.recsys.search`); popularity is a candidate like any other;
3. selects the best (ties to the simpler) if a paired bootstrap says it
   beats popularity, otherwise popularity; picks the cold-start route
   (popularity or LightFM with user metadata) on the holdout's users
   without training listens;
4. refits the selection on *every* listen (the newest included) and
   registers that artifact, marked ``refit``, with the holdout metrics of its
   configuration, every candidate and every trial;
5. compares configurations fairly: the champion's configuration is retrained
   on this training split and scored on the same holdout users; the
   challenger is promoted only when the lower bound of the bootstrap interval
   of (challenger - champion) exceeds ``promote_margin``. When it is not, the
   champion's configuration is refit on every listen and that artifact takes
   over (a *refresh*), so the served model never misses the newest listens.

The first training always leaves a champion (popularity if nothing beats it).
This module orchestrates; the gate and the refresh are
:mod:`lakehouse.recsys.promotion`'s, and every version is registered through
:func:`lakehouse.recsys.register.register`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lakehouse import names
from lakehouse.config import Settings, check_date
from lakehouse.context import RunContext
from lakehouse.errors import ConfigError, LakehouseError
from lakehouse.lake import Lake
from lakehouse.monitor.sinks import step_context
from lakehouse.recsys.data import Inputs, Split, load_inputs, split
from lakehouse.recsys.evaluate import summarize
from lakehouse.recsys.promotion import cold_config, decide, holdout_metrics, versus_champion
from lakehouse.recsys.register import TrainingRun, refit, register
from lakehouse.recsys.registry import Registry
from lakehouse.recsys.search import check_primary, default_configs, holdout_rows, search, select
from lakehouse.recsys.tracking import track_train
from lakehouse.runlog import RunRecord
from lakehouse.steps import StepRun, run_step

log = logging.getLogger(__name__)

PROMOTE_MODES = ("auto", "never", "force")
PRIMARY = names.PRECISION_AT_10
# The run log's target of a training run.
MODELS_TARGET = "models"

Progress = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    """What one training did.

    ``metrics`` has ``model`` (the selected configuration on the test users)
    and ``baseline`` (popularity on the same users), ``cold_start`` and
    ``cold_start_baseline`` on users without training listens (None when
    there are none), and ``champion``: the champion's configuration retrained
    on this split and scored on the same users (None without a champion).
    ``interval`` is the bootstrap interval of (challenger - champion).
    """

    version: str
    metrics: dict[str, Any]
    promoted: bool
    reason: str
    previous_champion: str | None = None
    champion: str | None = None
    split: dict[str, Any] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)
    chosen: str = ""
    cold_route: str = ""
    selection: str = ""
    interval: dict[str, Any] | None = None
    search_seconds: float = 0.0
    refit_seconds: float = 0.0
    # The search's wall-clock budget (None: not searched).
    budget: float | None = None
    run: RunRecord | None = None
    # False when no holdout could be formed: nothing was compared, ``reason`` says why.
    evaluated: bool = True

    def candidates_table(self):
        """One row per candidate: trials, search seconds, its metrics on the test users,
        and why it was skipped (None: it was fitted)."""
        import pandas as pd

        rows = [{"candidate": c["name"], "chosen": c["name"] == self.chosen,
                 "trials": c["trials"], "search_seconds": c["search_seconds"],
                 "eval_seconds": c.get("eval_seconds", 0.0),
                 **{k: v for k, v in (c["test"] or {}).items()},
                 "skipped": c.get("skipped")} for c in self.candidates]
        return pd.DataFrame(rows).set_index("candidate")

    def trials_table(self):
        """One row per trial of the search: candidate, its score on the tuning users, params."""
        import pandas as pd

        return pd.DataFrame([{"candidate": t["candidate"], "trial": t["number"],
                              "value": t["value"], "epochs": t["epochs"],
                              "seconds": t["seconds"], **t["params"]} for t in self.trials])

    def time_spent(self) -> str:
        """How the search's time went: fitting and tuning, scoring the test users, the rest."""
        spent = sum(c["search_seconds"] for c in self.candidates)
        scoring = sum(c.get("eval_seconds", 0.0) for c in self.candidates)
        budget = f" for a {self.budget:g}s budget" if self.budget is not None else ""
        return (f"search {self.search_seconds:.1f}s{budget}: {spent - scoring:.1f}s fitting and "
                f"tuning, {scoring:.1f}s scoring the test users, "
                f"{max(0.0, self.search_seconds - spent):.1f}s between trials")

    def summary(self) -> str:
        """A few lines for people: the candidates, the choice, the gate, the decision."""
        if not self.evaluated:
            return self.reason
        primary = self.candidates[0]["primary"] if self.candidates else PRIMARY
        users = (self.metrics.get("model") or {}).get("users")
        lines = [f"candidates on {users} holdout users ({len(self.trials)} trials, "
                 f"{self.time_spent()}):"]
        width = max((len(c["name"]) for c in self.candidates), default=10)
        for c in self.candidates:
            if c.get("skipped"):
                lines.append(f"  {c['name']:<{width}}  skipped: {c['skipped']}")
                continue
            lines.append(f"  {c['name']:<{width}}  {summarize(c['test'])}  "
                         f"({c['trials']} trials, {c['search_seconds']:.1f}s, "
                         f"{c.get('eval_seconds', 0.0):.1f}s of it scoring)")
        lines.append(f"chosen: {self.chosen}: {self.selection}")
        if self.metrics.get("cold_start_baseline"):
            lines.append(f"cold start ({self.metrics['cold_start_baseline']['users']} users): "
                         f"{self.cold_route}")
        lines.append(f"refit on every listen: {self.refit_seconds:.1f}s -> {self.version}")
        if self.metrics.get(names.CHAMPION) and self.interval:
            i = self.interval
            lines.append(f"champion {self.previous_champion} retrained on this split: "
                         f"{primary} {self.metrics[names.CHAMPION][primary]:.4f}; challenger - "
                         f"champion {i['diff']:+.4f} (95% interval {i['low']:+.4f} .. "
                         f"{i['high']:+.4f})")
        lines.append(("PROMOTED to champion: " if self.promoted else "not promoted: ")
                     + self.reason)
        if not self.promoted and self.champion and self.champion != self.previous_champion:
            lines.append(f"champion refreshed: {self.champion} (the configuration of "
                         f"{self.previous_champion}, refit on every listen)")
        return "\n".join(lines)


def train(target: RunContext | Settings | None = None, *, promote: str = "auto",
          date: dt.date | str | None = None, progress: Progress | None = None,
          budget: float | None = None, max_trials: int | None = None,
          wait: bool | None = None) -> TrainResult:
    """Select, refit and register a model on everything the lake knows.

    A pipeline step (:func:`lakehouse.steps.run_step`): takes the lake's
    ``train`` lock, records the run (failed ones too) and alerts.

    Args:
        target: The run context, or settings: lake, first-trial
            hyperparameters, ``holdout_share``,
            ``promote_margin``, ``primary_metric``, ``train_budget`` and
            ``train_trials``.
        promote: ``auto`` (the gate decides; the first training always
            leaves a champion), ``never``, or ``force``.
        date: The run's date (default: today, UTC). Every listen in the lake
            is used, whatever its timestamp: the lake as built is what is
            known at that date.
        progress: Called with one dict per event: ``{"event": "trial", ...}``
            for each trial of the search, ``{"event": "refit", ...}``
            (default: each event as a :class:`~lakehouse.context.ProgressEvent`
            to the context's progress callback, if it has one).
        budget: Seconds of search (default ``settings.train_budget``).
        max_trials: Trials per family at most (default ``settings.train_trials``;
            0 or None: the budget decides).
        wait: Wait for another training holding the lock (default: the
            context's policy); False: raise at once.

    Returns:
        The new version, its metrics, the candidates, and whether and why it
        was promoted. A ``meta.runs`` record (pipeline ``train``) is appended
        either way.

    Raises:
        ConfigError: Bad ``promote`` mode, metric or hyperparameter.
        ModelError: Nothing to train on.
        LockedError: Another training runs on this lake.
        LakeError: The lake is missing or not writable.
    """
    if promote not in PROMOTE_MODES:
        raise ConfigError(f"promote must be one of {', '.join(PROMOTE_MODES)}, got {promote!r}")
    ctx = step_context(target, date=date, wait=wait)
    settings = ctx.settings
    check_primary(settings.primary_metric)
    budget = settings.train_budget if budget is None else budget
    if budget < 0:
        raise ConfigError(f"the training budget must not be negative, got {budget}")
    max_trials = (settings.train_trials if max_trials is None else max_trials) or None
    check_date(ctx.date, "training date")
    progress = progress or _progress_events(ctx)

    def body(run: StepRun) -> TrainResult:
        record = run.start(MODELS_TARGET)
        return _train(settings, run.lake, promote, run.date, progress, record,
                      budget=budget, max_trials=max_trials)

    result = run_step(ctx, names.TRAIN, body)
    # After the step (the lake's registry is done and its lock released): MLflow mirrors it.
    track_train(settings, result)
    return result


def _progress_events(ctx: RunContext) -> Progress | None:
    """Search trials and the refit as progress events with one-line messages."""
    if ctx.progress is None:
        return None

    def report(event: dict[str, Any]) -> None:
        if event["event"] == "trial":
            line = (f"{event['candidate']:<13} trial {event['number']:>3}  "
                    f"{event['value']:.4f} (best {event['best']:.4f})  "
                    f"{event['seconds']:.1f}s  [{event['elapsed']:.0f}/"
                    f"{event['budget']:.0f}s]")
            ctx.report(names.TRAIN, "search", int(event["elapsed"]),
                       int(event["budget"]) or None, message=line)
        elif event["event"] == "refit":
            ctx.report(names.TRAIN, "refit", 1, 1, finished=True,
                       message=f"refit {event['candidate']} on every listen: "
                               f"{event['seconds']:.1f}s")

    return report


def _train(settings: Settings, lake: Lake, promote: str, date: dt.date,
           progress: Progress | None, record: RunRecord, *, budget: float,
           max_trials: int | None) -> TrainResult:
    metric = settings.primary_metric
    inputs = load_inputs(lake)
    data = split(inputs, settings.holdout_share)
    record.rows_in = len(inputs.ev_user)
    if not len(data.eval_users(True)):
        return _train_unevaluated(settings, inputs, data, promote, date, record)
    holdout = holdout_rows(data, settings.seed)
    t0 = time.perf_counter()
    candidates = search(inputs, data, holdout, settings, budget=budget, max_trials=max_trials,
                        metric=metric, progress=progress)
    search_seconds = time.perf_counter() - t0
    selection = select(candidates, metric, settings.seed)
    registry = Registry(settings.models_dir)
    threads = settings.train_threads or None
    versus = versus_champion(registry, selection.warm, inputs, data, holdout, metric,
                              settings.seed, threads)
    t1 = time.perf_counter()
    bundle = refit(selection.warm.config, cold_config(selection), inputs, threads)
    refit_seconds = time.perf_counter() - t1
    if progress is not None:
        progress({"event": "refit", "candidate": selection.warm.name,
                  "seconds": round(refit_seconds, 3)})
    metrics = holdout_metrics(selection, candidates, versus)
    context = TrainingRun(settings, inputs, data, holdout, date, metric, candidates)
    info = register(registry, bundle, context, metrics, reason=selection.reason,
                    vs_popularity=selection.vs_popularity, search_seconds=search_seconds,
                    refit_seconds=refit_seconds)
    registry.set_alias(names.CHALLENGER, info.version)
    promoted, reason, champion = decide(registry, info, selection, versus, promote, context)
    record.records = 1
    record.details = {"version": info.version, "promoted": promoted, "reason": reason,
                      names.CHAMPION: champion, "chosen": selection.warm.name,
                      "cold_route": selection.cold.name, "metrics": metrics,
                      "previous_champion": versus.version, "interval": versus.interval,
                      "split": data.describe(), "params": info.params,
                      "search_seconds": round(search_seconds, 3),
                      "refit_seconds": round(refit_seconds, 3)}
    record.finish(names.SUCCESS)
    return TrainResult(
        version=info.version, metrics=metrics, promoted=promoted, reason=reason,
        previous_champion=versus.version, champion=champion, split=data.describe(),
        candidates=info.candidates, trials=info.trials, chosen=selection.warm.name,
        cold_route=selection.cold.name, selection=selection.reason, interval=versus.interval,
        search_seconds=search_seconds, refit_seconds=refit_seconds, budget=budget, run=record)


def _no_holdout_reason(inputs: Inputs) -> str:
    """Why no model can be evaluated, in numbers."""
    pairs = np.unique(inputs.ev_user.astype(np.int64) * inputs.n_items + inputs.ev_item)
    per_user = np.bincount(pairs // inputs.n_items, minlength=inputs.n_users)
    listeners = int((per_user > 0).sum())
    if listeners and per_user.max() < 2:
        return (f"each of the {listeners} users with listens has one distinct track"
                if listeners > 1 else "the only user with listens has one distinct track")
    return "the holdout has no user with training listens"


def _train_unevaluated(settings: Settings, inputs: Inputs, data: Split, promote: str,
                       date: dt.date, record: RunRecord) -> TrainResult:
    """No holdout: popularity on every listen becomes the first champion; a champion stays.

    The daily job must deliver recommendations whenever there are listens, and
    popularity needs no evaluation to be a sane default. An existing champion
    is kept (nothing can show that popularity beats it). ``--promote never``
    registers popularity without promoting it.
    """
    why = f"nothing can be evaluated yet ({_no_holdout_reason(inputs)})"
    registry = Registry(settings.models_dir)
    champion = registry.alias(names.CHAMPION)
    nothing = {"model": None, "baseline": None, "cold_start": None,
               "cold_start_baseline": None, names.CHAMPION: None}
    previous, chosen, records = champion, "popularity", 1
    if champion is not None:
        version, promoted, records = champion, False, 0
        reason = f"{why}: champion {champion} is kept until there is a holdout"
        with contextlib.suppress(LakehouseError):  # a damaged entry still is the champion
            chosen = registry.get(champion).params.get("candidate", chosen)
    else:
        t0 = time.perf_counter()
        bundle = refit(default_configs(settings)["popularity"], None, inputs,
                       settings.train_threads or None)
        seconds = time.perf_counter() - t0
        run = TrainingRun(settings, inputs, data, None, date, settings.primary_metric, [])
        version = register(registry, bundle, run, {}, reason=why,
                           refit_seconds=seconds).version
        promoted = promote != "never"
        if promoted:
            reason = f"{why}: popularity ({version}) is champion until there is a holdout"
            registry.promote(version, reason, {})
            champion = version
        else:
            registry.set_alias(names.CHALLENGER, version)
            reason = f"{why}: popularity registered as {version}, not promoted (--promote never)"
    record.records = records
    record.details = {"version": version, "promoted": promoted, "reason": reason,
                      names.CHAMPION: champion, "chosen": chosen, "evaluated": False,
                      "metrics": nothing, "split": data.describe()}
    record.finish(names.SUCCESS)
    return TrainResult(version=version, metrics=nothing, promoted=promoted, reason=reason,
                       previous_champion=previous,
                       champion=champion, split=data.describe(), chosen=chosen,
                       cold_route="popularity", selection=why, evaluated=False, run=record)



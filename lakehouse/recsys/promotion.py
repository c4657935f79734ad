"""The promotion gate: does the challenger replace the champion, and if not, the refresh.

The champion's configuration is retrained on the challenger's training split
and scored on the same holdout users (:func:`versus_champion`); the
challenger is promoted only when the lower bound of the paired bootstrap
interval of (challenger - champion) exceeds ``promote_margin``
(:func:`gate`). When it is not, the champion's configuration is refit on
every listen and that version takes over (:func:`decide`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from lakehouse import names
from lakehouse.errors import LakehouseError
from lakehouse.recsys.data import Inputs, Split
from lakehouse.recsys.evaluate import evaluate, paired_bootstrap, per_user
from lakehouse.recsys.families import Config, configs_of
from lakehouse.recsys.families import fit as fit_config
from lakehouse.recsys.register import TrainingRun, refit, register
from lakehouse.recsys.registry import ModelInfo, Registry
from lakehouse.recsys.search import Candidate, Holdout, Selection, scorer, train_data

log = logging.getLogger("lakehouse.recsys.train")


@dataclass
class Versus:
    """The champion's configuration retrained on this split, against the challenger."""

    version: str | None = None
    configs: tuple[Config, Config | None] | None = None
    metrics: dict[str, Any] | None = None
    interval: dict[str, Any] | None = None
    error: str | None = None


def cold_config(selection: Selection) -> Config | None:
    """The cold route's config; None when the warm model serves cold users itself."""
    return None if selection.cold.config.same_as(selection.warm.config) else selection.cold.config


def versus_champion(registry: Registry, challenger: Candidate, inputs: Inputs, data: Split,
                     holdout: Holdout, metric: str, seed: int,
                     threads: int | None = None) -> Versus:
    """Retrain the champion's configuration on ``data.train``; bootstrap the difference."""
    version = registry.alias(names.CHAMPION)
    if version is None:
        return Versus()
    try:
        info = registry.get(version)
        configs = configs_of(info.params)
        if configs[0].same_as(challenger.config):
            theirs, values = challenger.test, challenger.test_user
        else:
            model = fit_config(configs[0], train_data(inputs, data.train, data.train_last_day),
                               threads=threads)
            scores = scorer(model, inputs, data.train, holdout.test)
            train_rows, held = data.train[holdout.test], data.holdout[holdout.test]
            theirs = evaluate(scores, train_rows, held)
            values = per_user(metric, scores, train_rows, held)
    except (LakehouseError, KeyError, ValueError) as exc:
        log.warning("champion %s could not be retrained: %s", version, exc)
        return Versus(version, error=str(exc))
    interval = paired_bootstrap(challenger.test_user, values, seed=seed)
    return Versus(version, configs, theirs, interval)


def gate(selection: Selection, versus: Versus, margin: float, metric: str
          ) -> tuple[bool, str]:
    """Whether the challenger replaces the champion, and why, in words."""
    if versus.version is None:
        # The selection line of the output holds the numbers; the log keeps the interval.
        if selection.beats_popularity:
            return True, f"first model: {selection.warm.name} beats popularity"
        return True, "first model: popularity, as nothing beats it"
    if versus.error:
        return True, (f"champion {versus.version} could not be retrained ({versus.error}); "
                      f"{selection.reason}")
    i = versus.interval
    text = (f"{selection.warm.name} - champion {versus.version} "
            f"({versus.configs[0].name}, retrained on this split): {metric} "
            f"{i['diff']:+.4f}, 95% interval {i['low']:+.4f} .. {i['high']:+.4f}, "
            f"needs lower bound > {margin:g}")
    if i["low"] > margin:
        return True, text
    return False, f"{text}: within the noise"


def holdout_metrics(selection: Selection, candidates: list[Candidate], versus: Versus
             ) -> dict[str, Any]:
    popularity = candidates[0]
    return {"model": selection.warm.test, "baseline": popularity.test,
            "cold_start": selection.cold.cold, "cold_start_baseline": popularity.cold,
            names.CHAMPION: versus.metrics}


def decide(registry: Registry, info: ModelInfo, selection: Selection, versus: Versus,
            promote: str, ctx: TrainingRun) -> tuple[bool, str, str | None]:
    """Promote, keep, or refresh the champion; returns (promoted, reason, champion)."""
    margin = ctx.settings.promote_margin
    if promote == "force":
        promoted, reason = True, "forced (--promote force)"
    else:
        promoted, reason = gate(selection, versus, margin, ctx.metric)
        if promote == "never":
            reason = (f"--promote never (the gate says: {'promote' if promoted else 'keep'}, "
                      f"{reason})")
            registry_champion = registry.alias(names.CHAMPION)
            return False, reason, registry_champion
    if promoted:
        registry.promote(info.version, reason, _deltas(info.metrics, versus.metrics),
                         interval=versus.interval or selection.vs_popularity)
        return True, reason, info.version
    # Keep the champion's configuration, but serve it refit on every listen known now.
    warm, cold = versus.configs
    if warm.same_as(selection.warm.config) and _same(cold, cold_config(selection)):
        fresh = info
    else:
        bundle = refit(warm, cold, ctx.inputs, ctx.settings.train_threads or None)
        fresh = register(registry, bundle, ctx, {"model": versus.metrics,
                                                 "baseline": ctx.candidates[0].test,
                                                 "cold_start_baseline": ctx.candidates[0].cold},
                         reason=selection.reason, vs_popularity=selection.vs_popularity,
                         refreshed_from=versus.version)
    registry.promote(fresh.version, f"refresh: configuration of {versus.version} refit on "
                     f"every listen up to {ctx.date} ({reason})", {},
                     interval=versus.interval, action="refresh")
    return False, reason, fresh.version


def _same(a: Config | None, b: Config | None) -> bool:
    return (a is None and b is None) or (a is not None and a.same_as(b))


def _deltas(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, float] | None:
    if not old:
        return None
    a = new.get("model") or {}
    return {k: round(a[k] - old[k], 6) for k in a if k != "users"
            and isinstance(a.get(k), int | float) and isinstance(old.get(k), int | float)}


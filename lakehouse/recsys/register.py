"""Registering a trained bundle: refit on every listen, and the one registry payload.

Every version the registry holds (a first popularity model, a selected
challenger, a champion's refresh) is registered through :func:`register`, so
its ``model.json`` has one shape: parameters, holdout metrics, data lineage,
candidates and trials, the selection, timings and library versions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import numpy as np

from lakehouse import __version__
from lakehouse.config import Settings
from lakehouse.recsys.data import Inputs, Split, last_days
from lakehouse.recsys.families import Config, Routed
from lakehouse.recsys.families import fit as fit_config
from lakehouse.recsys.registry import ModelInfo, Registry
from lakehouse.recsys.search import Candidate, Holdout, train_data
from lakehouse.recsys.topk import default_threads

# The stored metrics of a version; None for each when nothing could be evaluated.
STORED_METRICS = ("model", "baseline", "cold_start", "cold_start_baseline")


@dataclass
class TrainingRun:
    """The facts of one training: settings, data, holdout, date, metric and candidates.

    ``holdout`` is None when nothing could be evaluated (no holdout users).
    """

    settings: Settings
    inputs: Inputs
    data: Split
    holdout: Holdout | None
    date: dt.date
    metric: str
    candidates: list[Candidate]


def refit(warm: Config, cold: Config | None, inputs: Inputs,
          threads: int | None = None) -> Routed:
    """The served bundle of these configurations, fitted on every listen of ``inputs``.

    Args:
        warm: The configuration for users with listens.
        cold: The cold-start route's (None, or the same as ``warm``: ``warm`` serves both).
        inputs: Everything the lake knows.
        threads: Training threads (None: the CPUs this process may use).
    """
    everything = train_data(inputs, all_listens(inputs),
                            last_days(inputs, np.ones(len(inputs.ev_user), bool)))
    warm_model = fit_config(warm, everything, threads=threads)
    cold_model = None
    if cold is not None and not cold.same_as(warm):
        cold_model = fit_config(cold, everything, threads=threads)
    return Routed(warm_model, cold_model)


def all_listens(inputs: Inputs):
    """Listen counts of every (user, track) of ``inputs``, users x items."""
    import scipy.sparse as sp

    mat = sp.csr_matrix((np.ones(len(inputs.ev_user), np.float32),
                         (inputs.ev_user, inputs.ev_item)), shape=(inputs.n_users, inputs.n_items))
    mat.sum_duplicates()
    return mat


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("rectools-lightfm", "implicit", "optuna", "numpy", "scipy", "pyarrow",
                 "deltalake"):
        with contextlib.suppress(PackageNotFoundError):
            out[dist] = package_version(dist)
    return out


def register(registry: Registry, bundle: Routed, run: TrainingRun, metrics: dict[str, Any], *,
             reason: str, vs_popularity: dict[str, Any] | None = None,
             refreshed_from: str | None = None, search_seconds: float = 0.0,
             refit_seconds: float = 0.0) -> ModelInfo:
    """Save ``bundle`` as a new version with everything known about how it was chosen.

    Args:
        registry: Where it goes.
        bundle: The served bundle, fitted on every listen.
        run: The training's facts (``run.holdout`` None: nothing was evaluated).
        metrics: Holdout metrics by :data:`STORED_METRICS` key (missing: None).
        reason: Why this bundle, in words.
        vs_popularity: The bootstrap interval of the selection against popularity.
        refreshed_from: The champion whose configuration this refit refreshes.
        search_seconds: Time of the hyperparameter search.
        refit_seconds: Time of the refit on every listen.
    """
    inputs = run.inputs
    lineage = {"as_of": run.date.isoformat(), "tables": inputs.lineage,
               "split": run.data.describe(),
               "holdout": run.holdout.describe() if run.holdout is not None else None,
               "users": inputs.n_users, "tracks": inputs.n_items,
               "warm_users": len(bundle.warm.known_users()), "listens": len(inputs.ev_user)}
    params = {**bundle.params(), "holdout_share": run.settings.holdout_share,
              "primary_metric": run.metric, "k": run.settings.k,
              "num_threads": run.settings.train_threads or default_threads()}
    return registry.save(bundle.to_arrays(), {
        "params": params, "metrics": {k: metrics.get(k) for k in STORED_METRICS},
        "lineage": lineage, "refit": True,
        "candidates": [c.to_json(run.metric) for c in run.candidates],
        "trials": [t.to_json() for c in run.candidates for t in c.trials],
        "selection": {"chosen": bundle.warm.config.name,
                      "cold_route": bundle.cold_model.config.name, "reason": reason,
                      "evaluated": run.holdout is not None, "vs_popularity": vs_popularity,
                      "refreshed_from": refreshed_from},
        "training_seconds": round(search_seconds + refit_seconds, 3),
        "search_seconds": round(search_seconds, 3), "refit_seconds": round(refit_seconds, 3),
        "package_version": __version__, "library_versions": library_versions(),
        "host": os.uname().nodename,
    })

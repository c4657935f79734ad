"""Train a LightFM challenger, evaluate it honestly, register it, maybe promote it.

One call of :func:`train` reads the lake as of a date, holds out the most
recent listens (:func:`lakehouse.recsys.data.split`), fits LightFM on the rest,
scores the holdout for the model, the popularity baseline and the current
champion (re-evaluated on this same holdout), stores the model as a new
registry version (alias ``challenger``) and, with ``promote="auto"``,
promotes it when it beats popularity and the champion by the margin.

The stored model is the one that was evaluated (trained up to the cutoff),
not a refit on all data: its metrics are its own, and tomorrow's champion
comparison is honest because the champion never saw tomorrow's holdout.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import numpy as np

from lakehouse import __version__, names
from lakehouse.config import Settings, check_date
from lakehouse.errors import ConfigError, LakehouseError, ModelError
from lakehouse.lake import Lake
from lakehouse.locking import lake_lock
from lakehouse.recsys.data import Inputs, Split, load_inputs, split
from lakehouse.recsys.evaluate import evaluate, popularity_vectors, sample_users, summarize
from lakehouse.recsys.model import RecModel
from lakehouse.recsys.registry import Registry
from lakehouse.recsys.topk import default_threads
from lakehouse.runlog import RunRecord, record_run

log = logging.getLogger(__name__)

PROMOTE_MODES = ("auto", "never", "force")
LOSSES = ("warp", "bpr", "logistic", "warp-kos")
PRIMARY = "precision_at_10"
# Users scored after each epoch for the learning curve (cheap, not the final metrics).
CURVE_USERS = 500

Progress = Callable[[int, dict[str, Any]], None]


@dataclass
class TrainResult:
    """What one training did.

    ``metrics`` has ``model`` and ``baseline`` (popularity) on users with
    training listens, ``cold_start`` and ``cold_start_baseline`` on users
    without (None when there are none), and ``champion``: the previous
    champion re-evaluated on the same holdout (None without a champion).
    """

    version: str
    metrics: dict[str, Any]
    promoted: bool
    reason: str
    previous_champion: str | None = None
    split: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    run: RunRecord | None = None

    def summary(self) -> str:
        """A few lines for people: both metric lines and the decision."""
        lines = [f"model {self.version}: {summarize(self.metrics['model'])}",
                 f"popularity:    {summarize(self.metrics['baseline'])}"]
        if self.metrics.get("champion"):
            lines.append(f"champion {self.previous_champion}: "
                         f"{summarize(self.metrics['champion'])}")
        if self.metrics.get("cold_start"):
            lines.append(f"cold start ({self.metrics['cold_start']['users']} users): "
                         f"{summarize(self.metrics['cold_start'])}")
        lines.append(("PROMOTED to champion: " if self.promoted else "not promoted: ")
                     + self.reason)
        return "\n".join(lines)


def _lightfm(settings: Settings):
    from lightfm import LightFM

    if settings.loss not in LOSSES:
        raise ConfigError(f"unknown loss {settings.loss!r}; use one of {', '.join(LOSSES)}")
    if settings.components < 1 or settings.epochs < 1:
        raise ConfigError("components and epochs must be at least 1")
    return LightFM(no_components=settings.components, loss=settings.loss,
                   learning_rate=settings.learning_rate, item_alpha=settings.item_alpha,
                   user_alpha=settings.user_alpha, max_sampled=settings.max_sampled,
                   random_state=settings.seed)


def fit(inputs: Inputs, data: Split, settings: Settings,
        progress: Progress | None = None) -> tuple[RecModel, list[dict[str, Any]]]:
    """Fit LightFM on ``data.train``, one epoch at a time.

    Returns:
        The model and its learning curve: per epoch, seconds and the model's
        metrics on a sample of the holdout users.
    """
    warm_users = inputs.users[data.warm_users]
    warm_items = inputs.items[np.diff(data.train.tocsc().indptr) > 0]
    user_vocab = sorted({t for tokens in inputs.user_meta.values() for t in tokens})
    item_vocab = sorted({t for tokens in inputs.item_meta.values() for t in tokens})
    model = RecModel(_lightfm(settings), warm_users, warm_items, user_vocab, item_vocab)
    user_features = model.user_features(inputs.users, inputs.user_meta)
    item_features = model.item_features(inputs.items, inputs.item_meta)
    interactions = data.train.tocoo()
    interactions.data = np.ones_like(interactions.data)
    curve_rows = sample_users(data.eval_users(True), CURVE_USERS, settings.seed)
    threads = default_threads()
    history = []
    for epoch in range(1, settings.epochs + 1):
        t0 = time.perf_counter()
        model.lightfm.fit_partial(interactions, user_features=user_features,
                                  item_features=item_features, epochs=1, num_threads=threads)
        point: dict[str, Any] = {"epoch": epoch, "seconds": round(time.perf_counter() - t0, 3)}
        if len(curve_rows):
            point.update(_evaluate_model(model, inputs, data, curve_rows))
        history.append(point)
        if progress is not None:
            progress(epoch, point)
    return model, history


def _evaluate_model(model: RecModel, inputs: Inputs, data: Split,
                    rows: np.ndarray) -> dict[str, Any]:
    users = model.user_vectors(inputs.users[rows], inputs.user_meta)
    items = model.item_vectors(inputs.items, inputs.item_meta)
    return evaluate(users, items, data.train[rows], data.holdout[rows])


def evaluate_split(model: RecModel | None, inputs: Inputs, data: Split,
                   seed: int = 0) -> dict[str, Any]:
    """Metrics of ``model`` and of popularity on the split's warm and cold users.

    Args:
        model: The model to score (None: only the baseline).
        inputs: The inputs the split was made from.
        data: The split.
        seed: Seed of the user sample when there are very many users.
    """
    out: dict[str, Any] = {}
    for warm, model_key, base_key in ((True, "model", "baseline"),
                                      (False, "cold_start", "cold_start_baseline")):
        rows = sample_users(data.eval_users(warm), seed=seed)
        if not len(rows):
            out[model_key] = out[base_key] = None
            continue
        pop_users, pop_items = popularity_vectors(data.train, len(rows))
        out[base_key] = evaluate(pop_users, pop_items, data.train[rows], data.holdout[rows])
        out[model_key] = _evaluate_model(model, inputs, data, rows) if model else None
    return out


def _gate(metrics: dict[str, Any], champion: str | None, champion_error: str | None,
          margin: float) -> tuple[bool, str]:
    """Whether a challenger should replace the champion, and why, in words."""
    ours, pop = metrics["model"][PRIMARY], metrics["baseline"][PRIMARY]
    ratio = f"{ours / pop:.1f}x" if pop else "popularity scores 0"
    vs_pop = f"precision@10 {ours:.4f} vs popularity {pop:.4f} ({ratio})"
    if ours <= pop:
        return False, f"{vs_pop}: it does not beat popularity"
    if champion is None:
        return True, f"first model, {vs_pop}"
    if champion_error:
        return True, f"{vs_pop}; champion {champion} could not be re-evaluated ({champion_error})"
    theirs = metrics["champion"][PRIMARY]
    needed = theirs * (1 + margin)
    vs_champ = (f"precision@10 {ours:.4f} vs champion {champion} {theirs:.4f} on the same "
                f"holdout (needs > {needed:.4f}, margin {margin:.0%})")
    if ours > needed:
        return True, f"{vs_champ}; beats popularity ({ratio})"
    return False, f"{vs_champ}: not better by the margin"


def _library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("rectools-lightfm", "numpy", "scipy", "pyarrow", "deltalake"):
        with contextlib.suppress(PackageNotFoundError):
            out[dist] = package_version(dist)
    return out


def load_model(registry: Registry, version: str) -> RecModel:
    """The model of ``version`` (or alias), checksum verified first.

    Raises:
        ModelError: Missing version or tampered artifact.
    """
    info = registry.get(version)
    return RecModel.from_arrays(registry.load_arrays(info.version), info.params)


def train(settings: Settings, *, promote: str = "auto", date: dt.date | None = None,
          progress: Progress | None = None) -> TrainResult:
    """Train a challenger on the lake as of ``date`` and register it.

    Args:
        settings: Lake, hyperparameters (components, epochs, learning_rate,
            loss, item_alpha, user_alpha, seed), holdout_share and
            promote_margin.
        promote: ``auto`` (promote if it beats popularity and the champion
            re-evaluated on this holdout by ``promote_margin``, relative, on
            precision@10; the first model only has to beat popularity),
            ``never``, or ``force``.
        date: Use listens up to the end of this day, UTC (default: today).
        progress: Called after each epoch with the epoch number and
            ``{"epoch", "seconds", <metrics on a sample of the holdout>}``.

    Returns:
        The new version, its metrics, and whether and why it was promoted.
        A ``meta.runs`` record (pipeline ``train``) is appended either way.

    Raises:
        ConfigError: Bad ``promote`` mode or hyperparameter.
        ModelError: Nothing to train on.
        LockedError: Another training runs on this lake.
        LakeError: The lake is missing or not writable.
    """
    if promote not in PROMOTE_MODES:
        raise ConfigError(f"promote must be one of {', '.join(PROMOTE_MODES)}, got {promote!r}")
    date = check_date(date or dt.datetime.now(dt.UTC).date(), "training date")
    lake = Lake(settings.lake, create=False)
    # Up front, as ingest and build do: a read-only lake fails here in one line, not
    # in delta-rs (a Rust panic) while recording the failure.
    lake.check_writable()
    record = RunRecord(pipeline="train", target="models", run_date=date)
    try:
        with lake_lock(settings.locks_dir, "train", wait=False):
            result = _train(settings, lake, promote, date, progress, record)
    except LakehouseError as exc:
        _record_failure(lake, record, str(exc))
        raise
    except Exception as exc:
        _record_failure(lake, record, f"{type(exc).__name__}: {exc}")
        raise
    return result


def _record_failure(lake: Lake, record: RunRecord, error: str) -> None:
    record.finish(names.FAILED, error)
    try:
        record_run(lake, record)
    except LakehouseError:
        log.exception("could not record the failed training run")


def _train(settings: Settings, lake: Lake, promote: str, date: dt.date,
           progress: Progress | None, record: RunRecord) -> TrainResult:
    t0 = time.perf_counter()
    inputs = load_inputs(lake, date)
    data = split(inputs, settings.holdout_share)
    if not len(data.eval_users(True)):
        raise ModelError("the holdout has no user with training listens; "
                         "ingest more days or lower LAKEHOUSE_HOLDOUT_SHARE")
    record.rows_in = len(inputs.ev_user)
    model, history = fit(inputs, data, settings, progress)
    fit_seconds = time.perf_counter() - t0
    metrics = evaluate_split(model, inputs, data, settings.seed)

    registry = Registry(settings.models_dir)
    champion = registry.alias("champion")
    champion_error = None
    metrics["champion"] = None
    if champion is not None:
        try:
            old = load_model(registry, champion)
            rows = sample_users(data.eval_users(True), seed=settings.seed)
            metrics["champion"] = _evaluate_model(old, inputs, data, rows)
        except ModelError as exc:
            champion_error = str(exc)
            log.warning("champion %s could not be re-evaluated: %s", champion, exc)

    params = {"components": settings.components, "epochs": settings.epochs,
              "learning_rate": settings.learning_rate, "loss": settings.loss,
              "item_alpha": settings.item_alpha, "user_alpha": settings.user_alpha,
              "seed": settings.seed, "holdout_share": settings.holdout_share,
              "max_sampled": settings.max_sampled,
              "num_threads": default_threads(), "k": settings.k}
    lineage = {"as_of": date.isoformat(), "tables": inputs.lineage, "split": data.describe(),
               "users": inputs.n_users, "tracks": inputs.n_items,
               "warm_users": len(model.user_ids), "warm_tracks": len(model.item_ids)}
    stored_metrics = {k: metrics[k] for k in ("model", "baseline", "cold_start",
                                              "cold_start_baseline")}
    info = registry.save(model.to_arrays(), {
        "params": params, "metrics": stored_metrics, "lineage": lineage,
        "training_seconds": round(fit_seconds, 3), "package_version": __version__,
        "library_versions": _library_versions(), "history": history,
        "host": os.uname().nodename,
    })
    registry.set_alias("challenger", info.version)

    if promote == "force":
        promoted, reason = True, "forced (--promote force)"
    else:
        promoted, reason = _gate(metrics, champion, champion_error, settings.promote_margin)
        if promote == "never":
            reason = f"--promote never (the gate says: {'promote' if promoted else 'keep'}, " \
                     f"{reason})"
            promoted = False
    if promoted:
        deltas = None
        if metrics["champion"]:
            deltas = {k: round(metrics["model"][k] - metrics["champion"][k], 6)
                      for k in metrics["model"] if k != "users"
                      and metrics["model"][k] is not None
                      and metrics["champion"].get(k) is not None}
        registry.promote(info.version, reason, deltas)

    record.records = 1
    record.details = {"version": info.version, "promoted": promoted, "reason": reason,
                      "metrics": metrics, "previous_champion": champion,
                      "split": data.describe(), "params": params}
    record.finish(names.SUCCESS)
    record_run(lake, record)
    return TrainResult(version=info.version, metrics=metrics, promoted=promoted, reason=reason,
                       previous_champion=champion, split=data.describe(), history=history,
                       run=record)
